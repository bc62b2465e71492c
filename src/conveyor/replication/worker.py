"""Tasks in their own processes: claiming a task for a run, spawning the detached
worker (``python -m conveyor.worker TASK --run ID``, see ``conveyor/worker``),
running a claimed run, stopping it, and noticing a worker that died without
saying so (SIGKILL, OOM, reboot).

The store is the only channel between processes: the task row says the status
and the current run, the run row says the pid. Every pid is of this machine.
Lifecycle events raised here (a dead worker, a worker that could not start)
go to the ``EventSink`` the caller hands in."""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Mapping
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from conveyor.core.errors import ConveyorError
from conveyor.core.processes import pid_alive as pid_alive  # noqa: PLC0414  (imported from here too)
from conveyor.events.lifecycle import FAILED, EventSink, task_event
from conveyor.replication.declarations import Declarations
from conveyor.replication.run_logs import prune_run_logs, run_log_path
from conveyor.replication.runnable import check_runnable
from conveyor.replication.task_states import (
    ACTIVE_STATUSES,
    FAILED_STATUS,
    STARTING,
    STOP_REASON_FATAL_ERROR,
    STOP_REASON_RECOVERABLE_ERROR,
    STOPPING,
    StartMode,
)
from conveyor.store.rows import RunRow, TaskStatusRow
from conveyor.store.store import DEFAULT_HOME, Store

WORKER_MODULE = "conveyor.worker"
"""The worker process's entry point (``python -m conveyor.worker``): an adapter
above orchestration, since it wires the task's event sink to the event bus."""

# A run claimed but whose worker never recorded a pid (the starting CLI died in
# between) is considered dead after this long.
PIDLESS_GRACE = timedelta(seconds=60)

log = logging.getLogger(__name__)


class TaskBusy(ConveyorError):
    """The task is already running, or not running when it should be."""


def _worker_dead(run: RunRow | None) -> int | bool | None:
    """False when the run's worker may still be alive; else the dead pid (None when
    the run never got one)."""
    if run is None:
        return None
    pid = run.get("pid")
    if pid is None:
        started = run.get("started_at")
        if started is not None and datetime.now(UTC) - started < PIDLESS_GRACE:
            return False
        return None
    return False if pid_alive(pid) else int(pid)


def reap_stale(store: Store, name: str, events: EventSink) -> TaskStatusRow:
    """The task's status; if it says starting/running/stopping but the worker is
    gone, first record that run as failed ("worker process N died") and tell
    ``events``."""
    status = store.task_status(name)
    if status["status"] not in ACTIVE_STATUSES:
        return status
    run_id = status["current_run"]
    run = store.run(run_id) if run_id is not None else None
    dead = _worker_dead(run)
    if dead is False:
        return status
    reason = f"worker process {dead} died" if dead is not None else "worker process never started"
    if store.transition_task(name, [status["status"]], FAILED_STATUS, expected_run=run_id, clear=True):
        # `tasks resume` goes on from the target's checkpoint: recoverable.
        if run_id is not None:
            store.finish_run(run_id, FAILED_STATUS, STOP_REASON_RECOVERABLE_ERROR, reason)
        store.set_task_status(name, FAILED_STATUS, stop_reason=STOP_REASON_RECOVERABLE_ERROR, error=reason)
        events(task_event(FAILED, name, reason))
    return store.task_status(name)


def current_pid(store: Store, status: TaskStatusRow) -> int | None:
    run_id = status.get("current_run")
    run = store.run(run_id) if run_id is not None else None
    return None if run is None else run.get("pid")


def claim_start(
    store: Store, stack: Declarations, name: str, pid: int | None = None, *, events: EventSink
) -> int:
    """Make a new run of task ``name`` its current one, status ``starting``; raise
    TaskBusy if a live worker has it. Returns the run id."""
    check_runnable(stack, name)
    store.ensure_task(name)
    status = reap_stale(store, name, events)
    if status["status"] in ACTIVE_STATUSES:
        raise TaskBusy(_busy_message(store, name, status))
    run_id = store.start_run(name, pid, status=STARTING)
    claimed = store.transition_task(
        name, [status["status"]], STARTING, expected_run=status["current_run"], run=run_id, clear=True
    )
    if not claimed:  # another start won the race
        store.discard_run(run_id)
        raise TaskBusy(_busy_message(store, name, store.task_status(name)))
    return run_id


def _busy_message(store: Store, name: str, status: TaskStatusRow) -> str:
    pid = current_pid(store, status)
    return f"task {name} is already running (pid {pid if pid is not None else 'not yet known'})"


def request_stop(store: Store, name: str, *, events: EventSink) -> dict[str, Any]:
    """Ask the task's worker to stop: status ``stopping`` in the store, and SIGTERM
    to its pid. Raises TaskBusy when the task is not running."""
    status = reap_stale(store, name, events)
    if status["status"] not in ACTIVE_STATUSES:
        detail = status["status"]
        if status.get("last_error"):
            detail += f": {status['last_error']}"
        raise TaskBusy(f"task {name} is not running (status {detail})")
    store.transition_task(name, [STARTING, "running"], STOPPING, expected_run=status["current_run"])
    pid = current_pid(store, status)
    if pid is not None and pid != os.getpid() and pid_alive(pid):
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    return {"task": name, "status": STOPPING, "pid": pid}


def spawn_worker(
    store: Store,
    name: str,
    run_id: int,
    mode: StartMode = "start",
    *,
    events: EventSink,
    environment: Mapping[str, str] | None = None,
) -> int:
    """Start the detached worker process for a claimed run; returns its pid. Its
    output goes to the run's log file (``run_logs``). ``environment`` (default:
    this process's) must name the same store (CONVEYOR_HOME, CONVEYOR_STORE_URL)
    as ``store``."""
    env = dict(os.environ if environment is None else environment)
    home = Path(env.get("CONVEYOR_HOME", DEFAULT_HOME))
    path = run_log_path(name, run_id, home)
    argv = [sys.executable, "-m", WORKER_MODULE, name, "--run", str(run_id), "--mode", mode]
    argv += ["--log-file", str(path)]
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        prune_run_logs(name, home=home)
        # posix_spawn rather than Popen: nothing here waits for the worker, and an
        # abandoned Popen warns at exit. Python's own descriptors are not inherited.
        devnull = os.open(os.devnull, os.O_RDONLY)
        try:
            log_fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                pid = os.posix_spawn(
                    sys.executable,
                    argv,
                    env,
                    file_actions=[
                        (os.POSIX_SPAWN_DUP2, devnull, 0),
                        (os.POSIX_SPAWN_DUP2, log_fd, 1),
                        (os.POSIX_SPAWN_DUP2, log_fd, 2),
                    ],
                    setsid=True,  # its own session: a Ctrl-C or hangup here does not reach it
                )
            finally:
                os.close(log_fd)
        finally:
            os.close(devnull)
    except OSError as exc:
        reason = f"could not start the worker process: {exc}"
        store.finish_run(run_id, FAILED_STATUS, STOP_REASON_FATAL_ERROR, reason)
        store.set_task_status(name, FAILED_STATUS, stop_reason=STOP_REASON_FATAL_ERROR, error=reason)
        events(task_event(FAILED, name, reason))
        raise ConveyorError(f"task {name}: {reason}") from None
    store.set_run(run_id, pid=pid)
    return pid
