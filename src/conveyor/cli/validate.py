"""`conveyor validate TASK`: compare a task's target with its source, now."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from conveyor.cli.app import app
from conveyor.cli.output import opened_conveyor, print_json
from conveyor.service.models import TableValidation

_out = Console(soft_wrap=True)
FIRST_FAILURES_SHOWN = 3


def _failure(f: dict[str, object]) -> str:
    key = ",".join(f"{k}={v}" for k, v in f["Key"].items())  # type: ignore[attr-defined]
    if f["FailureType"] == "RECORD_DIFF":
        return f"{key}: {', '.join(f['Columns'])}"  # type: ignore[arg-type]
    return f"{key}: {'missing on target' if f['FailureType'] == 'MISSING_TARGET' else 'missing on source'}"


def _row(c: TableValidation) -> list[str]:
    counts = (c.SourceRows, c.TargetRows, c.MissingOnTarget, c.ExtraOnTarget, c.Different)
    shown = "; ".join(_failure(f) for f in c.FirstFailures[:FIRST_FAILURES_SHOWN])
    if c.FailedRecords > FIRST_FAILURES_SHOWN:
        shown += f"; ... ({c.FailedRecords} in all, {c.FailuresRecorded} recorded)"
    return [c.Table, c.ValidationState, *map(str, counts), shown or (c.Reason or "")]


@app.command()
def validate(
    name: str,
    tables: Annotated[
        list[str] | None,
        typer.Option("--table", help="Only this table, SCHEMA.TABLE (source or target name); repeatable."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Compare a task's target with its source, every table (or the --table ones), value by value.

    Exit code 1 when any table is not Validated."""
    with opened_conveyor() as conveyor:
        report = conveyor.validate(name, tables or ())
    if as_json:
        print_json(report)
    else:
        table = Table(
            "table", "state", "source rows", "target rows", "missing", "extra", "different", "first failures"
        )
        for c in report.Tables:
            table.add_row(*_row(c))
        _out.print(table)
        for c in report.Tables:
            for line in ([c.Reason] if c.Reason and c.FirstFailures else []) + c.Notes:
                _out.print(f"{c.Table}: {line}", markup=False, highlight=False)
        for line in report.Notes:
            _out.print(f"note: {line}", markup=False, highlight=False)
    if not report.validated:
        raise typer.Exit(1)
