"""Running one task of an applied stack: status, statistics and lifecycle events
around the full-load engine (full-load tasks) or the change capture (``cdc.task``)."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from conveyor.connectors.base import Source, Target
from conveyor.connectors.registry import open_source, open_target
from conveyor.core.errors import ConveyorError, NotFoundError
from conveyor.core.processes import stop_on_signals
from conveyor.core.schema import TableRef
from conveyor.events.lifecycle import FAILED, STOPPED, EventSink, task_event
from conveyor.replication.cdc.reload_request import parse_table
from conveyor.replication.control_tables import ControlTables, with_control_schema
from conveyor.replication.declarations import Declarations
from conveyor.replication.log_levels import log_levels
from conveyor.replication.runnable import check_runnable
from conveyor.replication.table_plan import TABLE_COMPLETED, ProgressCallback, TablePlan
from conveyor.replication.task_run import (
    TaskRun,
    load_tables,
    report_no_tables,
    select_tables,
    table_plan,
    validate_only,
)
from conveyor.replication.task_states import (
    FAILED_STATUS,
    FULL_LOAD_ONLY_FINISHED,
    STARTING,
    STOP_REASON_FATAL_ERROR,
    STOP_REASON_NORMAL,
    STOPPED_STATUS,
    STOPPING,
    StartMode,
    failure_stop_reason,
)
from conveyor.replication.validation import (
    VALIDATED,
    TableValidation,
    ValidationRun,
    settings_notes,
    validate_tables,
)
from conveyor.store.store import Store

log = logging.getLogger(__name__)


def plan_tables(stack: Declarations, name: str, source: Source) -> list[TablePlan]:
    """The tables a task loads: the source's tables through the task's mappings."""
    return [table_plan(m) for m in select_tables(stack, name, source.tables())]


@dataclass
class ValidationReport:
    """`conveyor validate TASK`: every table's state, and the task-wide notes
    (settings not acted on)."""

    task: str
    tables: list[TableValidation]
    notes: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {"Task": self.task, "Tables": [t.as_dict() for t in self.tables], "Notes": self.notes}


def named_plans(task: str, plans: Sequence[TablePlan], tables: Sequence[str]) -> list[TablePlan]:
    """The plans of the tables named SCHEMA.TABLE (a source or a target name), in
    the order named; an unknown name is an error listing the task's tables."""
    chosen: list[TablePlan] = []
    for text in tables:
        schema, table = parse_table(text)
        found = [p for p in plans if (schema, table) in {_parts(p.source.ref), _parts(p.target.ref)}]
        if not found:
            known = ", ".join(str(p.source.ref) for p in plans) or "-"
            raise NotFoundError(f"task {task!r} has no table {schema}.{table}; its tables: {known}")
        if found[0] not in chosen:
            chosen.append(found[0])
    return chosen


def _parts(ref: TableRef) -> tuple[str, str]:
    return ref.schema, ref.name


def validate_task(stack: Declarations, name: str, tables: Sequence[str] = ()) -> ValidationReport:
    """Compare every table of the task (or the ``tables`` named, SCHEMA.TABLE as on
    the source or the target), source against target, now, per the task's
    ValidationSettings; failures go to the target's failures table."""
    spec = stack.tasks[name]
    settings = spec.task_settings().validation_settings
    source: Source = open_source(stack.endpoint_config(spec.source))
    try:
        target_config = stack.endpoint_config(spec.target)
        target: Target = open_target(
            with_control_schema(target_config, spec.task_settings().control_tables_settings)
        )
        try:
            plans = plan_tables(stack, name, source)
            if tables:
                plans = named_plans(name, plans, tables)
            snapshot = source.snapshot()
            try:
                validated = validate_tables(snapshot, target, plans, ValidationRun(name, settings))
            finally:
                snapshot.close()
        finally:
            target.close()
    finally:
        source.close()
    return ValidationReport(name, validated, settings_notes(settings))


def all_validated(checks: list[TableValidation]) -> bool:
    return all(check.state == VALIDATED for check in checks)


class StopWatcher:
    """Sets ``stop`` when the store says the task is ``stopping`` (``conveyor tasks
    stop`` from any process), or when another run has taken the task over."""

    def __init__(self, store: Store, task: str, run_id: int, stop: threading.Event, interval: float = 0.5):
        self.store, self.task, self.run_id, self.stop, self.interval = store, task, run_id, stop, interval
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name=f"stop-watcher-{task}", daemon=True)

    def __enter__(self) -> StopWatcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(timeout=10)

    def _watch(self) -> None:
        while not self._done.wait(self.interval):
            try:
                status = self.store.task_status(self.task)
            except Exception as exc:  # a store hiccup must not end the load; try again
                log.warning("task %s: cannot read its status from the store: %s", self.task, exc)
                continue
            if status["status"] == STOPPING or status["current_run"] != self.run_id:
                self.stop.set()
                return


def _full_load_task(run: TaskRun) -> str:
    """A full-load task; returns its stop reason."""
    source = open_source(run.stack.endpoint_config(run.spec.source))
    target = open_target(run.target_config)
    try:
        plans = plan_tables(run.stack, run.name, source)
        run.mark_running()
        log.debug("task %s: tables planned: %s", run.name, ", ".join(str(p.target.ref) for p in plans))
        if not plans:
            report_no_tables(run)
            return FULL_LOAD_ONLY_FINISHED
        snapshot = source.snapshot()
        try:
            if run.settings.validation_settings.validation_only:
                results = validate_only(run, snapshot, target, plans)
            else:
                results = load_tables(run, snapshot, target, plans)
        finally:
            snapshot.close()
    finally:
        target.close()
        source.close()
    unfinished = [p for p in results if p.state != TABLE_COMPLETED]
    return (
        STOP_REASON_NORMAL if run.stop.is_set() and (unfinished or not results) else FULL_LOAD_ONLY_FINISHED
    )


def run_task(
    store: Store,
    stack: Declarations,
    name: str,
    *,
    events: EventSink,
    run_id: int | None = None,
    stop: threading.Event | None = None,
    on_progress: ProgressCallback | None = None,
    mode: StartMode = "start",
) -> str:
    """Run the task to its end in this process; returns the final status.

    ``run_id`` is a run already claimed for this process (see
    ``conveyor.replication.worker.claim_start``); without it one is started here.
    Setting ``stop`` (or the store status ``stopping``) ends the run between
    batches: unfinished tables are rolled back and the task stops with reason
    NORMAL. Lifecycle events (started, stopped, failed, table suspended) go to
    ``events``. ``on_progress`` sees every table progress report after the store.
    ``mode`` matters to change-capture tasks: ``start`` begins afresh (a new
    full load for full-load-and-cdc), ``resume`` continues from the target's
    checkpoint, ``reload`` drops the capture and starts afresh (a resync)."""
    check_runnable(stack, name)
    stop = stop if stop is not None else threading.Event()
    if run_id is None:
        run_id = store.start_run(name, os.getpid(), status=STARTING)
        store.set_task_status(name, STARTING, run=run_id)
    else:
        store.set_run(run_id, pid=os.getpid())
    run = TaskRun(store, stack, name, run_id, stop, events, on_progress)
    try:
        with StopWatcher(store, name, run_id, stop), log_levels(run.settings.logging):
            run.control = ControlTables.open(name, run.settings.control_tables_settings, run.target_config)
            if run.spec.migration_type == "full-load":
                reason = _full_load_task(run)
            else:
                # imported here: a full-load task does not pay for the capture's modules
                from conveyor.replication.cdc.task import capture_task

                reason = capture_task(run, mode)
    except ConveyorError as exc:
        if stop.is_set():  # stopped while opening the endpoints, say: still a user stop
            return _finish(run, STOPPED_STATUS, STOP_REASON_NORMAL)
        return _finish(run, FAILED_STATUS, failure_stop_reason(exc), str(exc))
    except BaseException as exc:
        # A bug or an interrupt: record it, so the task is not left "running".
        _finish(run, FAILED_STATUS, STOP_REASON_FATAL_ERROR, f"internal error: {exc!r}")
        raise
    return _finish(run, STOPPED_STATUS, reason)


def _finish(run: TaskRun, status: str, stop_reason: str | None, error: str | None = None) -> str:
    if run.control is not None:
        run.control.close()  # NOT RUNNING (and the history's part-slot) before the store says stopped
    run.store.finish_run(run.run_id, status, stop_reason, error)
    run.store.set_task_status(run.name, status, stop_reason=stop_reason, error=error)
    if status == FAILED_STATUS:
        run.events(task_event(FAILED, run.name, error or ""))
    else:
        run.events(task_event(STOPPED, run.name, stop_reason or ""))
    return status


def run_claimed(
    store: Store,
    stack: Declarations,
    name: str,
    run_id: int,
    on_progress: ProgressCallback | None = None,
    mode: StartMode = "start",
    *,
    events: EventSink,
) -> str:
    """Run a claimed run in this process until it ends; SIGTERM and SIGINT stop it."""
    stop = threading.Event()
    with stop_on_signals(stop, signal.SIGTERM, signal.SIGINT):
        return run_task(
            store, stack, name, events=events, run_id=run_id, stop=stop, on_progress=on_progress, mode=mode
        )
