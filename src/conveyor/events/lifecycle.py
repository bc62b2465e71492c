"""Task lifecycle events in the migration service's shape and ids, so event
patterns written for it (``"source": ["aws.dms"]``, ``DMS-EVENT-0079`` ...)
match unchanged, and the sink replication hands them to."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, Protocol

from conveyor.core.arns import ACCOUNT, REGION


class EventSink(Protocol):
    """Where replication publishes the lifecycle events it raises (``task_event``).

    Replication never imports the event bus: whoever runs or controls a task (the
    worker process, the CLI, ``conveyor serve``) hands it a sink, usually
    ``orchestration.bus.event_sink(store)``, which stores the event and starts the
    executions its rules name. Called in the thread that raised the event; an
    exception fails the caller (as a failed store write would)."""

    def __call__(self, event: dict[str, Any], /) -> object: ...


STARTED = ("DMS-EVENT-0069", "REPLICATION_TASK_STARTED", "StateChange", "Replication task has started.")
STOPPED = ("DMS-EVENT-0079", "REPLICATION_TASK_STOPPED", "StateChange", "Stop Reason {reason}")
FAILED = ("DMS-EVENT-0078", "REPLICATION_TASK_FAILED", "Failure", "Replication task has failed. {reason}")
# The migration service has no public id for a suspended table: Conveyor's own, in the same shape.
TABLE_SUSPENDED = (
    "CONVEYOR-EVENT-0001",
    "REPLICATION_TASK_TABLE_SUSPENDED",
    "Failure",
    "Table suspended. {reason}",
)
NO_TABLES_CAPTURED = (
    "CONVEYOR-EVENT-0002",
    "REPLICATION_TASK_NO_TABLES_CAPTURED",
    "StateChange",
    "No tables captured. {reason}",
)
CREATED = ("DMS-EVENT-0074", "REPLICATION_TASK_CREATED", "Creation", "Replication task has been created.")
DELETED = ("DMS-EVENT-0073", "REPLICATION_TASK_DELETED", "Deletion", "Replication task has been deleted.")
MODIFIED = (
    "DMS-EVENT-0080",
    "REPLICATION_TASK_MODIFIED",
    "Configuration change",
    "Replication task has been modified.",
)
RELOAD_REQUESTED = (
    "DMS-EVENT-0081",
    "REPLICATION_TASK_RELOAD_REQUESTED",
    "StateChange",
    "A reload of table details has been requested. {reason}",
)
# The service announces the end of a full-load-and-cdc task's full load in its
# task log only: Conveyor's own id, in the same shape.
FULL_LOAD_COMPLETED = (
    "CONVEYOR-EVENT-0004",
    "REPLICATION_TASK_FULL_LOAD_COMPLETED",
    "StateChange",
    "Full load completed; change capture goes on. {reason}",
)
TABLE_ERROR = ("CONVEYOR-EVENT-0005", "REPLICATION_TASK_TABLE_ERROR", "Failure", "Table error. {reason}")
TABLE_DROPPED = (
    "CONVEYOR-EVENT-0003",
    "REPLICATION_TASK_TABLE_DROPPED",
    "Configuration change",
    "Source table dropped; it left the capture. {reason}",
)


def task_arn(task: str) -> str:
    return f"arn:aws:dms:{REGION}:{ACCOUNT}:task:{task}"


def task_event(kind: tuple[str, str, str, str], task: str, reason: str = "") -> dict[str, Any]:
    event_id, event_type, category, message = kind
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "DMS Replication Task State Change",
        "source": "aws.dms",
        "account": ACCOUNT,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [task_arn(task)],
        "detail": {
            "type": "REPLICATION_TASK",
            "category": category,
            "eventType": event_type,
            "eventId": event_id,
            "resourceLink": task_arn(task),
            "detailMessage": message.format(reason=reason).strip(),
        },
    }
