"""Change-capture tasks (``cdc`` and ``full-load-and-cdc``): the hand-over from
full load to capture, then the capture loop until the user stops the task.

Hand-over without gap or overlap: capture begins first (a replication slot
exporting its snapshot, a binlog position read inside a consistent snapshot,
a change-table sequence); the full load reads exactly that snapshot; the
target's checkpoint is then set to the capture's start, and the stream picks up
from there. Killed before the checkpoint exists, the task starts over.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from conveyor.connectors.base import ReportsDrift
from conveyor.connectors.changes import (
    CaptureStart,
    ChangeApplier,
    ChangeSource,
    FindsConflicts,
    ReportsPosition,
    ReportsRetainedWal,
)
from conveyor.connectors.registry import open_applier, open_change_source, open_source, open_target
from conveyor.core.batch import Checkpoint
from conveyor.core.errors import ConfigError, TerminalError
from conveyor.core.schema import TableRef
from conveyor.events.lifecycle import FULL_LOAD_COMPLETED, TABLE_DROPPED, TABLE_SUSPENDED, task_event
from conveyor.replication.cdc.capture_table import CaptureTable
from conveyor.replication.cdc.lookups import captured_sources
from conveyor.replication.cdc.reload_task import TaskTableReloader
from conveyor.replication.cdc.runner import TABLE_SUSPENDED as TABLE_ERROR_STATE
from conveyor.replication.cdc.runner import ChangeCapture
from conveyor.replication.cdc.validation import NOT_ENABLED, CaptureValidation, opener
from conveyor.replication.control_tables import CHANGE_PROCESSING, ControlTables, Suspended
from conveyor.replication.identifiers import TargetNames, collisions, folding_of
from conveyor.replication.mapped_table import MappedTable
from conveyor.replication.mappings import TableMappings
from conveyor.replication.settings import TablePolicy
from conveyor.replication.table_plan import TABLE_COMPLETED
from conveyor.replication.task_run import (
    TaskRun,
    load_tables,
    report_no_tables,
    select_tables,
    table_plan,
    task_mappings,
    tell_source,
)
from conveyor.replication.task_states import (
    STOP_REASON_NORMAL,
    STOPPED_AFTER_CACHED_EVENTS,
    STOPPED_AFTER_FULL_LOAD,
    StartMode,
)

log = logging.getLogger(__name__)

TABLE_RELOADING = "Table is being reloaded"
TABLE_DROPPED_STATE = "Table dropped"

MAX_FLUSH_SECONDS = 0.5
DEFAULT_BATCH_CHANGES = 50_000  # bounds a batch's memory; BatchSplitSize overrides


def capture_task(run: TaskRun, mode: StartMode) -> str:
    """Run a change-capture task until stopped; returns the stop reason."""
    spec = run.spec
    source_config = run.stack.endpoint_config(spec.source)
    target_config = run.target_config
    mappings = task_mappings(run.stack, run.name)
    source = open_source(source_config)
    try:
        tables = source.tables()
        mapped = select_tables(run.stack, run.name, tables)
    finally:
        source.close()
    if not mapped:
        run.mark_running()
        report_no_tables(run)
        return STOP_REASON_NORMAL
    changes = open_change_source(source_config)
    if run.settings.full_load_settings.stop_task_cached_changes_applied and not isinstance(
        changes, ReportsPosition
    ):
        raise ConfigError(
            f"FullLoadSettings.StopTaskCachedChangesApplied: a {source_config.engine} source cannot "
            "report its change log position, so the task cannot tell when the cached changes are applied"
        )
    applier = open_applier(target_config)
    tell_source(applier, run)
    try:
        refused = collisions([names_of(m) for m in mapped], folding_of(applier))
        for ref, reason in refused.items():
            log.error("task %s: table %s not replicated: %s", run.name, ref, reason)
        kept = [m for m in mapped if m.source.ref not in refused]
        for warning in changes.preflight([m.source for m in kept]) + _mapping_warnings(kept):
            log.warning("task %s: %s", run.name, warning)
        position, loaded = _starting_position(run, mode, changes, applier, kept)
        if run.stop.is_set():
            return STOP_REASON_NORMAL
        if loaded and run.settings.full_load_settings.stop_task_cached_changes_not_applied:
            # The checkpoint is the capture's start: `tasks resume` applies the changes since.
            log.info("task %s: full load finished; stopping (StopTaskCachedChangesNotApplied)", run.name)
            return STOPPED_AFTER_FULL_LOAD
        until = _cached_changes_end(run, changes) if loaded else None
        # What capture carries: generated columns only where the target does not
        # compute them (the table exists now), their values then looked up.
        kept_captured = mappings.select(captured_sources(kept, applier), allow_empty=True)
        refused_now = refused_tables(mapped, refused)
        created = _never_captured(run, kept_captured) if mode == "resume" and not loaded else []
        if _capture(run, changes, applier, mappings, kept_captured, position, refused_now, until, created):
            log.info("task %s: changes cached during the full load applied; stopping", run.name)
            return STOPPED_AFTER_CACHED_EVENTS
    finally:
        applier.close()
    return STOP_REASON_NORMAL


def _cached_changes_end(run: TaskRun, changes: ChangeSource) -> Callable[[Checkpoint], bool] | None:
    """StopTaskCachedChangesApplied: the changes "cached" during the full load are
    those committed on the source between the capture's start and the load's
    end; the task stops once its target checkpoint reaches the source's
    position read at that end. ``tasks resume`` continues from there."""
    if not run.settings.full_load_settings.stop_task_cached_changes_applied:
        return None
    assert isinstance(changes, ReportsPosition)  # checked before the full load
    end = changes.current_position()
    log.info("task %s: stopping once the changes up to %s are applied", run.name, end.position)
    return lambda position: changes.position_reached(position, end)


def _never_captured(run: TaskRun, mapped: list[MappedTable]) -> list[MappedTable]:
    """On resume: the selected tables the task's previous run did not capture
    (created on the source while the task was stopped, or newly selected). The
    previous run reported every table it captured; without its report, none."""
    previous = [r for r in run.store.list_runs(run.name, limit=2) if r["id"] != run.run_id]
    if not previous:
        return []
    known = {(s["SchemaName"], s["TableName"]) for s in run.store.table_stats(run.name, previous[0]["id"])}
    if not known:
        return []
    created = [m for m in mapped if (m.target.ref.schema, m.target.ref.name) not in known]
    for m in created:
        log.info(
            "task %s: table %s was not captured before: loading it, then capturing it", run.name, m.source.ref
        )
    return created


def _mapping_warnings(mapped: list[MappedTable]) -> list[str]:
    """What a mapping needs from the source's change stream."""
    warnings = []
    for m in mapped:
        source_of = {c.target: c.source for c in m.columns}
        key = [source_of.get(k) for k in m.target.primary_key]
        if key and not set(key) <= set(m.source.primary_key):
            warnings.append(
                f"table {m.source.ref}: the target's key ({', '.join(m.target.primary_key)}, "
                "define-primary-key) is not the source's: deletes and key changes need those columns "
                "in the old row (PostgreSQL REPLICA IDENTITY FULL, a full binlog row image), else the "
                "task fails naming the missing column"
            )
    return warnings


def _starting_position(
    run: TaskRun, mode: StartMode, changes: ChangeSource, applier: ChangeApplier, mapped: list[MappedTable]
) -> tuple[Checkpoint, bool]:
    """Where the stream starts: the target's checkpoint when resuming, else a
    new capture (after a full load for full-load-and-cdc); and whether this
    run loaded the tables."""
    checkpoint = applier.read_checkpoint(run.name)
    full_load = run.spec.migration_type == "full-load-and-cdc"
    if mode == "resume" and checkpoint is None and full_load:
        log.info("task %s: stopped before its full load finished: loading again", run.name)
        mode = "start"
    if mode == "resume":
        if checkpoint is None:
            raise ConfigError(
                f"task {run.name!r} has no checkpoint on its target to resume from: "
                f"start it with `conveyor tasks start {run.name}`"
            )
        run.mark_running()
        return checkpoint, False
    sources = [m.source for m in mapped]
    run.store.clear_suspension(run.name)  # every table is loaded (or captured) afresh
    run.store.validation_keys.clear(run.name)  # and validated afresh
    changes.end_capture(run.name)  # start and reload begin afresh
    start = changes.begin_capture(run.name, sources, export_snapshot=full_load)
    for warning in start.warnings:
        log.warning("task %s: %s", run.name, warning)
    run.mark_running()
    if full_load:
        _full_load(run, changes, start, mapped)
        if run.stop.is_set():
            return start.position, True
        run.events(task_event(FULL_LOAD_COMPLETED, run.name, f"{len(mapped)} tables loaded"))
    if isinstance(applier, FindsConflicts):
        applier.forget_conflicts(run.name)  # apply conflicts count afresh (ApplyErrorEscalationCount)
    applier.apply_changes(run.name, [], start.position)
    return start.position, full_load


def _full_load(run: TaskRun, changes: ChangeSource, start: CaptureStart, mapped: list[MappedTable]) -> None:
    target = open_target(run.target_config)
    snapshot = changes.capture_snapshot(start)
    try:
        plans = [table_plan(m) for m in mapped]
        load_tables(run, snapshot, target, plans)
    finally:
        snapshot.close()
        target.close()


def _capture(
    run: TaskRun,
    changes: ChangeSource,
    applier: ChangeApplier,
    mappings: TableMappings,
    mapped: list[MappedTable],
    position: Checkpoint,
    refused: dict[TableRef, CaptureTable],
    until: Callable[[Checkpoint], bool] | None = None,
    created: list[MappedTable] | None = None,
) -> bool:
    """Capture until stopped; whether it stopped because ``until`` was reached.
    ``created``: tables of ``mapped`` never captured, loaded then captured first."""
    new = {m.source.ref for m in created or []}
    mapped_now, mapped = mapped, [m for m in mapped if m.source.ref not in new]
    tables = {m.source.ref: CaptureTable.of(m) for m in mapped} | refused
    for row in run.store.suspensions(run.name):
        # Suspended in an earlier run: still suspended (a reload unsuspends it).
        table = tables.get(TableRef(row["schema_name"], row["table_name"]))
        if table is not None:
            table.suspended = row["reason"] if row["state"] == "suspended" else "reload requested"
    # This run's full-load statistics per target table, to extend with CDC counters.
    loaded = {(s["SchemaName"], s["TableName"]): s for s in run.store.table_stats(run.name, run.run_id)}
    reloader = TaskTableReloader(run, mappings, loaded, applier)
    tuning = run.settings.change_processing_tuning

    drift_report = changes.drift_report if isinstance(changes, ReportsDrift) else None
    validation = _validation(run, tables, loaded)
    reporting = threading.Lock()  # the capture's thread and validation's

    def report(capture: ChangeCapture) -> None:
        with reporting:
            _report(capture)

    def _report(capture: ChangeCapture) -> None:
        for table in list(capture.tables.values()):
            ref = table.mapped.target.ref
            document = loaded.get((ref.schema, ref.name), _cdc_only_stats(table)) | table.stats()
            if validation is not None:
                if table.suspended is None:
                    validation.observe(table_plan(table.mapped), table.reloading)
                document |= validation.stats(ref)
            elif "ValidationState" not in document:
                document["ValidationState"] = NOT_ENABLED
            if drift_report is not None:
                document["Drift"] = drift_report(table.mapped.source.ref)
            if table.suspended:
                document |= {"TableState": TABLE_ERROR_STATE, "Error": table.suspended}
            elif table.reloading:
                document |= {"TableState": TABLE_RELOADING}
            run.store.put_table_stats(run.name, run.run_id, ref.schema, ref.name, document)
        detail: dict[str, Any] = capture.progress.as_dict()
        if isinstance(changes, ReportsRetainedWal):
            detail["RetainedWalBytes"] = changes.retained_wal_bytes(run.name)
        run.store.put_task_progress(run.name, run.run_id, detail)
        if run.control is not None:
            observe_capture(run.control, capture)

    errors = run.settings.error_behavior
    suspensions = 0

    def suspended(table: CaptureTable) -> None:
        """A table stops taking changes, until `tasks reload NAME --table` (kept in
        the store across runs). TableErrorPolicy STOP_TASK (or its escalation)
        then stops the task: its checkpoint stays before the batch."""
        nonlocal suspensions
        suspensions += 1
        source, target = table.mapped.source.ref, table.mapped.target.ref
        at = table.suspended_at
        position = {"engine": at.engine, "position": at.position} if at is not None else None
        run.store.put_suspension(
            run.name,
            (source.schema, source.name),
            (target.schema, target.name),
            table.suspended or "",
            position,
        )
        reason = f"{target}: {table.suspended}"
        if run.control is not None:
            run.control.suspended(suspended_tables(tables.values()))
        run.events(task_event(TABLE_SUSPENDED, run.name, reason))
        limit = errors.table_error_escalation_count
        if errors.table_error_policy is TablePolicy.STOP_TASK:
            raise TerminalError(f"table {reason} (TableErrorPolicy STOP_TASK)")
        if limit and suspensions >= limit and errors.table_error_escalation_policy is TablePolicy.STOP_TASK:
            raise TerminalError(f"table {reason} (table error escalation: {suspensions} tables, STOP_TASK)")

    def dropped(table: CaptureTable, target_dropped: bool) -> None:
        source, target = table.mapped.source.ref, table.mapped.target.ref
        run.store.clear_suspension(run.name, source.schema, source.name)
        what = f"target table {target} {'dropped' if target_dropped else 'left as it is'}"
        document = loaded.get((target.schema, target.name), _cdc_only_stats(table)) | table.stats()
        document |= {"TableState": TABLE_DROPPED_STATE, "Error": f"source table {source} dropped; {what}"}
        run.store.put_table_stats(run.name, run.run_id, target.schema, target.name, document)
        run.events(task_event(TABLE_DROPPED, run.name, f"{source}: {what}"))

    # The stream's own view of a table never has generated columns (pgoutput does not send them).
    stream = changes.open_stream(run.name, [m.source.without_generated() for m in mapped], position)
    try:
        capture = ChangeCapture(
            task=run.name,
            stream=stream,
            applier=applier,
            mappings=mappings,
            tables=tables,
            start=position,
            stop=run.stop,
            flush_seconds=min(float(tuning.batch_apply_timeout_min), MAX_FLUSH_SECONDS),
            max_batch_changes=tuning.batch_split_size or DEFAULT_BATCH_CHANGES,
            on_batch=report,
            on_suspended=suspended,
            on_dropped=dropped,
            reloader=reloader,
            ddl=run.settings.change_processing_ddl_handling_policy,
            fail_on_truncate=errors.apply_error_fail_on_truncation_ddl,
            errors=errors,
            on_applied=validation.applied if validation is not None else None,
            on_handed=validation.handed if validation is not None else None,
            until=until,
            add_at_start=[m for m in mapped_now if m.source.ref in new],
        )
        if run.control is not None:
            run.control.phase(CHANGE_PROCESSING)
        report(capture)
        if validation is not None:
            validation.start(lambda: report(capture))
        capture.run()
        return capture.reached_end
    finally:
        if validation is not None:
            validation.close()
        stream.close()


def _validation(
    run: TaskRun, tables: dict[TableRef, CaptureTable], loaded: dict[tuple[str, str], dict[str, Any]]
) -> CaptureValidation | None:
    """Validation during capture, when EnableValidation: every captured table,
    starting from this run's full-load validation, else from what an earlier run
    left to compare (the store's ``validation_keys``), else compared whole first."""
    settings = run.settings.validation_settings
    if not settings.enable_validation:
        return None
    plans = [table_plan(t.mapped) for t in tables.values() if t.suspended is None]
    sides = opener(run.stack.endpoint_config(run.spec.source), run.target_config)
    validated = {TableRef(*key): document for key, document in loaded.items()}
    return CaptureValidation(run.name, settings, plans, sides, validated, run.store.validation_keys)


def names_of(mapped: MappedTable) -> TargetNames:
    return TargetNames(
        mapped.source.ref, mapped.target.ref, tuple((c.source, c.target) for c in mapped.columns)
    )


def refused_tables(mapped: list[MappedTable], refused: dict[TableRef, str]) -> dict[TableRef, CaptureTable]:
    """Tables refused before capture (colliding target names), reported as
    suspended with their reason; they are neither loaded nor captured."""
    tables = {}
    for m in mapped:
        if m.source.ref in refused:
            table = CaptureTable.of(m)
            table.suspended = refused[m.source.ref]
            tables[m.source.ref] = table
    return tables


def _cdc_only_stats(table: CaptureTable) -> dict[str, Any]:
    ref = table.mapped.target.ref
    return {
        "SchemaName": ref.schema,
        "TableName": ref.name,
        "TableState": TABLE_COMPLETED,
        "FullLoadRows": 0,
        "FullLoadErrorRows": 0,
    }


def suspended_tables(tables: Iterable[CaptureTable]) -> list[Suspended]:
    """The suspended tables as ``awsdms_suspended_tables`` lists them (by target name)."""
    now = datetime.now(UTC)
    return [
        Suspended(t.mapped.target.ref.schema, t.mapped.target.ref.name, t.suspended, now)
        for t in tables
        if t.suspended is not None
    ]


def observe_capture(control: ControlTables, capture: ChangeCapture) -> None:
    """The capture's counters and suspended tables, for the control tables."""
    tables = list(capture.tables.values())
    progress = capture.progress
    control.observe_capture(
        applied=progress.applied_changes,
        pending=sum(t.reducer.pending for t in tables),
        position=json.dumps(progress.position.position, sort_keys=True, default=str)
        if progress.position
        else None,
        read_time=progress.last_commit_time,
        applied_time=progress.last_applied_commit_time,
        suspended=suspended_tables(tables),
    )
