"""The data error policy for changes a target would refuse.

An applier that screens changes (``ScreensChanges``: DuckDB, where a refused
row would abort the whole batch; PostgreSQL, which probes a refused batch by
halves) hands back the rows it would refuse; here ErrorBehavior's
DataErrorPolicy and its escalation decide, per table, as in the full load:
log them to the apply-exceptions table in the batch's transaction
(LOG_ERROR), drop them (IGNORE_RECORD), suspend the table (SUSPEND_TABLE) or
stop the task (STOP_TASK). Rows a source left out while capturing and rows
capture could not hold exactly count toward the same escalation
(``DataErrorCounts``): as the full load counts a table's refused rows,
whoever refused them. Counts are per target table, for the run; a target's
refusals count only once their batch committed; a table's reload starts its
count over.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from conveyor.connectors.base import RejectedValue
from conveyor.connectors.changes import ScreensChanges
from conveyor.core.batch import ChangeBatch
from conveyor.core.errors import TerminalError
from conveyor.core.schema import TableRef, TableSchema
from conveyor.replication.settings import ErrorBehavior, EscalationPolicy, RecordPolicy


@dataclass
class DataErrorCounts:
    """A capture run's data errors by target table (safe across the stream's
    and the applier's threads)."""

    errors: ErrorBehavior
    _counts: dict[TableRef, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, ref: TableRef) -> int:
        with self._lock:
            return self._counts.get(ref, 0)

    def forget(self, ref: TableRef) -> None:
        """``ref``'s count starts over (its reload)."""
        with self._lock:
            self._counts.pop(ref, None)

    def add(self, ref: TableRef, rows: int) -> int:
        """Count ``rows`` more errors of ``ref``; the table's count now."""
        with self._lock:
            self._counts[ref] = self._counts.get(ref, 0) + rows
            return self._counts[ref]

    def stops(self, ref: TableRef, first: str, rows: int) -> str | None:
        """Count ``rows`` refused rows of ``ref`` (the first for ``first``):
        None to go on, or the reason to suspend the table; raises
        TerminalError when the policy or its escalation stops the task."""
        return data_error_stops(self.errors, first, self.add(ref, rows))


@dataclass
class ChangeRefusals:
    """Screens batches for one capture run; ``suspend`` takes a table out
    (the runner's own suspension, with its reason)."""

    applier: ScreensChanges
    errors: ErrorBehavior
    suspend: Callable[[TableRef, str], None]
    counts: DataErrorCounts | None = None
    _pending: dict[TableRef, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.counts is None:
            self.counts = DataErrorCounts(self.errors)

    def screen(self, changes: Sequence[ChangeBatch], thorough: bool) -> list[ChangeBatch]:
        """The changes to apply: refused rows taken out (and attached for the
        log under LOG_ERROR); a table the policy suspends is left out. Raises
        TerminalError when the policy stops the task."""
        self._pending = {}
        screened_changes = []
        for changes_of_table in changes:
            screened, rejected = self.applier.screen_changes(changes_of_table, thorough)
            if not rejected:
                screened_changes.append(screened)
                continue
            ref = changes_of_table.table.ref
            assert self.counts is not None
            reason = data_error_stops(self.errors, rejected[0].reason, self.counts.count(ref) + len(rejected))
            if reason is not None:
                self.suspend(ref, reason)
                continue
            self._pending[ref] = len(rejected)
            keep = self.errors.data_error_policy is RecordPolicy.LOG_ERROR
            logged = (*screened.rejected, *rejected) if keep else screened.rejected
            screened_changes.append(replace(screened, rejected=tuple(logged)))
        return screened_changes

    def committed(self) -> None:
        """The last screened batch is on the target: its refusals count."""
        assert self.counts is not None
        for ref, rows in self._pending.items():
            self.counts.add(ref, rows)
        self._pending = {}


def data_error_stops(errors: ErrorBehavior, first: str, count: int) -> str | None:
    """What DataErrorPolicy and its escalation make of a table's refused
    rows, ``count`` of them so far (the first for ``first``): None to go on
    (logged under LOG_ERROR, dropped under IGNORE_RECORD), or the reason to
    suspend the table; raises TerminalError to stop the task."""
    limit = errors.data_error_escalation_count
    if limit and count >= limit:
        escalation = errors.data_error_escalation_policy
        if escalation is EscalationPolicy.STOP_TASK:
            raise TerminalError(f"{first} (data error escalation: {count} errors, STOP_TASK)")
        if escalation is EscalationPolicy.SUSPEND_TABLE:
            return f"{first} (data error escalation: {count} errors)"
    policy = errors.data_error_policy
    if policy is RecordPolicy.STOP_TASK:
        raise TerminalError(f"{first} (DataErrorPolicy STOP_TASK)")
    if policy is RecordPolicy.SUSPEND_TABLE:
        return f"{first} (DataErrorPolicy SUSPEND_TABLE)"
    return None


def source_rejection_stops(errors: ErrorBehavior, first: str) -> str | None:
    """DataErrorPolicy alone (no count) for values a source left out while
    capturing (DynamoDB's ``conflicting_values: load_errors``)."""
    return data_error_stops(errors, first, 0)


def source_rejections(
    rejected: Sequence[RejectedValue],
    targets: Mapping[TableRef, TableSchema],
    counts: DataErrorCounts,
    suspend: Callable[[TableRef, str], None],
) -> dict[TableRef, tuple[TableSchema, list[RejectedValue]]]:
    """Values a stream left out, by target table (``targets``: each captured
    source table's, suspended ones left out), bound for the target's
    apply-exceptions table in the batch's transaction, per DataErrorPolicy
    and its escalation (as the full load's source rejections): a table whose
    policy stops is suspended here; none are logged unless the policy is
    LOG_ERROR."""
    found: dict[TableRef, tuple[TableSchema, list[RejectedValue]]] = {}
    for r in rejected:
        target = targets.get(r.table)
        if target is None:
            continue
        found.setdefault(target.ref, (target, []))[1].append(replace(r, table=target.ref))
    for ref, (_, rows) in list(found.items()):
        reason = counts.stops(ref, f"{ref}: {rows[0].reason}", len(rows))
        if reason is not None:
            suspend(ref, reason)
            del found[ref]
    if counts.errors.data_error_policy is not RecordPolicy.LOG_ERROR:
        return {}
    return found
