"""Showing a running full load on a terminal: a live table, called from the
load's worker threads. Elsewhere ``replication.progress_lines.PlainProgress``
prints one plain line per table state change (as the worker process does)."""

from __future__ import annotations

import logging
import threading
from types import TracebackType
from typing import TYPE_CHECKING, Any

from conveyor.core.log_format import bind, log_format
from conveyor.replication.progress_lines import PlainProgress
from conveyor.replication.table_plan import TableProgress

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import TaskID


def foreground_progress(task: str) -> PlainProgress:
    """A ``--wait`` run's progress off a terminal: plain lines on stderr, or, with
    JSON logs, INFO records carrying the task and run (the service binds the run
    once it is claimed), as a worker's are."""
    if log_format() != "json":
        return PlainProgress()
    bind(task=task)
    logging.getLogger().setLevel(logging.INFO)
    return PlainProgress(logger=logging.getLogger("conveyor.progress"))


def _rate(progress: TableProgress) -> float:
    return progress.rows_per_second or 0.0


def _total(progress: TableProgress) -> int | None:
    estimated = progress.plan.source.estimated_rows
    return estimated if estimated and estimated > 0 else None


class LiveProgress:
    """A rich display, one line per table: name, state, rows loaded (of the estimate
    when the source gave one), rows/s. Use as a context manager around the load."""

    def __init__(self, console: Console | None = None) -> None:
        from rich.console import Console  # rich only for a live display (see cli.app.console)
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("{task.description}", style="bold"),
            TextColumn("{task.fields[state]}"),
            BarColumn(),
            TextColumn("{task.fields[rows]:>12,} rows{task.fields[of]}"),
            TextColumn("{task.fields[rate]:>10,.0f} rows/s"),
            TimeElapsedColumn(),
            console=console or Console(),
            refresh_per_second=4,
        )
        self._lock = threading.Lock()
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> LiveProgress:
        self._progress.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._progress.stop()

    def __call__(self, progress: TableProgress) -> None:
        table, state, rows = str(progress.plan.target.ref), progress.state, progress.rows
        total = _total(progress)
        fields: dict[str, Any] = {
            "rows": rows,
            "state": state + (f" ({progress.error})" if progress.error else ""),
            "rate": _rate(progress),
            "of": f" of ~{total:,}" if total else "",
        }
        with self._lock:
            task = self._tasks.get(table)
            if task is None:
                task = self._progress.add_task(table, total=total, completed=rows, **fields)
                self._tasks[table] = task
            else:
                self._progress.update(task, completed=rows, **fields)
            if progress.ended is not None and progress.error is None:
                self._progress.update(task, total=max(rows, 1), completed=max(rows, 1))
