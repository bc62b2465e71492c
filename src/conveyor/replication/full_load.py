"""The full load: every selected table streamed from one consistent source
snapshot into the target, each table in one target transaction."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Protocol

import pyarrow as pa

from conveyor.connectors.base import (
    ListsPartitionNames,
    PrepMode,
    RefusedRow,
    RejectedValue,
    ReportsDrift,
    ReportsRejections,
    Snapshot,
    SupportsCheckedWrite,
    SupportsInsertFrom,
    SupportsKeyAfterLoad,
    SupportsPartitions,
    SupportsRawCopy,
    SupportsRawCopyIn,
    SupportsRowFilter,
    SupportsStreamWrite,
    TableLoad,
    Target,
)
from conveyor.core.errors import ConnectionFailed, ConveyorError, DataError, TransientError
from conveyor.core.faults import fault_point
from conveyor.core.row_filter import RowFilter
from conveyor.core.schema import TableRef, TableSchema
from conveyor.replication.identifiers import TargetNames, collisions, folding_of
from conveyor.replication.segments import read_segments
from conveyor.replication.settings import ErrorBehavior, EscalationPolicy, RecordPolicy, TablePolicy

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
    # parallel-load partitions-auto: `conveyor worker`s load each partition as a
    # segment (in process, the table is read in one piece).
    partitions_auto: bool = False
    partitions_named: tuple[str, ...] = ()  # partitions-list: checked, then loaded first

    def check_partitions(self, names: list[str] | None) -> None:
        """Refuse partitions-list names that are not among the table's leaf
        partitions ``names`` (None: the source cannot list them): ConveyorError,
        the table fails; the names are never ignored."""
        if not self.partitions_named:
            return
        where = f"table {self.source.ref}: parallel-load partitions-list"
        if names is None:
            raise ConveyorError(f"{where}: its source cannot list the table's partitions")
        unknown = [n for n in self.partitions_named if n not in names]
        if unknown:
            known = ", ".join(sorted(names)) or "none: the table is not partitioned"
            raise ConveyorError(
                f"{where} names {', '.join(map(repr, unknown))}, not a leaf partition of the table "
                f"(its leaf partitions: {known})"
            )

    def ordered_partitions(self, partitions: list[TableRef]) -> list[TableRef]:
        """The table's leaf partitions with partitions-list's named ones first,
        in the rule's order (checked: ``check_partitions``); the others follow,
        so the table is loaded whole."""
        self.check_partitions([p.name for p in partitions])
        by_name = {p.name: p for p in partitions}
        first = [by_name[n] for n in self.partitions_named]
        return first + [p for p in partitions if p.name not in self.partitions_named]

    def names(self) -> TargetNames:
        """The names the target gets (for ``identifiers.collisions``)."""
        sources = self.source_columns or tuple(self.target.column_names)
        return TargetNames(
            self.source.ref, self.target.ref, tuple(zip(sources, self.target.column_names, strict=True))
        )

    def raw_columns(self, filtered: bool = False) -> list[str] | None:
        """Source columns for a raw same-engine copy, or None when the mapping
        adds columns, filters rows (unless the copy can: ``filtered``) or masks
        values (a raw copy cannot)."""
        if not self.raw_copy or (self.row_filter is not None and not filtered) or self.segments:
            return None
        if self.source_columns is None:
            return self.target.column_names
        if any(name is None for name in self.source_columns):
            return None
        return [name for name in self.source_columns if name is not None]


def partition_names(snapshot: Snapshot, table: TableSchema) -> list[str] | None:
    """The names of the table's leaf partitions, or None when the source
    cannot list them."""
    if isinstance(snapshot, SupportsPartitions):
        return [p.name for p in snapshot.partitions(table)]
    if isinstance(snapshot, ListsPartitionNames):
        return snapshot.partition_names(table)
    return None


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
    # Generated source columns (target name) and how the target gets them.
    generated: dict[str, str] = field(default_factory=dict)

    @property
    def rows_per_second(self) -> float | None:
        if self.started is None:
            return None
        end = self.ended or datetime.now(UTC)
        seconds = (end - self.started).total_seconds()
        return self.rows / seconds if seconds > 0 else None


ProgressCallback = Callable[[TableProgress], None]


class SegmentedLoader(Protocol):
    """Loads a table's segments elsewhere (``conveyor worker`` processes, see
    ``replication.segment_load``) into staging tables the target takes the
    table's rows from at the end, in the table's own load transaction."""

    def takes(self, plan: TablePlan) -> bool:
        """Whether this plan's segments go to the workers (else read here)."""
        ...

    def load(
        self, plan: TablePlan, progress: TableProgress, stop: threading.Event, report: Callable[[], None]
    ) -> list[TableRef] | None:
        """Publish the segments and wait until every one is in; return their
        staging tables, or None when ``stop`` was set (everything given up).
        Raises ConveyorError when a segment failed (the others given up)."""
        ...

    def abandon(self, plan: TablePlan) -> None:
        """Give the table's segments up and drop their staging tables."""
        ...


class _Stopped(Exception):
    """The load was asked to stop between two writes."""


class _TaskStop(ConveyorError):
    """A data error whose policy stops the whole task."""


class _Retry(Exception):
    """The target failed in a way worth retrying (``TransientError``; also
    ``ConnectionFailed`` while preparing the table): the table's load was rolled
    back and can run again from the same snapshot. A source that loses its
    snapshot raises ConnectionFailed or TerminalError, never TransientError."""

    def __init__(self, error: ConveyorError) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass
class FullLoad:
    """Runs the plans with up to ``parallel`` tables at once (MaxFullLoadSubTasks),
    ``batch_rows`` rows per write (CommitRate). A table that fails is rolled back
    and reported; the others go on. ``stop`` ends the load between batches.
    Tables whose target names collide on the target (``identifiers``) are
    refused before anything loads.

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
    key_after_load: bool = False
    """CreatePkAfterFullLoad: targets that can add a new table's key after its rows."""
    segmented: SegmentedLoader | None = None
    """Where segmented tables' segments are loaded when not here (``conveyor worker``)."""
    commit_check: Callable[[], bool] = field(default=lambda: True)
    """Asked right before a table commits: False gives the table up as stopped
    (a segment worker that lost its lease)."""
    _table_errors: int = field(default=0, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def run(self) -> list[TableProgress]:
        progress = [TableProgress(plan) for plan in self.plans]
        refused = collisions([plan.names() for plan in self.plans], folding_of(self.target))
        for table in progress:
            if (reason := refused.get(table.plan.source.ref)) is not None:
                table.started = datetime.now(UTC)
                self._fail(table, reason)
        loadable = [table for table in progress if table.state == TABLE_QUEUED]
        with ThreadPoolExecutor(max_workers=max(1, self.parallel), thread_name_prefix="full-load") as pool:
            list(pool.map(self._load_table, loadable))
        return progress

    def _load_table(self, progress: TableProgress) -> None:
        """The table's load, run again on a transient target error as the
        RecoverableError* settings say (core/retry.py)."""
        waits = self.errors.retry_policy().waits()
        while True:
            try:
                self._load_table_once(progress)
                return
            except _Retry as retry:
                wait = next(waits, None)
                if wait is None:
                    reason = f"{retry.error} (no retry left: RecoverableErrorCount / ThrottlingMax)"
                    self._fail(progress, self._table_error(reason))
                    return
                log.warning("table %s: %s; loading it again in %.1f s", progress.plan.target.ref, retry, wait)
                progress.rows = progress.error_rows = 0
                progress.error = f"retrying in {wait:.1f} s: {retry}"
                self.on_progress(progress)
                if self.stop.wait(wait):
                    progress.state, progress.error = TABLE_QUEUED, "stopped before the table finished"
                    self.on_progress(progress)
                    return
                progress.error = None

    def _load_table_once(self, progress: TableProgress) -> None:
        if self.stop.is_set():
            return
        plan = progress.plan
        progress.state, progress.started = TABLE_LOADING, datetime.now(UTC)
        self.on_progress(progress)
        try:
            by_workers = self.segmented is not None and self.segmented.takes(plan)
            if plan.partitions_named and not by_workers:
                # The names are checked even when the table is read in one piece.
                plan.check_partitions(partition_names(self.snapshot, plan.source))
            # Rows from staging tables: one bulk INSERT, the key built after it.
            load = self._begin(plan, key_after=by_workers)
        except (TransientError, ConnectionFailed) as exc:
            raise _Retry(exc) from None  # the target is not there: nothing began
        except ConveyorError as exc:
            self._fail(progress, self._table_error(str(exc)))
            return
        progress.generated = generated_handling(plan, load)
        if plan.partitions_named and not by_workers:
            log.warning(
                "table %s: parallel-load partitions-list: the table is read in one piece, its partitions "
                "included (PostgreSQL partitions are segments with SegmentedLoadSettings.Workers: store)",
                plan.source.ref,
            )
        try:
            if by_workers:
                self._take_segments(progress, load)
            elif not self._copy_raw(progress, load):
                try:
                    self._load_batches(progress, load)
                except _StreamRefused as refused:
                    # The target refused the stream in a way its screen could not
                    # foresee: load the table again, batch by batch, checked.
                    log.warning("table %s: %s; loading it again batch by batch", plan.target.ref, refused)
                    load.abort()
                    load = _Aborted()  # until the new load has begun
                    progress.rows = progress.error_rows = 0
                    load = self._begin(plan)
                    self._load_checked(progress, load)
                self._source_rejections(progress, load)
            if not self.commit_check():
                raise _Stopped
            load.commit()
        except _Stopped:
            load.abort()
            if by_workers:
                assert self.segmented is not None
                self.segmented.abandon(plan)
            progress.state, progress.error = TABLE_QUEUED, "stopped before the table finished"
            progress.rows = 0
            self.on_progress(progress)
            return
        except ConveyorError as exc:
            load.abort()
            if by_workers:
                assert self.segmented is not None
                self.segmented.abandon(plan)
            if isinstance(exc, TransientError):
                raise _Retry(exc) from None
            if isinstance(exc, _TaskStop):
                self.stop.set()
            chosen = isinstance(exc, _TaskStop | TableSuspended)  # by a data error policy
            self._fail(progress, str(exc) if chosen else self._table_error(str(exc)))
            return
        except BaseException as exc:
            load.abort()
            if by_workers:
                assert self.segmented is not None
                self.segmented.abandon(plan)
            self._fail(progress, f"internal error: {exc!r}")  # never left "being loaded"
            raise
        progress.state, progress.ended = TABLE_COMPLETED, datetime.now(UTC)
        self.on_progress(progress)

    def _take_segments(self, progress: TableProgress, load: TableLoad) -> None:
        """The table's rows from the staging tables its segments were loaded
        into by workers, inserted in this load's transaction (the table, prepared
        by the prep mode at ``_begin``, commits once, whole)."""
        assert self.segmented is not None and isinstance(load, SupportsInsertFrom)
        staging = self.segmented.load(progress.plan, progress, self.stop, lambda: self.on_progress(progress))
        if staging is None:
            raise _Stopped
        progress.rows = load.insert_from(staging)

    def _begin(self, plan: TablePlan, key_after: bool = False) -> TableLoad:
        """The table's load on the target (its key added after the rows when asked)."""
        if (self.key_after_load or key_after) and isinstance(self.target, SupportsKeyAfterLoad):
            return self.target.begin_load_key_after(plan.target, self.mode)
        return self.target.begin_load(plan.target, self.mode)

    def _copy_raw(self, progress: TableProgress, load: TableLoad) -> bool:
        """Copy the table in the engines' own bulk format when it can; False when
        it cannot, or when the target refused a row of it (a raw copy cannot
        name the row): the rows then go through ``_load_batches``, which takes
        each refused row out and handles it by the data error policy."""
        plan = progress.plan
        raw_columns = self._raw_columns(plan, load)
        if raw_columns is None:
            return False
        assert isinstance(self.snapshot, SupportsRawCopy) and isinstance(load, SupportsRawCopyIn)
        pairs = [
            (s, t)
            for s, t in zip(raw_columns, plan.target.column_names, strict=True)
            if t not in load.computed
        ]
        read = self.snapshot.copy_out(plan.source, [s for s, _ in pairs], plan.row_filter)
        with closing(self._until_stopped(read)) as chunks:
            try:
                progress.rows = load.copy_in(chunks, [t for _, t in pairs])
            except DataError as exc:
                if not exc.load_usable:
                    raise
                log.info(
                    "table %s: %s; loading it again row by row to handle refused rows", plan.target.ref, exc
                )
                progress.rows = 0
                return False
        return True

    def _source_rejections(self, progress: TableProgress, load: TableLoad) -> None:
        """Rows a source itself left out (DynamoDB's load_errors setting, values
        PostgreSQL's reader cannot carry exactly) are handled by the data error
        policy, logged with the table's rows; a source's schema drift is reported."""
        if isinstance(self.snapshot, ReportsDrift):
            progress.drift = self.snapshot.drift_report(progress.plan.source.ref)
        if isinstance(self.snapshot, ReportsRejections):
            target = progress.plan.target.ref
            rejected = [replace(r, table=target) for r in self.snapshot.rejections(progress.plan.source.ref)]
            for r in rejected:  # DataErrorPolicy and its escalation, as for a refused write
                progress.error_rows += 1
                self._apply_policy(progress, DataError(r.reason, column=r.column))
            if self.errors.data_error_policy is RecordPolicy.LOG_ERROR:
                load.record_rejections(self.task, rejected)

    def _raw_columns(self, plan: TablePlan, load: TableLoad) -> list[str] | None:
        if not (isinstance(self.snapshot, SupportsRawCopy) and isinstance(load, SupportsRawCopyIn)):
            return None
        if load.raw_format is None or load.raw_format != self.snapshot.raw_format:
            return None
        # A filter the source pushes down into its SELECT, it can push into its COPY.
        where = plan.row_filter
        filtered = (
            where is not None
            and isinstance(self.snapshot, SupportsRowFilter)
            and self.snapshot.pushes_down(plan.source, where)
        )
        return plan.raw_columns(filtered)

    def _until_stopped(self, chunks: Iterator[bytes]) -> Generator[bytes]:
        for chunk in chunks:
            if self.stop.is_set():
                raise _Stopped
            fault_point("full-load-batch")
            yield chunk

    def _stream_batches(self, progress: TableProgress, load: TableLoad) -> None:
        """One streamed write of the whole table; progress and stop are handled
        as the target pulls batches. A source error ends the stream and is raised
        here, as itself, after the target stopped reading (the load then aborts).
        A load that screens batches (``SupportsCheckedWrite``) has the rows it
        would refuse handled by the data error policy; when the target refuses
        the stream all the same, ``_StreamRefused`` is raised."""
        assert isinstance(load, SupportsStreamWrite)
        plan = progress.plan
        failure: BaseException | None = None
        last_report = time.monotonic()
        checked = load if isinstance(load, SupportsCheckedWrite) else None
        # Logged after the INSERT (the load's cursor is busy until then): the
        # refused rows of the table are held, not its rows.
        rejected: list[RejectedValue] = []

        def batches() -> Generator[pa.RecordBatch]:
            nonlocal failure, last_report
            try:
                for batch in read_source(self.snapshot, plan, self.batch_rows):
                    if self.stop.is_set():
                        failure = _Stopped()
                        return
                    records = self._project(progress, batch, rejected)
                    if checked is not None:
                        screened, refused = checked.screen(records)
                        rejected.extend(self._refused(progress, records, refused))
                        records = screened
                    yield records
                    progress.rows += records.num_rows
                    fault_point("full-load-batch")
                    if time.monotonic() - last_report >= 1.0:
                        last_report = time.monotonic()
                        self.on_progress(progress)
            except Exception as exc:  # raised below, once the target has let go
                failure = exc

        stream = batches()
        try:
            load.write_stream(stream, plan.target.arrow_schema())
        except DataError as exc:
            if failure is not None:
                raise failure from None
            if checked is None:
                raise
            raise _StreamRefused(str(exc)) from None
        finally:
            stream.close()  # the source's read ends now, not when collected
        if failure is not None:
            raise failure
        load.record_rejections(self.task, rejected)

    def _load_checked(self, progress: TableProgress, load: TableLoad) -> None:
        """The table batch by batch, each written with the rows the target
        refuses left out (``SupportsCheckedWrite.write_checked``)."""
        assert isinstance(load, SupportsCheckedWrite)
        plan = progress.plan
        last_report = time.monotonic()
        for batch in read_source(self.snapshot, plan, self.batch_rows):
            if self.stop.is_set():
                raise _Stopped
            rejected: list[RejectedValue] = []
            records = self._project(progress, batch, rejected)
            refused = load.write_checked(records)
            rejected += self._refused(progress, records, refused)
            progress.rows += records.num_rows - len(refused)
            load.record_rejections(self.task, rejected)
            fault_point("full-load-batch")
            if time.monotonic() - last_report >= 1.0:
                last_report = time.monotonic()
                self.on_progress(progress)

    def _refused(
        self, progress: TableProgress, records: pa.RecordBatch, refused: list[RefusedRow]
    ) -> list[RejectedValue]:
        """Count refused rows and apply the data error policy (which may stop the
        table or the task); returns the entries to log under LOG_ERROR."""
        if not refused:
            return []
        table = progress.plan.target
        for r in refused:
            progress.error_rows += 1
            self._apply_policy(progress, f"table {table.ref}: {r.reason}")
        if self.errors.data_error_policy is not RecordPolicy.LOG_ERROR:
            return []
        rows = records.take(pa.array([r.row for r in refused], pa.int64())).to_pylist()
        return [
            _rejected_value(table, row, r.column, f"table {table.ref}: {r.reason}")
            for row, r in zip(rows, refused, strict=True)
        ]

    def _load_batches(self, progress: TableProgress, load: TableLoad) -> None:
        plan = progress.plan
        if isinstance(load, SupportsStreamWrite):
            self._stream_batches(progress, load)
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

    def _apply_policy(self, progress: TableProgress, exc: DataError | str) -> None:
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

    def _table_error(self, reason: str) -> str:
        """A table failed (not by a data error policy): ErrorBehavior's
        TableErrorPolicy and its escalation say whether the other tables go on
        (SUSPEND_TABLE) or the load stops (STOP_TASK). Returns the reason."""
        with self._lock:
            self._table_errors += 1
            count = self._table_errors
        errors = self.errors
        if errors.table_error_policy is TablePolicy.STOP_TASK:
            self.stop.set()
            return f"{reason} (TableErrorPolicy STOP_TASK)"
        limit = errors.table_error_escalation_count
        if limit and count >= limit and errors.table_error_escalation_policy is TablePolicy.STOP_TASK:
            self.stop.set()
            return f"{reason} (table error escalation: {count} tables failed, STOP_TASK)"
        return reason

    def _fail(self, progress: TableProgress, reason: str) -> None:
        progress.state, progress.ended, progress.error = TABLE_ERROR, datetime.now(UTC), reason
        progress.rows = 0
        self.on_progress(progress)


def generated_handling(plan: TablePlan, load: TableLoad) -> dict[str, str]:
    """For each generated source column (by target name), how the target gets it."""
    computed = load.computed if isinstance(load, SupportsRawCopyIn) else frozenset()
    sources = plan.source_columns or tuple(plan.target.column_names)
    by_name = {c.name: c for c in plan.source.columns}
    handling = {}
    for target_name, source_name in zip(plan.target.column_names, sources, strict=True):
        column = by_name.get(source_name) if source_name is not None else None
        if column is None or column.generated is None:
            continue
        if target_name in computed:
            handling[target_name] = (
                f"computed by the target (GENERATED ALWAYS AS ({column.generated}) STORED)"
            )
        else:
            handling[target_name] = (
                f"copied as a plain column (the source computes it as {column.generated}); "
                "change capture looks it up from the source by key (a table with a primary key)"
            )
    return handling


class TableSuspended(ConveyorError):
    """A data error whose policy suspends (fails) the table."""


class _StreamRefused(ConveyorError):
    """The target refused a screened stream (its transaction is lost)."""


class _Aborted:
    """Stands for a load already aborted, so a failure before the next one
    begins is not aborted twice."""

    def write(self, records: pa.RecordBatch) -> None:  # pragma: no cover - never called
        raise AssertionError("write to an aborted load")

    def record_rejections(self, task: str, rejected: Sequence[RejectedValue]) -> None:  # pragma: no cover
        raise AssertionError("rejections for an aborted load")

    def commit(self) -> None:  # pragma: no cover - never called
        raise AssertionError("commit of an aborted load")

    def abort(self) -> None:
        pass


def rejection(table: TableSchema, batch: pa.RecordBatch, exc: DataError) -> RejectedValue:
    """The apply-exceptions entry for the row ``exc`` names."""
    assert exc.row is not None
    return _rejected_value(table, batch.slice(exc.row, 1).to_pylist()[0], exc.column, str(exc))


def _rejected_value(
    table: TableSchema, row: dict[str, object], column: str | None, reason: str
) -> RejectedValue:
    value = row.get(column) if column else None
    return RejectedValue(
        table=table.ref,
        key={k: None if row[k] is None else _printable(row[k]) for k in table.primary_key},
        column=column,
        value=None if value is None else _printable(value),
        reason=reason,
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
