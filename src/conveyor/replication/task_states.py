"""A task's statuses and stop reasons, and how a run starts: the names every
layer shares (the worker, the service, the CLI, the REST API, metrics). Kept
apart from the run itself so that reading a task's state imports no engine."""

from __future__ import annotations

from typing import Literal

from conveyor.core.errors import ConnectionFailed, TransientError

# Stop reasons, as the migration service reports them (its events and
# DescribeReplicationTasks say "Stop Reason X"); docs/settings.md lists when each is set.
FULL_LOAD_ONLY_FINISHED = "FULL_LOAD_ONLY_FINISHED"  # every table loaded
STOP_REASON_NORMAL = "NORMAL"  # stopped by the user (`conveyor tasks stop`, SIGTERM, Ctrl-C)
STOP_REASON_FATAL_ERROR = "FATAL_ERROR"  # failed: retrying will not help (`tasks describe` says why)
STOP_REASON_RECOVERABLE_ERROR = "RECOVERABLE_ERROR"  # failed on an endpoint that may come back
STOPPED_AFTER_FULL_LOAD = "STOPPED_AFTER_FULL_LOAD"  # StopTaskCachedChangesNotApplied
STOPPED_AFTER_CACHED_EVENTS = "STOPPED_AFTER_CACHED_EVENTS"  # StopTaskCachedChangesApplied
# The rest of the service's set, which nothing here asks for (no setting or
# limit of Conveyor's leads to them): never set.
UNUSED_STOP_REASONS = (
    "STOPPED_AFTER_DDL_APPLY",
    "STOPPED_DUE_TO_LOW_MEMORY",
    "STOPPED_DUE_TO_LOW_DISK",
    "STOPPED_AT_SERVER_TIME",
    "STOPPED_AT_COMMIT_TIME",
    "EXPRESS_LICENSE_LIMITS_REACHED",
    "RECONFIGURATION_RESTART",
    "RECYCLE_TASK",
)


def failure_stop_reason(error: BaseException) -> str:
    """A failed task's stop reason: RECOVERABLE_ERROR when an endpoint could not
    be reached (starting it again may succeed), FATAL_ERROR otherwise."""
    recoverable = isinstance(error, ConnectionFailed | TransientError)
    return STOP_REASON_RECOVERABLE_ERROR if recoverable else STOP_REASON_FATAL_ERROR


# Task statuses: ready -> starting -> running -> stopping -> stopped | failed.
READY = "ready"
STARTING = "starting"
RUNNING = "running"
STOPPING = "stopping"
STOPPED_STATUS = "stopped"
FAILED_STATUS = "failed"
ACTIVE_STATUSES = (STARTING, RUNNING, STOPPING)

StartMode = Literal["start", "resume", "reload"]
