"""One table's change file of a batch, built from its change log: the rows
in commit order with their ``Op`` (``I``, ``U``, ``D``) and commit time, per
the CdcInsertsOnly / CdcInsertsAndUpdates settings.

The log holds changes one by one (``LoggedChange``: Python values, made into
Arrow here) and, for tables captured in Arrow, runs of them as the stream
captured them (``LoggedRows``: sliced, filtered and relabelled in Arrow,
never turned into Python values). Both give the same rows: a DELETE's old row
as the source sent it, an INSERT's or UPDATE's new row.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa

from conveyor.connectors.arrow_rows import batch_rows, empty_batch, rows_to_batch
from conveyor.connectors.lake import layout as lay
from conveyor.core.batch import OP, UNCHANGED, ChangeBatch, Checkpoint, LoggedChange, LoggedRows, op_letters
from conveyor.core.errors import DataError
from conveyor.core.schema import TableSchema

log = logging.getLogger(__name__)

Marks = list[tuple[int, list[str]]]
"""Rows of a change file (by index) and the columns they left unchanged."""

Skip = tuple[Callable[[Checkpoint], bool], int]
"""Changes written already: those at an anchor (the test) up to an index."""


@dataclass(frozen=True)
class FileRows:
    """What one table's part of a batch writes: the change file's rows (None:
    no row, only a TRUNCATE), the unchanged columns of its partial updates,
    and the row before which the last TRUNCATE emptied the table."""

    data: pa.Table | None
    unchanged: Marks
    truncated_at: int | None


@dataclass(frozen=True)
class _Part:
    """Consecutive rows of the file: their columns, ``Op`` and commit times
    (one per row, or one for all)."""

    columns: pa.Table
    ops: pa.Array
    times: list[datetime | None] | datetime | None


def moves_key(key: Sequence[str], old: dict[str, Any] | None, new: dict[str, Any] | None) -> bool:
    """Whether an UPDATE changed the primary key (the old image carries it)."""
    if not key or old is None or new is None or not all(k in old and k in new for k in key):
        return False
    return any(old[k] != new[k] for k in key)


class ChangeRows:
    """Builds a table's change file from its log (see the module docstring)."""

    def __init__(
        self, table: TableSchema, layout: lay.FileLayout, inserts_only: bool, no_deletes: bool
    ) -> None:
        self.table = table
        self.layout = layout
        self.inserts_only = inserts_only
        self.no_deletes = no_deletes or inserts_only
        self._parts: list[_Part] = []
        self._count = 0  # rows in the parts
        self._ops: list[str] = []
        self._rows: list[dict[str, Any]] = []
        self._times: list[datetime | None] = []
        self.marks: Marks = []
        self.truncated_at: int | None = None
        self._schema = empty_batch(table, table.column_names).schema  # as ``rows_to_batch`` types rows

    def build(self, changes: ChangeBatch, when: datetime, skip: Skip | None) -> FileRows | None:
        """The file's rows for ``changes.log`` after ``skip`` (``when``: the
        time of a change whose commit time is not known); None: nothing to write."""
        for entry in changes.log:
            if isinstance(entry, LoggedRows):
                self._add_rows(entry, skip)
            elif skip is None or entry.index > skip[1] or not skip[0](entry.position):
                self._add(entry)
        self._end_part()
        if not self._count:
            return None if self.truncated_at is None else FileRows(None, self.marks, self.truncated_at)
        return FileRows(self._frame(when), self.marks, self.truncated_at)

    @property
    def _at(self) -> int:
        """The index the next row takes in the file."""
        return self._count + len(self._rows)

    def _add(self, change: LoggedChange) -> None:
        table = self.table
        if change.op == "t":
            if self.no_deletes:
                log.warning(
                    "lake: TRUNCATE of %s is not recorded (CdcInsertsOnly / CdcInsertsAndUpdates "
                    "write no deletes)",
                    table.ref,
                )
            else:
                self.truncated_at = self._at
            return
        old, new = change.before, change.after
        if change.op == "d" or (change.op == "u" and moves_key(table.primary_key, old, new)):
            if not self.no_deletes and old is not None:
                self._append("D", old, change.commit_time)
            if change.op == "d":
                return
            assert old is not None and new is not None
            unsent = [c for c in table.column_names if c not in new]
            if unsent and not all(c in old for c in unsent):
                raise DataError(
                    f"table {table.ref}: an UPDATE changed the primary key and left columns "
                    f"{', '.join(unsent)} unsent, which the change file cannot carry; "
                    "set REPLICA IDENTITY FULL on the source table, then reload the table"
                )
            new = {**{c: old[c] for c in unsent}, **new}
        if new is None or (self.inserts_only and change.op != "c"):
            return
        unchanged = [c for c in table.column_names if c not in new]
        if unchanged and change.op == "u":
            self.marks.append((self._at, unchanged))
        self._append("I" if change.op == "c" else "U", new, change.commit_time)

    def _append(self, op: str, row: dict[str, Any], time: datetime | None) -> None:
        self._ops.append(op)
        self._rows.append(row)
        self._times.append(time)

    def _add_rows(self, entry: LoggedRows, skip: Skip | None) -> None:
        """Captured changes: new rows (their key unchanged; a partial UPDATE's
        unsent columns marked) and DELETEs' old rows, in Arrow."""
        rows = entry.rows
        if skip is not None and skip[1] >= entry.index and skip[0](entry.position):
            rows = rows.slice(skip[1] - entry.index + 1)
        ops = rows.column(OP)
        if ops.null_count:  # changes the log leaves out
            rows = rows.filter(ops.is_valid())
            ops = rows.column(OP)
        if self.inserts_only or self.no_deletes:
            import pyarrow.compute as pc  # here: most tasks never filter

            wanted = pc.equal(ops, b"c") if self.inserts_only else pc.not_equal(ops, b"d")
            rows = rows.filter(wanted)
            ops = rows.column(OP)
        if not rows.num_rows:
            return
        self._end_part()
        if UNCHANGED in rows.schema.names:
            for i, gone in enumerate(rows.column(UNCHANGED).to_pylist()):
                if gone:
                    self.marks.append((self._count + i, [c for c in self.table.column_names if c in gone]))
        labels = _LABELS.take(_letter_codes(ops))
        columns = self._columns(rows)
        self._parts.append(_Part(columns, labels, entry.commit_time))
        self._count += rows.num_rows

    def _columns(self, rows: pa.RecordBatch) -> pa.Table:
        """The table's columns of captured rows, typed as the rows of changes
        one by one are (``rows_to_batch``)."""
        names = self.table.column_names
        selected = rows.select(names)
        if selected.schema == self._schema:
            return pa.Table.from_batches([selected])
        try:
            return pa.Table.from_batches([selected]).cast(self._schema)
        except (pa.ArrowException, ValueError):  # as the rows of changes one by one are made
            return pa.Table.from_batches([rows_to_batch(self.table, batch_rows(selected), names)])

    def _end_part(self) -> None:
        """The rows of changes one by one so far, as a part of the file."""
        if not self._rows:
            return
        batch = rows_to_batch(self.table, self._rows, self.table.column_names)
        self._parts.append(
            _Part(pa.Table.from_batches([batch]), pa.array(self._ops, pa.string()), self._times)
        )
        self._count += len(self._rows)
        self._ops, self._rows, self._times = [], [], []

    def _frame(self, when: datetime) -> pa.Table:
        parts = self._parts
        columns = pa.concat_tables([p.columns for p in parts]) if len(parts) > 1 else parts[0].columns
        ops = pa.chunked_array([p.ops for p in parts], pa.string())
        stamps = None
        if self.layout.timestamp:
            texts: dict[datetime, str] = {}
            millis = self.layout.millis

            def text(at: datetime | None) -> str:
                at = at or when
                return texts.get(at) or texts.setdefault(at, lay.format_timestamp(at, millis))

            stamps = pa.chunked_array(
                [
                    pa.array([text(t) for t in p.times], pa.string())
                    if isinstance(p.times, list)
                    else pa.repeat(pa.scalar(text(p.times), pa.string()), len(p.ops))
                    for p in parts
                ],
                pa.string(),
            )
        return lay.frame(columns, self.layout, ops, stamps)


_LABELS = pa.array(["I", "U", "D"], pa.string())
_CODES = {ord("c"): 0, ord("u"): 1, ord("d"): 2}


def _letter_codes(ops: pa.Array) -> pa.Array:
    """Each ``OP`` letter's position in ``_LABELS`` (the column holds one
    byte per row: its data buffer, translated)."""
    codes = op_letters(ops).translate(_TRANSLATE)
    return pa.Array.from_buffers(pa.uint8(), len(ops), [None, pa.py_buffer(codes)])


_TRANSLATE = bytes(_CODES.get(i, 255) for i in range(256))  # 255: not a letter, refused by take
