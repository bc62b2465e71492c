"""The migration service's task-settings JSON, read as users already write it.

``parse_task_settings`` accepts the document a task's ``settings`` holds (the
same JSON the migration service takes as ``ReplicationTaskSettings``) and
returns a frozen ``TaskSettings``. Every section is a model below, with the
service's defaults and ranges; keys outside the models that the service knows
are listed in ``IGNORED_TASK_SETTINGS`` and reported in ``TaskSettings.ignored``.
Any other key is a mistake (usually a typo) and is rejected with the closest
known name. What Conveyor does with each accepted key (acts on it, cloud-only,
not yet, refused values) is ``settings_support.SUPPORT``; ``conveyor apply``
shows and refuses by it.

Problems are ``(key.path, problem)`` pairs (``core.problems``), as the stack
loader reports them, so every configuration error reads
``"<file>: <key.path>: <problem>"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_pascal

from conveyor.connectors.base import PrepMode
from conveyor.core.errors import ConfigError
from conveyor.core.names import did_you_mean
from conveyor.core.problems import Problem, format_problems, problems_from_validation_error
from conveyor.core.problems import model_keys as _aliases
from conveyor.core.retry import RetryPolicy


class RecordPolicy(StrEnum):
    """What to do with a row the target cannot take (data and truncation errors)."""

    IGNORE_RECORD = "IGNORE_RECORD"
    LOG_ERROR = "LOG_ERROR"
    SUSPEND_TABLE = "SUSPEND_TABLE"
    STOP_TASK = "STOP_TASK"


class ApplyPolicy(StrEnum):
    """What to do when a change conflicts with the target (insert or update)."""

    IGNORE_RECORD = "IGNORE_RECORD"
    LOG_ERROR = "LOG_ERROR"
    SUSPEND_TABLE = "SUSPEND_TABLE"
    STOP_TASK = "STOP_TASK"
    UPDATE_RECORD = "UPDATE_RECORD"


class InsertPolicy(StrEnum):
    """What to do with an INSERT of a key the target already has. INSERT_RECORD
    overwrites the row; UPDATE_RECORD is accepted as the same (Conveyor's
    earlier spelling)."""

    IGNORE_RECORD = "IGNORE_RECORD"
    LOG_ERROR = "LOG_ERROR"
    SUSPEND_TABLE = "SUSPEND_TABLE"
    STOP_TASK = "STOP_TASK"
    INSERT_RECORD = "INSERT_RECORD"
    UPDATE_RECORD = "UPDATE_RECORD"


class EscalationPolicy(StrEnum):
    """What to do once an error count reaches its escalation threshold."""

    LOG_ERROR = "LOG_ERROR"
    SUSPEND_TABLE = "SUSPEND_TABLE"
    STOP_TASK = "STOP_TASK"


class TablePolicy(StrEnum):
    SUSPEND_TABLE = "SUSPEND_TABLE"
    STOP_TASK = "STOP_TASK"


class EventPolicy(StrEnum):
    IGNORE = "IGNORE"
    STOP_TASK = "STOP_TASK"


class ValidationMode(StrEnum):
    ROW_LEVEL = "ROW_LEVEL"
    GROUP_LEVEL = "GROUP_LEVEL"


class LogSeverity(StrEnum):
    LOGGER_SEVERITY_DEFAULT = "LOGGER_SEVERITY_DEFAULT"
    LOGGER_SEVERITY_ERROR = "LOGGER_SEVERITY_ERROR"
    LOGGER_SEVERITY_WARNING = "LOGGER_SEVERITY_WARNING"
    LOGGER_SEVERITY_INFO = "LOGGER_SEVERITY_INFO"
    LOGGER_SEVERITY_DEBUG = "LOGGER_SEVERITY_DEBUG"
    LOGGER_SEVERITY_DETAILED_DEBUG = "LOGGER_SEVERITY_DETAILED_DEBUG"


class _Section(BaseModel):
    """Python names in snake_case; the JSON keys are the service's PascalCase names."""

    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=to_pascal)


class FullLoadSettings(_Section):
    target_table_prep_mode: PrepMode = PrepMode.DROP_AND_CREATE
    create_pk_after_full_load: bool = False
    stop_task_cached_changes_applied: bool = False
    stop_task_cached_changes_not_applied: bool = False
    max_full_load_sub_tasks: int = Field(default=8, ge=1, le=49)
    transaction_consistency_timeout: int = Field(default=600, ge=0)
    commit_rate: int = Field(default=10000, ge=1, le=50000)

    @model_validator(mode="after")
    def _one_stop_option(self) -> Self:
        if self.stop_task_cached_changes_applied and self.stop_task_cached_changes_not_applied:
            raise ValueError(
                "StopTaskCachedChangesApplied and StopTaskCachedChangesNotApplied cannot both be true"
            )
        return self


class SegmentWorkers(StrEnum):
    LOCAL = "local"
    STORE = "store"


class SegmentedLoadSettings(_Section):
    """Conveyor's own section (the service has none): how a table split into
    segments (parallel-load ranges, or ``SplitAboveRows``) is loaded. ``Workers``
    ``local``: the task's process reads the segments in parallel into the
    table's one transaction; ``store``: the segments become work items in the
    metadata store that ``conveyor worker`` processes claim (docs/scale-workers.md)."""

    workers: SegmentWorkers = SegmentWorkers.LOCAL
    split_above_rows: int = Field(default=0, ge=0, description="0: never split by key range")
    segments: int = Field(default=8, ge=2, le=1000)
    lease_seconds: int = Field(default=30, ge=2, le=3600)


class ErrorBehavior(_Section):
    data_error_policy: RecordPolicy = RecordPolicy.LOG_ERROR
    data_truncation_error_policy: RecordPolicy = RecordPolicy.LOG_ERROR
    data_error_escalation_policy: EscalationPolicy = EscalationPolicy.SUSPEND_TABLE
    data_error_escalation_count: int = Field(default=0, ge=0, description="0: no limit")
    event_error_policy: EventPolicy = EventPolicy.IGNORE
    table_error_policy: TablePolicy = TablePolicy.SUSPEND_TABLE
    table_error_escalation_policy: TablePolicy = TablePolicy.STOP_TASK
    table_error_escalation_count: int = Field(default=0, ge=0, description="0: no limit")
    recoverable_error_count: int = Field(default=-1, ge=-1, description="-1: retry without limit; 0: never")
    recoverable_error_interval: int = Field(default=5, ge=0, description="seconds")
    recoverable_error_throttling: bool = True
    recoverable_error_throttling_max: int = Field(default=1800, ge=0, description="seconds")
    recoverable_error_stop_retry_after_throttling_max: bool = True
    apply_error_delete_policy: RecordPolicy = RecordPolicy.IGNORE_RECORD
    apply_error_insert_policy: InsertPolicy = InsertPolicy.LOG_ERROR
    apply_error_update_policy: ApplyPolicy = ApplyPolicy.LOG_ERROR
    apply_error_escalation_policy: EscalationPolicy = EscalationPolicy.LOG_ERROR
    apply_error_escalation_count: int = Field(default=0, ge=0, description="0: no limit")
    apply_error_fail_on_truncation_ddl: bool = False
    fail_on_no_tables_captured: bool = True
    fail_on_transaction_consistency_breached: bool = False
    full_load_ignore_conflicts: bool = True

    @property
    def judges_apply_conflicts(self) -> bool:
        """Whether the settings wrote an ApplyError* conflict key: only then
        are change batches judged against the target (otherwise changes apply
        idempotently, at no cost: see ``insert_conflicts``)."""
        return bool(self.model_fields_set & _APPLY_CONFLICT_KEYS)

    def written_conflict_keys(self) -> list[str]:
        """The ApplyError* conflict keys written, as ``ErrorBehavior.Key``."""
        return [
            f"ErrorBehavior.{to_pascal(name)}"
            for name in type(self).model_fields
            if name in _APPLY_CONFLICT_KEYS and name in self.model_fields_set
        ]

    @property
    def insert_conflicts(self) -> InsertPolicy:
        """ApplyErrorInsertPolicy as acted on: unwritten, the idempotent INSERT_RECORD."""
        if "apply_error_insert_policy" not in self.model_fields_set:
            return InsertPolicy.INSERT_RECORD
        policy = self.apply_error_insert_policy
        return InsertPolicy.INSERT_RECORD if policy is InsertPolicy.UPDATE_RECORD else policy

    @property
    def update_conflicts(self) -> ApplyPolicy:
        """ApplyErrorUpdatePolicy as acted on: unwritten, the idempotent UPDATE_RECORD."""
        if "apply_error_update_policy" not in self.model_fields_set:
            return ApplyPolicy.UPDATE_RECORD
        return self.apply_error_update_policy

    def retry_policy(self) -> RetryPolicy:
        """The RecoverableError* settings as the one retry policy (core/retry.py)."""
        return RetryPolicy(
            count=self.recoverable_error_count,
            interval=self.recoverable_error_interval,
            throttling=self.recoverable_error_throttling,
            throttling_max=self.recoverable_error_throttling_max,
            stop_after_throttling_max=self.recoverable_error_stop_retry_after_throttling_max,
        )


_APPLY_CONFLICT_KEYS = frozenset(
    {
        "apply_error_insert_policy",
        "apply_error_update_policy",
        "apply_error_delete_policy",
        "apply_error_escalation_policy",
        "apply_error_escalation_count",
    }
)


CONFLICT_ENGINES = frozenset({"postgres", "duckdb"})
"""Target engines whose change capture acts on the ApplyError* conflict keys."""


def apply_conflicts_refusal(errors: ErrorBehavior, engine: str) -> str:
    """Why a target of ``engine`` (not in ``CONFLICT_ENGINES``) refuses the written conflict keys."""
    keys = ", ".join(errors.written_conflict_keys())
    return (
        f"{keys}: apply conflicts are judged only on {' and '.join(sorted(CONFLICT_ENGINES))} targets; "
        f"a {engine} target applies every change as it comes (remove the key)"
    )


class ValidationSettings(_Section):
    enable_validation: bool = False
    validation_mode: ValidationMode = ValidationMode.ROW_LEVEL
    validation_only: bool = False
    thread_count: int = Field(default=5, ge=1)
    partition_size: int = Field(default=10000, ge=1)
    failure_max_count: int = Field(default=10000, ge=0)
    table_failure_max_count: int = Field(default=1000, ge=0)
    handle_collation_diff: bool = False
    skip_lob_columns: bool = False
    max_key_column_size: int = Field(default=8096, ge=1)
    record_failure_delay_in_minutes: int = Field(default=5, ge=0)
    record_failure_delay_limit_in_minutes: int = Field(default=0, ge=0)
    record_suspend_delay_in_minutes: int = Field(default=30, ge=0)
    validation_partial_lob_size: int = Field(default=0, ge=0)
    validation_query_cdc_delay_seconds: int = Field(default=0, ge=0)


class TargetMetadata(_Section):
    target_schema: str = ""
    support_lobs: bool = True
    full_lob_mode: bool = False
    lob_chunk_size: int = Field(default=64, ge=0, description="KB")
    limited_size_lob_mode: bool = True
    lob_max_size: int = Field(default=32, ge=0, description="KB")
    inline_lob_max_size: int = Field(default=0, ge=0, le=102400, description="KB")
    batch_apply_enabled: bool = False
    parallel_load_threads: int = Field(default=0, ge=0)
    parallel_apply_threads: int = Field(default=0, ge=0)
    task_recovery_table_enabled: bool = False

    def lob_limit(self) -> int | None:
        """The KB limited LOB mode cuts LOBs to, when the settings as written ask
        for it (LimitedSizeLobMode true, or a LobMaxSize, without FullLobMode);
        None: LOBs are copied whole. Unwritten, the service's default (limited,
        32 KB) is not taken: Conveyor copies whole values unless told."""
        written = self.model_fields_set
        if self.full_lob_mode or not self.support_lobs or not self.lob_max_size:
            return None
        if "limited_size_lob_mode" in written:
            return self.lob_max_size if self.limited_size_lob_mode else None
        return self.lob_max_size if "lob_max_size" in written else None

    @model_validator(mode="after")
    def _one_lob_mode(self) -> Self:
        written = "limited_size_lob_mode" in self.model_fields_set  # its default is true
        if self.full_lob_mode and self.limited_size_lob_mode and written:
            raise ValueError("FullLobMode and LimitedSizeLobMode cannot both be true")
        return self


class ControlTablesSettings(_Section):
    control_schema: str = ""
    history_timeslot_in_minutes: int = Field(default=5, ge=1)
    history_table_enabled: bool = False
    suspended_tables_table_enabled: bool = False
    status_table_enabled: bool = False
    full_load_exception_table_enabled: bool = False
    commit_position_table_enabled: bool = False


class ChangeProcessingTuning(_Section):
    batch_apply_preserve_transaction: bool = True
    batch_apply_timeout_min: int = Field(default=1, ge=0, description="seconds")
    batch_apply_timeout_max: int = Field(default=30, ge=0, description="seconds")
    batch_apply_memory_limit: int = Field(default=500, ge=0, description="MB")
    batch_split_size: int = Field(default=0, ge=0, description="0: no limit")
    min_transaction_size: int = Field(default=1000, ge=0)
    commit_timeout: int = Field(default=1, ge=0, description="seconds")
    memory_limit_total: int = Field(default=1024, ge=0, description="MB")
    memory_keep_time: int = Field(default=60, ge=0, description="seconds")
    statement_cache_size: int = Field(default=50, ge=0)

    @model_validator(mode="after")
    def _timeouts_ordered(self) -> Self:
        if self.batch_apply_timeout_min > self.batch_apply_timeout_max:
            raise ValueError("BatchApplyTimeoutMin must not exceed BatchApplyTimeoutMax")
        return self


class LogComponent(_Section):
    id: str
    severity: LogSeverity = LogSeverity.LOGGER_SEVERITY_DEFAULT


class Logging(_Section):
    enable_logging: bool = False
    enable_log_context: bool = False
    log_components: tuple[LogComponent, ...] = ()


class ChangeProcessingDdlHandlingPolicy(_Section):
    """What change capture does with DDL on the source (true: apply it to the target)."""

    handle_source_table_dropped: bool = True
    handle_source_table_truncated: bool = True
    handle_source_table_altered: bool = True


class TaskSettings(_Section):
    """A task's settings; every section present, defaulted as the service does."""

    target_metadata: TargetMetadata = TargetMetadata()
    full_load_settings: FullLoadSettings = FullLoadSettings()
    segmented_load_settings: SegmentedLoadSettings = SegmentedLoadSettings()
    logging: Logging = Logging()
    control_tables_settings: ControlTablesSettings = ControlTablesSettings()
    change_processing_tuning: ChangeProcessingTuning = ChangeProcessingTuning()
    change_processing_ddl_handling_policy: ChangeProcessingDdlHandlingPolicy = (
        ChangeProcessingDdlHandlingPolicy()
    )
    validation_settings: ValidationSettings = ValidationSettings()
    error_behavior: ErrorBehavior = ErrorBehavior()
    ignored: tuple[str, ...] = Field(default=(), exclude=True)
    """Dotted names of the known-but-ignored settings the document contained."""

    def to_document(self) -> dict[str, Any]:
        """The settings as the service's JSON, every value filled in."""
        return self.model_dump(mode="json", by_alias=True)


IGNORED_TASK_SETTINGS: frozenset[str] = frozenset(
    {
        # whole sections
        "StreamBufferSettings",
        "BeforeImageSettings",
        "LoopbackPreventionSettings",
        "CharacterSetSettings",
        "PostProcessingRules",
        "TTSettings",
        "FailTaskWhenCleanTaskResourceFailed",
        # single keys of sections Conveyor reads
        "TargetMetadata.LoadMaxFileSize",
        "TargetMetadata.ParallelLoadBufferSize",
        "TargetMetadata.ParallelLoadQueuesPerThread",
        "TargetMetadata.ParallelApplyBufferSize",
        "TargetMetadata.ParallelApplyQueuesPerThread",
        "Logging.CloudWatchLogGroup",
        "Logging.CloudWatchLogStream",
        "ErrorBehavior.DataMaskingErrorPolicy",
    }
)
"""Settings the migration service knows that Conveyor accepts and does not act on.
A name without a dot is a whole section (or top-level value)."""

SPELLING_VARIANTS: Mapping[str, str] = {
    # the service itself writes these when it describes a task
    "ControlTablesSettings.historyTimeslotInMinutes": "HistoryTimeslotInMinutes",
    "ControlTablesSettings.historyTableEnabled": "HistoryTableEnabled",
    # the spelling of older documentation
    "ErrorBehavior.FulloadIgnoreConflicts": "FullLoadIgnoreConflicts",
}
"""Other spellings the service accepts, mapped to the canonical key of the same section."""


def _sections() -> dict[str, type[_Section]]:
    sections: dict[str, type[_Section]] = {}
    for name, field in TaskSettings.model_fields.items():
        if name != "ignored" and isinstance(field.annotation, type):
            sections[field.alias or name] = field.annotation
    return sections


_SECTIONS = _sections()


def supported_task_settings() -> frozenset[str]:
    """Dotted names of every setting the models read. Which of them Conveyor
    acts on is ``settings_support.SUPPORT``."""
    return frozenset(f"{section}.{key}" for section, cls in _SECTIONS.items() for key in _aliases(cls))


def parse_task_settings(doc: Mapping[str, Any] | None, origin: str) -> TaskSettings:
    """Validate a task-settings document; ``origin`` names where it came from in
    messages (``"conveyor.yaml: tasks.load.settings"``). Raises ConfigError with
    one line per problem."""
    settings, problems = check_task_settings(doc)
    if settings is None:
        raise ConfigError(format_problems(origin, problems))
    return settings


def check_task_settings(doc: Any) -> tuple[TaskSettings | None, list[Problem]]:
    """Like ``parse_task_settings`` but returns the problems instead of raising:
    ``(settings, [])`` or ``(None, problems)``."""
    if doc is None:
        return TaskSettings(), []
    if not isinstance(doc, Mapping):
        return None, [("", f"task settings must be a JSON object (got {type(doc).__name__})")]
    cleaned, ignored, problems = _sort_keys(doc)
    try:
        settings = TaskSettings.model_validate(cleaned)
    except ValidationError as exc:
        problems.extend(problems_from_validation_error(exc, TaskSettings))
    if problems:
        return None, problems
    return settings.model_copy(update={"ignored": tuple(ignored)}), []


def _sort_keys(doc: Mapping[str, Any]) -> tuple[dict[str, Any], list[str], list[Problem]]:
    """Split a document into what the models read, the ignored names present,
    and the unknown keys (as problems). A null value means the default."""
    cleaned: dict[str, Any] = {}
    ignored: list[str] = []
    problems: list[Problem] = []
    for raw_key, value in doc.items():
        key = str(raw_key)
        if value is None:
            continue
        if key in IGNORED_TASK_SETTINGS:
            ignored.append(key)
        elif key in _SECTIONS:
            if not isinstance(value, Mapping):
                cleaned[key] = value  # the model reports the type
                continue
            cleaned[key] = section = {}
            fields = _aliases(_SECTIONS[key])
            for raw_sub, sub_value in value.items():
                sub = str(raw_sub)
                dotted = f"{key}.{sub}"
                canonical = SPELLING_VARIANTS.get(dotted, sub)
                if sub_value is None:
                    continue
                if canonical in fields:
                    if sub == canonical or canonical not in section:
                        section[canonical] = sub_value
                elif dotted in IGNORED_TASK_SETTINGS:
                    ignored.append(dotted)
                else:
                    problems.append((dotted, _unknown_setting(sub, key)))
        else:
            problems.append((key, _unknown_setting(key, None)))
    return cleaned, ignored, problems


def _unknown_setting(key: str, section: str | None) -> str:
    for other, cls in _SECTIONS.items():
        if other != section and (key in _aliases(cls) or f"{other}.{key}" in IGNORED_TASK_SETTINGS):
            return f"unknown setting here; {key} belongs in {other}"
    if section is None:
        candidates = [*_SECTIONS, *(name for name in IGNORED_TASK_SETTINGS if "." not in name)]
    else:
        candidates = [*_aliases(_SECTIONS[section])]
        candidates += [
            name.split(".", 1)[1] for name in IGNORED_TASK_SETTINGS if name.startswith(section + ".")
        ]
    return "unknown setting" + did_you_mean(key, candidates)
