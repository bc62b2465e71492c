"""The applier thread's part of the capture loop (``runner.ChangeCapture``):
a handed-over batch made into its tables' ``ChangeBatch``es, the values
capture could not hold refused per the data error policy, judged against the
target (apply conflicts), screened (a target that says what it would refuse)
and applied with its checkpoint in one target transaction, retried while the
target is unreachable. A table the target refuses is suspended and the
others applied: found set-wise, else one table at a time."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from dataclasses import dataclass

from conveyor.connectors.arrow_rows import change_batch, without_unrepresentable
from conveyor.connectors.base import RejectedValue
from conveyor.connectors.changes import ChangeApplier, RefusedTables, ScreensChanges
from conveyor.core.batch import ChangeBatch, Checkpoint
from conveyor.core.errors import ConnectionFailed, DataError, TransientError
from conveyor.core.retry import RetryPolicy, retry_call
from conveyor.core.schema import TableRef, TableSchema
from conveyor.replication.cdc.conflicts import ApplyConflicts
from conveyor.replication.cdc.refusals import ChangeRefusals, DataErrorCounts
from conveyor.replication.settings import ErrorBehavior, RecordPolicy


@dataclass
class BatchApply:
    """Applies the capture loop's batches, one at a time, in its applier
    thread. ``suspend`` and ``is_suspended`` are the loop's (a table
    suspended here gets nothing more there); ``on_target`` is the target's
    checkpoint as the last applied batch left it."""

    task: str
    applier: ChangeApplier
    errors: ErrorBehavior
    stop: threading.Event
    suspend: Callable[[TableRef, str], None]
    is_suspended: Callable[[TableRef], bool]
    data_errors: DataErrorCounts
    conflicts: ApplyConflicts | None
    keeps_log: bool
    on_target: Checkpoint

    def __post_init__(self) -> None:
        self.refusals = (
            ChangeRefusals(self.applier, self.errors, self.suspend, self.data_errors)
            if isinstance(self.applier, ScreensChanges)
            else None
        )

    def apply_reduced(
        self,
        reduced: list[tuple[TableRef, Callable[[], ChangeBatch]]],
        rejected: dict[TableRef, tuple[TableSchema, list[RejectedValue]]],
        position: Checkpoint,
    ) -> None:
        """One handed-over batch: its tables as ``ChangeBatch``es
        (their one conversion to Arrow, done here while the stream reads on,
        with the values looked up from the source), with the source's
        rejected values, applied. A table whose values cannot be looked up
        (a column gone from the source since) is suspended with the reason."""
        made = []
        for ref, build in reduced:
            try:
                made.append(self._built(build))
            except DataError as exc:
                self.suspend(ref, str(exc))
        built = self._unrepresentable_rejected(made)
        self._apply(with_source_rejections(built, rejected), position)

    def _unrepresentable_rejected(self, changes: list[ChangeBatch]) -> list[ChangeBatch]:
        """Rows capture could not hold exactly (``unrepresentable``: a MariaDB
        zero date, a SQLite value its column's type cannot hold), for an applier
        that does not screen them itself: per DataErrorPolicy and its escalation
        as the full load's source rejections (logged in the batch's transaction, dropped, the table
        suspended or the task stopped), the other rows of the table applied."""
        if self.refusals is not None:
            return changes  # a screening applier refuses them with its own
        kept = []
        for table_changes in changes:
            held = table_changes.unrepresentable
            log = table_changes.log
            if self.keeps_log and log:
                # The change log is what such an applier writes: every change left
                # out of it is accounted for, intermediate ones included.
                log, left_out = without_unrepresentable(table_changes.table, log)
                held = tuple(left_out) if left_out else held
            if not held:
                kept.append(table_changes)
                continue
            ref = table_changes.table.ref
            reason = self.data_errors.stops(ref, f"table {ref}: {held[0].reason}", len(held))
            if reason is not None:
                self.suspend(ref, reason)
                continue
            logged = held if self.errors.data_error_policy is RecordPolicy.LOG_ERROR else ()
            kept.append(
                dataclasses.replace(
                    table_changes,
                    unrepresentable=(),
                    log=tuple(log),
                    rejected=(
                        *table_changes.rejected,
                        *(dataclasses.replace(r, reason=f"table {ref}: {r.reason}") for r in logged),
                    ),
                )
            )
        return kept

    def _apply(self, changes: list[ChangeBatch], position: Checkpoint) -> None:
        """One batch, with its checkpoint."""
        # A table suspended while this batch waited its turn gets nothing more.
        changes = [c for c in changes if not self.is_suspended(c.table.ref)]
        if self.conflicts is not None:
            changes = self._judged(self.conflicts, changes)
        try:
            self.with_retry(self._applying(self._screened(changes, False), position))
        except RefusedTables as exc:
            for ref, reason in exc.reasons.items():
                self.suspend(ref, reason)
            good = [c for c in changes if c.table.ref not in exc.reasons]
            self.with_retry(self._applying(self._screened(good, False), position))
        except DataError:
            if not self._applied_thoroughly(changes, position):
                # Find the tables the target refuses, one at a time under the
                # target's current checkpoint; suspend them and apply the rest.
                self._apply_by_table(changes, position)
        if self.refusals is not None:
            self.refusals.committed()
        if self.conflicts is not None:
            self.conflicts.committed()
        self.on_target = position

    def _judged(self, conflicts: ApplyConflicts, changes: list[ChangeBatch]) -> list[ChangeBatch]:
        """The batch per the apply-conflict policies (judged against the
        target just before it is applied, retried while it is unreachable)."""
        judged: list[ChangeBatch] = []

        def judge() -> None:
            judged[:] = conflicts.judge(changes)

        self.with_retry(judge)
        return judged

    def _applied_thoroughly(self, changes: list[ChangeBatch], position: Checkpoint) -> bool:
        """A screening applier looks again, thoroughly, and the batch is applied
        without what it finds; False when the target still refuses it."""
        if self.refusals is None:
            return False
        try:
            self.with_retry(self._applying(self._screened(changes, True), position))
            return True
        except DataError:
            return False

    def _apply_by_table(self, changes: list[ChangeBatch], position: Checkpoint) -> None:
        changes = self._screened([c for c in changes if not self.is_suspended(c.table.ref)], True)
        good = []
        for table_changes in changes:
            try:
                self.with_retry(self._applying([table_changes], self.on_target))
                # logged with it: the batch below applies its rows again, not its log
                good.append(dataclasses.replace(table_changes, rejected=()))
            except DataError as exc:
                self.suspend(table_changes.table.ref, str(exc))
        self.with_retry(self._applying(good, position))

    def _screened(self, changes: list[ChangeBatch], thorough: bool) -> list[ChangeBatch]:
        """Changes without those the target would refuse (data error policy),
        when the applier can tell (``ScreensChanges``)."""
        if self.refusals is None:
            return changes
        return self.refusals.screen(changes, thorough)

    def _applying(self, changes: list[ChangeBatch], position: Checkpoint) -> Callable[[], None]:
        return lambda: self.applier.apply_changes(self.task, changes, position)

    @property
    def retries(self) -> RetryPolicy:
        return self.errors.retry_policy()

    def _built(self, build: Callable[[], ChangeBatch]) -> ChangeBatch:
        """A table's batch, its lookups retried while the source is unreachable."""
        made: list[ChangeBatch] = []
        self.with_retry(lambda: made.append(build()))
        return made[-1]

    def with_retry(self, action: Callable[[], None]) -> None:
        """Retry while the target is unreachable, as the RecoverableError*
        settings say (core/retry.py); the checkpoint stays put, so nothing is
        lost however long it takes. A stop ends the wait; no retry left fails
        the task with the error."""
        if self.stop.is_set():
            action()  # stopping: one try, the error as it is
            return
        retry_call(
            action,
            self.retries,
            what=f"task {self.task}: target unavailable",
            retryable=(TransientError, ConnectionFailed),
            sleep=self.stop.wait,
        )


def with_source_rejections(
    changes: list[ChangeBatch], found: dict[TableRef, tuple[TableSchema, list[RejectedValue]]]
) -> list[ChangeBatch]:
    """``changes`` with the source's rejected values (``ChangeCapture._source_rejections``) to log."""
    if not found:
        return changes
    found = dict(found)
    logged = []
    for table_changes in changes:
        extra = found.pop(table_changes.table.ref, None)
        more = () if extra is None else tuple(extra[1])
        logged.append(dataclasses.replace(table_changes, rejected=(*table_changes.rejected, *more)))
    return logged + [change_batch(target, rejected=tuple(rows)) for target, rows in found.values()]
