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

import pyarrow as pa

from conveyor.connectors.base import (
    PrepMode,
    RefusedRow,
    RejectedValue,
    ReportsDrift,
    ReportsRejections,
    Snapshot,
    SupportsCheckedWrite,
    SupportsInsertFrom,
    SupportsKeyAfterLoad,
    SupportsRawCopy,
    SupportsRawCopyIn,
    SupportsRowFilter,
    SupportsStreamWrite,
    TableLoad,
    Target,
)
from conveyor.core.errors import ConnectionFailed, ConveyorError, DataError, TransientError
from conveyor.core.faults import fault_point
from conveyor.core.schema import TableRef
from conveyor.replication.identifiers import collisions, folding_of
from conveyor.replication.refused_values import rejected_value, rejection, source_rejection
from conveyor.replication.settings import ErrorBehavior, EscalationPolicy, RecordPolicy, TablePolicy
from conveyor.replication.table_plan import (
    TABLE_COMPLETED,
    TABLE_ERROR,
    TABLE_LOADING,
    TABLE_QUEUED,
    ProgressCallback,
    SegmentedLoader,
    TablePlan,
    TableProgress,
    generated_handling,
    partition_names,
    partition_reads,
    read_source,
)

log = logging.getLogger(__name__)


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
        if plan.partitions_auto and not by_workers:
            self._say_partitions(plan, load)
        try:
            if by_workers:
                self._take_segments(progress, load)
            elif not self._copy_raw(progress, load):
                try:
                    self._forget_rejections(plan)
                    self._load_batches(progress, load)
                except _StreamRefused as refused:
                    # The target refused the stream in a way its screen could not
                    # foresee: load the table again, batch by batch, checked.
                    log.warning("table %s: %s; loading it again batch by batch", plan.target.ref, refused)
                    load.abort()
                    load = _Aborted()  # until the new load has begun
                    progress.rows = progress.error_rows = 0
                    load = self._begin(plan)
                    self._forget_rejections(plan)  # the first read's are read again
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

    def _say_partitions(self, plan: TablePlan, load: TableLoad) -> None:
        """Say when a parallel-load partitions rule cannot read the table by its
        partitions here (``read_source`` says when it does)."""
        if self._raw_columns(plan, load) is not None:
            how = "copied in one raw stream (the engines' own bulk format)"
        elif partition_reads(self.snapshot, plan) is None:
            how = "read in one piece, its partitions included"
        else:
            return
        log.log(
            logging.WARNING if plan.partitions_named else logging.INFO,
            "table %s: parallel-load %s: the table is %s (with SegmentedLoadSettings.Workers: store, "
            "`conveyor worker`s load PostgreSQL partitions as segments)",
            plan.source.ref,
            "partitions-list" if plan.partitions_named else "partitions-auto",
            how,
        )

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

    def _rejection_refs(self, plan: TablePlan) -> list[TableRef]:
        """Where the source keeps the table's rejections: the table, and each
        partition when it is read by its partitions (each read keeps its own)."""
        return [plan.source.ref, *(partition_reads(self.snapshot, plan) or ())]

    def _forget_rejections(self, plan: TablePlan) -> None:
        if isinstance(self.snapshot, ReportsRejections):
            for ref in self._rejection_refs(plan):
                self.snapshot.forget_rejections(ref)

    def _source_rejections(self, progress: TableProgress, load: TableLoad) -> None:
        """Rows a source itself left out (DynamoDB's load_errors setting, values
        PostgreSQL's reader cannot carry exactly) are handled by the data error
        policy, logged with the table's rows; a source's schema drift is reported."""
        if isinstance(self.snapshot, ReportsDrift):
            progress.drift = self.snapshot.drift_report(progress.plan.source.ref)
        if isinstance(self.snapshot, ReportsRejections):
            target = progress.plan.target.ref
            refs = self._rejection_refs(progress.plan)
            rejected = [replace(r, table=target) for ref in refs for r in self.snapshot.rejections(ref)]
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
            rejected_value(table, row, r.column, f"table {table.ref}: {r.reason}")
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
