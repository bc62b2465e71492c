"""A running load's progress as plain text: one line per table state change, for
a log (the worker process's) or a terminal that is not interactive."""

from __future__ import annotations

import logging
import sys
import threading
from typing import TextIO

from conveyor.replication.table_plan import TableProgress


class PlainProgress:
    """One line per table state change: ``table dbo.sales: Table completed, 3 rows, 120 rows/s``,
    printed to ``stream`` (stderr by default), or logged at INFO to ``logger`` (a
    worker's log, in its log format)."""

    def __init__(self, stream: TextIO | None = None, logger: logging.Logger | None = None) -> None:
        self.stream = stream
        self.logger = logger
        self._lock = threading.Lock()
        self._states: dict[str, str] = {}

    def __call__(self, progress: TableProgress) -> None:
        table, state, rows = str(progress.plan.target.ref), progress.state, progress.rows
        rate, error = progress.rows_per_second or 0.0, progress.error
        with self._lock:
            if self._states.get(table) == state:
                return
            self._states[table] = state
            line = f"table {table}: {state}, {rows:,} rows"
            if rate:
                line += f", {rate:,.0f} rows/s"
            if error:
                line += f" ({error})"
            if self.logger is not None:
                self.logger.info(line, extra={"table": table, "table_state": state, "rows": rows})
                return
            stream = self.stream or sys.stderr
            print(line, file=stream, flush=True)
