"""The full load: every selected table streamed from one consistent source
snapshot into the target, each table in one target transaction."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import pyarrow as pa

from conveyor.connectors.base import (
    PrepMode,
    RejectedValue,
    Snapshot,
    SupportsRawCopy,
    SupportsRawCopyIn,
    SupportsRowFilter,
    SupportsStreamWrite,
    TableLoad,
    Target,
)
from conveyor.core.errors import ConveyorError, DataError
from conveyor.core.faults import fault_point
from conveyor.core.row_filter import RowFilter
from conveyor.core.schema import TableSchema
from conveyor.replication.segments import read_segments
from conveyor.replication.settings import ErrorBehavior, EscalationPolicy, RecordPolicy

log = logging.getLogger(__name__)

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
    # The source column each target column is read from, in target order; None
    # when a target column has no source column (added by a mapping).
    source_columns: tuple[str | None, ...] | None = None
    # Source rows to load (selection rule filters); None: every row.
    row_filter: RowFilter | None = None
    # Whether target values are the source's own (no masking): a raw copy may carry them.
    raw_copy: bool = True
    # parallel-load ranges: filters reading the table segment by segment.
    segments: tuple[RowFilter, ...] = ()

    def raw_columns(self) -> list[str] | None:
        """Source columns for a raw same-engine copy, or None when the mapping
        adds columns, filters rows or masks values (a raw copy cannot)."""
        if not self.raw_copy or self.row_filter is not None or self.segments:
            return None
        if self.source_columns is None:
            return self.target.column_names
        if any(name is None for name in self.source_columns):
            return None
        return [name for name in self.source_columns if name is not None]


def read_source(
    snapshot: Snapshot, plan: TablePlan, batch_rows: int, order_by_key: bool = False
) -> Iterator[pa.RecordBatch]:
    """The plan's source rows: the filter pushed down into the source's query
    where the snapshot can, else applied to each batch read. A plan with
    segments (parallel-load ranges) is read segment by segment in the same
    snapshot (see :mod:`conveyor.replication.segments`) when the source can
    push them down (in key order, for validation, as one read)."""
    if plan.segments and not order_by_key:
        if isinstance(snapshot, SupportsRowFilter) and all(
            snapshot.pushes_down(plan.source, s) for s in plan.segments
        ):
            return read_segments(snapshot, plan.source, batch_rows, plan.segments)
        log.info("table %s: the source cannot read range segments: one read of the table", plan.source.ref)
    where = plan.row_filter
    if where is None:
        return snapshot.read(plan.source, batch_rows, order_by_key)
    if isinstance(snapshot, SupportsRowFilter) and snapshot.pushes_down(plan.source, where):
        return snapshot.read_where(plan.source, batch_rows, where, order_by_key)
    filtered = (where.apply(b) for b in snapshot.read(plan.source, batch_rows, order_by_key))
    return (b for b in filtered if b.num_rows)


@dataclass
class TableProgress:
    plan: TablePlan
    state: str = TABLE_QUEUED
    rows: int = 0
    error_rows: int = 0
    started: datetime | None = None
    ended: datetime | None = None
    error: str | None = None
    drift: list[str] = field(default_factory=list)

    @property
    def rows_per_second(self) -> float | None:
        if self.started is None:
            return None
        end = self.ended or datetime.now(UTC)
        seconds = (end - self.started).total_seconds()
        return self.rows / seconds if seconds > 0 else None


ProgressCallback = Callable[[TableProgress], None]


class _Stopped(Exception):
    """The load was asked to stop between two writes."""


class _TaskStop(ConveyorError):
    """A data error whose policy stops the whole task."""


@dataclass
class FullLoad:
    """Runs the plans with up to ``parallel`` tables at once (MaxFullLoadSubTasks),
    ``batch_rows`` rows per write (CommitRate). A table that fails is rolled back
    and reported; the others go on. ``stop`` ends the load between batches.

    A row the target refuses (and names) is handled by ``errors``
    (ErrorBehavior's DataErrorPolicy and its escalation): logged to the target's
    apply-exceptions table in the load's transaction, ignored, or the table or
    the task stops. Same-engine tables whose types match exactly are copied in
    the engine's own bulk format, without decoding rows.
    """

    snapshot: Snapshot
    target: Target
    plans: Sequence[TablePlan]
    mode: PrepMode
    batch_rows: int = 10_000
    parallel: int = 1
    on_progress: ProgressCallback = field(default=lambda progress: None)
    stop: threading.Event = field(default_factory=threading.Event)
    task: str = ""
    errors: ErrorBehavior = field(default_factory=ErrorBehavior)

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
            raw_columns = self._raw_columns(plan, load)
            if raw_columns is not None:
                assert isinstance(self.snapshot, SupportsRawCopy) and isinstance(load, SupportsRawCopyIn)
                chunks = self._until_stopped(self.snapshot.copy_out(plan.source, raw_columns))
                progress.rows = load.copy_in(chunks, plan.target.column_names)
            else:
                self._load_batches(progress, load)
                self._source_rejections(progress, load)
            load.commit()
        except _Stopped:
            load.abort()
            progress.state, progress.error = TABLE_QUEUED, "stopped before the table finished"
            progress.rows = 0
            self.on_progress(progress)
            return
        except ConveyorError as exc:
            load.abort()
            if isinstance(exc, _TaskStop):
                self.stop.set()
            self._fail(progress, str(exc))
            return
        except BaseException:
            load.abort()
            raise
        progress.state, progress.ended = TABLE_COMPLETED, datetime.now(UTC)
        self.on_progress(progress)

    def _source_rejections(self, progress: TableProgress, load: TableLoad) -> None:
        """Values a source itself left out of rows (DynamoDB's load_errors setting)
        are logged with the table's rows; a source's schema drift is reported."""
        rejections = getattr(self.snapshot, "rejections", None)
        drift = getattr(self.snapshot, "drift_report", None)
        if drift is not None:
            progress.drift = drift(progress.plan.source.ref)
        if rejections is not None:
            target = progress.plan.target.ref
            rejected = [replace(r, table=target) for r in rejections(progress.plan.source.ref)]
            load.record_rejections(self.task, rejected)

    def _raw_columns(self, plan: TablePlan, load: TableLoad) -> list[str] | None:
        if not (isinstance(self.snapshot, SupportsRawCopy) and isinstance(load, SupportsRawCopyIn)):
            return None
        if load.raw_format is None or load.raw_format != self.snapshot.raw_format:
            return None
        return plan.raw_columns()

    def _until_stopped(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            if self.stop.is_set():
                raise _Stopped
            fault_point("full-load-batch")
            yield chunk

    def _stream_batches(self, progress: TableProgress, load: SupportsStreamWrite) -> list[RejectedValue]:
        """One streamed write of the whole table; progress and stop are handled
        as the target pulls batches. A source error ends the stream and is raised
        here, as itself, after the target stopped reading (the load then aborts)."""
        plan = progress.plan
        failure: BaseException | None = None
        last_report = time.monotonic()
        refused: list[RejectedValue] = []

        def batches() -> Iterator[pa.RecordBatch]:
            nonlocal failure, last_report
            try:
                for batch in read_source(self.snapshot, plan, self.batch_rows):
                    if self.stop.is_set():
                        failure = _Stopped()
                        return
                    projected = self._project(progress, batch, refused)
                    yield projected
                    progress.rows += projected.num_rows
                    fault_point("full-load-batch")
                    if time.monotonic() - last_report >= 1.0:
                        last_report = time.monotonic()
                        self.on_progress(progress)
            except Exception as exc:  # raised below, once the target has let go
                failure = exc

        load.write_stream(batches(), plan.target.arrow_schema())
        if failure is not None:
            raise failure
        return refused

    def _load_batches(self, progress: TableProgress, load: TableLoad) -> None:
        plan = progress.plan
        if isinstance(load, SupportsStreamWrite):
            load.record_rejections(self.task, self._stream_batches(progress, load))
            return
        last_report = time.monotonic()
        for batch in read_source(self.snapshot, plan, self.batch_rows):
            if self.stop.is_set():
                raise _Stopped
            rejected: list[RejectedValue] = []
            projected = self._project(progress, batch, rejected)
            rejected += self._write(progress, load, projected)
            load.record_rejections(self.task, rejected)
            fault_point("full-load-batch")
            if time.monotonic() - last_report >= 1.0:
                last_report = time.monotonic()
                self.on_progress(progress)

    def _project(
        self, progress: TableProgress, batch: pa.RecordBatch, rejected: list[RejectedValue]
    ) -> pa.RecordBatch:
        """The plan's projection of a source batch; a row the mapping cannot
        convert (change-data-type) is taken out and handled by the data error
        policy, like a row the target refuses."""
        plan = progress.plan
        while True:
            try:
                return plan.project(batch)
            except DataError as exc:
                if not exc.load_usable or exc.row is None:
                    raise
                progress.error_rows += 1
                self._apply_policy(progress, exc)
                if self.errors.data_error_policy is RecordPolicy.LOG_ERROR:
                    rejected.append(source_rejection(plan, batch, exc))
                batch = batch.filter(pa.array([i != exc.row for i in range(batch.num_rows)]))

    def _write(self, progress: TableProgress, load: TableLoad, batch: pa.RecordBatch) -> list[RejectedValue]:
        """Write a batch; rows the target refuses are taken out, one at a time,
        and handled by the data error policy. Returns the rows to log."""
        rejected: list[RejectedValue] = []
        pending = batch
        while pending.num_rows:
            try:
                load.write(pending)
            except DataError as exc:
                if not exc.load_usable or exc.row is None:
                    raise
                progress.error_rows += 1
                self._apply_policy(progress, exc)
                if self.errors.data_error_policy is RecordPolicy.LOG_ERROR:
                    rejected.append(rejection(progress.plan.target, pending, exc))
                keep = pa.array([i != exc.row for i in range(pending.num_rows)])
                pending = pending.filter(keep)
                continue
            progress.rows += pending.num_rows
            break
        return rejected

    def _apply_policy(self, progress: TableProgress, exc: DataError) -> None:
        policy = self.errors.data_error_policy
        limit = self.errors.data_error_escalation_count
        if limit and progress.error_rows >= limit:
            escalation = self.errors.data_error_escalation_policy
            if escalation is EscalationPolicy.STOP_TASK:
                raise _TaskStop(f"{exc} (data error escalation: {progress.error_rows} errors, STOP_TASK)")
            if escalation is EscalationPolicy.SUSPEND_TABLE:
                raise TableSuspended(f"{exc} (data error escalation: {progress.error_rows} errors)")
        if policy is RecordPolicy.STOP_TASK:
            raise _TaskStop(f"{exc} (DataErrorPolicy STOP_TASK)")
        if policy is RecordPolicy.SUSPEND_TABLE:
            raise TableSuspended(f"{exc} (DataErrorPolicy SUSPEND_TABLE)")

    def _fail(self, progress: TableProgress, reason: str) -> None:
        progress.state, progress.ended, progress.error = TABLE_ERROR, datetime.now(UTC), reason
        progress.rows = 0
        self.on_progress(progress)


class TableSuspended(ConveyorError):
    """A data error whose policy suspends (fails) the table."""


def rejection(table: TableSchema, batch: pa.RecordBatch, exc: DataError) -> RejectedValue:
    """The apply-exceptions entry for the row ``exc`` names."""
    assert exc.row is not None
    row = batch.slice(exc.row, 1).to_pylist()[0]
    value = row.get(exc.column) if exc.column else None
    return RejectedValue(
        table=table.ref,
        key={k: _printable(row[k]) for k in table.primary_key},
        column=exc.column,
        value=None if value is None else _printable(value),
        reason=str(exc),
    )


def source_rejection(plan: TablePlan, batch: pa.RecordBatch, exc: DataError) -> RejectedValue:
    """The apply-exceptions entry for a source row the mapping refused: the
    key and value as the source has them, named as the target names them."""
    assert exc.row is not None
    row = batch.slice(exc.row, 1).to_pylist()[0]
    names = plan.source_columns or tuple(plan.target.column_names)
    source_of = dict(zip(plan.target.column_names, names, strict=True))
    value = row.get(source_of.get(exc.column or "") or "")
    return RejectedValue(
        table=plan.target.ref,
        key={k: _printable(row.get(source_of.get(k) or k)) for k in plan.target.primary_key},
        column=exc.column,
        value=None if value is None else _printable(value),
        reason=str(exc),
    )


def _printable(value: object) -> str:
    """A value as text for the exceptions table (NUL characters spelled out)."""
    text = value.hex() if isinstance(value, bytes) else str(value)
    return text.replace("\x00", "\\x00")
