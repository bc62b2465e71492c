"""A stream's whole rows gathered into one captured ChangeBatch (RowsChunk)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from conveyor.connectors.arrow_rows import Unrepresentable
from conveyor.connectors.captured_rows import (
    CHUNK_ROWS,
    DELETE,
    INSERT,
    RUNS_ROWS,
    UPDATE,
    RowRuns,
    RowsChunk,
    gather,
    row_changes,
)
from conveyor.connectors.changes import Commit, RowChange
from conveyor.core import types as t
from conveyor.core.batch import BEFORE, OP, ChangeBatch, Checkpoint, Op
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
        (Op.INSERT, {"id": 1, "amount": Decimal("9.99"), "at": AT}, None),
        (Op.UPDATE, {"id": 1, "amount": Decimal("10.00"), "at": None}, None),
        (Op.DELETE, {"id": 2}, {"id": 2}),
    ]


def test_whole_old_rows_go_with_the_rows_and_back() -> None:
    """An UPDATE's and a DELETE's whole old rows (``BEFORE``), when the
    stream passes them: one by one, an UPDATE's is its ``before``, a
    DELETE's whole row its old key (a key alone stays a key), in the
    in-flight form (an infinite timestamp is the string again)."""
    chunk = RowsChunk(TABLE)
    old = {"id": 1, "amount": Decimal("9.99"), "at": "infinity"}
    chunk.add(INSERT, {"id": 3, "amount": None, "at": None})
    chunk.add(UPDATE, {**old, "amount": Decimal("10.00")}, frozenset(), old)
    chunk.add(DELETE, old, frozenset(), old)
    chunk.add(DELETE, {"id": 2})
    (batch,) = chunk.take()
    assert isinstance(batch, ChangeBatch) and batch.changes is not None
    assert batch.changes.column(BEFORE).is_valid().to_pylist() == [False, True, True, False]
    assert [(c.op, c.old_key, c.before) for c in row_changes(batch)] == [
        (Op.INSERT, None, None),
        (Op.UPDATE, None, old),
        (Op.DELETE, old, None),
        (Op.DELETE, {"id": 2}, None),
    ]


def test_a_value_arrow_refuses_is_named_and_its_rows_go_one_at_a_time() -> None:
    """Nothing is lost or changed: the value is null in the batch and named
    in REFUSED (a decimal wider than its column, here), the batch goes one
    change at a time and the value comes back as an Unrepresentable, which
    the applier refuses per the data error policy, saying which."""
    chunk = RowsChunk(TABLE)
    chunk.add(INSERT, {"id": 1, "amount": Decimal("1.00"), "at": AT})
    chunk.add(UPDATE, {"id": 3, "amount": Decimal("123456789012345.5"), "at": None})
    chunk.add(DELETE, {"id": 2, "amount": None, "at": None})
    [batch] = chunk.take()
    assert batch.one_at_a_time
    assert batch.changes is not None and batch.changes.column("amount").to_pylist() == [
        Decimal("1.00"),
        None,
        None,
    ]
    insert, update, delete = row_changes(batch)
    assert insert == RowChange(TABLE.ref, Op.INSERT, {"id": 1, "amount": Decimal("1.00"), "at": AT})
    refused = update.values["amount"]
    assert isinstance(refused, Unrepresentable) and refused.text == "123456789012345.5"
    assert refused.reason.startswith("not a decimal(12,2) value"), refused.reason
    assert update.values["id"] == 3 and update.values["at"] is None
    assert delete == RowChange(TABLE.ref, Op.DELETE, {"id": 2}, old_key={"id": 2})


def test_an_unrepresentable_value_is_named_as_the_stream_said_it() -> None:
    """A stream's own Unrepresentable (a zero date) comes back as it was,
    for the reducer to refuse (per the data error policy), not dropped or
    crashed on; in an old row too."""
    zero = Unrepresentable("0000-00-00 00:00:00", "not a timestamp")
    chunk = RowsChunk(TABLE)
    chunk.add(INSERT, {"id": 1, "amount": None, "at": zero})
    old = {"id": 1, "amount": None, "at": zero}
    chunk.add(UPDATE, {"id": 1, "amount": Decimal(1), "at": None}, frozenset(), old)
    [batch] = chunk.take()
    assert batch.one_at_a_time
    insert, update = row_changes(batch)
    assert insert == RowChange(TABLE.ref, Op.INSERT, {"id": 1, "amount": None, "at": zero})
    assert update.before == old and update.values == {"id": 1, "amount": Decimal("1.00"), "at": None}


LINES = TableSchema(
    TableRef("shop", "lines"),
    (Column("id", t.simple(Kind.INT64), False), Column("qty", t.simple(Kind.INT32))),
    ("id",),
)
CAPTURED = {table.ref: (table, frozenset(table.column_names), False) for table in (TABLE, LINES)}
SHAPES = {table.ref: table for table in (TABLE, LINES)}
COMMIT = Commit(Checkpoint("sqlite", 1))


def _shapes(events: list[object]) -> list[tuple[str, int] | str]:
    """Each event as (table, rows) for a captured batch, else its type's name."""
    return [
        (e.table.ref.name, e.num_rows) if isinstance(e, ChangeBatch) else type(e).__name__ for e in events
    ]


def test_tables_written_in_turn_are_gathered_per_table() -> None:
    """An order, its line, the next order ...: one batch per table, not one per row."""
    events: list[object] = []
    for n in range(1, 301):
        events.append(RowChange(TABLE.ref, Op.INSERT, {"id": n, "amount": Decimal(n), "at": AT}))
        events.append(RowChange(LINES.ref, Op.INSERT, {"id": n, "qty": n}))
    events.append(COMMIT)
    out = list(gather(events, CAPTURED, SHAPES))  # type: ignore[arg-type]
    assert _shapes(out) == [("orders", 300), ("lines", 300), "Commit"]
    assert [c.values["id"] for c in row_changes(out[0])] == list(range(1, 301))  # type: ignore[arg-type]


def test_a_change_that_goes_as_it_is_cuts_its_own_tables_run_only() -> None:
    """A moved key of ``lines`` comes, in a batch of the form that goes one
    change at a time, after the lines before it; the orders' run stays open
    across it, and a commit delivers every run before it."""
    moved = RowChange(LINES.ref, Op.UPDATE, {"id": 9, "qty": 1}, old_key={"id": 1})
    events = [
        RowChange(TABLE.ref, Op.INSERT, {"id": 1, "amount": None, "at": None}),
        RowChange(LINES.ref, Op.INSERT, {"id": 1, "qty": 1}),
        moved,
        RowChange(TABLE.ref, Op.UPDATE, {"id": 1, "amount": Decimal(2), "at": None}),
        RowChange(LINES.ref, Op.DELETE, {}, old_key={"id": 9}),
        COMMIT,
        RowChange(TABLE.ref, Op.DELETE, {}, old_key={"id": 1}),
    ]
    out = list(gather(events, CAPTURED, SHAPES))  # type: ignore[arg-type]
    assert _shapes(out) == [("lines", 1), ("lines", 1), ("orders", 2), ("lines", 1), "Commit", ("orders", 1)]
    forms = [e.one_at_a_time for e in out if isinstance(e, ChangeBatch)]
    assert forms == [False, True, False, False, False]
    assert list(row_changes(out[1])) == [moved]  # type: ignore[arg-type]


def test_runs_are_cut_at_their_size_and_at_the_size_of_all() -> None:
    rows = [RowChange(LINES.ref, Op.INSERT, {"id": n, "qty": n}) for n in range(CHUNK_ROWS + 1)]
    assert _shapes(list(gather(rows, CAPTURED, SHAPES))) == [("lines", CHUNK_ROWS), ("lines", 1)]  # type: ignore[arg-type]
    tables = [TableSchema(TableRef("shop", f"t{i}"), LINES.columns, ("id",)) for i in range(RUNS_ROWS // 100)]
    runs = RowRuns({table.ref: (table, frozenset(table.column_names), False) for table in tables})
    for table in tables:
        for n in range(100):
            assert runs.add(RowChange(table.ref, Op.INSERT, {"id": n, "qty": n}), table) == []
    # All runs together hold RUNS_ROWS changes: the next change delivers them first.
    before = runs.add(RowChange(tables[0].ref, Op.INSERT, {"id": 100, "qty": 0}), tables[0])
    assert before is not None and _shapes(before) == [(table.ref.name, 100) for table in tables]  # type: ignore[arg-type]
    assert _shapes(runs.flush()) == [(tables[0].ref.name, 1)]  # type: ignore[arg-type]
