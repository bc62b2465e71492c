"""Rows a stream converted to Python values, gathered into one captured
``ChangeBatch`` per run of one table's changes (``CapturesRowsInArrow``):
one ``column_array`` per column, the conversion the reducer would otherwise
make per target column in the applier's thread."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from collections.abc import Set as AbstractSet
from typing import Any

import pyarrow as pa

from conveyor.connectors.arrow_rows import UnrepresentableFound, column_array
from conveyor.connectors.changes import ChangeEvent, RowChange
from conveyor.core.batch import BEFORE, OP, OP_TYPE, UNCHANGED, ChangeBatch, Op, op_array
from conveyor.core.schema import TableRef, TableSchema

INSERT, UPDATE, DELETE = (op.encode() for op in (Op.INSERT, Op.UPDATE, Op.DELETE))


class RowsChunk:
    """One table's changes in commit order: the new row per INSERT and
    UPDATE (its key unchanged; a partial UPDATE's unsent columns named),
    the key (or the whole old row) per DELETE; an UPDATE's or DELETE's
    whole old row (``BEFORE``) when the stream passes it."""

    def __init__(self, table: TableSchema) -> None:
        self.table = table
        self._ops = bytearray()
        self._rows: list[dict[str, Any]] = []
        self._unchanged: list[list[str] | None] | None = None  # per row, once a row is partial
        self._before: list[dict[str, Any] | None] | None = None  # per row, once a row has one

    @property
    def size(self) -> int:
        return len(self._rows)

    def add(
        self,
        op: bytes,
        values: dict[str, Any],
        unchanged: AbstractSet[str] = frozenset(),
        before: dict[str, Any] | None = None,
    ) -> None:
        """``op``: INSERT, UPDATE or DELETE; ``unchanged``: the columns a
        partial UPDATE did not send; ``before``: the whole old row."""
        if before is not None:
            if self._before is None:
                self._before = [None] * len(self._rows)
            self._before.append(before)
        elif self._before is not None:
            self._before.append(None)
        if unchanged:
            if self._unchanged is None:
                self._unchanged = [None] * len(self._rows)
            self._unchanged.append([c for c in self.table.column_names if c in unchanged])
        elif self._unchanged is not None:
            self._unchanged.append(None)
        self._ops += op
        self._rows.append(values)

    def take(self) -> list[ChangeBatch | RowChange]:
        """The rows as one captured batch; as RowChanges in the rare case
        Arrow refuses one of their values, or one is ``Unrepresentable`` (the
        reducer then refuses it per the task's policy, saying which)."""
        table, rows = self.table, self._rows
        arrays, fields = [op_array(bytes(self._ops))], [pa.field(OP, OP_TYPE)]
        try:
            columns = _columns(table, rows)
            before = None if self._before is None else _old_rows(table, self._before)
        except (UnrepresentableFound, pa.ArrowException, ArithmeticError, TypeError, ValueError):
            unchanged = self._unchanged or [None] * len(rows)
            olds = self._before or [None] * len(rows)
            return [
                _row_change(table, op, row, gone, old)
                for op, row, gone, old in zip(self._ops, rows, unchanged, olds, strict=True)
            ]
        arrays += columns
        fields += [pa.field(c.name, c.type.arrow()) for c in table.columns]
        if self._unchanged is not None:
            arrays.append(pa.array(self._unchanged, _NAMES))
            fields.append(pa.field(UNCHANGED, _NAMES))
        if before is not None:
            arrays.append(before)
            fields.append(pa.field(BEFORE, before.type))
        return [ChangeBatch.captured(table, pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields)))]


def _columns(table: TableSchema, rows: list[dict[str, Any]]) -> list[pa.Array]:
    """One Arrow array per column of ``table`` (a row's missing value null)."""
    return [column_array(c.type, [row.get(c.name) for row in rows]) for c in table.columns]


def _old_rows(table: TableSchema, olds: list[dict[str, Any] | None]) -> pa.StructArray:
    """The ``BEFORE`` column: each whole old row, null for the other changes."""
    empty: dict[str, Any] = {}
    children = _columns(table, [old or empty for old in olds])
    struct = pa.struct([pa.field(c.name, c.type.arrow()) for c in table.columns])
    # A boolean array's data is a validity bitmap: no compute call (each one
    # gives the GIL up, which costs the applier's thread a switch interval).
    valid = pa.array([old is not None for old in olds], pa.bool_()).buffers()[1]
    return pa.Array.from_buffers(struct, len(olds), [valid], children=children)


_NAMES = pa.list_(pa.string())


def whole_row(
    change: RowChange, table: TableSchema, names: AbstractSet[str], before: bool = False
) -> tuple[bytes, dict[str, Any], frozenset[str], dict[str, Any] | None] | None:
    """``change`` as a ``RowsChunk`` row of ``table`` (``names``: its column
    names), the columns it left unsent (a partial UPDATE's) and, when
    ``before`` is asked, an UPDATE's or DELETE's old row if the source sent
    it whole (else None): None when a captured batch cannot say it (a
    changed key, an unsent key column, no key), the change then going as it
    is. A partial UPDATE whose old row came whole is made whole from it. A
    DELETE's row is the old row when the source sent it whole (REPLICA
    IDENTITY FULL), else its key (a change log writes what the source sent)."""
    key = table.primary_key
    old = change.old_key
    if change.op is Op.DELETE:
        if not key or old is None or not old.keys() >= set(key):
            return None
        if old.keys() == names:
            return DELETE, old, frozenset(), old if before else None
        return DELETE, {k: old[k] for k in key}, frozenset(), None
    values, unchanged = change.values, change.unchanged
    if not key:
        return None
    whole_old = change.before if change.before is not None else old
    if whole_old is not None and whole_old.keys() != names:
        whole_old = None
    if unchanged:
        if (
            change.op is not Op.UPDATE
            or not unchanged.isdisjoint(key)
            or not values.keys().isdisjoint(unchanged)
            or values.keys() | unchanged != names
        ):
            return None
        if old is not None and unchanged <= old.keys():
            # The old row came whole (REPLICA IDENTITY FULL): an unsent value is its old one.
            values, unchanged = {**{c: old[c] for c in unchanged}, **values}, frozenset()
    elif values.keys() != names:
        return None
    if old is not None and any(old.get(k, _ABSENT) != values[k] for k in key):
        return None  # the row moved to another key
    if change.op is Op.INSERT:
        return INSERT, values, unchanged, None
    return UPDATE, values, unchanged, whole_old if before else None


_ABSENT = object()

CHUNK_ROWS = 1000
"""Changes of one captured batch at most."""

RUNS_ROWS = 10 * CHUNK_ROWS
"""Changes gathered over all tables at most, before every run is delivered."""

Captured = Mapping[TableRef, tuple[TableSchema, AbstractSet[str], bool]]
"""The tables whose whole rows go into captured batches: each with the
shape the stream reads it with, that shape's column names, and whether its
UPDATEs' and DELETEs' whole old rows go too (``BEFORE``)."""


class RowRuns:
    """A stream's runs of row changes of ``tables`` (as ``whole_row``
    takes them), one per table, each delivered as one captured batch of up
    to ``CHUNK_ROWS``.

    A run holds one table's changes in commit order; runs of several tables
    are open at once, as the reducer reduces per table: tables written in
    turn in one transaction (an order, its lines, the next order ...) make
    long runs, not batches of one row. A table's run is delivered before a
    change of that table that goes as it is (``flush(table)``), and every
    run before any other event (a commit, DDL, a TRUNCATE: ``flush()``)."""

    def __init__(self, tables: Captured | None = None) -> None:
        self.tables: Captured = tables or {}
        self._runs: dict[TableRef, RowsChunk] = {}
        self._size = 0

    @property
    def pending(self) -> bool:
        """Whether a run is being gathered (deliver it before any later event)."""
        return bool(self._runs)

    def add(self, change: RowChange) -> list[ChangeEvent] | None:
        """Take ``change`` into its table's run; the events to deliver first
        (runs that were full), or None when the change must go as it is
        (after ``flush(change.table)``)."""
        entry = self.tables.get(change.table)
        row = None if entry is None else whole_row(change, *entry)
        if row is None or entry is None:
            return None
        return self.add_row(entry[0], *row)

    def add_row(
        self,
        table: TableSchema,
        op: bytes,
        values: dict[str, Any],
        unchanged: AbstractSet[str] = frozenset(),
        before: dict[str, Any] | None = None,
    ) -> list[ChangeEvent]:
        """Take a row of ``table`` (a ``RowsChunk`` row) into its run; the
        events to deliver first."""
        first: list[ChangeEvent] = []
        if self._size >= RUNS_ROWS:
            first = self.flush()
        run = self._runs.get(table.ref)
        if run is not None and (run.table is not table or run.size >= CHUNK_ROWS):
            first += self.flush(table.ref)  # full, or the table's shape changed
            run = None
        if run is None:
            run = self._runs[table.ref] = RowsChunk(table)
        run.add(op, values, unchanged, before)
        self._size += 1
        return first

    def flush(self, table: TableRef | None = None) -> list[ChangeEvent]:
        """The runs gathered so far (only ``table``'s, when given), as their events."""
        if table is None:
            runs, self._runs, self._size = list(self._runs.values()), {}, 0
        else:
            run = self._runs.pop(table, None)
            if run is None:
                return []
            runs = [run]
            self._size -= run.size
        return [event for run in runs for event in run.take()]


def gather(events: Iterable[ChangeEvent], tables: Captured) -> Iterator[ChangeEvent]:
    """``events`` with their whole-row changes gathered into captured
    batches per table (``RowRuns``); each table's changes in commit order,
    every other event after all changes before it."""
    runs = RowRuns(tables)
    for event in events:
        if isinstance(event, RowChange):
            before = runs.add(event)
            if before is not None:
                yield from before
                continue
            yield from runs.flush(event.table)
        else:
            yield from runs.flush()
        yield event
    yield from runs.flush()


def _row_change(
    table: TableSchema,
    letter: int,
    values: dict[str, Any],
    unchanged: list[str] | None,
    before: dict[str, Any] | None,
) -> RowChange:
    op = Op(chr(letter))
    if op is Op.DELETE:  # the old row as the stream sent it (its key, or whole)
        return RowChange(table.ref, op, {}, old_key=values)
    return RowChange(table.ref, op, values, unchanged=frozenset(unchanged or ()), before=before)
