"""The apply-conflict policies (ErrorBehavior.ApplyError*) for change batches.

Conveyor applies a batch reduced to one final change per key. When the task's
settings write an ApplyError* conflict key, each key is judged once per batch,
just before the batch's transaction, by its first change in the batch against
the target's row: a first INSERT expects no row (a row there is an insert
conflict), a first UPDATE or DELETE expects one (none there is an update or
delete conflict). The applier finds them set-wise (``FindsConflicts``); here
each conflict's policy decides:

- INSERT_RECORD (insert) / UPDATE_RECORD (update): the key's final change
  applies as without the policy (the row is overwritten, or inserted whole).
  An update of a missing row whose final change left columns unsent (a
  partial UPDATE) cannot insert the row: it goes to awsdms_apply_exceptions.
- IGNORE_RECORD / LOG_ERROR: the first change is not applied (LOG_ERROR also
  writes the key to awsdms_apply_exceptions, in the batch's transaction). The
  key's later changes in the batch still apply where they would have applied
  one by one: after a refused INSERT, the rest applies to the existing row
  (the final change applies, unless the INSERT was the key's only change;
  columns that only partial UPDATEs followed keep the target row's values);
  after a refused UPDATE or DELETE, only a later INSERT re-creates the row
  (the final change applies only then).
- SUSPEND_TABLE: the table is suspended before the batch (none of its changes
  applied); STOP_TASK: the task stops before the batch.

Every conflict counts towards ApplyErrorEscalationCount, per table, over the
batches that committed in the task's life (a resume reads the counts back
from the target, which keeps them in each batch's transaction); once a batch
reaches it, ApplyErrorEscalationPolicy decides (SUSPEND_TABLE, STOP_TASK;
LOG_ERROR: an error in the task's log, and the conflicts go on by their
policies). A table's reload starts its count over (``forget``), as a new
start of the task starts every count over: the conflicts were judged against
target rows the reload replaces.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pyarrow as pa

from conveyor.connectors.arrow_rows import printable
from conveyor.connectors.changes import FindsConflicts
from conveyor.core.batch import ChangeBatch, KeyChecks, KeyHistory, Op, RejectedValue
from conveyor.core.errors import TerminalError
from conveyor.core.schema import TableRef
from conveyor.replication.settings import ApplyPolicy, ErrorBehavior, EscalationPolicy, InsertPolicy

log = logging.getLogger(__name__)

_KEYS = {
    Op.INSERT: "ApplyErrorInsertPolicy",
    Op.UPDATE: "ApplyErrorUpdatePolicy",
    Op.DELETE: "ApplyErrorDeletePolicy",
}
_WHAT = {
    Op.INSERT: "an INSERT of a key the target already has",
    Op.UPDATE: "an UPDATE of a row the target does not have",
    Op.DELETE: "a DELETE of a row the target does not have",
}
_APPLIES = frozenset({InsertPolicy.INSERT_RECORD, ApplyPolicy.UPDATE_RECORD})


@dataclass
class ApplyConflicts:
    """Judges batches for one capture run of ``task``; ``suspend`` takes a
    table out (the runner's own suspension, with its reason). ``counts``
    start from the target's (read at the first batch, in the applier's
    thread)."""

    applier: FindsConflicts
    errors: ErrorBehavior
    suspend: Callable[[TableRef, str], None]
    task: str
    counts: dict[TableRef, int] | None = None
    _pending: dict[TableRef, int] = field(default_factory=dict)

    def judge(self, changes: Sequence[ChangeBatch]) -> list[ChangeBatch]:
        """The changes to apply, per the policies (``checks`` consumed), each
        table's count with them (``conflicts``). A table the policies suspend
        is left out; raises TerminalError when they stop the task."""
        if self.counts is None:
            self.counts = self.applier.conflict_counts(self.task)
        self._pending = {}
        checked = [c for c in changes if c.checks is not None]
        found = self.applier.find_conflicts(checked) if checked else {}
        judged = []
        for table_changes in changes:
            rows = found.get(table_changes.table.ref)
            checks = table_changes.checks
            unchecked = replace(table_changes, checks=None)
            if not rows or checks is None:
                judged.append(unchecked)
                continue
            kept = self._judge_table(unchecked, checks, rows)
            if kept is not None:
                judged.append(kept)
        return judged

    def forget(self, ref: TableRef) -> None:
        """``ref``'s count starts over, on the target too (its reload). Called
        while no batch is in flight."""
        self.applier.forget_conflicts(self.task, ref)
        if self.counts is not None:
            self.counts.pop(ref, None)
        self._pending.pop(ref, None)

    def committed(self) -> None:
        """The last judged batch is on the target: its conflicts count."""
        if self.counts is not None:
            self.counts.update(self._pending)
        self._pending = {}

    def _policy(self, op: Op) -> str:
        if op is Op.INSERT:
            return self.errors.insert_conflicts
        if op is Op.UPDATE:
            return self.errors.update_conflicts
        return self.errors.apply_error_delete_policy

    def _judge_table(self, changes: ChangeBatch, checks: KeyChecks, rows: list[int]) -> ChangeBatch | None:
        ref = changes.table.ref
        count = (self.counts or {}).get(ref, 0) + len(rows)
        reason = self._stops(ref, [checks.history[i].first for i in rows], count)
        if reason is not None:
            self.suspend(ref, reason)
            return None
        self._pending[ref] = count
        skipped: list[int] = []
        onto_target: list[int] = []  # refused INSERTs whose later partial UPDATEs still apply
        logged: list[RejectedValue] = []
        for i in rows:
            history = checks.history[i]
            policy = self._policy(history.first)
            if policy in _APPLIES:
                if history.first is Op.UPDATE and history.partial:
                    skipped.append(i)
                    logged.append(
                        _rejected(
                            ref,
                            checks,
                            i,
                            f"{_WHAT[Op.UPDATE]} that left columns unsent: "
                            "UPDATE_RECORD cannot insert it (ApplyErrorUpdatePolicy UPDATE_RECORD)",
                        )
                    )
                continue
            if _skips(history):
                skipped.append(i)
            elif history.first is Op.INSERT and history.inherited:
                onto_target.append(i)
            if policy == "LOG_ERROR":
                key = _KEYS[history.first]
                logged.append(_rejected(ref, checks, i, f"{_WHAT[history.first]} ({key} LOG_ERROR)"))
        kept = replace(
            _onto_target(_without_keys(changes, checks, skipped), checks, onto_target), conflicts=count
        )
        return replace(kept, rejected=(*changes.rejected, *logged)) if logged else kept

    def _stops(self, ref: TableRef, ops: list[Op], count: int) -> str | None:
        """The reason to suspend the table, or None to go on; raises to stop the task."""
        summary = _summary(ref, ops)
        limit = self.errors.apply_error_escalation_count
        if limit and count >= limit:
            escalation = self.errors.apply_error_escalation_policy
            if escalation is EscalationPolicy.STOP_TASK:
                raise TerminalError(f"{summary} (apply error escalation: {count} apply conflicts, STOP_TASK)")
            if escalation is EscalationPolicy.SUSPEND_TABLE:
                return f"{summary} (apply error escalation: {count} apply conflicts)"
            log.error("%s (apply error escalation: %d apply conflicts, LOG_ERROR)", summary, count)
        for op in dict.fromkeys(ops):
            if self._policy(op) == "STOP_TASK":
                raise TerminalError(f"{summary} ({_KEYS[op]} STOP_TASK)")
        for op in dict.fromkeys(ops):
            if self._policy(op) == "SUSPEND_TABLE":
                return f"{summary} ({_KEYS[op]} SUSPEND_TABLE)"
        return None


def _skips(history: KeyHistory) -> bool:
    """Whether refusing the key's first change leaves its target row as it
    was: after a refused INSERT the later changes apply to the existing row;
    after a refused UPDATE or DELETE only a later INSERT re-creates one."""
    if history.first is Op.INSERT:
        return history.alone
    return not history.reinserted


def _summary(ref: TableRef, ops: list[Op]) -> str:
    """What conflicted, without values (a suspension's reason is shown)."""
    counted = Counter(ops)
    parts = [f"{counted[op]} x {_WHAT[op]}" for op in (Op.INSERT, Op.UPDATE, Op.DELETE) if counted[op]]
    return f"table {ref}: apply conflicts: {', '.join(parts)}"


def _rejected(ref: TableRef, checks: KeyChecks, row: int, reason: str) -> RejectedValue:
    key = {name: _cell(checks.keys, name, row) for name in checks.keys.schema.names}
    return RejectedValue(table=ref, key=key, column=None, value=None, reason=f"table {ref}: {reason}")


def _cell(batch: pa.RecordBatch, column: str, row: int) -> Any:
    scalar = batch.column(column)[row]
    try:
        value = scalar.as_py()
    except (ValueError, OverflowError):  # past Python's range (an infinite timestamp's sentinel)
        return printable(getattr(scalar, "value", None))
    return value if isinstance(value, int | str | bool | float) or value is None else printable(value)


def _onto_target(changes: ChangeBatch, checks: KeyChecks, rows: list[int]) -> ChangeBatch:
    """``changes`` with the final rows of the keys at ``rows`` of ``checks``
    (a refused INSERT, then partial UPDATEs) made partial UPDATEs of the
    target's row: the columns only the INSERT set (``inherited``) keep the
    target's values, as applying the changes one by one would leave them."""
    upserts = changes.upserts
    if not rows or not upserts.num_rows:
        return changes
    names = checks.keys.schema.names
    inherited = {
        tuple(checks.keys.column(k)[i].as_py() for k in names): checks.history[i].inherited for i in rows
    }
    found = [inherited.get(key) for key in zip(*(upserts.column(k).to_pylist() for k in names), strict=True)]
    partial = dict(changes.partial)
    for unchanged in dict.fromkeys(u for u in found if u is not None):
        moved = upserts.filter(pa.array([u == unchanged for u in found], pa.bool_()))
        moved = moved.select([c for c in changes.table.column_names if c not in unchanged])
        earlier = partial.get(unchanged)
        partial[unchanged] = moved if earlier is None else pa.concat_batches([earlier, moved])
    kept = upserts.filter(pa.array([u is None for u in found], pa.bool_()))
    return replace(changes, upserts=kept, partial=partial)


def _without_keys(changes: ChangeBatch, checks: KeyChecks, rows: list[int]) -> ChangeBatch:
    """``changes`` without the final changes of the keys at ``rows`` of ``checks``."""
    if not rows:
        return changes
    names = checks.keys.schema.names
    skipped = set(zip(*(checks.keys.column(k).take(rows).to_pylist() for k in names), strict=True))

    def kept(batch: pa.RecordBatch) -> pa.RecordBatch:
        if not batch.num_rows:
            return batch
        keys = zip(*(batch.column(k).to_pylist() for k in names), strict=True)
        return batch.filter(pa.array([key not in skipped for key in keys], pa.bool_()))

    return replace(
        changes,
        upserts=kept(changes.upserts),
        deletes=kept(changes.deletes),
        partial={unchanged: kept(rows_) for unchanged, rows_ in changes.partial.items()},
    )
