"""The data error policy for changes a target would refuse.

An applier that screens changes (``ScreensChanges``: DuckDB, where a refused
row would abort the whole batch) hands back the rows it would refuse; here
ErrorBehavior's DataErrorPolicy and its escalation decide, per table, as in
the full load: log them to the apply-exceptions table in the batch's
transaction (LOG_ERROR), drop them (IGNORE_RECORD), suspend the table
(SUSPEND_TABLE) or stop the task (STOP_TASK). Counts for the escalation are
per table and count only batches that committed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from conveyor.connectors.changes import ScreensChanges
from conveyor.core.batch import ChangeBatch
from conveyor.core.errors import TerminalError
from conveyor.core.schema import TableRef
from conveyor.replication.settings import ErrorBehavior, EscalationPolicy, RecordPolicy


@dataclass
class ChangeRefusals:
    """Screens batches for one capture run; ``suspend`` takes a table out
    (the runner's own suspension, with its reason)."""

    applier: ScreensChanges
    errors: ErrorBehavior
    suspend: Callable[[TableRef, str], None]
    counts: dict[TableRef, int] = field(default_factory=dict)
    _pending: dict[TableRef, int] = field(default_factory=dict)

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
            count = self.counts.get(ref, 0) + len(rejected)
            reason = self._stops(rejected[0].reason, count)
            if reason is not None:
                self.suspend(ref, reason)
                continue
            self._pending[ref] = count
            keep = self.errors.data_error_policy is RecordPolicy.LOG_ERROR
            logged = (*screened.rejected, *rejected) if keep else screened.rejected
            screened_changes.append(replace(screened, rejected=tuple(logged)))
        return screened_changes

    def committed(self) -> None:
        """The last screened batch is on the target: its refusals count."""
        self.counts.update(self._pending)
        self._pending = {}

    def _stops(self, first: str, count: int) -> str | None:
        """The reason to suspend the table, or None to go on; raises to stop the task."""
        limit = self.errors.data_error_escalation_count
        if limit and count >= limit:
            escalation = self.errors.data_error_escalation_policy
            if escalation is EscalationPolicy.STOP_TASK:
                raise TerminalError(f"{first} (data error escalation: {count} errors, STOP_TASK)")
            if escalation is EscalationPolicy.SUSPEND_TABLE:
                return f"{first} (data error escalation: {count} errors)"
        policy = self.errors.data_error_policy
        if policy is RecordPolicy.STOP_TASK:
            raise TerminalError(f"{first} (DataErrorPolicy STOP_TASK)")
        if policy is RecordPolicy.SUSPEND_TABLE:
            return f"{first} (DataErrorPolicy SUSPEND_TABLE)"
        return None


def source_rejection_stops(errors: ErrorBehavior, first: str) -> str | None:
    """What DataErrorPolicy makes of values a source left out while capturing
    (DynamoDB's ``conflicting_values: load_errors``): None to go on (logged
    under LOG_ERROR, dropped under IGNORE_RECORD), or the reason to suspend
    their table; raises TerminalError under STOP_TASK."""
    policy = errors.data_error_policy
    if policy is RecordPolicy.STOP_TASK:
        raise TerminalError(f"{first} (DataErrorPolicy STOP_TASK)")
    if policy is RecordPolicy.SUSPEND_TABLE:
        return f"{first} (DataErrorPolicy SUSPEND_TABLE)"
    return None
