"""What Conveyor does with each task-settings key the settings model accepts.

``parse_task_settings`` checks the shape of the migration service's JSON; this
module says, for every key it accepts, whether Conveyor acts on it
(``ACTED``), whether it only has a meaning inside the service's cloud
(``CLOUD_ONLY``: CloudWatch logging, the replication instance's memory and
thread tuning ...), or whether Conveyor does not act on it yet (``NOT_YET``).

A key the user wrote is never quietly ignored: ``review_task_settings`` returns
the cloud-only and not-acted-on keys written (``conveyor apply`` prints them,
``--strict`` refuses them) and refuses a written value that asks for behaviour
Conveyor does not have (``honours``), naming the key and what Conveyor does.
The table ``SUPPORT`` has one row per accepted key; a test fails when the
model accepts a key without one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from conveyor.core.names import did_you_mean
from conveyor.core.problems import Problem
from conveyor.replication.settings import (
    IGNORED_TASK_SETTINGS,
    SPELLING_VARIANTS,
    TaskSettings,
    check_task_settings,
    supported_task_settings,
)


class Kind(StrEnum):
    ACTED = "acted on"
    CLOUD_ONLY = "cloud-only, no meaning here"
    NOT_YET = "not acted on yet"


Honours = Callable[[Any, TaskSettings], bool]


@dataclass(frozen=True)
class Support:
    """What Conveyor does with one key. ``honours(value, settings)`` is False
    for a written value Conveyor cannot honour: it is refused with ``does``."""

    kind: Kind
    does: str
    honours: Honours = field(default=lambda _value, _settings: True)


def _only(*values: Any) -> Honours:
    return lambda value, _settings: value in values


def acted(does: str, honours: Honours | None = None) -> Support:
    return Support(Kind.ACTED, does) if honours is None else Support(Kind.ACTED, does, honours)


def cloud(does: str) -> Support:
    return Support(Kind.CLOUD_ONLY, does)


def not_yet(does: str, *honoured: Any) -> Support:
    """A key Conveyor does not act on; when ``honoured`` values are given, any
    other written value is refused (Conveyor behaves as those values say)."""
    return Support(Kind.NOT_YET, does, _only(*honoured)) if honoured else Support(Kind.NOT_YET, does)


_RECORD_DELAY = (
    "validation during change capture reports a differing row once a second comparison, a settle delay "
    "later, finds it still different"
)

LOG_COMPONENTS: Mapping[str, tuple[str, ...]] = {
    "SOURCE_UNLOAD": ("conveyor.connectors.postgres.source", "conveyor.connectors.mysql.source",
                      "conveyor.connectors.sqlite.source", "conveyor.connectors.dynamodb.source"),
    "SOURCE_CAPTURE": ("conveyor.connectors.postgres.capture", "conveyor.connectors.mysql.capture",
                       "conveyor.connectors.sqlite.capture", "conveyor.connectors.dynamodb.streams"),
    "TARGET_LOAD": ("conveyor.replication.full_load", "conveyor.connectors.postgres.target",
                    "conveyor.connectors.duckdb.target", "conveyor.connectors.lake.target"),
    "TARGET_APPLY": ("conveyor.replication.cdc", "conveyor.connectors.postgres.apply",
                     "conveyor.connectors.duckdb.apply", "conveyor.connectors.lake.apply"),
    "TASK_MANAGER": ("conveyor.replication.task_runner", "conveyor.replication.worker"),
    "TRANSFORMATION": ("conveyor.replication.mappings", "conveyor.replication.expressions"),
    "VALIDATOR": ("conveyor.replication.validation",),
}  # fmt: skip
"""The service's log components Conveyor has, as the Python loggers they set."""

OTHER_LOG_COMPONENTS: frozenset[str] = frozenset(
    {
        "VALIDATOR_EXT", "IO", "COMMON", "ADDONS", "DATA_STRUCTURE", "COMMUNICATION", "FILE_FACTORY",
        "FILE_TRANSFER", "REST_SERVER", "PERFORMANCE", "METADATA_MANAGER", "SORTER", "SORTER_STORAGE",
        "TABLES_MANAGER", "SERVER", "UTILITIES", "TRANSACTIONS", "LOB_MANAGER",
    }
)  # fmt: skip
"""The service's other log components: accepted, no counterpart here."""

_RETRIES = (
    "a transient target error retries the table's full load from the same snapshot, or the "
    "change-capture batch (core/retry.py)"
)
_CONFLICTS = (
    "change capture into PostgreSQL or DuckDB judges each key of a batch by its first change against "
    "the target (refused for other targets)"
)
_LOB_CHUNKS = "how the service moves LOBs in pieces; Conveyor reads each value whole"
_LIMITED = (
    "written (LimitedSizeLobMode true, or a LobMaxSize), text and binary LOBs are cut to LobMaxSize KB "
    "and each cut logged; unwritten, Conveyor copies LOBs whole (not the service's 32 KB default)"
)
_TUNING = "tuning of the service's replication instance; Conveyor sizes its own batches"
_FULL_LOAD_EXCEPTIONS = (
    "the service's documentation gives this table no columns; a value the full load refuses goes to "
    "awsdms_apply_exceptions"
)
_COMMIT_POSITION = (
    "the service's documentation gives this table no columns; the commit position lives in "
    "conveyor_checkpoints on the target"
)

SUPPORT: Mapping[str, Support] = {
    # TargetMetadata
    "TargetMetadata.TargetSchema": acted("tables land in this schema unless a rule renames it"),
    "TargetMetadata.SupportLobs": acted(
        "false: LOB columns (binary, JSON, text without a length) are left out of every table, but for "
        "key columns; true (the default): copied whole"
    ),
    "TargetMetadata.FullLobMode": acted(
        "true: every LOB copied whole (Conveyor's way unless limited mode is written)"
    ),
    "TargetMetadata.LobChunkSize": cloud(_LOB_CHUNKS),
    "TargetMetadata.LimitedSizeLobMode": acted(_LIMITED),
    "TargetMetadata.LobMaxSize": acted(_LIMITED),
    "TargetMetadata.InlineLobMaxSize": cloud(_LOB_CHUNKS),
    "TargetMetadata.BatchApplyEnabled": cloud("Conveyor always applies changes as set-based batches"),
    "TargetMetadata.ParallelLoadThreads": cloud(_TUNING + " (MaxFullLoadSubTasks sets the parallelism)"),
    "TargetMetadata.ParallelApplyThreads": cloud(_TUNING),
    "TargetMetadata.TaskRecoveryTableEnabled": not_yet(
        "Conveyor keeps the task's checkpoint in conveyor_checkpoints on the target", False
    ),
    "TargetMetadata.LoadMaxFileSize": cloud(_TUNING),
    "TargetMetadata.ParallelLoadBufferSize": cloud(_TUNING),
    "TargetMetadata.ParallelLoadQueuesPerThread": cloud(_TUNING),
    "TargetMetadata.ParallelApplyBufferSize": cloud(_TUNING),
    "TargetMetadata.ParallelApplyQueuesPerThread": cloud(_TUNING),
    # SegmentedLoadSettings (Conveyor's own: docs/scale-workers.md)
    "SegmentedLoadSettings.Workers": acted(
        "who loads a table's segments: this task (local) or `conveyor worker`s (store)"
    ),
    "SegmentedLoadSettings.SplitAboveRows": acted(
        "tables estimated above this many rows are split by key range"
    ),
    "SegmentedLoadSettings.Segments": acted("how many key-range segments a split table gets"),
    "SegmentedLoadSettings.LeaseSeconds": acted(
        "how long a worker's claim on a segment lasts without a heartbeat"
    ),
    # FullLoadSettings
    "FullLoadSettings.TargetTablePrepMode": acted("how target tables are prepared before a load"),
    "FullLoadSettings.CreatePkAfterFullLoad": acted(
        "a PostgreSQL target table created by the load gets its primary key after the rows"
        " (other targets: the key exists either way)"
    ),
    "FullLoadSettings.StopTaskCachedChangesApplied": acted(
        "a full-load-and-cdc task stops once the changes committed during its full load are applied"
        " (STOPPED_AFTER_CACHED_EVENTS); `tasks resume` continues"
    ),
    "FullLoadSettings.StopTaskCachedChangesNotApplied": acted(
        "a full-load-and-cdc task stops after its full load (STOPPED_AFTER_FULL_LOAD); `tasks resume`"
        " applies the changes since"
    ),
    "FullLoadSettings.MaxFullLoadSubTasks": acted("tables loaded in parallel"),
    "FullLoadSettings.TransactionConsistencyTimeout": cloud(
        "Conveyor's snapshot is consistent by construction; nothing waits for open transactions"
    ),
    "FullLoadSettings.CommitRate": acted("rows per batch of a full load"),
    # Logging
    "Logging.EnableLogging": cloud("CloudWatch logging; the worker always logs to `conveyor tasks logs`"),
    "Logging.EnableLogContext": cloud("CloudWatch log context"),
    "Logging.LogComponents": acted("each component's severity sets its Python loggers' level in the worker"),
    "Logging.CloudWatchLogGroup": cloud("CloudWatch logging"),
    "Logging.CloudWatchLogStream": cloud("CloudWatch logging"),
    # ControlTablesSettings (replication/control_tables.py; the lake and NATS refuse them)
    "ControlTablesSettings.ControlSchema": acted(
        "the control tables (awsdms_status, awsdms_suspended_tables, awsdms_history, awsdms_apply_exceptions,"
        " awsdms_validation_failures_v1) go in this schema, created if missing"
    ),
    "ControlTablesSettings.HistoryTimeslotInMinutes": acted("minutes per awsdms_history row"),
    "ControlTablesSettings.HistoryTableEnabled": acted(
        "awsdms_history: records processed per timeslot, full load and change processing"
    ),
    "ControlTablesSettings.SuspendedTablesTableEnabled": acted(
        "awsdms_suspended_tables: a row per suspended table with its reason, gone once reloaded"
    ),
    "ControlTablesSettings.StatusTableEnabled": acted(
        "awsdms_status: the task's status row (FULL LOAD, CHANGE PROCESSING, NOT RUNNING), kept current"
    ),
    "ControlTablesSettings.FullLoadExceptionTableEnabled": not_yet(_FULL_LOAD_EXCEPTIONS, False),
    "ControlTablesSettings.CommitPositionTableEnabled": not_yet(_COMMIT_POSITION, False),
    # ChangeProcessingTuning
    "ChangeProcessingTuning.BatchApplyPreserveTransaction": cloud("applies to Oracle targets only"),
    "ChangeProcessingTuning.BatchApplyTimeoutMin": acted("seconds a change batch may gather (at most 0.5)"),
    "ChangeProcessingTuning.BatchApplyTimeoutMax": cloud(_TUNING),
    "ChangeProcessingTuning.BatchApplyMemoryLimit": cloud(_TUNING),
    "ChangeProcessingTuning.BatchSplitSize": acted("changes per batch at most"),
    "ChangeProcessingTuning.MinTransactionSize": cloud(_TUNING),
    "ChangeProcessingTuning.CommitTimeout": cloud(_TUNING),
    "ChangeProcessingTuning.MemoryLimitTotal": cloud(_TUNING),
    "ChangeProcessingTuning.MemoryKeepTime": cloud(_TUNING),
    "ChangeProcessingTuning.StatementCacheSize": cloud(_TUNING),
    # ChangeProcessingDdlHandlingPolicy
    "ChangeProcessingDdlHandlingPolicy.HandleSourceTableDropped": acted(
        "a source DROP TABLE drops the target table (false: leaves it); the table leaves the capture"
    ),
    "ChangeProcessingDdlHandlingPolicy.HandleSourceTableTruncated": acted("a source TRUNCATE is applied"),
    "ChangeProcessingDdlHandlingPolicy.HandleSourceTableAltered": acted(
        "added, dropped and renamed columns are applied (false: the table is suspended)"
    ),
    # ValidationSettings
    "ValidationSettings.EnableValidation": acted(
        "every value compared after the full load, and rows changed during change capture once they settle"
    ),
    "ValidationSettings.ValidationMode": not_yet("Conveyor validates row by row", "ROW_LEVEL"),
    "ValidationSettings.ValidationOnly": acted(
        "true: a full-load task compares the tables without loading (refused for change capture)"
    ),
    "ValidationSettings.ThreadCount": acted("tables validated at once"),
    "ValidationSettings.PartitionSize": acted("rows compared per partition"),
    "ValidationSettings.FailureMaxCount": acted("failures recorded per run, then counted only"),
    "ValidationSettings.TableFailureMaxCount": acted("failures recorded per table, then counted only"),
    "ValidationSettings.HandleCollationDiff": acted(
        "keys paired in code point order on both sides, whatever the columns' collations: "
        "no false difference from a collation (true asks for that; false changes nothing)"
    ),
    "ValidationSettings.SkipLobColumns": acted("true: LOB columns left out of the comparison, and said"),
    "ValidationSettings.MaxKeyColumnSize": cloud(_TUNING),
    "ValidationSettings.RecordFailureDelayInMinutes": acted(
        "when written, minutes a differing row must stay different, unchanged, before validation during"
        " change capture reports it, unless RecordFailureDelayLimitInMinutes is set (0, or not written:"
        " one settle delay)"
    ),
    "ValidationSettings.RecordFailureDelayLimitInMinutes": acted(
        "minutes a differing row must stay different, unchanged, before validation during"
        " change capture reports it (0: one settle delay); a differing row is compared again each such delay"
    ),
    "ValidationSettings.RecordSuspendDelayInMinutes": not_yet(_RECORD_DELAY),
    "ValidationSettings.ValidationPartialLobSize": acted("LOB values compared on their first N kilobytes"),
    "ValidationSettings.ValidationQueryCdcDelaySeconds": acted(
        "seconds a change settles before validation during change capture compares its row (0: 5 s)"
    ),
    # ErrorBehavior
    "ErrorBehavior.DataErrorPolicy": acted("a refused value goes to awsdms_apply_exceptions, or stops"),
    "ErrorBehavior.DataTruncationErrorPolicy": acted(
        "a value too long for its target column is a data error: set DataTruncationErrorPolicy equal"
        " to DataErrorPolicy (Conveyor cannot tell truncation apart)",
        lambda value, settings: value == settings.error_behavior.data_error_policy,
    ),
    "ErrorBehavior.DataErrorEscalationPolicy": acted("what follows DataErrorEscalationCount errors"),
    "ErrorBehavior.DataErrorEscalationCount": acted("data errors of a table before escalation"),
    "ErrorBehavior.EventErrorPolicy": not_yet("Conveyor logs an event rule's failure and goes on", "IGNORE"),
    "ErrorBehavior.TableErrorPolicy": acted(
        "a failed or suspended table: SUSPEND_TABLE lets the other tables go on, STOP_TASK stops the task"
    ),
    "ErrorBehavior.TableErrorEscalationPolicy": acted("what follows TableErrorEscalationCount table errors"),
    "ErrorBehavior.TableErrorEscalationCount": acted("table errors before escalation (0: no limit)"),
    "ErrorBehavior.RecoverableErrorCount": acted(_RETRIES + ": how many (-1: no bound, 0: none)"),
    "ErrorBehavior.RecoverableErrorInterval": acted(_RETRIES + ": the first wait, in seconds"),
    "ErrorBehavior.RecoverableErrorThrottling": acted(_RETRIES + ": each wait doubles"),
    "ErrorBehavior.RecoverableErrorThrottlingMax": acted(_RETRIES + ": the longest wait"),
    "ErrorBehavior.RecoverableErrorStopRetryAfterThrottlingMax": acted(
        _RETRIES + ": give up once a wait of the maximum was not enough"
    ),
    "ErrorBehavior.ApplyErrorDeletePolicy": acted(
        _CONFLICTS + ": a DELETE of a missing row (default IGNORE_RECORD)"
    ),
    "ErrorBehavior.ApplyErrorInsertPolicy": acted(
        _CONFLICTS + ": an INSERT of an existing key (unwritten: INSERT_RECORD, the row overwritten)"
    ),
    "ErrorBehavior.ApplyErrorUpdatePolicy": acted(
        _CONFLICTS + ": an UPDATE of a missing row (unwritten: UPDATE_RECORD, the whole row inserted)"
    ),
    "ErrorBehavior.ApplyErrorEscalationPolicy": acted(
        _CONFLICTS + ": what follows ApplyErrorEscalationCount"
    ),
    "ErrorBehavior.ApplyErrorEscalationCount": acted(
        _CONFLICTS + ": apply conflicts of a table before escalation"
    ),
    "ErrorBehavior.ApplyErrorFailOnTruncationDdl": acted(
        "true: a captured TRUNCATE fails the task before any of it is applied"
    ),
    "ErrorBehavior.FailOnNoTablesCaptured": acted(
        "false: a task whose rules select no table ends without failing, with an event"
    ),
    "ErrorBehavior.FailOnTransactionConsistencyBreached": cloud("applies to Oracle sources only"),
    "ErrorBehavior.FullLoadIgnoreConflicts": not_yet(
        "Conveyor applies cached changes idempotently (conflicts cannot arise)", True
    ),
    "ErrorBehavior.DataMaskingErrorPolicy": cloud("the service's data masking; Conveyor masks nothing"),
    # whole sections and top-level values
    "StreamBufferSettings": cloud(_TUNING),
    "BeforeImageSettings": cloud("applies to Kinesis and Kafka targets only"),
    "LoopbackPreventionSettings": Support(
        Kind.NOT_YET,
        "Conveyor does not prevent loopback in two-way replication: EnableLoopbackPrevention true is refused",
        lambda value, _settings: not (isinstance(value, dict) and value.get("EnableLoopbackPrevention")),
    ),
    "CharacterSetSettings": cloud("applies to Oracle and Db2 sources only"),
    "PostProcessingRules": cloud("the service's post-processing rules"),
    "TTSettings": cloud("the service's Time Travel logging to S3"),
    "FailTaskWhenCleanTaskResourceFailed": cloud("the service's task resources"),
}
"""One row per key the settings model accepts, dotted as ``Section.Key``."""


def accepted_keys() -> frozenset[str]:
    """Every dotted key the settings model accepts (acted on or listed as ignored)."""
    return supported_task_settings() | IGNORED_TASK_SETTINGS


@dataclass(frozen=True)
class SettingsReview:
    """The keys a task's settings document wrote that Conveyor does not act on,
    and the written values it refuses."""

    cloud_only: tuple[str, ...] = ()
    not_yet: tuple[str, ...] = ()
    refused: tuple[Problem, ...] = ()

    def as_dict(self) -> dict[str, list[str]]:
        return {"cloud_only": list(self.cloud_only), "not_acted_on_yet": list(self.not_yet)}

    def notices(self) -> list[str]:
        """One line per kind, for `conveyor apply` and `conveyor tasks describe`."""
        lines = []
        if self.cloud_only:
            lines.append(f"{Kind.CLOUD_ONLY}: {', '.join(self.cloud_only)}")
        if self.not_yet:
            lines.append(f"{Kind.NOT_YET}: {', '.join(self.not_yet)}")
        return lines


def written(doc: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
    """``(dotted key, value)`` for every non-null key of the document, with the
    service's other spellings made canonical. Whole ignored sections are one key."""
    for key, value in doc.items():
        if value is None:
            continue
        if isinstance(value, Mapping) and key not in IGNORED_TASK_SETTINGS:
            for sub, sub_value in value.items():
                if sub_value is not None:
                    dotted = f"{key}.{sub}"
                    canonical = SPELLING_VARIANTS.get(dotted)
                    yield (f"{key}.{canonical}" if canonical else dotted), sub_value
        else:
            yield str(key), value


def review_task_settings(doc: Mapping[str, Any] | None, settings: TaskSettings) -> SettingsReview:
    """Classify the keys ``doc`` wrote (``settings`` is its parse, for checks
    across keys). Keys the model refuses are not seen here."""
    cloud_only: list[str] = []
    pending: list[str] = []
    refused: list[Problem] = []
    for key, value in written(doc or {}):
        support = SUPPORT.get(key)
        if support is None:
            continue  # the model reported it already
        if not support.honours(value, settings):
            refused.append((key, f"Conveyor cannot honour {_shown(value)}: {support.does}"))
        elif support.kind is Kind.CLOUD_ONLY:
            cloud_only.append(key)
        elif support.kind is Kind.NOT_YET:
            pending.append(key)
    if "Logging.LogComponents" in dict(written(doc or {})):
        refused += _log_component_problems(settings)
        pending += [
            f"Logging.LogComponents.{component.id}"
            for component in settings.logging.log_components
            if component.id in OTHER_LOG_COMPONENTS
        ]
    return SettingsReview(tuple(cloud_only), tuple(pending), tuple(refused))


def task_settings_problems(doc: Any) -> list[Problem]:
    """Every problem of a task-settings document in one pass: what the settings
    model refuses, and written values Conveyor cannot honour (checked on the
    rest of the document when some keys are wrong)."""
    settings, problems = check_task_settings(doc)
    if settings is None and isinstance(doc, Mapping):
        bad = {tuple(path.split(".")[:2]) for path, _ in problems}
        rest = {
            section: (
                {k: v for k, v in value.items() if (section, str(k)) not in bad}
                if isinstance(value, Mapping)
                else value
            )
            for section, value in doc.items()
            if (section,) not in bad
        }
        settings, _ = check_task_settings(rest)
        doc = rest
    if settings is not None:
        problems += review_task_settings(doc, settings).refused
    return problems


def _log_component_problems(settings: TaskSettings) -> list[Problem]:
    known = [*LOG_COMPONENTS, *OTHER_LOG_COMPONENTS]
    return [
        (
            f"Logging.LogComponents.{index}.Id",
            f"unknown log component {component.id!r}" + did_you_mean(component.id, known),
        )
        for index, component in enumerate(settings.logging.log_components)
        if component.id not in known
    ]


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else "this value"
