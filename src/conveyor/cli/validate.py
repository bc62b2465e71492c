"""`conveyor validate TASK`: compare a task's target with its source, now."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from conveyor.cli.app import app, opened_store
from conveyor.cli.tasks import applied_task_stack
from conveyor.replication.task_runner import all_validated, validate_task

_out = Console(soft_wrap=True)
FIRST_FAILURES_SHOWN = 3


def _failure(f: dict[str, Any]) -> str:
    key = ",".join(f"{k}={v}" for k, v in f["Key"].items())
    if f["FailureType"] == "RECORD_DIFF":
        return f"{key}: {', '.join(f['Columns'])}"
    return f"{key}: {'missing on target' if f['FailureType'] == 'MISSING_TARGET' else 'missing on source'}"


@app.command()
def validate(
    name: str, as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False
) -> None:
    """Compare a task's target with its source, every table, value by value.

    Exit code 1 when any table is not Validated."""
    with opened_store() as store:
        stack = applied_task_stack(store, name)
    report = validate_task(stack, name)
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2, default=str))
    else:
        table = Table(
            "table", "state", "source rows", "target rows", "missing", "extra", "different", "first failures"
        )
        for c in report.tables:
            counts = (c.source_rows, c.target_rows, c.missing_on_target, c.extra_on_target, c.different)
            shown = "; ".join(_failure(f) for f in c.first_failures[:FIRST_FAILURES_SHOWN])
            if c.failed_records > FIRST_FAILURES_SHOWN:
                shown += f"; ... ({c.failed_records} in all, {c.failures_recorded} recorded)"
            table.add_row(c.table, c.state, *map(str, counts), shown or (c.reason or ""))
        _out.print(table)
        for c in report.tables:
            for line in ([c.reason] if c.reason and c.first_failures else []) + c.notes:
                _out.print(f"{c.table}: {line}", markup=False, highlight=False)
        for line in report.notes:
            _out.print(f"note: {line}", markup=False, highlight=False)
    if not all_validated(report.tables):
        raise typer.Exit(1)
