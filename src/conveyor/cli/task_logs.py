"""``conveyor tasks logs NAME [--run N] [--follow]``: a task run's worker log."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from conveyor.cli.app import opened_store
from conveyor.cli.tasks import applied_task_stack, tasks_app
from conveyor.orchestration.bus import event_sink
from conveyor.replication.run_logs import copy_log, follow_log, logged_run, run_ended, run_log_path
from conveyor.replication.worker import reap_stale
from conveyor.store.store import Store


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
    with opened_store() as store:
        applied_task_stack(store, name)
        run_id = logged_run(store, name, run)
        if not follow:
            copy_log(name, run_id, sys.stdout)
            return
        try:
            for text in follow_log(run_log_path(name, run_id), lambda: _ended(store, name, run_id)):
                sys.stdout.write(text)
                sys.stdout.flush()
        except KeyboardInterrupt:
            raise typer.Exit(130) from None


def _ended(store: Store, name: str, run_id: int) -> bool:
    # A worker that died unannounced (SIGKILL) is recorded as failed here, so the
    # follow ends with its run.
    reap_stale(store, name, event_sink(store))
    return run_ended(store, run_id)
