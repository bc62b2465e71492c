"""One row per task-setting key the settings model accepts: the input, and what
Conveyor does with it: acts on it (the effect, and the test that shows it),
refuses the value (naming the key), or lists it as cloud-only or not acted on
yet. A key the model accepts without a row fails ``test_every_key_has_a_row``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from conveyor.core.errors import ConfigError
from conveyor.replication.settings import check_task_settings
from conveyor.replication.settings_support import SUPPORT, Kind, accepted_keys, review_task_settings
from conveyor.stack.model import TaskSpec

TESTS = Path(__file__).parents[1]
EFFECTS = "integration/test_task_settings_effects.py"
RETRIES = "integration/test_full_load_retries.py"
CONTROL = "integration/test_control_tables_cli.py"
CONFLICTS = "integration/test_apply_conflicts.py"


@dataclass(frozen=True)
class Row:
    key: str
    value: Any
    expect: str
    """acted | refused | cloud-only | not-yet"""
    effect: str = ""
    """acted: what the value does; refused: a fragment of the refusal."""
    proof: str = ""
    """acted: ``file::test`` under tests/ that shows the effect ("" when none does yet)."""


def acted(key: str, value: Any, effect: str, proof: str = "") -> Row:
    return Row(key, value, "acted", effect, proof)


def refused(key: str, value: Any, fragment: str) -> Row:
    return Row(key, value, "refused", fragment)


def cloud(key: str, value: Any) -> Row:
    return Row(key, value, "cloud-only")


def not_yet(key: str, value: Any) -> Row:
    return Row(key, value, "not-yet")


ROWS: list[Row] = [
    # TargetMetadata
    acted("TargetMetadata.TargetSchema", "landing", "tables land in landing",
          f"{EFFECTS}::test_target_schema_key_after_load_and_log_levels"),
    acted("TargetMetadata.SupportLobs", False, "LOB columns left out but for the key",
          f"{EFFECTS}::test_support_lobs_false_leaves_the_lob_columns_out"),
    acted("TargetMetadata.FullLobMode", True, "LOBs copied whole",
          f"{EFFECTS}::test_limited_lob_mode_cuts_what_the_user_wrote_to_cut"),
    cloud("TargetMetadata.LobChunkSize", 128),
    acted("TargetMetadata.LimitedSizeLobMode", True, "LOBs cut to LobMaxSize, logged",
          f"{EFFECTS}::test_limited_lob_mode_cuts_what_the_user_wrote_to_cut"),
    acted("TargetMetadata.LobMaxSize", 64, "the KB limited LOB mode cuts to",
          f"{EFFECTS}::test_limited_lob_mode_cuts_what_the_user_wrote_to_cut"),
    cloud("TargetMetadata.InlineLobMaxSize", 8),
    cloud("TargetMetadata.BatchApplyEnabled", True),
    cloud("TargetMetadata.ParallelLoadThreads", 4),
    cloud("TargetMetadata.ParallelApplyThreads", 4),
    not_yet("TargetMetadata.TaskRecoveryTableEnabled", False),
    refused("TargetMetadata.TaskRecoveryTableEnabled", True, "conveyor_checkpoints"),
    cloud("TargetMetadata.LoadMaxFileSize", 100),
    cloud("TargetMetadata.ParallelLoadBufferSize", 500),
    cloud("TargetMetadata.ParallelLoadQueuesPerThread", 2),
    cloud("TargetMetadata.ParallelApplyBufferSize", 500),
    cloud("TargetMetadata.ParallelApplyQueuesPerThread", 2),
    # SegmentedLoadSettings (Conveyor's own)
    acted("SegmentedLoadSettings.Workers", "store", "segments claimed by `conveyor worker` processes",
          "integration/test_segment_workers.py::test_two_workers_one_killed_load_is_exact"),
    acted("SegmentedLoadSettings.SplitAboveRows", 1000, "big tables split by key range",
          "integration/test_segment_workers.py::test_two_workers_one_killed_load_is_exact"),
    acted("SegmentedLoadSettings.Segments", 16, "key ranges per split table",
          "integration/test_segment_workers.py::test_two_workers_one_killed_load_is_exact"),
    acted("SegmentedLoadSettings.LeaseSeconds", 3, "a dead worker's segment is claimed again after it",
          "integration/test_segment_workers.py::test_two_workers_one_killed_load_is_exact"),
    # FullLoadSettings
    acted("FullLoadSettings.TargetTablePrepMode", "TRUNCATE_BEFORE_LOAD", "tables are prepared so",
          "integration/test_sqlite_to_duckdb.py::test_prep_modes"),
    acted("FullLoadSettings.CreatePkAfterFullLoad", True, "PostgreSQL: ADD PRIMARY KEY after the rows",
          f"{EFFECTS}::test_target_schema_key_after_load_and_log_levels"),
    acted("FullLoadSettings.StopTaskCachedChangesApplied", True, "stop reason STOPPED_AFTER_CACHED_EVENTS",
          "integration/test_stop_after_cached_changes.py::test_postgres_stops_once_the_cached_changes_are_applied"),
    acted("FullLoadSettings.StopTaskCachedChangesNotApplied", True, "stop reason STOPPED_AFTER_FULL_LOAD",
          f"{EFFECTS}::test_stop_after_full_load_then_resume_applies_the_changes_since"),
    acted("FullLoadSettings.MaxFullLoadSubTasks", 1, "one table at a time",
          f"{EFFECTS}::test_table_error_policy"),
    cloud("FullLoadSettings.TransactionConsistencyTimeout", 600),
    acted("FullLoadSettings.CommitRate", 300, "rows per batch",
          "integration/test_cdc_tasks.py::test_sigkill_at_each_crash_point_then_resume_loses_and_repeats_nothing"),
    # Logging
    cloud("Logging.EnableLogging", True),
    cloud("Logging.EnableLogContext", True),
    acted("Logging.LogComponents", [{"Id": "TASK_MANAGER", "Severity": "LOGGER_SEVERITY_DEBUG"}],
          "the task manager's DEBUG lines reach the worker log",
          f"{EFFECTS}::test_target_schema_key_after_load_and_log_levels"),
    refused("Logging.LogComponents", [{"Id": "TARGET_LAOD"}], "did you mean 'TARGET_LOAD'?"),
    cloud("Logging.CloudWatchLogGroup", "group"),
    cloud("Logging.CloudWatchLogStream", "stream"),
    # ControlTablesSettings
    acted("ControlTablesSettings.ControlSchema", "dms_control", "the control tables go in dms_control",
          f"{CONTROL}::test_postgres_control_schema_holds_every_control_table"),
    acted("ControlTablesSettings.HistoryTimeslotInMinutes", 1, "a history row per minute",
          "unit/test_control_tables.py::test_a_history_row_per_timeslot_and_one_at_the_end"),
    acted("ControlTablesSettings.HistoryTableEnabled", True, "awsdms_history rows with counters",
          f"{CONTROL}::test_postgres_status_history_and_suspended_tables"),
    acted("ControlTablesSettings.SuspendedTablesTableEnabled", True, "a row per suspended table",
          f"{CONTROL}::test_postgres_status_history_and_suspended_tables"),
    acted("ControlTablesSettings.StatusTableEnabled", True, "the task's status row",
          f"{CONTROL}::test_duckdb_status_history_and_suspended_tables"),
    not_yet("ControlTablesSettings.FullLoadExceptionTableEnabled", False),
    refused("ControlTablesSettings.FullLoadExceptionTableEnabled", True, "awsdms_apply_exceptions"),
    not_yet("ControlTablesSettings.CommitPositionTableEnabled", False),
    refused("ControlTablesSettings.CommitPositionTableEnabled", True, "conveyor_checkpoints"),
    # ChangeProcessingTuning
    cloud("ChangeProcessingTuning.BatchApplyPreserveTransaction", True),
    acted("ChangeProcessingTuning.BatchApplyTimeoutMin", 1, "a change batch gathers at most 0.5 s (no test)"),
    cloud("ChangeProcessingTuning.BatchApplyTimeoutMax", 30),
    cloud("ChangeProcessingTuning.BatchApplyMemoryLimit", 500),
    acted("ChangeProcessingTuning.BatchSplitSize", 200, "a change batch holds at most 200 changes",
          "integration/test_cdc_tasks.py::test_sigkill_at_each_crash_point_then_resume_loses_and_repeats_nothing"),
    cloud("ChangeProcessingTuning.MinTransactionSize", 1000),
    cloud("ChangeProcessingTuning.CommitTimeout", 1),
    cloud("ChangeProcessingTuning.MemoryLimitTotal", 1024),
    cloud("ChangeProcessingTuning.MemoryKeepTime", 60),
    cloud("ChangeProcessingTuning.StatementCacheSize", 50),
    # ChangeProcessingDdlHandlingPolicy
    acted("ChangeProcessingDdlHandlingPolicy.HandleSourceTableDropped", True,
          "a source DROP TABLE drops the target table",
          "integration/test_cdc_ddl.py::test_postgres_drop_table_drops_the_target_table_and_leaves_the_capture"),
    acted("ChangeProcessingDdlHandlingPolicy.HandleSourceTableDropped", False,
          "the target table is left",
          "integration/test_cdc_ddl.py::test_postgres_drop_table_leaves_the_target_table_when_the_policy_says_so"),
    acted("ChangeProcessingDdlHandlingPolicy.HandleSourceTableTruncated", False,
          "a source TRUNCATE is not applied (no end-to-end test yet)"),
    acted("ChangeProcessingDdlHandlingPolicy.HandleSourceTableAltered", True,
          "added and dropped columns are applied to the target",
          "integration/test_cdc_tasks.py::test_source_ddl_is_applied_or_suspends_the_table_never_ignored"),
    acted("ChangeProcessingDdlHandlingPolicy.HandleSourceTableAltered", False,
          "the table is suspended",
          "integration/test_cdc_ddl.py::test_sqlite_alter_with_handle_source_table_altered_false_suspends_the_table"),
    # ValidationSettings
    acted("ValidationSettings.EnableValidation", True, "every value compared after the full load",
          "integration/test_cdc_tasks.py::test_sqlite_to_duckdb_full_load_then_changes"),
    not_yet("ValidationSettings.ValidationMode", "ROW_LEVEL"),
    refused("ValidationSettings.ValidationMode", "GROUP_LEVEL", "row by row"),
    acted("ValidationSettings.ValidationOnly", True, "compares the tables without loading",
          "integration/test_validate_cli.py::test_validation_only_compares_without_loading"),
    acted("ValidationSettings.ThreadCount", 5, "tables validated at once",
          "integration/test_validation_in_process.py::test_thread_count_tables_at_once"),
    acted("ValidationSettings.PartitionSize", 10000, "rows compared per partition",
          "integration/test_validate_cli.py::test_postgres_target_changes_and_settings"),
    acted("ValidationSettings.FailureMaxCount", 100, "failures recorded per run",
          "integration/test_validate_cli.py::test_postgres_target_changes_and_settings"),
    acted("ValidationSettings.TableFailureMaxCount", 100, "failures recorded per table",
          "integration/test_validate_cli.py::test_postgres_target_changes_and_settings"),
    acted("ValidationSettings.HandleCollationDiff", True, "code point order on both sides",
          "integration/test_validate_collations.py::test_keys_in_other_collations_are_paired_without_false_differences"),
    acted("ValidationSettings.SkipLobColumns", True, "LOB columns left out",
          "integration/test_validation_in_process.py::test_lob_settings_say_what_was_not_compared"),
    cloud("ValidationSettings.MaxKeyColumnSize", 8096),
    acted("ValidationSettings.RecordFailureDelayInMinutes", 5, "when written, minutes a differing row",
          "integration/test_validation_in_process.py::test_a_difference_is_reported_after_its_delay"),
    acted("ValidationSettings.RecordFailureDelayLimitInMinutes", 2, "before validation during change capture",
          "integration/test_validation_in_process.py::test_a_difference_is_reported_after_its_delay"),
    not_yet("ValidationSettings.RecordSuspendDelayInMinutes", 30),
    acted("ValidationSettings.ValidationPartialLobSize", 64, "first N kilobytes",
          "integration/test_validation_in_process.py::test_lob_settings_say_what_was_not_compared"),
    acted("ValidationSettings.ValidationQueryCdcDelaySeconds", 3, "seconds a change settles",
          "integration/test_validation_during_cdc.py::test_postgres_to_postgres_through_the_cli"),
    # ErrorBehavior
    acted("ErrorBehavior.DataErrorPolicy", "LOG_ERROR", "refused values go to awsdms_apply_exceptions",
          "integration/test_bad_input.py::test_values_out_of_the_targets_range_go_to_apply_exceptions"),
    acted("ErrorBehavior.DataTruncationErrorPolicy", "LOG_ERROR", "handled as DataErrorPolicy (equal to it)",
          "integration/test_bad_input.py::test_values_out_of_the_targets_range_go_to_apply_exceptions"),
    refused("ErrorBehavior.DataTruncationErrorPolicy", "STOP_TASK", "equal to DataErrorPolicy"),
    acted("ErrorBehavior.DataErrorEscalationPolicy", "STOP_TASK",
          "the task stops once DataErrorEscalationCount errors happened (no end-to-end test yet)"),
    acted("ErrorBehavior.DataErrorEscalationCount", 5,
          "errors of a table before escalation (no end-to-end test yet)"),
    not_yet("ErrorBehavior.EventErrorPolicy", "IGNORE"),
    refused("ErrorBehavior.EventErrorPolicy", "STOP_TASK", "logs an event rule's failure"),
    acted("ErrorBehavior.TableErrorPolicy", "STOP_TASK", "the first failed table stops the load",
          f"{EFFECTS}::test_table_error_policy"),
    acted("ErrorBehavior.TableErrorPolicy", "STOP_TASK", "a table suspended in capture stops the task",
          f"{EFFECTS}::test_table_error_policy_stop_task_in_capture"),
    acted("ErrorBehavior.TableErrorEscalationPolicy", "STOP_TASK",
          "the load stops after TableErrorEscalationCount failed tables (no end-to-end test yet)"),
    acted("ErrorBehavior.TableErrorEscalationCount", 2,
          "failed tables before escalation (no end-to-end test yet)"),
    acted("ErrorBehavior.RecoverableErrorCount", 0, "no retry: a lost target connection fails the table",
          f"{RETRIES}::test_no_retry_left_fails_the_table_with_the_reason"),
    acted("ErrorBehavior.RecoverableErrorInterval", 0, "the first wait (0: a tenth of a second)",
          f"{RETRIES}::test_a_lost_target_connection_loads_the_table_again"),
    acted("ErrorBehavior.RecoverableErrorThrottling", False, "every wait the interval",
          "unit/test_retry.py::test_the_task_settings_make_the_policy"),
    acted("ErrorBehavior.RecoverableErrorThrottlingMax", 60, "the longest wait",
          "unit/test_retry.py::test_waits"),
    acted("ErrorBehavior.RecoverableErrorStopRetryAfterThrottlingMax", False, "go on at the longest wait",
          "unit/test_retry.py::test_without_stop_after_the_maximum_the_waits_go_on_at_it"),
    acted("ErrorBehavior.ApplyErrorDeletePolicy", "LOG_ERROR", "a DELETE of a missing row is logged",
          f"{CONFLICTS}::test_log_error_logs_each_conflict_and_leaves_the_target_row"),
    acted("ErrorBehavior.ApplyErrorInsertPolicy", "LOG_ERROR", "an INSERT of an existing key is logged",
          f"{CONFLICTS}::test_log_error_logs_each_conflict_and_leaves_the_target_row"),
    acted("ErrorBehavior.ApplyErrorInsertPolicy", "INSERT_RECORD", "the existing row is overwritten",
          f"{CONFLICTS}::test_insert_and_update_record_write_the_rows"),
    acted("ErrorBehavior.ApplyErrorUpdatePolicy", "IGNORE_RECORD", "an UPDATE of a missing row is skipped",
          f"{CONFLICTS}::test_ignore_record_skips_each_conflict_without_a_log"),
    acted("ErrorBehavior.ApplyErrorUpdatePolicy", "SUSPEND_TABLE", "the table is suspended before the batch",
          f"{CONFLICTS}::test_suspend_table_suspends_before_the_batch"),
    acted("ErrorBehavior.ApplyErrorEscalationPolicy", "SUSPEND_TABLE", "the table is suspended at the count",
          f"{CONFLICTS}::test_escalation_suspends_the_table_at_the_count"),
    acted("ErrorBehavior.ApplyErrorEscalationCount", 2, "the escalation policy acts at 2 conflicts",
          f"{CONFLICTS}::test_escalation_stops_the_task"),
    acted("ErrorBehavior.ApplyErrorFailOnTruncationDdl", True, "a captured TRUNCATE fails the task",
          f"{EFFECTS}::test_truncate_fails_the_task_when_told"),
    acted("ErrorBehavior.FailOnNoTablesCaptured", False, "no table selected: the task stops, with an event",
          f"{EFFECTS}::test_no_tables_captured_ends_the_task_without_failing_when_told"),
    cloud("ErrorBehavior.FailOnTransactionConsistencyBreached", True),
    not_yet("ErrorBehavior.FullLoadIgnoreConflicts", True),
    refused("ErrorBehavior.FullLoadIgnoreConflicts", False, "idempotently"),
    cloud("ErrorBehavior.DataMaskingErrorPolicy", "STOP_TASK"),
    # whole sections and top-level values
    cloud("StreamBufferSettings", {"StreamBufferCount": 3}),
    cloud("BeforeImageSettings", {"EnableBeforeImage": True}),
    not_yet("LoopbackPreventionSettings", {"EnableLoopbackPrevention": False, "SourceSchema": "loop"}),
    refused("LoopbackPreventionSettings", {"EnableLoopbackPrevention": True}, "does not prevent loopback"),
    cloud("CharacterSetSettings", {"CharacterReplacements": []}),
    cloud("PostProcessingRules", {}),
    cloud("TTSettings", {"EnableTT": True}),
    cloud("FailTaskWhenCleanTaskResourceFailed", True),
]  # fmt: skip


def document(row: Row) -> dict[str, Any]:
    section, _, key = row.key.partition(".")
    return {section: {key: row.value}} if key else {section: row.value}


def test_every_key_has_a_row() -> None:
    keys = {row.key for row in ROWS}
    assert sorted(accepted_keys() - keys) == [], "keys the model accepts without a row"
    assert sorted(keys - accepted_keys()) == [], "rows for keys the model does not accept"
    assert set(SUPPORT) == accepted_keys()


@pytest.mark.parametrize("row", ROWS, ids=[f"{row.key}={row.value!r}"[:80] for row in ROWS])
def test_a_key_does_what_its_row_says(row: Row) -> None:
    doc = document(row)
    settings, problems = check_task_settings(doc)
    assert settings is not None, problems  # the settings model accepts the key
    review = review_task_settings(doc, settings)
    kind = SUPPORT[row.key].kind
    if row.expect == "refused":
        [(path, text)] = review.refused
        assert path.startswith(row.key) and row.effect in text
        with pytest.raises(ValueError, match=re.escape(row.key)):
            TaskSpec.model_validate({"source": "s", "target": "t", "settings": doc})
        return
    assert review.refused == ()
    if row.expect == "acted":
        assert kind is Kind.ACTED and row.effect
        assert (review.cloud_only, review.not_yet) == ((), ())
        if row.proof:
            path, _, name = row.proof.partition("::")
            assert f"def {name}(" in (TESTS / path).read_text(encoding="utf-8"), row.proof
        else:
            assert "no end-to-end test yet" in row.effect or "no test" in row.effect
    elif row.expect == "cloud-only":
        assert kind is Kind.CLOUD_ONLY and review.cloud_only == (row.key,) and review.not_yet == ()
    else:
        assert row.expect == "not-yet"
        assert kind is Kind.NOT_YET and review.not_yet == (row.key,) and review.cloud_only == ()


def test_refusals_come_all_at_once_naming_each_key(tmp_path: Path) -> None:
    from conveyor.stack.loader import load_stack

    (tmp_path / "s.yaml").write_text(
        "endpoints:\n  src: {engine: sqlite, path: ./a.sqlite}\n  dw: {engine: duckdb, path: ./d.duckdb}\n"
        "tasks:\n  t:\n    source: src\n    target: dw\n    settings:\n"
        "      ErrorBehavior: {FullLoadIgnoreConflicts: false, TableErrorPolicie: STOP_TASK}\n"
        "      ValidationSettings: {ValidationMode: GROUP_LEVEL}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_stack(tmp_path / "s.yaml")
    lines = str(caught.value).splitlines()
    assert len(lines) == 3, lines
    assert any(
        "ErrorBehavior.TableErrorPolicie: unknown setting; did you mean 'TableErrorPolicy'?" in x
        for x in lines
    )
    assert any("ErrorBehavior.FullLoadIgnoreConflicts: Conveyor cannot honour False" in x for x in lines)
    assert any("ValidationSettings.ValidationMode: Conveyor cannot honour 'GROUP_LEVEL'" in x for x in lines)


def test_counts_of_the_documented_table() -> None:
    """docs/settings.md gives these counts; change both together."""
    counts = {kind: sum(1 for s in SUPPORT.values() if s.kind is kind) for kind in Kind}
    text = (TESTS.parent / "docs" / "settings.md").read_text(encoding="utf-8")
    for kind, count in counts.items():
        assert f"{kind.value}: {count}" in text, (kind, count)
