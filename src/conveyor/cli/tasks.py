"""`conveyor tasks ...`, `conveyor endpoints ...` and `conveyor events ...`."""

from __future__ import annotations

import json
import os
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from conveyor.cli.app import app, applied_stack, opened_store
from conveyor.cli.progress import LiveProgress, foreground_progress
from conveyor.connectors.registry import SOURCES, open_source, open_target
from conveyor.core.errors import ConfigError, ConveyorError, NotFoundError
from conveyor.orchestration.bus import event_sink
from conveyor.replication.cdc.reload_request import request_table_reloads
from conveyor.replication.task_run import ACTIVE_STATUSES, StartMode
from conveyor.replication.worker import (
    claim_start,
    current_pid,
    reap_stale,
    request_stop,
    run_claimed,
    spawn_worker,
)
from conveyor.stack.model import Stack
from conveyor.stack.modify import assignments, modify_endpoint
from conveyor.store.event_pages import MAX_LIMIT, events_page
from conveyor.store.store import Store

JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
WaitOption = Annotated[
    bool, typer.Option("--wait", help="Run in the foreground until the task stops; exit 1 if it failed.")
]
tasks_app = typer.Typer(no_args_is_help=True, help="Replication tasks.")
endpoints_app = typer.Typer(no_args_is_help=True, help="Endpoints.")
events_app = typer.Typer(no_args_is_help=True, help="Lifecycle events.")
app.add_typer(tasks_app, name="tasks")
app.add_typer(endpoints_app, name="endpoints")
app.add_typer(events_app, name="events")
_out = Console()


def applied_task_stack(store: Store, name: str) -> Stack:
    """The applied stack, after checking that it declares task ``name``."""
    stack = applied_stack(store)
    if name not in stack.tasks:
        raise NotFoundError(f"no task named {name!r}; known: {', '.join(sorted(stack.tasks)) or '-'}")
    return stack


def _emit(data: Any, as_json: bool, table: Table | None = None) -> None:
    if as_json:
        typer.echo(json.dumps(data, indent=2, default=str))
    elif table is not None:
        _out.print(table)


@tasks_app.command("list")
def tasks_list(as_json: JsonOption = False) -> None:
    """Every applied task with its status."""
    with opened_store() as store:
        stack = applied_stack(store)
        events = event_sink(store)
        rows = [
            {"name": name, "source": t.source, "target": t.target, "migration_type": t.migration_type}
            | {k: v for k, v in reap_stale(store, name, events).items() if k in {"status", "stop_reason"}}
            for name, t in sorted(stack.tasks.items())
        ]
    table = Table("task", "source", "target", "type", "status", "stop reason")
    for r in rows:
        table.add_row(
            r["name"], r["source"], r["target"], r["migration_type"], r["status"], r["stop_reason"] or ""
        )
    _emit(rows, as_json, table)


@tasks_app.command("start")
def tasks_start(
    name: str,
    wait: Annotated[
        bool,
        typer.Option("--wait", help="Run in the foreground until the task stops; exit 1 if it failed."),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Start a task afresh in a background worker process (or in the foreground with --wait).
    A change-capture task begins a new capture (and full load, for full-load-and-cdc)."""
    _start(name, wait, as_json, "start")


@tasks_app.command("resume")
def tasks_resume(name: str, wait: WaitOption = False, as_json: JsonOption = False) -> None:
    """Continue a change-capture task from its target's checkpoint, also after a crash."""
    _start(name, wait, as_json, "resume")


@tasks_app.command("reload")
def tasks_reload(
    name: str,
    table: Annotated[
        list[str] | None,
        typer.Option(
            "--table",
            help="SCHEMA.TABLE (source or target name): reload just this table while capture goes on "
            "for the others; repeatable.",
        ),
    ] = None,
    wait: WaitOption = False,
    as_json: JsonOption = False,
) -> None:
    """Resync: drop the task's capture and start afresh (full load, then capture).
    With --table, reload only those tables (also a suspended one) and capture on."""
    if not table:
        _start(name, wait, as_json, "reload")
        return
    with opened_store() as store:
        stack = applied_task_stack(store, name)
        refs = request_table_reloads(store, stack, name, table)
        running = reap_stale(store, name, event_sink(store))["status"] in ACTIVE_STATUSES
    listed = ", ".join(str(r) for r in refs)
    if running:
        if as_json:
            _emit({"task": name, "status": "running", "reloading": [str(r) for r in refs]}, True)
        else:
            typer.echo(f"task {name}: the running task reloads {listed}")
        return
    if not as_json:
        typer.echo(f"task {name}: resuming to reload {listed}")
    _start(name, wait, as_json, "resume")


def _start(name: str, wait: bool, as_json: bool, mode: StartMode) -> None:
    with opened_store() as store:
        stack = applied_task_stack(store, name)
        events = event_sink(store)
        if not wait:
            run_id = claim_start(store, stack, name, events=events)
            pid = spawn_worker(store, name, run_id, mode, events=events)
            if as_json:
                _emit({"task": name, "status": "starting", "pid": pid}, True)
            else:
                typer.echo(f"task {name} starting (pid {pid}); follow with `conveyor tasks describe {name}`")
            return
        run_id = claim_start(store, stack, name, pid=os.getpid(), events=events)
        if sys.stdout.isatty() and not as_json:
            with LiveProgress(_out) as live:
                status = run_claimed(store, stack, name, run_id, live, mode, events=events)
        else:
            progress = foreground_progress(name, run_id)
            status = run_claimed(store, stack, name, run_id, progress, mode, events=events)
        described = _describe(store, name, stack)
    _emit(described, as_json)
    if not as_json:
        _print_described(described)
    if status == "failed":
        raise typer.Exit(1)


@tasks_app.command("stop")
def tasks_stop(name: str, as_json: JsonOption = False) -> None:
    """Stop a running task between batches; tables not finished are rolled back."""
    with opened_store() as store:
        applied_task_stack(store, name)
        result = request_stop(store, name, events=event_sink(store))
    if as_json:
        _emit(result, True)
    else:
        pid = f" (pid {result['pid']})" if result["pid"] is not None else ""
        typer.echo(f"task {name} stopping{pid}; follow with `conveyor tasks describe {name}`")


def _describe(store: Store, name: str, stack: Stack) -> dict[str, Any]:
    status = reap_stale(store, name, event_sink(store))
    runs = store.list_runs(name, limit=5)
    pid = current_pid(store, status)
    described = {"task": name, **status, "pid": pid, "tables": store.table_stats(name), "runs": runs}
    described["settings_not_acted_on"] = stack.tasks[name].settings_review().as_dict()
    progress = store.task_progress(name)
    if progress is not None:
        described["capture"] = progress
    suspended = store.suspensions(name)
    if suspended:
        # Kept across runs until `conveyor tasks reload NAME --table S.T`.
        described["suspended_tables"] = suspended
    return described


def _print_described(described: dict[str, Any]) -> None:
    pid = described.get("pid")
    active = described["status"] in ACTIVE_STATUSES
    _out.print(
        f"task {described['task']}: {described['status']}"
        + (f" (pid {pid})" if pid is not None and active else "")
        + (f" (stop reason {described['stop_reason']})" if described.get("stop_reason") else "")
    )
    if described.get("last_error"):
        _out.print(f"error: {described['last_error']}", markup=False, highlight=False)
    table = Table(
        "schema", "table", "TableState", "FullLoadRows", "FullLoadErrorRows", "rows/s", "validation"
    )
    for t in described["tables"]:
        counts = (str(t["FullLoadRows"]), str(t["FullLoadErrorRows"]), str(t["RowsPerSecond"]))
        table.add_row(
            t["SchemaName"], t["TableName"], t["TableState"], *counts, t.get("ValidationState") or "-"
        )
    _out.print(table)
    for t in described["tables"]:
        # Schema drift a source recorded for the table (DynamoDB: attributes new since inference).
        for line in t.get("Drift") or []:
            _out.print(f"drift: {t['SchemaName']}.{t['TableName']}: {line}", markup=False, highlight=False)
        for generated in t.get("GeneratedColumns") or []:
            where = f"{t['SchemaName']}.{t['TableName']}.{generated['Column']}"
            _out.print(f"generated column {where}: {generated['Handling']}", markup=False, highlight=False)
    if any("Inserts" in t for t in described["tables"]):
        _print_capture(described)
    not_acted_on = described.get("settings_not_acted_on") or {}
    for label, key in (
        ("cloud-only, no meaning here", "cloud_only"),
        ("not acted on yet", "not_acted_on_yet"),
    ):
        if not_acted_on.get(key):
            _out.print(f"settings {label}: {', '.join(not_acted_on[key])}", markup=False, highlight=False)
    for row in described.get("suspended_tables", []):
        state = "reload requested" if row["state"] == "reload" else f"suspended: {row['reason']}"
        _out.print(f"table {row['schema_name']}.{row['table_name']}: {state}", markup=False, highlight=False)


def _print_capture(described: dict[str, Any]) -> None:
    """Change-capture counters per table, and where the capture stands."""
    table = Table("table", "Inserts", "Updates", "Deletes", "Ddls", "suspended")
    for t in described["tables"]:
        counts = [str(t.get(k, 0)) for k in ("Inserts", "Updates", "Deletes", "Ddls")]
        table.add_row(f"{t['SchemaName']}.{t['TableName']}", *counts, t.get("SuspendedReason") or "-")
    _out.print(table)
    capture = described.get("capture") or {}
    if capture:
        parts = [
            f"source position {json.dumps(capture.get('SourcePosition'))}",
            f"CDCLatencySource {capture.get('CDCLatencySource')} s",
            f"CDCLatencyTarget {capture.get('CDCLatencyTarget')} s",
        ]
        if capture.get("RetainedWalBytes") is not None:
            parts.append(f"retained WAL {capture['RetainedWalBytes']:,} bytes")
        _out.print("capture: " + ", ".join(parts), markup=False, highlight=False)


@tasks_app.command("describe")
def tasks_describe(name: str, as_json: JsonOption = False) -> None:
    """Status, stop reason and per-table statistics of the latest run."""
    with opened_store() as store:
        stack = applied_task_stack(store, name)
        described = _describe(store, name, stack)
    if as_json:
        _emit(described, True)
    else:
        _print_described(described)


@endpoints_app.command("list")
def endpoints_list(as_json: JsonOption = False) -> None:
    """Every applied endpoint; secrets shown only as their references."""
    with opened_store() as store:
        stack = applied_stack(store)
    rows = [{"name": n, **e.redacted()} for n, e in sorted(stack.endpoints.items())]
    table = Table("endpoint", "engine", "where")
    for r in rows:
        table.add_row(r["name"], r["engine"], str(r.get("url") or r.get("path") or ""))
    _emit(rows, as_json, table)


@endpoints_app.command("modify")
def endpoints_modify(
    name: str,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="KEY=VALUE: an endpoint key (bucket_path, url ...) or settings.<Name>."),
    ] = None,
    unset: Annotated[list[str] | None, typer.Option("--unset", help="KEY to remove.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Change an applied endpoint (e.g. a lake's dated bucket_path before a load);
    kept until the next `conveyor apply` of a file that declares it."""
    if not set_ and not unset:
        raise ConfigError("nothing to change: give --set KEY=VALUE or --unset KEY")
    with opened_store() as store:
        stack = modify_endpoint(store, name, assignments(set_ or [], unset or []), f"endpoints modify {name}")
    endpoint = {"name": name, **stack.endpoints[name].redacted()}
    if as_json:
        _emit(endpoint, True)
    else:
        _out.print(f"{name}: {json.dumps(endpoint, default=str)}", markup=False)


@endpoints_app.command("test")
def endpoints_test(name: str, as_json: JsonOption = False) -> None:
    """Connect to an endpoint and say whether it works, and why not."""
    with opened_store() as store:
        stack = applied_stack(store)
    config = stack.endpoint_config(name)
    try:
        connector = open_source(config) if config.engine in SOURCES else open_target(config)
        version = connector.check()
        result = {"endpoint": name, "status": "successful", "version": version}
    except ConveyorError as exc:
        result = {"endpoint": name, "status": "failed", "error": str(exc)}
    if as_json:
        _emit(result, True)
    else:
        _out.print(
            f"{name}: {result['status']} ({result.get('version') or result.get('error')})", markup=False
        )
    if result["status"] != "successful":
        raise typer.Exit(1)


@events_app.command("list")
def events_list(
    since: Annotated[
        str | None, typer.Option("--since", help="From this time (ISO 8601) or age (15m, 2h, 7d) on.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help=f"At most this many (1-{MAX_LIMIT}).")] = 100,
    next_token: Annotated[
        str | None, typer.Option("--next-token", help="The NextToken of the previous page.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Stored events, newest first, a page at a time."""
    with opened_store() as store:
        page = events_page(store, since, limit, next_token)
    table = Table("time", "source", "eventId", "message")
    for e in page["Events"]:
        detail = e.get("detail", {})
        table.add_row(e["time"], e["source"], detail.get("eventId", ""), detail.get("detailMessage", ""))
    if page["NextToken"] is not None:
        table.caption = f"older events: --next-token {page['NextToken']}"
    _emit(page, as_json, table)
