"""Running one task of an applied stack: status, statistics and lifecycle events
around the full-load engine."""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any, Literal

from conveyor.connectors.base import Snapshot, Source, Target
from conveyor.connectors.registry import CHANGE_SOURCES, open_source, open_target
from conveyor.core.errors import ConfigError, ConveyorError
from conveyor.events.lifecycle import FAILED, STARTED, STOPPED, task_event
from conveyor.replication.full_load import (
    TABLE_COMPLETED,
    FullLoad,
    ProgressCallback,
    TablePlan,
    TableProgress,
)
from conveyor.replication.mappings import MappedTable, TableMappings
from conveyor.replication.settings import TaskSettings
from conveyor.replication.validation import VALIDATED, TableValidation, validate_table
from conveyor.stack.model import Stack, TaskSpec
from conveyor.store.store import Store

# Stop reasons, as the migration service reports them (its events say "Stop Reason X").
FULL_LOAD_ONLY_FINISHED = "FULL_LOAD_ONLY_FINISHED"  # every table loaded
STOP_REASON_NORMAL = "NORMAL"  # stopped by the user (`conveyor tasks stop`, SIGTERM, Ctrl-C)

# Task statuses: ready -> starting -> running -> stopping -> stopped | failed.
READY = "ready"
STARTING = "starting"
RUNNING = "running"
STOPPING = "stopping"
STOPPED_STATUS = "stopped"
FAILED_STATUS = "failed"
ACTIVE_STATUSES = (STARTING, RUNNING, STOPPING)

log = logging.getLogger(__name__)

StartMode = Literal["start", "resume", "reload"]


def publish_event(store: Store, event: dict[str, Any]) -> None:
    """Store a lifecycle event and let the event bus's rules act on it."""
    from conveyor.orchestration.bus import publish

    publish(store, event)


def stats_document(progress: TableProgress) -> dict[str, Any]:
    """Per-table statistics under the migration service's names."""

    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "SchemaName": progress.plan.target.ref.schema,
        "TableName": progress.plan.target.ref.name,
        "TableState": progress.state,
        "FullLoadRows": progress.rows,
        "FullLoadErrorRows": progress.error_rows,
        "FullLoadStartTime": iso(progress.started),
        "FullLoadEndTime": iso(progress.ended),
        "RowsPerSecond": round(progress.rows_per_second or 0.0, 1),
        "Error": progress.error,
        "Drift": progress.drift,
    }


def plan_tables(stack: Stack, name: str, source: Source) -> list[TablePlan]:
    """The tables a task loads: the source's tables through the task's mappings."""
    spec = stack.tasks[name]
    mappings = TableMappings.parse(spec.table_mappings, f"tasks.{name}.table_mappings")
    return [table_plan(m) for m in mappings.select(source.tables())]


def table_plan(mapped: MappedTable) -> TablePlan:
    """The full load's plan of a mapped table."""
    return TablePlan(
        mapped.source,
        mapped.target,
        mapped.project,
        tuple(c.source for c in mapped.columns),
        row_filter=mapped.row_filter,
        raw_copy=not mapped.masks and not mapped.conversions,
        segments=mapped.segments,
    )


def report_validation(
    store: Store, task: str, run_id: int, progress: TableProgress, check: TableValidation
) -> None:
    document = stats_document(progress) | {"ValidationState": check.state, "Validation": check.as_dict()}
    ref = progress.plan.target.ref
    store.put_table_stats(task, run_id, ref.schema, ref.name, document)


def validate_task(stack: Stack, name: str, batch_rows: int = 10_000) -> list[TableValidation]:
    """Compare every table of the task, source against target, now."""
    spec = stack.tasks[name]
    source: Source = open_source(stack.endpoint_config(spec.source))
    target: Target = open_target(stack.endpoint_config(spec.target))
    snapshot = source.snapshot()
    try:
        return [
            validate_table(snapshot, target, plan, batch_rows) for plan in plan_tables(stack, name, source)
        ]
    finally:
        snapshot.close()
        target.close()
        source.close()


def all_validated(checks: list[TableValidation]) -> bool:
    return all(check.state == VALIDATED for check in checks)


def check_runnable(stack: Stack, name: str) -> None:
    """Raise unless this build can run task ``name`` of ``stack``."""
    spec = stack.tasks.get(name)
    if spec is None:
        raise ConfigError(f"no task named {name!r}; known: {', '.join(sorted(stack.tasks)) or '-'}")
    engine = stack.endpoints[spec.source].engine
    if spec.migration_type != "full-load" and engine not in CHANGE_SOURCES:
        raise ConfigError(
            f"task {name!r}: migration_type {spec.migration_type!r} needs change capture, "
            f"which a {engine} source does not have (available: {', '.join(sorted(CHANGE_SOURCES))})"
        )


class _LoadStop(threading.Event):
    """The event FullLoad checks between batches: set by the load itself (a data
    error whose policy stops the task: a failure) or through ``user`` (a stop the
    user asked for). Keeping the two apart tells a failure from a user stop."""

    def __init__(self, user: threading.Event) -> None:
        super().__init__()
        self.user = user

    def is_set(self) -> bool:
        return super().is_set() or self.user.is_set()


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


@dataclass
class TaskRun:
    """One run of a task in this process, as its parts (full load, change
    capture) see it."""

    store: Store
    stack: Stack
    name: str
    run_id: int
    stop: threading.Event
    on_progress: ProgressCallback | None = None

    @property
    def spec(self) -> TaskSpec:
        return self.stack.tasks[self.name]

    @cached_property
    def settings(self) -> TaskSettings:
        return self.spec.task_settings()

    def mark_running(self) -> None:
        # Only from starting: a stop requested meanwhile must stay visible.
        self.store.transition_task(self.name, [STARTING], RUNNING, expected_run=self.run_id)
        self.store.set_run(self.run_id, status=RUNNING)
        publish_event(self.store, task_event(STARTED, self.name))

    def report(self, progress: TableProgress) -> None:
        ref = progress.plan.target.ref
        self.store.put_table_stats(self.name, self.run_id, ref.schema, ref.name, stats_document(progress))
        if self.on_progress is not None:
            self.on_progress(progress)


def load_tables(
    run: TaskRun, snapshot: Snapshot, target: Target, plans: list[TablePlan]
) -> list[TableProgress]:
    """The full load of ``plans`` from ``snapshot``, validated when the settings
    say so. Raises when a table failed (unless the user stopped the run)."""
    settings = run.settings.full_load_settings
    loader = FullLoad(
        snapshot,
        target,
        plans,
        settings.target_table_prep_mode,
        batch_rows=settings.commit_rate,
        parallel=settings.max_full_load_sub_tasks,
        on_progress=run.report,
        stop=_LoadStop(run.stop),
        task=run.name,
        errors=run.settings.error_behavior,
    )
    results = loader.run()
    unfinished = [p for p in results if p.state != TABLE_COMPLETED]
    if run.stop.is_set() and (unfinished or not results):
        return results
    if run.settings.validation_settings.enable_validation:
        for progress in results:
            if progress.state == TABLE_COMPLETED:
                check = validate_table(snapshot, target, progress.plan, settings.commit_rate)
                report_validation(run.store, run.name, run.run_id, progress, check)
    if unfinished:
        reason = "; ".join(f"{p.plan.target.ref}: {p.error}" for p in unfinished)
        raise ConveyorError(f"{len(unfinished)} of {len(results)} tables failed: {reason}")
    return results


def _full_load_task(run: TaskRun) -> str:
    """A full-load task; returns its stop reason."""
    source = open_source(run.stack.endpoint_config(run.spec.source))
    target = open_target(run.stack.endpoint_config(run.spec.target))
    try:
        plans = plan_tables(run.stack, run.name, source)
        run.mark_running()
        snapshot = source.snapshot()
        try:
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
    stack: Stack,
    name: str,
    *,
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
    NORMAL. ``on_progress`` sees every table progress report after the store.
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
    run = TaskRun(store, stack, name, run_id, stop, on_progress)
    try:
        with StopWatcher(store, name, run_id, stop):
            if run.spec.migration_type == "full-load":
                reason = _full_load_task(run)
            else:
                from conveyor.replication.cdc.task import capture_task

                reason = capture_task(run, mode)
    except ConveyorError as exc:
        if stop.is_set():  # stopped while opening the endpoints, say: still a user stop
            return _finish(store, name, run_id, STOPPED_STATUS, STOP_REASON_NORMAL)
        return _finish(store, name, run_id, FAILED_STATUS, None, str(exc))
    except BaseException as exc:
        # A bug or an interrupt: record it, so the task is not left "running".
        _finish(store, name, run_id, FAILED_STATUS, None, f"internal error: {exc!r}")
        raise
    return _finish(store, name, run_id, STOPPED_STATUS, reason)


def _finish(
    store: Store, name: str, run_id: int, status: str, stop_reason: str | None, error: str | None = None
) -> str:
    store.finish_run(run_id, status, stop_reason, error)
    store.set_task_status(name, status, stop_reason=stop_reason, error=error)
    if status == FAILED_STATUS:
        publish_event(store, task_event(FAILED, name, error or ""))
    else:
        publish_event(store, task_event(STOPPED, name, stop_reason or ""))
    return status
