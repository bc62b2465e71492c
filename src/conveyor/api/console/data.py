"""Everything the console reads and does, in one place: plain dicts for the
templates, from the service layer (:class:`~conveyor.service.Conveyor`) the CLI
and the REST API call too, so an action in the console is the same operation as
``conveyor tasks start`` or ``POST /tasks/NAME/start``. The pages never touch the
service themselves."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from conveyor.core.errors import ConfigError, NotFoundError
from conveyor.events.lifecycle import task_arn
from conveyor.replication.task_states import ACTIVE_STATUSES
from conveyor.service import Conveyor
from conveyor.service.models import StateRun, TableReload

TASK_EVENTS = 50
"""Events shown on a task's page (its newest)."""
EVENTS_SCANNED = 2000
"""Newest events searched for a task's own."""
QUERY_ROWS = 500
"""Rows of a lake query shown (the rest counted)."""
CHART_WINDOW = timedelta(minutes=30)
CHART_POINTS = 360
ACTIONS = ("start", "resume", "reload", "stop")


def _stack_or_none(service: Conveyor) -> Any:
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


def tasks_overview(service: Conveyor) -> list[dict[str, Any]]:
    """Every applied task: status, stop reason, type, progress, last error, table states."""
    if _stack_or_none(service) is None:
        return []
    rows = []
    for task in service.list_tasks().root:
        try:
            described = service.describe_task(task.name)
        except NotFoundError:  # removed by an apply since it was listed
            continue
        tables = [t.model_dump() for t in described.tables]
        rows.append(
            {
                "name": task.name,
                "source": task.source,
                "target": task.target,
                "migration_type": task.migration_type,
                "status": described.status,
                "stop_reason": described.stop_reason,
                "last_error": described.last_error,
                "progress": _progress(tables, described.capture),
                "table_states": sorted(Counter(t.get("TableState") or "-" for t in tables).items()),
            }
        )
    return rows


def task_detail(service: Conveyor, name: str) -> dict[str, Any]:
    """One task's page: status, tables, capture progress, suspensions, runs."""
    spec = service.stack().tasks.get(name)
    if spec is None:
        raise NotFoundError(f"no task named {name!r}")
    described = service.describe_task(name)
    capturing = spec.migration_type != "full-load"
    return {
        "name": name,
        "source": spec.source,
        "target": spec.target,
        "migration_type": spec.migration_type,
        "status": described.status,
        "active": described.status in ACTIVE_STATUSES,
        "capturing": capturing,
        "stop_reason": described.stop_reason,
        "last_error": described.last_error,
        "pid": described.pid,
        "tables": [_table_row(t.model_dump()) for t in described.tables],
        "capture": described.capture if capturing else None,
        "suspensions": described.suspended_tables or [],
        "runs": described.runs,
        "actions": task_actions(described.status, capturing),
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


def task_samples(service: Conveyor, name: str) -> list[dict[str, Any]]:
    """The samples of the chart window, thinned to at most CHART_POINTS (the newest kept)."""
    samples = service.task_samples(name, since=datetime.now(UTC) - CHART_WINDOW).root
    step = -(-len(samples) // CHART_POINTS)
    return samples[::-1][::step][::-1] if step > 1 else samples


def task_events(service: Conveyor, name: str) -> list[dict[str, Any]]:
    """The task's lifecycle events, newest first."""
    arn = task_arn(name)
    found: list[dict[str, Any]] = []
    before = None
    scanned = 0
    while scanned < EVENTS_SCANNED and len(found) < TASK_EVENTS:
        page = service.events(limit=500, next_token=before)
        before = page.NextToken
        scanned += len(page.Events)
        found += [e for e in page.Events if arn in (e.get("resources") or [])]
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


def task_action(service: Conveyor, name: str, action: str, table: str | None = None) -> str:
    """Start, resume, reload (the task or one table) or stop, as the CLI and the REST
    API do; returns what happened."""
    if action not in ACTIONS:
        raise ConfigError(f"unknown action {action!r}")
    if action == "stop":
        service.stop_task(name)
        return f"task {name} stopping"
    if action == "reload" and table:
        answer = service.reload_task(name, [table])
        listed = ", ".join(answer.reloading or [])
        if isinstance(answer, TableReload):
            return f"task {name}: the running task reloads {listed}"
        return f"task {name}: resuming to reload {listed}"
    if action == "start":
        service.start_task(name)
    elif action == "resume":
        service.resume_task(name)
    else:
        service.reload_task(name)
    return f"task {name}: {action} requested"


# --- executions ------------------------------------------------------------------------------


def executions_list(service: Conveyor, limit: int = 100) -> list[dict[str, Any]]:
    return [e.model_dump() for e in service.list_executions(limit=limit).root]


def execution_detail(service: Conveyor, ref: str) -> dict[str, Any]:
    """DescribeExecution, the definition, and per state what it took, gave and raised."""
    described = service.describe_execution(ref).model_dump()
    run = service.execution_states(ref)
    return {
        "described": described,
        "definition": run.definition,
        "path": run.path,
        "states": [_state_view(state) for state in run.states],
        "status": described["status"],
        "failed_state": run.failed_state,
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


def rules(service: Conveyor) -> list[dict[str, Any]]:
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
        for row in (rule.model_dump() for rule in service.list_rules().root)
    ]


def statements(service: Conveyor, limit: int = 50) -> list[dict[str, Any]]:
    return service.list_statements(limit).Statements


def statement_result(service: Conveyor, statement_id: str) -> dict[str, Any]:
    """Columns and rows of a finished statement's first result page."""
    described = service.describe_statement(statement_id).model_dump()
    if not described.get("HasResultSet") or described.get("Status") != "FINISHED":
        return {"described": described, "columns": [], "rows": []}
    result = service.get_statement_result(statement_id)
    columns = [c.get("name") or c.get("label") or "?" for c in result.ColumnMetadata]
    rows = [[_field(f) for f in record] for record in result.Records]
    return {"described": described, "columns": columns, "rows": rows}


def _field(field: dict[str, Any]) -> str:
    if field.get("isNull"):
        return "NULL"
    for value in field.values():
        return str(value)
    return ""


# --- the lake ----------------------------------------------------------------------------------


def lake_overview(service: Conveyor) -> dict[str, Any]:
    """The controller entries of every lake, and each curated table's recent curation runs."""
    stack = _stack_or_none(service)
    if stack is None:
        return {"lakes": False, "entries": [], "runs": []}
    entries = sorted(
        (t.model_dump() for t in service.lake_tables().root), key=lambda e: (e["Lake"], e["Table"])
    )
    runs = service.curation_runs(limit=50).root
    return {"lakes": bool(entries) or _has_lake(stack), "entries": entries, "runs": runs}


def _has_lake(stack: Any) -> bool:
    return any(e.engine == "lake" for e in stack.endpoints.values())


def lake_query(service: Conveyor, sql: str) -> dict[str, Any]:
    """``conveyor query``: the SQL over the curated tables, as columns and text rows."""
    if not sql.strip():
        raise ConfigError("write a query first")
    result = service.query(sql)
    return {
        "columns": result.columns,
        "rows": [[_text(v) for v in row.values()] for row in result.root[:QUERY_ROWS]],
        "total": len(result.root),
    }


def _text(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        return str(int(value))
    if isinstance(value, bytes):
        return value.hex()
    return str(value)
