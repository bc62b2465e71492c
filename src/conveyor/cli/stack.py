"""``conveyor stack export``: the applied stack as a stack file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from conveyor.cli.app import app
from conveyor.cli.output import opened_conveyor

stack_app = typer.Typer(no_args_is_help=True, help="The applied stack as a whole.")
app.add_typer(stack_app, name="stack")


@stack_app.command("export")
def stack_export(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file instead of standard output.")
    ] = None,
) -> None:
    """Write the applied stack (also what the AWS APIs created) as YAML that `apply` takes back."""
    with opened_conveyor() as conveyor:
        text = conveyor.export_stack()
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text)
        typer.echo(f"wrote {output}", err=True)
