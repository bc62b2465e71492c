"""The full load: every selected table streamed from one consistent source
snapshot into the target, each table in one target transaction."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pyarrow as pa

from conveyor.connectors.base import PrepMode, Snapshot, Target
from conveyor.core.errors import ConveyorError
from conveyor.core.schema import TableSchema

# TableState values as the migration service reports them.
TABLE_LOADING = "Table is being loaded"
TABLE_COMPLETED = "Table completed"
TABLE_ERROR = "Table error"
TABLE_QUEUED = "Before load"


@dataclass(frozen=True)
class TablePlan:
    """One table to load: as the source has it, and as the target gets it.
    ``project`` turns a source batch into a target batch (table mappings)."""

    source: TableSchema
    target: TableSchema
    project: Callable[[pa.RecordBatch], pa.RecordBatch] = field(default=lambda batch: batch)


@dataclass
class TableProgress:
    plan: TablePlan
    state: str = TABLE_QUEUED
    rows: int = 0
    error_rows: int = 0
    started: datetime | None = None
    ended: datetime | None = None
    error: str | None = None

    @property
    def rows_per_second(self) -> float | None:
        if self.started is None:
            return None
        end = self.ended or datetime.now(UTC)
        seconds = (end - self.started).total_seconds()
        return self.rows / seconds if seconds > 0 else None


ProgressCallback = Callable[[TableProgress], None]


@dataclass
class FullLoad:
    """Runs the plans with up to ``parallel`` tables at once (MaxFullLoadSubTasks),
    ``batch_rows`` rows per write (CommitRate). A table that fails is rolled back
    and reported; the others go on. ``stop`` ends the load between batches."""

    snapshot: Snapshot
    target: Target
    plans: Sequence[TablePlan]
    mode: PrepMode
    batch_rows: int = 10_000
    parallel: int = 1
    on_progress: ProgressCallback = field(default=lambda progress: None)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> list[TableProgress]:
        progress = [TableProgress(plan) for plan in self.plans]
        with ThreadPoolExecutor(max_workers=max(1, self.parallel), thread_name_prefix="full-load") as pool:
            list(pool.map(self._load_table, progress))
        return progress

    def _load_table(self, progress: TableProgress) -> None:
        if self.stop.is_set():
            return
        plan = progress.plan
        progress.state, progress.started = TABLE_LOADING, datetime.now(UTC)
        self.on_progress(progress)
        try:
            load = self.target.begin_load(plan.target, self.mode)
        except ConveyorError as exc:
            self._fail(progress, str(exc))
            return
        try:
            last_report = time.monotonic()
            for batch in self.snapshot.read(plan.source, self.batch_rows):
                if self.stop.is_set():
                    load.abort()
                    progress.state, progress.error = TABLE_QUEUED, "stopped before the table finished"
                    progress.rows = 0
                    self.on_progress(progress)
                    return
                load.write(plan.project(batch))
                progress.rows += batch.num_rows
                if time.monotonic() - last_report >= 1.0:
                    last_report = time.monotonic()
                    self.on_progress(progress)
            load.commit()
        except ConveyorError as exc:
            load.abort()
            self._fail(progress, str(exc))
            return
        except BaseException:
            load.abort()
            raise
        progress.state, progress.ended = TABLE_COMPLETED, datetime.now(UTC)
        self.on_progress(progress)

    def _fail(self, progress: TableProgress, reason: str) -> None:
        progress.state, progress.ended, progress.error = TABLE_ERROR, datetime.now(UTC), reason
        progress.rows = 0
        self.on_progress(progress)
