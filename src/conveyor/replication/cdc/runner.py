"""The change-capture loop: read a source's change stream, batch committed
transactions, apply each batch set-based with its checkpoint in one target
transaction, then acknowledge the position to the source.

Order of effects for every batch, and what a crash between any two means:

1. changes are read (not yet on the target: replayed after a restart);
2. ``apply_changes`` commits rows and checkpoint together (all or nothing);
3. ``ack`` lets the source release what the checkpoint covers (a crash before
   it replays the batch, which the reduced, key-based apply makes harmless).

Step 2 runs in a background thread while the stream reads on (``batch_apply``,
which also refuses, judges and screens what the target must not get): batches are
applied one after another in the order they were handed over (at most
``batches_in_flight`` of them, so reading can run a batch ahead of the apply),
each checkpoint is at or after the one before it, and acknowledgements stay in
the stream's own thread, in order, each after its batch committed.

A transaction larger than the batch limit is applied in parts under the
previous checkpoint, so memory stays bounded; a crash inside it replays the
whole transaction, which converges to the same rows.

An applier that publishes each change (``KeepsChangeLog``, a stream target)
gets every change in commit order, and no reduced rows, with its ``(position, index)``: the
last commit position read and the count of changes since it. A replay from a
checkpoint (always a commit position) meets the same changes at the same
``(position, index)``, so the applier can make replays harmless by that identity.

An applier whose batches are files with their own due rule (``PacesBatches``,
the lake's CdcMaxBatchInterval / CdcMinFileSize) gets a batch only when that
rule says so, or when the runner must hand one over (a full batch, DDL, a
reload, a stop): batch boundaries are file boundaries, so the checkpoint
never covers a change that is not in a durable file.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from conveyor.connectors.base import RejectedValue
from conveyor.connectors.changes import (
    CaptureLost,
    ChangeApplier,
    ChangeStream,
    Commit,
    FindsConflicts,
    KeepsChangeLog,
    LooksUpValues,
    LosesCapture,
    PacesBatches,
    SupportsAddTable,
    TableDefinition,
    TableDropped,
    TakesLoggedRows,
    Truncate,
)
from conveyor.core.batch import ENCODED, ChangeBatch, Checkpoint, Logged, LoggedRows
from conveyor.core.errors import ConfigError, DataError, TerminalError
from conveyor.core.faults import fault_point
from conveyor.core.schema import TableRef, TableSchema
from conveyor.replication.cdc.batch_apply import BatchApply
from conveyor.replication.cdc.batch_fill import BatchFill
from conveyor.replication.cdc.capture_table import CaptureTable
from conveyor.replication.cdc.conflicts import ApplyConflicts
from conveyor.replication.cdc.ddl import RELOAD_HINT
from conveyor.replication.cdc.progress import CaptureProgress
from conveyor.replication.cdc.refusals import DataErrorCounts, source_rejections
from conveyor.replication.cdc.reload import TableReloader, TableReloads
from conveyor.replication.cdc.row_forms import request_row_forms
from conveyor.replication.cdc.source_ddl import on_capture_lost, on_definition, on_dropped
from conveyor.replication.mapped_table import MappedTable
from conveyor.replication.mappings import TableMappings
from conveyor.replication.settings import (
    ChangeProcessingDdlHandlingPolicy,
    ErrorBehavior,
    apply_conflicts_refusal,
)

log = logging.getLogger(__name__)

TABLE_SUSPENDED = "Table error"


@dataclass
class _InFlight:
    """A batch handed to the applier thread: what to acknowledge once it commits."""

    future: Future[None]
    committed: Checkpoint | None
    commit_time: datetime | None
    changes: int
    touched: dict[TableRef, list[Any] | None] = field(default_factory=dict)


@dataclass
class ChangeCapture:
    """Runs until ``stop`` is set (or the stream fails terminally).

    ``flush_seconds`` bounds how long a committed change waits before it is
    applied; ``max_batch_changes`` bounds the memory a batch holds."""

    task: str
    stream: ChangeStream
    applier: ChangeApplier
    mappings: TableMappings
    tables: dict[TableRef, CaptureTable]
    start: Checkpoint
    stop: threading.Event = field(default_factory=threading.Event)
    flush_seconds: float = 0.5
    max_batch_changes: int = 50_000
    batches_in_flight: int = 2
    on_batch: Callable[[ChangeCapture], None] = field(default=lambda capture: None)
    on_suspended: Callable[[CaptureTable], None] = field(default=lambda table: None)
    on_dropped: Callable[[CaptureTable, bool], None] = field(default=lambda table, dropped: None)
    progress: CaptureProgress = field(default_factory=CaptureProgress)
    ddl: ChangeProcessingDdlHandlingPolicy = field(default_factory=ChangeProcessingDdlHandlingPolicy)
    fail_on_truncate: bool = False
    """ApplyErrorFailOnTruncationDdl: a captured TRUNCATE fails the task (nothing of it applied)."""
    reloader: TableReloader | None = None
    errors: ErrorBehavior = field(default_factory=ErrorBehavior)
    # Validation during capture: the target keys of each batch once it committed
    # (None for a whole table), in the stream's thread (replication.cdc.validation).
    on_applied: Callable[[dict[TableRef, list[Any] | None]], None] | None = None
    # The same keys as the batch is handed to the applier, before it can commit
    # (validation keeps them durably first, so a crash after the commit loses none).
    on_handed: Callable[[dict[TableRef, list[Any] | None]], None] | None = None
    # StopTaskCachedChangesApplied: the run ends once the target's checkpoint
    # satisfies this (``reached_end`` then tells a caller why it ended).
    until: Callable[[Checkpoint], bool] | None = None
    reached_end: bool = False
    # Selected tables the task never captured (created while it was stopped):
    # loaded, then captured, as the run begins (like a table created during capture).
    add_at_start: list[MappedTable] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._handed = self.start  # the position of the last batch handed to the applier
        self._committed: Checkpoint | None = None
        self._pending_commit_time: datetime | None = None
        self.progress.position = self.start
        # One batch is applied in a background thread while the next is read.
        self._applier_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"apply-{self.task}")
        self._inflight: deque[_InFlight] = deque()
        self._reloads = TableReloads(self.reloader, self.task) if self.reloader is not None else None
        # Data errors by table toward DataErrorEscalationCount, whoever refused the rows.
        self._data_errors = DataErrorCounts(self.errors)
        # Where each change sits in the stream, for an applier that publishes
        # each change: the last commit position read and the changes since it.
        self._keeps_log = isinstance(self.applier, KeepsChangeLog)
        self._log_rows = self._keeps_log and isinstance(self.applier, TakesLoggedRows)
        self._anchor, self._index = self.start, 0
        self._open_log: list[Logged] = []  # logged changes whose commit is not read yet
        self._conflicts = self._apply_conflicts()
        self._batches = BatchApply(
            self.task,
            self.applier,
            self.errors,
            self.stop,
            self._suspend,
            self.is_suspended,
            self._data_errors,
            self._conflicts,
            self._keeps_log,
            on_target=self.start,
        )
        # Values the stream does not carry exactly, looked up from the source per batch.
        self._values_from = self.stream if isinstance(self.stream, LooksUpValues) else None
        for table in self.tables.values():
            if self._keeps_log or self._conflicts is not None:
                table.keep_log, table.log_rows = self._keeps_log, self._log_rows
                table.check_keys = self._conflicts is not None
            table.looks_up_from(self._values_from)
            table.renew()
        pacing = self.applier if isinstance(self.applier, PacesBatches) else None
        self._fill = BatchFill(self.max_batch_changes, self.flush_seconds, pacing)

    def _apply_conflicts(self) -> ApplyConflicts | None:
        """The apply-conflict policies, when the settings wrote one of their
        keys; a target that cannot judge conflicts refuses them."""
        if not self.errors.judges_apply_conflicts:
            return None
        if not isinstance(self.applier, FindsConflicts):
            config = getattr(self.applier, "config", None)
            engine = getattr(config, "engine", type(self.applier).__name__)
            raise ConfigError(apply_conflicts_refusal(self.errors, str(engine)))
        return ApplyConflicts(self.applier, self.errors, self._suspend, self.task)

    @property
    def judges_conflicts(self) -> bool:
        """Whether batches are judged against the target (ErrorBehavior.ApplyError*)."""
        return self._conflicts is not None

    def run(self) -> None:
        try:
            self._run()
            self._flush()
            self._wait_applied()
        finally:
            if self._reloads is not None:
                self._reloads.close()  # a stop ends a load under way; it stays requested
            self._applier_thread.shutdown(wait=True, cancel_futures=True)

    def settle(self, force: bool = False) -> None:
        """Apply everything read so far (``force``: even with nothing counted
        pending, for changes a reload held) and wait until it is on the target."""
        if force:
            self._fill.note()
        self._flush(partial=True)
        self._wait_applied()

    def suspend(self, target_ref: TableRef, reason: str) -> None:
        self._suspend(target_ref, reason)

    def request_row_forms(self) -> None:
        self._apply_with_retry(self._request_row_forms)

    def request(self, action: Callable[[], None]) -> None:
        """Run a target action, retried while the target is unreachable."""
        self._apply_with_retry(action)

    def _request_row_forms(self) -> None:
        request_row_forms(self.task, self.stream, self.applier, self.tables)

    def _run(self) -> None:
        self._apply_with_retry(self._request_row_forms)
        for mapped in self.add_at_start:
            if isinstance(self.stream, SupportsAddTable) and self._reloads is not None:
                self.add_table(mapped)
            else:  # said, not skipped: the table waits for `tasks reload`
                self.tables[mapped.source.ref] = CaptureTable.of(
                    mapped, self._keeps_log, log_rows=self._log_rows
                )
                self._suspend(mapped.target.ref, f"not captured before this run; {RELOAD_HINT}")
        for event in self.stream.events(idle_timeout=min(self.flush_seconds, 0.2)):
            if self.stop.is_set():
                break
            if self._reloads is not None:
                self._reloads.step(self)
            while self._inflight and self._inflight[0].future.done():
                self._wait_oldest()
            if self.until is not None and self.until(self.progress.position or self.start):
                self.reached_end = True
                break
            if event is None:
                if (self._fill.pending or self._committed is not None) and self._fill.paced_due():
                    self._flush()
                continue
            if isinstance(event, ChangeBatch):
                self._on_captured(event)
            elif isinstance(event, Commit):
                self._anchor, self._index = event.position, 0
                for logged in self._open_log:
                    logged.commit_time = event.time
                self._open_log.clear()
                self._committed = event.position
                self.progress.last_commit_time = event.time or datetime.now(UTC)
                self._pending_commit_time = self.progress.last_commit_time
                if not self._inflight and self._fill.pending and self._fill.paced_due():
                    # The applier is idle: hand it what committed now rather than
                    # letting it wait (group commit: batches grow while it is busy).
                    self._flush()
                    continue
            elif isinstance(event, TableDefinition):
                on_definition(self, event)
            elif isinstance(event, TableDropped):
                on_dropped(self, event.table)
            elif isinstance(event, CaptureLost):
                on_capture_lost(self, event)
            elif isinstance(event, Truncate):
                if self.fail_on_truncate:
                    names = ", ".join(map(str, event.tables))
                    raise TerminalError(f"TRUNCATE of {names} (ApplyErrorFailOnTruncationDdl is true)")
                if not self.ddl.handle_source_table_truncated:
                    log.warning(
                        "task %s: TRUNCATE of %s not applied (HandleSourceTableTruncated is false)",
                        self.task,
                        ", ".join(map(str, event.tables)),
                    )
                    continue
                for ref in event.tables:
                    table = self.tables.get(ref)
                    if table is not None and table.suspended is None:
                        table.reducer.clear((self._anchor, self._index))
                        self._fill.note()
                self._index += 1
            if self._fill.due:
                self._flush()

    def _note_logged(self, table: CaptureTable, logged: Logged, size: float | None = None) -> None:
        """A change log's new entry: its commit time comes with its commit;
        its size (``size``, when measured already) counts toward a paced
        applier's file."""
        self._open_log.append(logged)
        self._fill.note_logged(table.mapped.target.ref, logged, size)

    def _on_captured(self, changes: ChangeBatch) -> None:
        """A stream's captured changes, taken by the table's reducer (whole,
        reduced in Arrow, or one at a time when its mapping or the batch's
        form needs that); cut where the batch fills (BatchSplitSize, a paced
        applier's file size), each part handed over as a batch."""
        table = self.tables.get(changes.table.ref)
        if table is None or table.suspended is not None:
            self._index += changes.num_rows
            return
        rest: ChangeBatch | None = changes
        while rest is not None:
            part, rest, row_bytes = self._cut(table, rest)
            self._take_captured(table, part, row_bytes)
            if rest is not None:
                self._flush()

    def _cut(
        self, table: CaptureTable, changes: ChangeBatch
    ) -> tuple[ChangeBatch, ChangeBatch | None, float | None]:
        """``changes`` up to where the batch is full, the rest (None: none),
        and a paced applier's estimate of a row's size in its file."""
        rows = changes.changes
        if rows is None:
            return changes, None, None
        captured = None if ENCODED in rows.schema.names else LoggedRows(rows, self._anchor, self._index)
        room, row_bytes = self._fill.room(table.mapped.target.ref, captured)
        if room >= rows.num_rows:
            return changes, None, row_bytes
        room = max(room, 1)
        return (
            replace(changes, changes=rows.slice(0, room)),
            replace(changes, changes=rows.slice(room)),
            row_bytes,
        )

    def _take_captured(self, table: CaptureTable, changes: ChangeBatch, row_bytes: float | None) -> None:
        at = (self._anchor, self._index)
        self._index += changes.num_rows
        log = table.reducer.log
        logged = len(log) if log is not None else 0
        try:
            table.reducer.add_captured(changes, at)
        except DataError as exc:  # a value the mapping cannot convert (change-data-type, add-column)
            self._suspend(table.mapped.target.ref, str(exc))
            return
        for entry in log[logged:] if log is not None else ():
            size = None
            if isinstance(entry, LoggedRows) and row_bytes is not None:
                size = row_bytes * changes.num_rows
            self._note_logged(table, entry, size)
        self._fill.note(changes.num_rows)

    def add_table(self, mapped: MappedTable) -> None:
        """A table the selection includes appeared (created during capture):
        its capture begins now, and a load of it like a reload's (its changes
        held until the load committed, then applied on top)."""
        stream, ref = self.stream, mapped.source.ref
        if not isinstance(stream, SupportsAddTable) or self._reloads is None:
            log.warning(
                "task %s: table %s created on the source is not captured (reload the task)", self.task, ref
            )
            return
        self.settle()
        table = self.tables[ref] = CaptureTable.of(
            mapped, self._keeps_log, self._conflicts is not None, self._log_rows
        )
        table.looks_up_from(self._values_from)
        table.renew()
        try:
            self._apply_with_retry(lambda: stream.add_table(mapped.source))
        except ConfigError as exc:
            self._suspend(mapped.target.ref, f"created during capture, not captured: {exc}")
            return
        log.info("task %s: table %s created on the source: loading it, then capturing it", self.task, ref)
        self._reloads.begin(self, ref, table, mapped)

    def forget_errors(self, target_ref: TableRef) -> None:
        """A reloaded table's escalation counts start over (the apply
        conflicts on the target too, DataErrorEscalationCount's for the run):
        they were counted against rows the reload replaces. Called while no
        batch is in flight."""
        self._data_errors.forget(target_ref)
        if self._conflicts is not None:
            conflicts = self._conflicts
            self._apply_with_retry(lambda: conflicts.forget(target_ref))
        elif isinstance(self.applier, FindsConflicts):  # counted under earlier settings
            applier = self.applier
            self._apply_with_retry(lambda: applier.forget_conflicts(self.task, target_ref))

    def recapture(self, mapped: MappedTable) -> None:
        """Before a table's reload: the stream captures it again if it lost it
        (LosesCapture). Raises ConfigError when it cannot."""
        stream = self.stream
        if isinstance(stream, LosesCapture) and not stream.captures(mapped.source.ref):
            self._apply_with_retry(lambda: stream.add_table(mapped.source))
            log.info("task %s: table %s captured again", self.task, mapped.source.ref)

    def _flush(self, partial: bool = False) -> None:
        """Hand what is pending to the applier thread (waiting while
        ``batches_in_flight`` batches are). Rows of an unfinished transaction go
        with the last complete transaction's checkpoint (``partial``, or a full
        batch)."""
        if not self._fill.pending and self._committed is None:
            return
        while len(self._inflight) >= self.batches_in_flight:
            self._wait_oldest()
        position = self._committed or self._handed
        self._handed = position
        applying = [t for t in self.tables.values() if not t.reloading]
        reduced = [
            (t.mapped.target.ref, t.reducer.reduced())
            for t in applying
            if t.reducer.pending and t.suspended is None
        ]
        rejected = self._source_rejections()
        touched = (
            {t.mapped.target.ref: t.reducer.touched_keys() for t in applying if t.reducer.pending}
            if self.on_applied is not None
            else {}
        )
        if self.on_handed is not None and touched:
            self.on_handed(touched)
        fault_point("capture-before-apply")
        for table in applying:
            table.inserts += table.reducer.inserts
            table.updates += table.reducer.updates
            table.deletes += table.reducer.deletes
            table.renew()
        self._inflight.append(
            _InFlight(
                future=self._applier_thread.submit(self._batches.apply_reduced, reduced, rejected, position),
                committed=self._committed,
                commit_time=self._pending_commit_time,
                changes=self._fill.pending,
                touched=touched,
            )
        )
        self._fill.handed()
        self._committed = None
        self._open_log.clear()  # handed over (a part of an open transaction: without its commit time)

    def _source_rejections(self) -> dict[TableRef, tuple[TableSchema, list[RejectedValue]]]:
        """Values the stream left out (``take_rejections``), by target table
        (``refusals.source_rejections``)."""
        take: Callable[[], list[RejectedValue]] | None = getattr(self.stream, "take_rejections", None)
        if take is None:
            return {}
        targets = {ref: t.mapped.target for ref, t in self.tables.items() if t.suspended is None}
        return source_rejections(take(), targets, self._data_errors, self._suspend)

    def _wait_applied(self) -> None:
        """Wait for every batch in flight (see ``_wait_oldest``)."""
        while self._inflight:
            self._wait_oldest()

    def _wait_oldest(self) -> None:
        """Wait for the oldest batch in flight; once its transaction committed on
        the target, acknowledge its position to the source (never before)."""
        inflight = self._inflight[0]
        try:
            inflight.future.result()  # re-raises what the apply raised
        finally:
            self._inflight.popleft()
        fault_point(
            "capture-after-apply" if inflight.committed is not None else "capture-after-partial-apply"
        )
        self.progress.applied_batches += 1
        self.progress.applied_changes += inflight.changes
        if inflight.committed is not None:
            self.progress.position = inflight.committed
            self.progress.last_applied_commit_time = inflight.commit_time
            self.stream.ack(inflight.committed)
            fault_point("capture-after-ack")
        if self.on_applied is not None and inflight.touched:
            self.on_applied(inflight.touched)
        self.on_batch(self)

    def is_suspended(self, target_ref: TableRef) -> bool:
        return any(t.suspended is not None for t in self.tables.values() if t.mapped.target.ref == target_ref)

    def _suspend(self, target_ref: TableRef, reason: str) -> None:
        for table in self.tables.values():
            if table.mapped.target.ref == target_ref:
                table.suspended = reason
                table.reloading = False
                table.suspended_at = self._committed or self._handed
                log.error("task %s: table %s suspended: %s", self.task, target_ref, reason)
                self.on_suspended(table)

    def _apply_with_retry(self, action: Callable[[], None]) -> None:
        self._batches.with_retry(action)
