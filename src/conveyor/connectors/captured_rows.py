"""Whole rows a stream converted to Python values, gathered into one captured
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
from conveyor.core.batch import OP, OP_TYPE, ChangeBatch, Op, op_array
from conveyor.core.schema import TableRef, TableSchema

INSERT, UPDATE, DELETE = (op.encode() for op in (Op.INSERT, Op.UPDATE, Op.DELETE))


class RowsChunk:
    """One table's changes in commit order: a whole new row per INSERT and
    UPDATE (its key unchanged), the key (or the whole old row) per DELETE."""

    def __init__(self, table: TableSchema) -> None:
        self.table = table
        self._ops = bytearray()
        self._rows: list[dict[str, Any]] = []

    @property
    def size(self) -> int:
        return len(self._rows)

    def add(self, op: bytes, values: dict[str, Any]) -> None:
        """``op``: INSERT, UPDATE or DELETE."""
        self._ops += op
        self._rows.append(values)

    def take(self) -> list[ChangeBatch | RowChange]:
        """The rows as one captured batch; as RowChanges in the rare case
        Arrow refuses one of their values, or one is ``Unrepresentable`` (the
        reducer then refuses it per the task's policy, saying which)."""
        table, rows = self.table, self._rows
        arrays, fields = [op_array(bytes(self._ops))], [pa.field(OP, OP_TYPE)]
        try:
            for column in table.columns:
                name = column.name
                arrays.append(column_array(column.type, [row.get(name) for row in rows]))
                fields.append(pa.field(name, column.type.arrow()))
        except (UnrepresentableFound, pa.ArrowException, ArithmeticError, TypeError, ValueError):
            return [_row_change(table, op, row) for op, row in zip(self._ops, rows, strict=True)]
        return [ChangeBatch.captured(table, pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields)))]


def whole_row(
    change: RowChange, table: TableSchema, names: AbstractSet[str]
) -> tuple[bytes, dict[str, Any]] | None:
    """``change`` as a ``RowsChunk`` row of ``table`` (``names``: its column
    names): None when a captured batch cannot say it (unsent columns, a
    changed key, no key), the change then going as it is."""
    key = table.primary_key
    old = change.old_key
    if change.op is Op.DELETE:
        if not key or old is None or not old.keys() >= set(key):
            return None
        return DELETE, {k: old[k] for k in key}
    values = change.values
    if not key or change.unchanged or values.keys() != names:
        return None
    if old is not None and any(old.get(k, _ABSENT) != values[k] for k in key):
        return None  # the row moved to another key
    return (INSERT if change.op is Op.INSERT else UPDATE), values


_ABSENT = object()

CHUNK_ROWS = 1000
"""Changes of one captured batch at most."""

Captured = Mapping[TableRef, tuple[TableSchema, AbstractSet[str]]]
"""The tables whose whole rows go into captured batches: each with the
shape the stream reads it with and that shape's column names."""


class RowRuns:
    """A stream's runs of whole-row changes of ``tables`` (as ``whole_row``
    takes them), each run one table's, up to ``CHUNK_ROWS``, delivered as
    one captured batch."""

    def __init__(self, tables: Captured | None = None) -> None:
        self.tables: Captured = tables or {}
        self._run: RowsChunk | None = None

    @property
    def pending(self) -> bool:
        """Whether a run is being gathered (deliver it before any later event)."""
        return self._run is not None

    def add(self, change: RowChange) -> list[ChangeEvent] | None:
        """Take ``change`` into the run; the events to deliver first (the run
        so far, when it is another table's or full), or None when the change
        must go as it is (after ``flush``)."""
        entry = self.tables.get(change.table)
        row = None if entry is None else whole_row(change, *entry)
        if row is None or entry is None:
            return None
        return self.add_row(entry[0], *row)

    def add_row(self, table: TableSchema, op: bytes, values: dict[str, Any]) -> list[ChangeEvent]:
        """Take a whole row of ``table`` (a ``RowsChunk`` row) into the run;
        the events to deliver first."""
        run, before = self._run, []
        if run is not None and (run.table is not table or run.size >= CHUNK_ROWS):
            before, run = self.flush(), None
        if run is None:
            run = self._run = RowsChunk(table)
        run.add(op, values)
        return before

    def flush(self) -> list[ChangeEvent]:
        """The run gathered so far, as its events."""
        run, self._run = self._run, None
        return [] if run is None else list(run.take())


def gather(events: Iterable[ChangeEvent], tables: Captured) -> Iterator[ChangeEvent]:
    """``events`` with their runs of whole-row changes (``RowRuns``)
    gathered into captured batches; every other event in its place."""
    runs = RowRuns(tables)
    for event in events:
        before = runs.add(event) if isinstance(event, RowChange) else None
        if before is not None:
            yield from before
            continue
        yield from runs.flush()
        yield event
    yield from runs.flush()


def _row_change(table: TableSchema, letter: int, values: dict[str, Any]) -> RowChange:
    op = Op(chr(letter))
    if op is Op.DELETE:
        key = {k: values[k] for k in table.primary_key}
        return RowChange(table.ref, op, {}, old_key=key)
    return RowChange(table.ref, op, values)
