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


def gather(events: Iterable[ChangeEvent], tables: Captured) -> Iterator[ChangeEvent]:
    """``events`` with each run of one table's whole-row changes (of
    ``tables``, as ``whole_row`` takes them) gathered into captured
    batches of up to ``CHUNK_ROWS``; every other event in its place."""
    run: RowsChunk | None = None
    for event in events:
        entry = tables.get(event.table) if isinstance(event, RowChange) else None
        row = whole_row(event, *entry) if entry is not None and isinstance(event, RowChange) else None
        if row is not None and entry is not None:
            if run is not None and (run.table is not entry[0] or run.size >= CHUNK_ROWS):
                yield from run.take()
                run = None
            if run is None:
                run = RowsChunk(entry[0])
            run.add(*row)
            continue
        if run is not None:
            yield from run.take()
            run = None
        yield event
    if run is not None:
        yield from run.take()


def _row_change(table: TableSchema, letter: int, values: dict[str, Any]) -> RowChange:
    op = Op(chr(letter))
    if op is Op.DELETE:
        key = {k: values[k] for k in table.primary_key}
        return RowChange(table.ref, op, {}, old_key=key)
    return RowChange(table.ref, op, values)
