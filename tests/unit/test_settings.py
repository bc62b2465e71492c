"""Task settings: the migration service's JSON as written, its defaults, and the
messages for what it would reject (or what Conveyor does not know)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from conveyor.connectors.base import PrepMode
from conveyor.core.errors import ConfigError
from conveyor.replication.settings import (
    ApplyPolicy,
    EscalationPolicy,
    RecordPolicy,
    TablePolicy,
    TaskSettings,
    ValidationMode,
    check_task_settings,
    parse_task_settings,
)

ORIGIN = "conveyor.yaml: tasks.load.settings"

# The documentation's example, as users copy it.
DOCUMENTED_EXAMPLE: dict[str, Any] = {
    "TargetMetadata": {
        "TargetSchema": "",
        "SupportLobs": True,
        "FullLobMode": False,
        "LobChunkSize": 64,
        "LimitedSizeLobMode": True,
        "LobMaxSize": 32,
        "BatchApplyEnabled": True,
    },
    "FullLoadSettings": {
        "TargetTablePrepMode": "DO_NOTHING",
        "CreatePkAfterFullLoad": False,
        "StopTaskCachedChangesApplied": False,
        "StopTaskCachedChangesNotApplied": False,
        "MaxFullLoadSubTasks": 8,
        "TransactionConsistencyTimeout": 600,
        "CommitRate": 10000,
    },
    "Logging": {"EnableLogging": False},
    "ControlTablesSettings": {
        "ControlSchema": "",
        "HistoryTimeslotInMinutes": 5,
        "HistoryTableEnabled": False,
        "SuspendedTablesTableEnabled": False,
        "StatusTableEnabled": False,
    },
    "StreamBufferSettings": {"StreamBufferCount": 3, "StreamBufferSizeInMB": 8},
    "ChangeProcessingTuning": {
        "BatchApplyPreserveTransaction": True,
        "BatchApplyTimeoutMin": 1,
        "BatchApplyTimeoutMax": 30,
        "BatchApplyMemoryLimit": 500,
        "BatchSplitSize": 0,
        "MinTransactionSize": 1000,
        "CommitTimeout": 1,
        "MemoryLimitTotal": 1024,
        "MemoryKeepTime": 60,
        "StatementCacheSize": 50,
    },
    "ChangeProcessingDdlHandlingPolicy": {
        "HandleSourceTableDropped": True,
        "HandleSourceTableTruncated": True,
        "HandleSourceTableAltered": True,
    },
    "ValidationSettings": {"EnableValidation": False, "ThreadCount": 5},
    "ErrorBehavior": {
        "DataErrorPolicy": "LOG_ERROR",
        "DataTruncationErrorPolicy": "LOG_ERROR",
        "DataErrorEscalationPolicy": "SUSPEND_TABLE",
        "DataErrorEscalationCount": 50,
        "TableErrorPolicy": "SUSPEND_TABLE",
        "TableErrorEscalationPolicy": "STOP_TASK",
        "TableErrorEscalationCount": 50,
        "RecoverableErrorCount": 0,
        "RecoverableErrorInterval": 5,
        "RecoverableErrorThrottling": True,
        "RecoverableErrorThrottlingMax": 1800,
        "ApplyErrorDeletePolicy": "IGNORE_RECORD",
        "ApplyErrorInsertPolicy": "LOG_ERROR",
        "ApplyErrorUpdatePolicy": "LOG_ERROR",
        "ApplyErrorEscalationPolicy": "LOG_ERROR",
        "ApplyErrorEscalationCount": 0,
        "FullLoadIgnoreConflicts": True,
    },
}

# What the service returns when it describes a task: nulls, and its own spellings.
DESCRIBED_TASK: dict[str, Any] = {
    "Logging": {
        "EnableLogging": True,
        "EnableLogContext": False,
        "LogComponents": [{"Id": "TARGET_LOAD", "Severity": "LOGGER_SEVERITY_DEBUG"}, {"Id": "IO"}],
        "CloudWatchLogGroup": None,
        "CloudWatchLogStream": None,
    },
    "ControlTablesSettings": {
        "historyTimeslotInMinutes": 7,
        "ControlSchema": "",
        "StatusTableEnabled": False,
        "FullLoadExceptionTableEnabled": False,
    },
    "BeforeImageSettings": None,
    "PostProcessingRules": None,
    "CharacterSetSettings": None,
    "LoopbackPreventionSettings": None,
    "FailTaskWhenCleanTaskResourceFailed": False,
    "ErrorBehavior": {"FailOnNoTablesCaptured": True, "RecoverableErrorStopRetryAfterThrottlingMax": True},
}


def test_no_document_means_the_service_defaults() -> None:
    empty: list[dict[str, Any] | None] = [None, {}]
    for doc in empty:
        settings = parse_task_settings(doc, ORIGIN)
        assert settings == TaskSettings()
    full_load = settings.full_load_settings
    assert full_load.target_table_prep_mode is PrepMode.DROP_AND_CREATE
    assert (full_load.max_full_load_sub_tasks, full_load.commit_rate) == (8, 10000)
    errors = settings.error_behavior
    assert errors.data_error_policy is RecordPolicy.LOG_ERROR
    assert errors.data_error_escalation_policy is EscalationPolicy.SUSPEND_TABLE
    assert errors.data_error_escalation_count == 0
    assert errors.table_error_policy is TablePolicy.SUSPEND_TABLE
    assert settings.validation_settings.enable_validation is False
    assert settings.ignored == ()


def test_the_documented_example_parses() -> None:
    settings = parse_task_settings(DOCUMENTED_EXAMPLE, ORIGIN)
    assert settings.full_load_settings.target_table_prep_mode is PrepMode.DO_NOTHING
    assert settings.error_behavior.data_error_escalation_count == 50
    assert settings.error_behavior.recoverable_error_count == 0
    assert settings.target_metadata.batch_apply_enabled is True
    assert settings.change_processing_tuning.batch_apply_timeout_max == 30
    assert set(settings.ignored) == {"StreamBufferSettings"}
    assert settings.change_processing_ddl_handling_policy.handle_source_table_altered is True


def test_a_described_task_parses_with_its_spellings_and_nulls() -> None:
    settings = parse_task_settings(DESCRIBED_TASK, ORIGIN)
    assert settings.control_tables_settings.history_timeslot_in_minutes == 7
    assert [c.id for c in settings.logging.log_components] == ["TARGET_LOAD", "IO"]
    assert settings.logging.log_components[1].severity == "LOGGER_SEVERITY_DEFAULT"
    assert "FailTaskWhenCleanTaskResourceFailed" in settings.ignored
    assert "Logging.CloudWatchLogGroup" not in settings.ignored  # null means absent
    assert settings.error_behavior.recoverable_error_stop_retry_after_throttling_max is True  # read now


Getter = Callable[[TaskSettings], object]

VALID: list[tuple[str, dict[str, Any], Getter, object]] = [
    (
        "truncate",
        {"FullLoadSettings": {"TargetTablePrepMode": "TRUNCATE_BEFORE_LOAD"}},
        lambda s: s.full_load_settings.target_table_prep_mode,
        PrepMode.TRUNCATE_BEFORE_LOAD,
    ),
    (
        "subtasks-max",
        {"FullLoadSettings": {"MaxFullLoadSubTasks": 49}},
        lambda s: s.full_load_settings.max_full_load_sub_tasks,
        49,
    ),
    (
        "commit-max",
        {"FullLoadSettings": {"CommitRate": 50000}},
        lambda s: s.full_load_settings.commit_rate,
        50000,
    ),
    (
        "stop-task",
        {"ErrorBehavior": {"DataErrorPolicy": "STOP_TASK"}},
        lambda s: s.error_behavior.data_error_policy,
        RecordPolicy.STOP_TASK,
    ),
    (
        "insert-update-record",
        {"ErrorBehavior": {"ApplyErrorInsertPolicy": "UPDATE_RECORD"}},
        lambda s: s.error_behavior.apply_error_insert_policy,
        ApplyPolicy.UPDATE_RECORD,
    ),
    (
        "old-spelling",
        {"ErrorBehavior": {"FulloadIgnoreConflicts": False}},
        lambda s: s.error_behavior.full_load_ignore_conflicts,
        False,
    ),
    (
        "canonical-spelling-wins",
        {"ControlTablesSettings": {"HistoryTimeslotInMinutes": 3, "historyTimeslotInMinutes": 9}},
        lambda s: s.control_tables_settings.history_timeslot_in_minutes,
        3,
    ),
    (
        "validation",
        {"ValidationSettings": {"EnableValidation": True, "ValidationMode": "GROUP_LEVEL", "ThreadCount": 2}},
        lambda s: (s.validation_settings.enable_validation, s.validation_settings.validation_mode),
        (True, ValidationMode.GROUP_LEVEL),
    ),
    (
        "escalation-unlimited",
        {"ErrorBehavior": {"DataErrorEscalationCount": 0, "DataErrorEscalationPolicy": "STOP_TASK"}},
        lambda s: s.error_behavior.data_error_escalation_policy,
        EscalationPolicy.STOP_TASK,
    ),
    (
        "ignored-key",
        {"TargetMetadata": {"ParallelLoadBufferSize": 500}},
        lambda s: s.ignored,
        ("TargetMetadata.ParallelLoadBufferSize",),
    ),
]


@pytest.mark.parametrize(
    ("doc", "get", "expected"), [row[1:] for row in VALID], ids=[row[0] for row in VALID]
)
def test_valid_settings(doc: dict[str, Any], get: Getter, expected: object) -> None:
    assert get(parse_task_settings(doc, ORIGIN)) == expected


INVALID: list[tuple[str, Any, str, list[str]]] = [
    (
        "typo-in-key",
        {"FullLoadSettings": {"TargetTablePrepmode": "DO_NOTHING"}},
        "FullLoadSettings.TargetTablePrepmode",
        ["unknown setting", "did you mean 'TargetTablePrepMode'?"],
    ),
    (
        "typo-in-section",
        {"FullLoadSetings": {}},
        "FullLoadSetings",
        ["unknown setting", "did you mean 'FullLoadSettings'?"],
    ),
    (
        "key-in-wrong-section",
        {"TargetMetadata": {"CommitRate": 100}},
        "TargetMetadata.CommitRate",
        ["belongs in FullLoadSettings"],
    ),
    (
        "key-at-top-level",
        {"TargetTablePrepMode": "DO_NOTHING"},
        "TargetTablePrepMode",
        ["belongs in FullLoadSettings"],
    ),
    (
        "bad-prep-mode",
        {"FullLoadSettings": {"TargetTablePrepMode": "drop_and_create"}},
        "FullLoadSettings.TargetTablePrepMode",
        ["'drop_and_create'", "DO_NOTHING", "TRUNCATE_BEFORE_LOAD", "did you mean 'DROP_AND_CREATE'?"],
    ),
    (
        "subtasks-zero",
        {"FullLoadSettings": {"MaxFullLoadSubTasks": 0}},
        "FullLoadSettings.MaxFullLoadSubTasks",
        ["greater than or equal to 1", "got 0"],
    ),
    (
        "subtasks-50",
        {"FullLoadSettings": {"MaxFullLoadSubTasks": 50}},
        "FullLoadSettings.MaxFullLoadSubTasks",
        ["less than or equal to 49"],
    ),
    (
        "commit-rate-too-high",
        {"FullLoadSettings": {"CommitRate": 50001}},
        "FullLoadSettings.CommitRate",
        ["less than or equal to 50000"],
    ),
    (
        "commit-rate-text",
        {"FullLoadSettings": {"CommitRate": "lots"}},
        "FullLoadSettings.CommitRate",
        ["valid integer"],
    ),
    (
        "data-error-policy",
        {"ErrorBehavior": {"DataErrorPolicy": "SUPPRESS_RECORD"}},
        "ErrorBehavior.DataErrorPolicy",
        ["'SUPPRESS_RECORD'", "IGNORE_RECORD, LOG_ERROR, SUSPEND_TABLE, STOP_TASK"],
    ),
    (
        "escalation-policy",
        {"ErrorBehavior": {"DataErrorEscalationPolicy": "IGNORE_RECORD"}},
        "ErrorBehavior.DataErrorEscalationPolicy",
        ["SUSPEND_TABLE", "STOP_TASK"],
    ),
    (
        "delete-cannot-update",
        {"ErrorBehavior": {"ApplyErrorDeletePolicy": "UPDATE_RECORD"}},
        "ErrorBehavior.ApplyErrorDeletePolicy",
        ["'UPDATE_RECORD'", "expected one of"],
    ),
    (
        "negative-count",
        {"ErrorBehavior": {"DataErrorEscalationCount": -1}},
        "ErrorBehavior.DataErrorEscalationCount",
        ["greater than or equal to 0"],
    ),
    (
        "bool",
        {"ValidationSettings": {"EnableValidation": "maybe"}},
        "ValidationSettings.EnableValidation",
        ["valid boolean"],
    ),
    (
        "both-stop-options",
        {"FullLoadSettings": {"StopTaskCachedChangesApplied": True, "StopTaskCachedChangesNotApplied": True}},
        "FullLoadSettings",
        ["cannot both be true"],
    ),
    (
        "both-lob-modes",
        {"TargetMetadata": {"FullLobMode": True, "LimitedSizeLobMode": True}},
        "TargetMetadata",
        ["cannot both be true"],
    ),
    (
        "section-not-object",
        {"ErrorBehavior": "LOG_ERROR"},
        "ErrorBehavior",
        ["expected a mapping"],
    ),
    (
        "log-severity",
        {"Logging": {"LogComponents": [{"Id": "IO", "Severity": "LOUD"}]}},
        "Logging.LogComponents.0.Severity",
        ["'LOUD'", "LOGGER_SEVERITY_DEBUG"],
    ),
    (
        "log-component-key",
        {"Logging": {"LogComponents": [{"Id": "IO", "Sevrity": "LOGGER_SEVERITY_INFO"}]}},
        "Logging.LogComponents.0.Sevrity",
        ["unknown key", "did you mean 'Severity'?"],
    ),
]


@pytest.mark.parametrize(
    ("doc", "path", "fragments"), [row[1:] for row in INVALID], ids=[row[0] for row in INVALID]
)
def test_invalid_settings(doc: Any, path: str, fragments: list[str]) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_task_settings(doc, ORIGIN)
    message = str(caught.value)
    assert message.startswith(f"{ORIGIN}: {path}: "), message
    for fragment in fragments:
        assert fragment in message
    assert caught.value.exit_code == 2


def test_a_document_that_is_not_an_object() -> None:
    with pytest.raises(
        ConfigError, match=r"^conveyor.yaml: tasks.load.settings: task settings must be a JSON object"
    ):
        parse_task_settings([1, 2], ORIGIN)  # type: ignore[arg-type]


def test_every_problem_is_reported_one_per_line() -> None:
    doc = {
        "FullLoadSettings": {"TargetTablePrepmode": "X", "CommitRate": 0},
        "ErrorBehavior": {"TableErrorPolicy": "LOG_ERROR"},
        "Nonsense": {},
    }
    settings, problems = check_task_settings(doc)
    assert settings is None
    assert {path for path, _ in problems} == {
        "FullLoadSettings.TargetTablePrepmode",
        "FullLoadSettings.CommitRate",
        "ErrorBehavior.TableErrorPolicy",
        "Nonsense",
    }
    with pytest.raises(ConfigError) as caught:
        parse_task_settings(doc, ORIGIN)
    assert len(str(caught.value).splitlines()) == 4


def test_settings_round_trip_through_the_service_json() -> None:
    settings = parse_task_settings(DOCUMENTED_EXAMPLE, ORIGIN)
    document = settings.to_document()
    assert document["FullLoadSettings"]["TargetTablePrepMode"] == "DO_NOTHING"
    assert "ignored" not in document and "Ignored" not in document
    again = parse_task_settings(json.loads(json.dumps(document)), ORIGIN)
    assert again.model_dump() == settings.model_dump()


def test_settings_are_frozen() -> None:
    settings = parse_task_settings({}, ORIGIN)
    with pytest.raises(ValidationError):
        settings.full_load_settings.commit_rate = 5
