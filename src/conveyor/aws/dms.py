"""The migration service (``AmazonDMSv20160101``) on Conveyor's endpoints and tasks.

Describing, starting and stopping tasks and acting on endpoints is done by
``DatabaseMigration`` (what state machines' ``aws-sdk:databasemigration`` Tasks
use). Creating, modifying and deleting a task writes the applied stack as
``conveyor apply`` does (stack/entries.py): ``TableMappings`` and
``ReplicationTaskSettings`` are kept as the JSON given, checked as a stack file's.
As the service does, a task is modified or deleted only while it is not running
(``InvalidResourceStateFault``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from conveyor.aws.base import AwsService, Paging, json_member, required
from conveyor.core.errors import ConfigError, ConveyorError, NotFoundError
from conveyor.events.lifecycle import CREATED, MODIFIED, task_event
from conveyor.orchestration.bus import event_sink
from conveyor.orchestration.integrations_aws import DatabaseMigration
from conveyor.orchestration.service import Service
from conveyor.stack.entries import put_entry

MIGRATION_TYPES = ("full-load", "cdc", "full-load-and-cdc")


def _dms(service: Service) -> DatabaseMigration:
    return DatabaseMigration(service.executions)


def _ref_name(ref: Any, what: str) -> str:
    if not isinstance(ref, str) or not ref:
        raise ConfigError(f"{what} is required")
    for marker in (":endpoint:", ":task:"):
        if marker in ref:
            return ref.split(marker, 1)[1]
    return ref


def _task(service: Service, p: dict[str, Any]) -> str:
    name = _ref_name(p.get("ReplicationTaskArn"), "ReplicationTaskArn")
    if name not in service.stack().tasks:
        raise NotFoundError(f"no replication task {name!r}")
    return name


def _not_running(service: Service, name: str, doing: str) -> None:
    from conveyor.replication.task_states import ACTIVE_STATUSES
    from conveyor.replication.worker import reap_stale

    status = reap_stale(service.store, name, event_sink(service.store))["status"]
    if status in ACTIVE_STATUSES:
        raise ConveyorError(f"task {name!r} is {status}: stop it before you {doing} it")


def _task_body(service: Service, p: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """The stack file's task body from the request's members, over ``base``."""
    stack = service.stack()
    body = dict(base)
    for member, key in (("SourceEndpointArn", "source"), ("TargetEndpointArn", "target")):
        if member in p:
            endpoint = _ref_name(p[member], member)
            if endpoint not in stack.endpoints:
                raise NotFoundError(f"{member}: no endpoint {endpoint!r}")
            body[key] = endpoint
    if "MigrationType" in p:
        if p["MigrationType"] not in MIGRATION_TYPES:
            raise ConfigError(f"MigrationType must be one of {', '.join(MIGRATION_TYPES)}")
        body["migration_type"] = p["MigrationType"]
    if "TableMappings" in p:
        body["table_mappings"] = json_member(p, "TableMappings")
    if "ReplicationTaskSettings" in p:
        body["settings"] = json_member(p, "ReplicationTaskSettings")
    return body


def _create_task(service: Service, p: dict[str, Any]) -> dict[str, Any]:
    name = required(p, "ReplicationTaskIdentifier")
    for member in ("SourceEndpointArn", "TargetEndpointArn", "TableMappings"):
        required(p, member)
    body = _task_body(service, p, {"migration_type": p.get("MigrationType") or "full-load"})
    stack = put_entry(service.store, "tasks", name, body, create=True)
    event_sink(service.store)(task_event(CREATED, name))
    return {"ReplicationTask": _dms(service).task_document(stack, name)}


def _modify_task(service: Service, p: dict[str, Any]) -> dict[str, Any]:
    name = _task(service, p)
    if p.get("ReplicationTaskIdentifier") not in (None, name):
        raise ConfigError("ReplicationTaskIdentifier: Conveyor does not rename tasks (create a new one)")
    _not_running(service, name, "modify")
    base = service.stack().tasks[name].model_dump(mode="json")
    stack = put_entry(service.store, "tasks", name, _task_body(service, p, base), create=False)
    event_sink(service.store)(task_event(MODIFIED, name))
    return {"ReplicationTask": _dms(service).task_document(stack, name)}


def _delete_task(service: Service, p: dict[str, Any]) -> dict[str, Any]:
    from conveyor.service.tasks import delete

    name = _task(service, p)
    _not_running(service, name, "delete")
    document = _dms(service).task_document(service.stack(), name) | {"Status": "deleting"}
    delete(service.store, name)
    return {"ReplicationTask": document}


def _reload_tables(service: Service, p: dict[str, Any]) -> dict[str, Any]:
    """Reload the named tables of a change-capture task: a running task reloads them
    while capture goes on; a stopped one resumes to reload them (``tasks reload --table``)."""
    from conveyor.replication.worker import claim_start, spawn_worker
    from conveyor.service.tasks import request_reloads

    name = _task(service, p)
    wanted = p.get("TablesToReload")
    if not isinstance(wanted, list) or not wanted:
        raise ConfigError("TablesToReload: one or more {SchemaName, TableName} are required")
    tables = [f"{t.get('SchemaName')}.{t.get('TableName')}" for t in wanted if isinstance(t, dict)]
    if p.get("ReloadOption", "data-reload") != "data-reload":
        raise ConfigError("ReloadOption: Conveyor reloads data (data-reload); it does not validate-only")
    stack = service.stack()
    store = service.store
    _, running = request_reloads(store, name, tables)
    if not running:
        events = event_sink(store)
        run_id = claim_start(store, stack, name, events=events)
        spawn_worker(store, name, run_id, "resume", events=events)
        service.executions.started_tasks.add(name)
    return {"ReplicationTaskArn": _dms(service).task_document(stack, name)["ReplicationTaskArn"]}


def _table_statistics(service: Service, p: dict[str, Any]) -> dict[str, Any]:
    name = _task(service, p)
    return {
        "ReplicationTaskArn": _dms(service).task_document(service.stack(), name)["ReplicationTaskArn"],
        "TableStatistics": service.store.table_stats(name),
    }


def _assessment_results(service: Service, p: dict[str, Any]) -> dict[str, Any]:
    """Conveyor runs no premigration assessments: a known task has none."""
    if p.get("ReplicationTaskArn"):
        _task(service, p)
    return {"ReplicationTaskAssessmentResults": [], "BucketName": ""}


def _events(service: Service, p: dict[str, Any]) -> dict[str, Any]:
    """The replication tasks' events, newest first, ``MaxRecords`` (20-100) a page;
    ``Marker`` is the store's position of the next (older) page, so a page stays
    stable while new events arrive."""
    limit = p.get("MaxRecords", 100)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 20 <= limit <= 100:
        raise ConfigError(f"MaxRecords must be between 20 and 100 (it is {limit!r})")
    marker = p.get("Marker")
    if marker is not None and not (isinstance(marker, str) and marker.isdigit()):
        raise ConfigError(f"Marker {marker!r} is not one DescribeEvents gave")
    since, until = _event_window(p)
    wanted, categories = p.get("SourceIdentifier"), {c.lower() for c in p.get("EventCategories") or []}
    events: list[tuple[int, dict[str, Any]]] = []
    before = None if marker is None else int(marker)
    while len(events) <= limit:
        numbered = service.store.numbered_events(since=since, limit=100, before=before)
        for seq, event in numbered:
            described = _dms_event(event)
            if described is None or (wanted and described["SourceIdentifier"] != wanted):
                continue
            if categories and not categories & set(described["EventCategories"]):
                continue
            if until is not None and datetime.fromisoformat(str(described["Date"])) > until:
                continue
            events.append((seq, described))
        if len(numbered) < 100:
            break
        before = numbered[-1][0]
    answer: dict[str, Any] = {"Events": [described for _, described in events[:limit]]}
    if len(events) > limit:
        answer["Marker"] = str(events[limit][0] + 1)  # the next page starts at that event
    return answer


def _dms_event(event: dict[str, Any]) -> dict[str, Any] | None:
    if event.get("source") != "aws.dms":
        return None
    detail = event.get("detail") or {}
    return {
        "SourceIdentifier": (event.get("resources") or [""])[0].rsplit(":", 1)[-1],
        "SourceType": "replication-task",
        "Message": detail.get("detailMessage", ""),
        "EventCategories": [str(detail.get("category", "")).lower()],
        "Date": event["time"],
    }


def _event_window(p: dict[str, Any]) -> tuple[datetime | None, datetime | None]:
    """StartTime / EndTime, or Duration (minutes before EndTime or now)."""
    start, end = _when(p.get("StartTime"), "StartTime"), _when(p.get("EndTime"), "EndTime")
    duration = p.get("Duration")
    if duration is not None:
        if isinstance(duration, bool) or not isinstance(duration, int) or duration < 0:
            raise ConfigError(f"Duration must be a whole number of minutes (it is {duration!r})")
        start = (end or datetime.now(UTC)) - timedelta(minutes=duration)
    return start, end


def _when(value: Any, what: str) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        raise ConfigError(f"{what} {value!r} is not a time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


DMS = AwsService(
    "AmazonDMSv20160101",
    "application/x-amz-json-1.1",
    not_found="ResourceNotFoundFault",
    invalid="InvalidParameterValueException",
    wrong_state="InvalidResourceStateFault",
    operations={
        "DescribeReplicationTasks": lambda s, p: _dms(s).describe_replication_tasks(p),
        "CreateReplicationTask": _create_task,
        "ModifyReplicationTask": _modify_task,
        "DeleteReplicationTask": _delete_task,
        "StartReplicationTask": lambda s, p: _dms(s).start_replication_task(p),
        "StopReplicationTask": lambda s, p: _dms(s).stop_replication_task(p),
        "ReloadTables": _reload_tables,
        "DescribeTableStatistics": _table_statistics,
        "DescribeEndpoints": lambda s, p: _dms(s).describe_endpoints(p),
        "ModifyEndpoint": lambda s, p: _dms(s).modify_endpoint(p),
        "TestConnection": lambda s, p: _dms(s).test_connection(p),
        "DescribeConnections": lambda s, p: _dms(s).describe_connections(p),
        "DescribeEvents": _events,
        "DescribeReplicationTaskAssessmentResults": _assessment_results,
    },
    paging={
        operation: Paging(items, "MaxRecords", "Marker", minimum=20, maximum=maximum)
        for operation, items, maximum in (
            ("DescribeReplicationTasks", "ReplicationTasks", 100),
            ("DescribeEndpoints", "Endpoints", 100),
            ("DescribeConnections", "Connections", 100),
            ("DescribeTableStatistics", "TableStatistics", 500),
            ("DescribeReplicationTaskAssessmentResults", "ReplicationTaskAssessmentResults", 100),
        )
    },
)
