"""A stream's whole rows gathered into one captured ChangeBatch (RowsChunk)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from conveyor.connectors.arrow_rows import Unrepresentable
from conveyor.connectors.captured_rows import DELETE, INSERT, UPDATE, RowsChunk
from conveyor.connectors.changes import RowChange, row_changes
from conveyor.core import types as t
from conveyor.core.batch import OP, ChangeBatch, Op
from conveyor.core.schema import Column, TableRef, TableSchema
from conveyor.core.types import Kind

TABLE = TableSchema(
    TableRef("shop", "orders"),
    (
        Column("id", t.simple(Kind.INT64), False),
        Column("amount", t.decimal(12, 2)),
        Column("at", t.simple(Kind.TIMESTAMP)),
    ),
    ("id",),
)
AT = dt.datetime(2026, 12, 5, 12, 30, 1, 250000)


def test_rows_become_one_captured_batch_in_the_tables_types() -> None:
    chunk = RowsChunk(TABLE)
    chunk.add(INSERT, {"id": 1, "amount": Decimal("9.99"), "at": AT})
    chunk.add(UPDATE, {"id": 1, "amount": Decimal("10.00"), "at": None})
    chunk.add(DELETE, {"id": 2})  # a key alone: the other columns are null
    assert chunk.size == 3
    (batch,) = chunk.take()
    assert isinstance(batch, ChangeBatch) and batch.changes is not None
    assert batch.changes.schema.names == [OP, "id", "amount", "at"]
    assert batch.changes.schema.field("amount").type == TABLE.column("amount").type.arrow()
    assert batch.changes.column(OP).to_pylist() == [b"c", b"u", b"d"]
    assert [(c.op, c.values, c.old_key) for c in row_changes(batch)] == [
        (Op.INSERT, {"id": 1, "amount": Decimal("9.99"), "at": AT}, {"id": 1}),
        (Op.UPDATE, {"id": 1, "amount": Decimal("10.00"), "at": None}, {"id": 1}),
        (Op.DELETE, {"id": 2}, {"id": 2}),
    ]


def test_a_value_arrow_refuses_gives_the_rows_as_row_changes() -> None:
    """Nothing is lost or changed: the reducer converts them one by one and
    reports the value (a decimal wider than its column, here)."""
    chunk = RowsChunk(TABLE)
    chunk.add(INSERT, {"id": 1, "amount": Decimal("1.00"), "at": AT})
    chunk.add(UPDATE, {"id": 3, "amount": Decimal("123456789012345.5"), "at": None})
    chunk.add(DELETE, {"id": 2, "amount": None, "at": None})
    assert chunk.take() == [
        RowChange(TABLE.ref, Op.INSERT, {"id": 1, "amount": Decimal("1.00"), "at": AT}),
        RowChange(TABLE.ref, Op.UPDATE, {"id": 3, "amount": Decimal("123456789012345.5"), "at": None}),
        RowChange(TABLE.ref, Op.DELETE, {}, old_key={"id": 2}),
    ]


def test_an_unrepresentable_value_gives_the_rows_as_row_changes() -> None:
    """A stream sends such a row as a RowChange itself; were one added, the
    chunk hands its rows over one by one, the value kept for the reducer to
    refuse (per the data error policy), not dropped or crashed on."""
    zero = Unrepresentable("0000-00-00 00:00:00", "not a timestamp")
    chunk = RowsChunk(TABLE)
    chunk.add(INSERT, {"id": 1, "amount": None, "at": zero})
    assert chunk.take() == [RowChange(TABLE.ref, Op.INSERT, {"id": 1, "amount": None, "at": zero})]
