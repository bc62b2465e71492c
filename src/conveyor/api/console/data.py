"""Everything the console reads and does, in one place: plain dicts for the
templates, from the store and the orchestration and replication functions the
CLI and the REST API use. The pages never touch the store themselves, so this
module is the one seam to re-point (at the service layer) without touching a
template."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from conveyor.core.errors import ConfigError, NotFoundError
from conveyor.events.lifecycle import task_arn
from conveyor.orchestration.bus import event_sink
from conveyor.orchestration.integrations_aws import DatabaseMigration
from conveyor.orchestration.service import Service, rules_listing
from conveyor.replication.task_run import ACTIVE_STATUSES
from conveyor.replication.worker import current_pid, reap_stale, request_stop

TASK_EVENTS = 50
"""Events shown on a task's page (its newest)."""
EVENTS_SCANNED = 2000
"""Newest events searched for a task's own."""
QUERY_ROWS = 500
"""Rows of a lake query shown (the rest counted)."""
CHART_WINDOW = timedelta(minutes=30)
CHART_POINTS = 360
START_TYPES = {"start": "start-replication", "resume": "resume-processing", "reload": "reload-target"}


def _stack_or_none(service: Service) -> Any:
    try:
        return service.stack()
    except Exception:
        return None


# --- tasks ---------------------------------------------------------------------------------


def _progress(tables: list[dict[str, Any]], capture: dict[str, Any] | None) -> str:
    """One line: tables loaded and rows, then changes applied when capturing."""
    if not tables and not capture:
        return "-"
    done = sum(1 for t in tables if t.get("TableState") == "Table completed")
    rows = sum(int(t.get("FullLoadRows") or 0) for t in tables)
    text = f"{done}/{len(tables)} tables completed, {rows:,} rows loaded"
    if capture:
        text += f"; {int(capture.get('AppliedChanges') or 0):,} changes applied"
    return text


def tasks_overview(service: Service) -> list[dict[str, Any]]:
    """Every applied task: status, stop reason, type, progress, last error, table states."""
    stack = _stack_or_none(service)
    if stack is None:
        return []
    store = service.store
    events = event_sink(store)
    rows = []
    for name, spec in sorted(stack.tasks.items()):
        status = reap_stale(store, name, events)
        tables = store.table_stats(name)
        capture = store.task_progress(name)
        rows.append(
            {
                "name": name,
                "source": spec.source,
                "target": spec.target,
                "migration_type": spec.migration_type,
                "status": status["status"],
                "stop_reason": status.get("stop_reason"),
                "last_error": status.get("last_error"),
                "progress": _progress(tables, capture),
                "table_states": sorted(Counter(t.get("TableState") or "-" for t in tables).items()),
            }
        )
    return rows


def task_detail(service: Service, name: str) -> dict[str, Any]:
    """One task's page: status, tables, capture progress, suspensions, runs."""
    stack = service.stack()
    spec = stack.tasks.get(name)
    if spec is None:
        raise NotFoundError(f"no task named {name!r}")
    store = service.store
    status = reap_stale(store, name, event_sink(store))
    tables = store.table_stats(name)
    capturing = spec.migration_type != "full-load"
    return {
        "name": name,
        "source": spec.source,
        "target": spec.target,
        "migration_type": spec.migration_type,
        "status": status["status"],
        "active": status["status"] in ACTIVE_STATUSES,
        "capturing": capturing,
        "stop_reason": status.get("stop_reason"),
        "last_error": status.get("last_error"),
        "pid": current_pid(store, status),
        "tables": [_table_row(t) for t in tables],
        "capture": store.task_progress(name) if capturing else None,
        "suspensions": store.suspensions(name),
        "runs": store.list_runs(name, limit=5),
        "actions": task_actions(status["status"], capturing),
    }


def _table_row(t: dict[str, Any]) -> dict[str, Any]:
    return {
        "ref": f"{t.get('SchemaName')}.{t.get('TableName')}",
        "state": t.get("TableState") or "-",
        "full_load_rows": int(t.get("FullLoadRows") or 0),
        "error_rows": int(t.get("FullLoadErrorRows") or 0),
        "inserts": t.get("Inserts"),
        "updates": t.get("Updates"),
        "deletes": t.get("Deletes"),
        "ddls": t.get("Ddls"),
        "validation": t.get("ValidationState") or "-",
        "validation_details": t.get("ValidationStateDetails"),
        "suspended": t.get("SuspendedReason") or t.get("Error"),
    }


def task_actions(status: str, capturing: bool) -> list[str]:
    """The buttons the task's status allows (the operation refuses the rest anyway)."""
    if status in ACTIVE_STATUSES:
        return ["stop"]
    actions = ["start"]
    if capturing:
        actions += ["resume", "reload"]
    return actions


def task_samples(service: Service, name: str) -> list[dict[str, Any]]:
    """The samples of the chart window, thinned to at most CHART_POINTS (the newest kept)."""
    samples = service.store.task_samples(name, since=datetime.now(UTC) - CHART_WINDOW)
    step = -(-len(samples) // CHART_POINTS)
    return samples[::-1][::step][::-1] if step > 1 else samples


def task_events(service: Service, name: str) -> list[dict[str, Any]]:
    """The task's lifecycle events, newest first."""
    arn = task_arn(name)
    found: list[dict[str, Any]] = []
    before = None
    scanned = 0
    while scanned < EVENTS_SCANNED and len(found) < TASK_EVENTS:
        page, before = service.store.events_page(limit=500, before=before)
        scanned += len(page)
        found += [e for e in page if arn in (e.get("resources") or [])]
        if before is None:
            break
    return [
        {
            "time": e.get("time"),
            "event_id": (e.get("detail") or {}).get("eventId", ""),
            "category": (e.get("detail") or {}).get("category", ""),
            "message": (e.get("detail") or {}).get("detailMessage", ""),
        }
        for e in found[:TASK_EVENTS]
    ]


def task_action(service: Service, name: str, action: str, table: str | None = None) -> str:
    """Start, resume, reload (the task or one table) or stop; returns what happened."""
    from conveyor.replication.cdc.reload_request import request_table_reloads

    stack = service.stack()
    if name not in stack.tasks:
        raise NotFoundError(f"no task named {name!r}")
    dms = DatabaseMigration(service.executions)
    if action == "stop":
        request_stop(service.store, name, events=event_sink(service.store))
        return f"task {name} stopping"
    if action == "reload" and table:
        refs = request_table_reloads(service.store, stack, name, [table])
        listed = ", ".join(str(r) for r in refs)
        status = reap_stale(service.store, name, event_sink(service.store))["status"]
        if status in ACTIVE_STATUSES:
            return f"task {name}: the running task reloads {listed}"
        dms.start_replication_task(
            {"ReplicationTaskArn": name, "StartReplicationTaskType": "resume-processing"}
        )
        return f"task {name}: resuming to reload {listed}"
    if action not in START_TYPES:
        raise ConfigError(f"unknown action {action!r}")
    dms.start_replication_task({"ReplicationTaskArn": name, "StartReplicationTaskType": START_TYPES[action]})
    return f"task {name}: {action} requested"


# --- executions ------------------------------------------------------------------------------


def executions_list(service: Service, limit: int = 100) -> list[dict[str, Any]]:
    return service.executions.list(limit=limit)


@dataclass
class StateRun:
    """What one state did in an execution (its last entry, for a state run several times)."""

    name: str
    entered: int = 0
    input: Any = None
    output: Any = None
    error: str | None = None
    cause: str | None = None
    exited: bool = False


def execution_detail(service: Service, ref: str) -> dict[str, Any]:
    """DescribeExecution, the definition, and per state what it took, gave and raised."""
    described = service.executions.describe(ref)
    row = service.executions.resolve(ref)
    definition = row["record"].get("definition")  # what it ran, even if re-applied since
    if not isinstance(definition, dict):
        definition = service.executions.definition(row["state_machine"])
    states: dict[str, StateRun] = {}
    path: list[str] = []
    current: StateRun | None = None
    for event in service.store.execution_events(row["id"]):
        kind, details = event["type"], event["details"]
        if kind.endswith("StateEntered"):
            current = states.setdefault(details["name"], StateRun(details["name"]))
            current.entered += 1
            current.input = details.get("input")
            current.exited = False
            path.append(details["name"])
        elif kind.endswith("StateExited") and details.get("name") in states:
            states[details["name"]].output = details.get("output")
            states[details["name"]].exited = True
        elif (kind.endswith("Failed") or kind.endswith("TimedOut")) and details.get("error"):
            target = states.get(details.get("name", "")) or current
            if target is not None and not kind.startswith("Execution"):
                target.error, target.cause = details.get("error"), details.get("cause")
    return {
        "described": described,
        "definition": definition,
        "path": path,
        "states": [_state_view(states[n]) for n in dict.fromkeys(path)],
        "status": described["status"],
        "failed_state": next((s.name for s in states.values() if s.error and not s.exited), None),
    }


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, default=str)


def _state_view(run: StateRun) -> dict[str, Any]:
    return {
        "name": run.name,
        "entered": run.entered,
        "input": None if run.input is None else _pretty(run.input),
        "output": None if run.output is None else _pretty(run.output),
        "error": run.error,
        "cause": run.cause,
        "exited": run.exited,
    }


# --- rules, schedules and statements ---------------------------------------------------------


def rules(service: Service) -> list[dict[str, Any]]:
    if _stack_or_none(service) is None:
        return []
    return [
        row
        | {
            "pattern": _pretty(row["EventPattern"]) if "EventPattern" in row else None,
            "targets": ", ".join(
                str(t.get("state_machine") or t.get("StateMachine") or t) for t in row["Targets"]
            ),
        }
        for row in rules_listing(service)
    ]


def statements(service: Service, limit: int = 50) -> list[dict[str, Any]]:
    return service.statements.list(limit)


def statement_result(service: Service, statement_id: str) -> dict[str, Any]:
    """Columns and rows of a finished statement's first result page."""
    described = service.statements.describe(statement_id)
    if not described.get("HasResultSet") or described.get("Status") != "FINISHED":
        return {"described": described, "columns": [], "rows": []}
    result = service.statements.result(statement_id, None)
    columns = [c.get("name") or c.get("label") or "?" for c in result.get("ColumnMetadata", [])]
    rows = [[_field(f) for f in record] for record in result.get("Records", [])]
    return {"described": described, "columns": columns, "rows": rows}


def _field(field: dict[str, Any]) -> str:
    if field.get("isNull"):
        return "NULL"
    for value in field.values():
        return str(value)
    return ""


# --- the lake ----------------------------------------------------------------------------------


def lake_overview(service: Service) -> dict[str, Any]:
    """The controller entries of every lake, and each curated table's recent curation runs."""
    from conveyor.lake.history import curation_runs
    from conveyor.lake.jobs import lakes_with_controllers

    stack = _stack_or_none(service)
    if stack is None:
        return {"lakes": False, "entries": [], "runs": []}
    entries: list[dict[str, Any]] = []
    runs: list[dict[str, Any]] = []
    with lakes_with_controllers(stack) as pairs:
        for lake, controller in pairs:
            for table, entry in sorted(controller.entries.items()):
                entries.append(entry.public(lake.name))
                runs += curation_runs(lake, table)
    runs.sort(key=lambda r: r["time"] or "", reverse=True)
    return {"lakes": bool(entries) or _has_lake(stack), "entries": entries, "runs": runs[:50]}


def _has_lake(stack: Any) -> bool:
    return any(e.engine == "lake" for e in stack.endpoints.values())


def lake_query(service: Service, sql: str) -> dict[str, Any]:
    """``conveyor query``: the SQL over the curated tables, as columns and text rows."""
    from conveyor.lake.catalog import build_catalog, run_query
    from conveyor.lake.jobs import lakes_with_controllers

    if not sql.strip():
        raise ConfigError("write a query first")
    with lakes_with_controllers(service.stack()) as pairs:
        catalog = build_catalog(lake for lake, _ in pairs)
        try:
            result = run_query(catalog, sql)
        finally:
            catalog.connection.close()
    shown = result.slice(0, QUERY_ROWS).to_pylist()
    return {
        "columns": list(result.column_names),
        "rows": [[_text(v) for v in row.values()] for row in shown],
        "total": result.num_rows,
    }


def _text(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        return str(int(value))
    if isinstance(value, bytes):
        return value.hex()
    return str(value)
