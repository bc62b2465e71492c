"""`conveyor lake tables`, `conveyor lake process` and `conveyor query`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from conveyor.cli.app import app
from conveyor.cli.output import opened_conveyor, print_json
from conveyor.service.lake import LakeTableChange
from conveyor.service.models import LakeTableList, to_json

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


def _list(rows: LakeTableList, as_json: bool) -> None:
    if as_json:
        print_json(rows)
        return
    table = Table(
        "table", "lake", "ActiveFlag", "PrimaryKey", "PartitionKey", "LastFullLoadDate", "LastIncrementalFile"
    )
    for r in rows.root:
        table.add_row(
            r.Table,
            r.Lake,
            str(r.ActiveFlag).lower(),
            r.PrimaryKey or "null",
            r.PartitionKey or "null",
            r.LastFullLoadDate or "-",
            r.LastIncrementalFile or "-",
        )
    _out.print(table)


@tables_app.callback(invoke_without_command=True)
def tables(ctx: typer.Context, lake: LakeOption = None, as_json: JsonOption = False) -> None:
    """List the controller entries (with a subcommand: edit them)."""
    if ctx.invoked_subcommand is not None:
        return
    with opened_conveyor() as conveyor:
        rows = conveyor.lake_tables(lake)
    _list(rows, as_json)


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
    change = LakeTableChange(active, primary_key, partition_key, last_full_load_date, last_incremental_file)
    with opened_conveyor() as conveyor:
        entry = conveyor.set_lake_table(table, change, lake)
    _list(LakeTableList([entry]), as_json)


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
    with opened_conveyor() as conveyor:
        processed = conveyor.lake_process(table, lake, engine, master)
    if as_json:
        print_json(processed)
    else:
        grid = Table("table", "status", "full load", "files", "rows", "ins", "upd", "del", "version")
        results = to_json(processed)
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
                _err.print(
                    f"skipped {skipped['file']}: {skipped['reason']}",
                    markup=False,
                    highlight=False,
                    soft_wrap=True,
                )
            if r["error"]:
                _err.print(
                    f"error: {r['table']}: {r['error']}", markup=False, highlight=False, soft_wrap=True
                )
    if processed.failed:
        raise typer.Exit(1)


@app.command("query")
def query(
    sql: Annotated[str, typer.Argument(help="SQL over the curated tables, named schema.table.")],
    as_json: JsonOption = False,
) -> None:
    """Answer SQL over the curated lake tables (DuckDB)."""
    with opened_conveyor() as conveyor:
        result = conveyor.query(sql)
    if as_json:
        print_json(result)
        return
    grid = Table(*result.columns)
    for row in result.root:
        grid.add_row(*("NULL" if v is None else str(v) for v in row.values()))
    _out.print(grid)
