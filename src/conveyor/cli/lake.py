"""`conveyor lake tables`, `conveyor lake process` and `conveyor query`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from conveyor.cli.app import app, applied_stack, opened_store
from conveyor.core.errors import ConfigError, NotFoundError
from conveyor.core.names import did_you_mean
from conveyor.lake.controller import (
    Controller,
    ControllerEntry,
    Lake,
    format_time,
    parse_names,
    parse_time,
)
from conveyor.lake.jobs import curate, lakes_with_controllers

JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
LakeOption = Annotated[
    str | None, typer.Option("--lake", help="The lake endpoint (needed only when the stack has several).")
]
lake_app = typer.Typer(no_args_is_help=True, help="The data lake's curation job.")
tables_app = typer.Typer(help="The controller: one entry per lake table.")
app.add_typer(lake_app, name="lake")
lake_app.add_typer(tables_app, name="tables")
_out = Console()
_err = Console(stderr=True)


@contextmanager
def opened_lakes(only: str | None = None) -> Iterator[list[tuple[Lake, Controller]]]:
    """The applied stack's lakes with their controllers, seeded from the stack."""
    with opened_store() as store:
        stack = applied_stack(store)
    with lakes_with_controllers(stack, only) as pairs:
        yield pairs


def _json_value(value: Any) -> Any:
    """JSON for values DuckDB returns: whole decimals (SUM of integers is a
    HUGEINT) as numbers, other decimals, times and bytes as exact text."""
    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        return int(value)
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def _emit_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=_json_value))


def _list(pairs: list[tuple[Lake, Controller]], as_json: bool) -> None:
    rows = [entry.public(lake.name) for lake, c in pairs for entry in c.entries.values()]
    if as_json:
        _emit_json(rows)
        return
    table = Table(
        "table", "lake", "ActiveFlag", "PrimaryKey", "PartitionKey", "LastFullLoadDate", "LastIncrementalFile"
    )
    for r in rows:
        table.add_row(
            r["Table"],
            r["Lake"],
            str(r["ActiveFlag"]).lower(),
            r["PrimaryKey"] or "null",
            r["PartitionKey"] or "null",
            r["LastFullLoadDate"] or "-",
            r["LastIncrementalFile"] or "-",
        )
    _out.print(table)


@tables_app.callback(invoke_without_command=True)
def tables(ctx: typer.Context, lake: LakeOption = None, as_json: JsonOption = False) -> None:
    """List the controller entries (with a subcommand: edit them)."""
    if ctx.invoked_subcommand is not None:
        return
    with opened_lakes(lake) as pairs:
        _list(pairs, as_json)


def _find(pairs: list[tuple[Lake, Controller]], table: str) -> tuple[Lake, Controller, ControllerEntry]:
    holders = [(lake, c) for lake, c in pairs if table in c.entries]
    if len(holders) > 1:
        raise ConfigError(
            f"lake table {table!r} is in several lakes ({', '.join(lake.name for lake, _ in holders)}); "
            "pick one with --lake"
        )
    if holders:
        lake, controller = holders[0]
        return lake, controller, controller.entries[table]
    if len(pairs) != 1:
        known = [name for _, c in pairs for name in c.entries]
        raise NotFoundError(f"no lake table named {table!r}" + did_you_mean(table, known))
    schema, dot, name = table.partition(".")
    if not (dot and schema and name):
        raise ConfigError(f"a lake table is named schema.table, not {table!r}")
    lake, controller = pairs[0]
    entry = controller.entries[table] = ControllerEntry(table)
    return lake, controller, entry


@tables_app.command("set")
def tables_set(
    table: Annotated[str, typer.Argument(help="schema.table")],
    active: Annotated[
        bool | None, typer.Option("--active/--inactive", help="Whether curation processes the table.")
    ] = None,
    primary_key: Annotated[
        str | None, typer.Option("--primary-key", help="Comma-separated columns; 'null' for append-only.")
    ] = None,
    partition_key: Annotated[
        str | None, typer.Option("--partition-key", help="Comma-separated columns; 'null' for none.")
    ] = None,
    last_full_load_date: Annotated[
        str | None,
        typer.Option(
            "--last-full-load-date", help="ISO date-time; earlier or 'null' reprocesses the full load."
        ),
    ] = None,
    last_incremental_file: Annotated[
        str | None,
        typer.Option("--last-incremental-file", help="A change file name; earlier or 'null' reprocesses."),
    ] = None,
    lake: LakeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Edit a table's controller entry."""
    with opened_lakes(lake) as pairs:
        owner, controller, entry = _find(pairs, table)
        if active is not None:
            entry.active = active
        if primary_key is not None:
            entry.primary_key = parse_names(primary_key)
        if partition_key is not None:
            entry.partition_key = parse_names(partition_key)
        if last_full_load_date is not None:
            when = None if last_full_load_date.lower() in ("", "null") else parse_time(last_full_load_date)
            entry.last_full_load_date = None if when is None else format_time(when)
        if last_incremental_file is not None:
            value = last_incremental_file.strip()
            entry.last_incremental_file = None if value.lower() in ("", "null") else value
        controller.save()
        _list([(owner, _only(controller, table))], as_json)


def _only(controller: Controller, table: str) -> Controller:
    view = Controller.__new__(Controller)
    view.lake = controller.lake
    view.entries = {table: controller.entries[table]}
    return view


@lake_app.command("process")
def lake_process(
    table: Annotated[str | None, typer.Argument(help="Only this table (schema.table).")] = None,
    lake: LakeOption = None,
    engine: Annotated[
        str | None,
        typer.Option("--engine", help="embedded or spark (default: the lake endpoint's curation_engine)."),
    ] = None,
    master: Annotated[
        str | None, typer.Option("--master", help="The Spark master for --engine spark: spark://HOST:7077.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Curate the raw files of the active tables into Delta tables; exit 1 if a table failed."""
    with opened_store() as store:
        stack = applied_stack(store)
    results = [r.as_dict() for r in curate(stack, lake, table, engine, master)]
    if as_json:
        _emit_json(results)
    else:
        grid = Table("table", "status", "full load", "files", "rows", "ins", "upd", "del", "version")
        for r in results:
            grid.add_row(
                r["table"],
                r["status"],
                r["full_load"] or "-",
                str(r["change_files"]),
                str(r["change_rows"]),
                str(r["inserted"]),
                str(r["updated"]),
                str(r["deleted"]),
                "-" if r["version"] is None else str(r["version"]),
            )
        _out.print(grid)
        for r in results:
            for skipped in r["skipped"]:
                _err.print(f"skipped {skipped['file']}: {skipped['reason']}", markup=False, highlight=False)
            if r["error"]:
                _err.print(f"error: {r['table']}: {r['error']}", markup=False, highlight=False)
    if any(r["status"] == "failed" for r in results):
        raise typer.Exit(1)


@app.command("query")
def query(
    sql: Annotated[str, typer.Argument(help="SQL over the curated tables, named schema.table.")],
    as_json: JsonOption = False,
) -> None:
    """Answer SQL over the curated lake tables (DuckDB)."""
    from conveyor.lake.catalog import build_catalog, run_query

    with opened_lakes() as pairs:
        catalog = build_catalog(lake for lake, _ in pairs)
        result = run_query(catalog, sql)
        catalog.connection.close()
    data = result.to_pylist()
    if as_json:
        _emit_json(data)
        return
    grid = Table(*result.column_names)
    for row in data:
        grid.add_row(*("NULL" if v is None else str(v) for v in row.values()))
    _out.print(grid)
