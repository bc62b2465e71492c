"""`conveyor tasks ...`, `conveyor endpoints ...` and `conveyor events ...`."""

from __future__ import annotations

import json
import sys
from contextlib import ExitStack
from typing import TYPE_CHECKING, Annotated, Any

import typer

from conveyor.cli.app import app, console
from conveyor.cli.output import opened_conveyor, print_json
from conveyor.cli.progress import LiveProgress, foreground_progress
from conveyor.replication.task_states import ACTIVE_STATUSES
from conveyor.service.models import TableReload, TaskDescription, TaskProcess, to_json
from conveyor.store.event_pages import MAX_LIMIT

if TYPE_CHECKING:
    from rich.table import Table

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


def _table(*columns: str) -> Table:
    from rich.table import Table  # rich on first use: see app.console

    return Table(*columns)


@tasks_app.command("list")
def tasks_list(as_json: JsonOption = False) -> None:
    """Every applied task with its status."""
    with opened_conveyor() as conveyor:
        rows = conveyor.list_tasks()
    if as_json:
        print_json(rows)
        return
    table = _table("task", "source", "target", "type", "status", "stop reason")
    for r in rows.root:
        table.add_row(r.name, r.source, r.target, r.migration_type, r.status, r.stop_reason or "")
    console().print(table)


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
    _start(name, wait, as_json, "reload", table or None)


def _start(name: str, wait: bool, as_json: bool, mode: str, tables: list[str] | None = None) -> None:
    answer: TaskProcess | TaskDescription | TableReload
    with opened_conveyor() as conveyor, ExitStack() as shown:
        live = wait and sys.stdout.isatty() and not as_json
        on_progress = shown.enter_context(LiveProgress(console())) if live else foreground_progress(name)
        if mode == "start":
            answer = conveyor.start_task(name, wait, on_progress)
        elif mode == "resume":
            answer = conveyor.resume_task(name, wait, on_progress)
        else:
            answer = conveyor.reload_task(name, tables, wait, on_progress)
    if not as_json and not isinstance(answer, TableReload) and answer.reloading:
        typer.echo(f"task {name}: resuming to reload {', '.join(answer.reloading)}")
    if as_json:
        print_json(answer)
    elif isinstance(answer, TableReload):
        typer.echo(f"task {name}: the running task reloads {', '.join(answer.reloading)}")
    elif isinstance(answer, TaskProcess):
        typer.echo(f"task {name} starting (pid {answer.pid}); follow with `conveyor tasks describe {name}`")
    else:
        _print_described(answer.model_dump(exclude_unset=True))
    if isinstance(answer, TaskDescription) and answer.status == "failed":
        raise typer.Exit(1)


@tasks_app.command("stop")
def tasks_stop(name: str, as_json: JsonOption = False) -> None:
    """Stop a running task between batches; tables not finished are rolled back."""
    with opened_conveyor() as conveyor:
        result = conveyor.stop_task(name)
    if as_json:
        print_json(result)
    else:
        pid = f" (pid {result.pid})" if result.pid is not None else ""
        typer.echo(f"task {name} stopping{pid}; follow with `conveyor tasks describe {name}`")


@tasks_app.command("delete")
def tasks_delete(name: str, as_json: JsonOption = False) -> None:
    """Delete a stopped task: its change capture ends on the source (the replication
    slot and publication Conveyor made are dropped), then it leaves what is applied."""
    with opened_conveyor() as conveyor:
        result = conveyor.delete_task(name)
    if as_json:
        print_json(result)
    else:
        typer.echo(f"task {name} deleted; a stack file that declares it creates it again at `conveyor apply`")


def _print_described(described: dict[str, Any]) -> None:
    pid = described.get("pid")
    active = described["status"] in ACTIVE_STATUSES
    console().print(
        f"task {described['task']}: {described['status']}"
        + (f" (pid {pid})" if pid is not None and active else "")
        + (f" (stop reason {described['stop_reason']})" if described.get("stop_reason") else "")
    )
    if described.get("last_error"):
        console().print(f"error: {described['last_error']}", markup=False, highlight=False, soft_wrap=True)
    table = _table(
        "schema", "table", "TableState", "FullLoadRows", "FullLoadErrorRows", "rows/s", "validation"
    )
    for t in described["tables"]:
        counts = (str(t["FullLoadRows"]), str(t["FullLoadErrorRows"]), str(t["RowsPerSecond"]))
        table.add_row(
            t["SchemaName"], t["TableName"], t["TableState"], *counts, t.get("ValidationState") or "-"
        )
    console().print(table)
    for t in described["tables"]:
        # Schema drift a source recorded for the table (DynamoDB: attributes new since inference).
        for line in t.get("Drift") or []:
            console().print(
                f"drift: {t['SchemaName']}.{t['TableName']}: {line}", markup=False, highlight=False
            )
        for generated in t.get("GeneratedColumns") or []:
            where = f"{t['SchemaName']}.{t['TableName']}.{generated['Column']}"
            console().print(
                f"generated column {where}: {generated['Handling']}", markup=False, highlight=False
            )
    if any("Inserts" in t for t in described["tables"]):
        _print_capture(described)
    not_acted_on = described.get("settings_not_acted_on") or {}
    for label, key in (
        ("cloud-only, no meaning here", "cloud_only"),
        ("not acted on yet", "not_acted_on_yet"),
    ):
        if not_acted_on.get(key):
            console().print(
                f"settings {label}: {', '.join(not_acted_on[key])}", markup=False, highlight=False
            )
    for row in described.get("suspended_tables", []):
        state = "reload requested" if row["state"] == "reload" else f"suspended: {row['reason']}"
        console().print(
            f"table {row['schema_name']}.{row['table_name']}: {state}", markup=False, highlight=False
        )


def _print_capture(described: dict[str, Any]) -> None:
    """Change-capture counters per table, and where the capture stands."""
    table = _table("table", "Inserts", "Updates", "Deletes", "Ddls", "suspended")
    for t in described["tables"]:
        counts = [str(t.get(k, 0)) for k in ("Inserts", "Updates", "Deletes", "Ddls")]
        table.add_row(f"{t['SchemaName']}.{t['TableName']}", *counts, t.get("SuspendedReason") or "-")
    console().print(table)
    capture = described.get("capture") or {}
    if capture:
        parts = [
            f"source position {json.dumps(capture.get('SourcePosition'))}",
            f"CDCLatencySource {capture.get('CDCLatencySource')} s",
            f"CDCLatencyTarget {capture.get('CDCLatencyTarget')} s",
        ]
        if capture.get("RetainedWalBytes") is not None:
            parts.append(f"retained WAL {capture['RetainedWalBytes']:,} bytes")
        console().print("capture: " + ", ".join(parts), markup=False, highlight=False)


@tasks_app.command("describe")
def tasks_describe(name: str, as_json: JsonOption = False) -> None:
    """Status, stop reason and per-table statistics of the latest run."""
    with opened_conveyor() as conveyor:
        described = conveyor.describe_task(name)
    if as_json:
        print_json(described)
    else:
        _print_described(described.model_dump(exclude_unset=True))


@endpoints_app.command("list")
def endpoints_list(as_json: JsonOption = False) -> None:
    """Every applied endpoint; secrets shown only as their references."""
    with opened_conveyor() as conveyor:
        rows = conveyor.list_endpoints()
    if as_json:
        print_json(rows)
        return
    table = _table("endpoint", "engine", "where")
    for r in rows.root:
        extra = r.model_extra or {}
        table.add_row(r.name, r.engine, str(extra.get("url") or extra.get("path") or ""))
    console().print(table)


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
    with opened_conveyor() as conveyor:
        endpoint = conveyor.modify_endpoint(name, set_ or [], unset or [])
    if as_json:
        print_json(endpoint)
    else:
        console().print(f"{name}: {json.dumps(to_json(endpoint))}", markup=False)


@endpoints_app.command("test")
def endpoints_test(name: str, as_json: JsonOption = False) -> None:
    """Connect to an endpoint and say whether it works, and why not."""
    with opened_conveyor() as conveyor:
        result = conveyor.test_endpoint(name)
    if as_json:
        print_json(result)
    else:
        console().print(f"{name}: {result.status} ({result.version or result.error})", markup=False)
    if result.status != "successful":
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
    with opened_conveyor() as conveyor:
        page = conveyor.events(since, limit, next_token)
    if as_json:
        print_json(page)
        return
    table = _table("time", "source", "eventId", "message")
    for e in page.Events:
        detail = e.get("detail", {})
        table.add_row(e["time"], e["source"], detail.get("eventId", ""), detail.get("detailMessage", ""))
    if page.NextToken is not None:
        table.caption = f"older events: --next-token {page.NextToken}"
    console().print(table)
