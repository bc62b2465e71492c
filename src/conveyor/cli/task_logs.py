"""``conveyor tasks logs NAME [--run N] [--follow]``: a task run's worker log."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from conveyor.cli.output import opened_conveyor
from conveyor.cli.tasks import tasks_app


@tasks_app.command("logs")
def tasks_logs(
    name: str,
    run: Annotated[
        int | None, typer.Option("--run", help="This run's log (default: the latest run's).")
    ] = None,
    follow: Annotated[
        bool,
        typer.Option(
            "--follow", "-f", help="Print lines as they are written, until the run ends (or Ctrl-C)."
        ),
    ] = False,
) -> None:
    """Print the log of a task's worker (runs started in the background; a run with
    --wait logs to its own terminal). Logs are under CONVEYOR_HOME/logs/TASK/."""
    with opened_conveyor() as conveyor:
        try:
            for text in conveyor.task_log_text(name, run, follow):
                sys.stdout.write(text)
                sys.stdout.flush()
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
