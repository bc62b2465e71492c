"""Task operations over the store: list, start (in a worker process or here),
stop, reload some tables, describe. The worker functions do the work; this
module names the task, checks it is applied, and shapes the answers."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from conveyor.connectors.registry import open_change_source
from conveyor.core.errors import ConveyorError, NotFoundError
from conveyor.core.log_format import bind
from conveyor.events.lifecycle import DELETED, RELOAD_REQUESTED, task_event
from conveyor.orchestration.bus import event_sink
from conveyor.replication.cdc.reload_request import request_table_reloads
from conveyor.replication.task_states import ACTIVE_STATUSES, StartMode
from conveyor.replication.worker import (
    claim_start,
    current_pid,
    reap_stale,
    request_stop,
    spawn_worker,
)
from conveyor.service.apply import applied_stack
from conveyor.service.models import (
    TableReload,
    TaskDescription,
    TaskList,
    TaskProcess,
    TaskSummary,
)
from conveyor.stack.entries import delete_entry
from conveyor.stack.model import Stack
from conveyor.store.store import Store

if TYPE_CHECKING:
    from conveyor.replication.table_plan import ProgressCallback


def applied_task_stack(store: Store, name: str) -> Stack:
    """The applied stack, after checking that it declares task ``name``."""
    stack = applied_stack(store)
    if name not in stack.tasks:
        raise NotFoundError(f"no task named {name!r}; known: {', '.join(sorted(stack.tasks)) or '-'}")
    return stack


def list_tasks(store: Store) -> TaskList:
    stack = applied_stack(store)
    events = event_sink(store)
    rows = []
    for name, t in sorted(stack.tasks.items()):
        status = reap_stale(store, name, events)
        rows.append(
            TaskSummary(
                name=name,
                source=t.source,
                target=t.target,
                migration_type=t.migration_type,
                status=status["status"],
                stop_reason=status.get("stop_reason"),
            )
        )
    return TaskList(rows)


def start_in_worker(
    store: Store, name: str, mode: StartMode, environment: Mapping[str, str] | None = None
) -> TaskProcess:
    """Claim a run and start its detached worker process."""
    stack = applied_task_stack(store, name)
    events = event_sink(store)
    run_id = claim_start(store, stack, name, events=events)
    pid = spawn_worker(store, name, run_id, mode, events=events, environment=environment)
    return TaskProcess(task=name, status="starting", pid=pid)


def run_here(
    store: Store, name: str, mode: StartMode, on_progress: ProgressCallback | None
) -> TaskDescription:
    """Claim a run and run it in this process until it stops; then describe the task."""
    # The engines load with the run: the service's other operations do not pay for them.
    from conveyor.replication.task_runner import run_claimed

    stack = applied_task_stack(store, name)
    events = event_sink(store)
    run_id = claim_start(store, stack, name, pid=os.getpid(), events=events)
    bind(task=name, run_id=run_id)  # this process's log records are now about the run
    try:
        run_claimed(store, stack, name, run_id, on_progress, mode, events=events)
    finally:
        bind(run_id=None)
    return describe(store, name, stack)


def stop(store: Store, name: str) -> TaskProcess:
    applied_task_stack(store, name)
    return TaskProcess(**request_stop(store, name, events=event_sink(store)))


def delete(store: Store, name: str) -> TaskProcess:
    """Remove a stopped task from what is applied (its runs and statistics stay in
    the store). A change-capture task's capture ends first, on the source: the
    replication slot, publication and DDL capture Conveyor made for it are
    dropped, so nothing of it keeps holding the source's WAL. Nothing is removed
    when the source cannot be reached, or while a rule or another entry names it."""
    stack = applied_task_stack(store, name)
    events = event_sink(store)
    status = reap_stale(store, name, events)["status"]
    if status in ACTIVE_STATUSES:
        raise ConveyorError(f"task {name!r} is {status}: stop it before you delete it")
    delete_entry(store, "tasks", name, dry_run=True)
    spec = stack.tasks[name]
    if spec.migration_type != "full-load":
        changes = open_change_source(stack.endpoint_config(spec.source))
        try:
            changes.end_capture(name)
        finally:
            changes.close()
    delete_entry(store, "tasks", name)
    events(task_event(DELETED, name))
    return TaskProcess(task=name, status="deleted", pid=None)


def request_reloads(store: Store, name: str, tables: list[str]) -> tuple[TableReload, bool]:
    """Mark ``tables`` for reload; the answer, and whether the task runs now (it
    reloads them itself) or must be resumed to do so."""
    stack = applied_task_stack(store, name)
    refs = request_table_reloads(store, stack, name, tables)
    events = event_sink(store)
    events(task_event(RELOAD_REQUESTED, name, "Tables: " + ", ".join(str(r) for r in refs) + "."))
    running = reap_stale(store, name, events)["status"] in ACTIVE_STATUSES
    answer = TableReload(task=name, status="running", reloading=[str(r) for r in refs])
    return answer, running


def describe(store: Store, name: str, stack: Stack | None = None) -> TaskDescription:
    stack = stack or applied_task_stack(store, name)
    status = reap_stale(store, name, event_sink(store))
    described: dict[str, Any] = {"task": name, **status, "pid": current_pid(store, status)}
    described["tables"] = store.table_stats(name)
    described["runs"] = store.list_runs(name, limit=5)
    described["settings_not_acted_on"] = stack.tasks[name].settings_review().as_dict()
    progress = store.task_progress(name)
    if progress is not None:
        described["capture"] = progress
    suspended = store.suspensions(name)
    if suspended:
        # Kept across runs until `conveyor tasks reload NAME --table S.T`.
        described["suspended_tables"] = suspended
    return TaskDescription(**described)
