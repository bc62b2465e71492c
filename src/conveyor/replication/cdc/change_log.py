"""What a change log says of each change a reducer takes one at a time
(``LoggedChange``, for an applier that publishes every change): an INSERT's
new row, an UPDATE's old and new rows, a DELETE's old row, in target
columns. Old rows are masked as new ones are (the log publishes them), and
an UPDATE a source filter moved out is a DELETE of its old row."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from conveyor.connectors.changes import RowChange
from conveyor.core.batch import Checkpoint, Logged, LoggedChange, Op

Row = dict[str, Any]


@dataclass(frozen=True)
class ChangeLog:
    """``log``: the reducer's change log; ``target``: a source row as a
    target row (renamed, converted); ``mask``: data masking, in place."""

    log: list[Logged]
    key: tuple[str, ...]
    target: Callable[[Row], Row]
    mask: Callable[[Row], None] | None

    def change(self, change: RowChange, values: Row, old: Row | None, at: tuple[Checkpoint, int]) -> None:
        """``change`` as taken: ``values`` its target row (masked already,
        unless a DELETE's), ``old`` its old key or row in target columns."""
        self._append(change.op, values, self._old_row(change, values, old), at)

    def moved_out(self, change: RowChange, at: tuple[Checkpoint, int]) -> None:
        """An UPDATE whose new row fails the filter: the row leaves the target,
        which a reader of the change log sees as a delete of the old key (the
        old row as the source sent it, else the key)."""
        sent = change.before if change.before is not None else change.old_key
        if sent is not None:
            old = self.target(sent)
        else:
            new = self.target(change.values)
            old = {k: new[k] for k in self.key if k in new}
        self._append(Op.DELETE, old, None, at)

    def truncate(self, at: tuple[Checkpoint, int]) -> None:
        self.log.append(LoggedChange("t", None, None, *at))

    def _append(self, op: Op, values: Row, old: Row | None, at: tuple[Checkpoint, int]) -> None:
        """An old row is masked here (a change log publishes it: masking must hide it too)."""
        if op is Op.DELETE:
            entry = LoggedChange("d", self._masked(old if old is not None else values), None, *at)
        elif op is Op.UPDATE:
            entry = LoggedChange("u", self._masked(old), values, *at)
        else:
            entry = LoggedChange("c", None, values, *at)
        self.log.append(entry)

    def _old_row(self, change: RowChange, values: Row, old: Row | None) -> Row | None:
        """The old row a change log says with ``change`` (target columns): the
        whole old row where the source sent one (MySQL's before image of an
        UPDATE, a DELETE's whole row), else its old key (or, under REPLICA
        IDENTITY FULL, its whole old row), else none."""
        if change.op is Op.DELETE:
            return values if len(values) > len(old or ()) else old
        if change.before is not None:
            return self.target(change.before)
        return old

    def _masked(self, row: Row | None) -> Row | None:
        if self.mask is None or row is None:
            return row
        masked = dict(row)
        self.mask(masked)
        return masked
