"""Reducing committed changes to one final change per key."""

from __future__ import annotations

import datetime as dt
import random
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import pyarrow as pa
import pytest

from conveyor.connectors.arrow_rows import keys_to_batch, logged_changes
from conveyor.connectors.captured_rows import RowsChunk, row_changes
from conveyor.connectors.changes import RowChange
from conveyor.core import types as t
from conveyor.core.batch import OP, ChangeBatch, Checkpoint, LoggedChange, Op, op_array
from conveyor.core.errors import TerminalError
from conveyor.core.row_filter import ColumnFilter, Condition, FilterOp, RowFilter
from conveyor.core.schema import Column, TableRef, TableSchema
from conveyor.core.types import Kind
from conveyor.replication.cdc.reduce import TableReducer

REF = TableRef("public", "items")
TABLE = TableSchema(
    REF,
    (
        Column("id", t.simple(Kind.INT64), False),
        Column("v", t.simple(Kind.TEXT)),
        Column("big", t.simple(Kind.TEXT)),
    ),
    ("id",),
)


def change(
    op: Op, values: dict[str, Any], old: dict[str, Any] | None = None, unchanged: frozenset[str] = frozenset()
) -> RowChange:
    return RowChange(REF, op, values, old, unchanged)


def _rows(partial: Mapping[frozenset[str], pa.RecordBatch]) -> dict[frozenset[str], list[dict[str, Any]]]:
    return {unchanged: rows.to_pylist() for unchanged, rows in partial.items()}


def reduced(*changes: RowChange, table: TableSchema = TABLE) -> ChangeBatch:
    reducer = TableReducer(table, {c: c for c in table.column_names})
    for c in changes:
        reducer.add(c)
    return reducer.changes()


CASES: list[tuple[str, list[RowChange], dict[str, Any]]] = [
    (
        "insert then update is one row",
        [
            change(Op.INSERT, {"id": 1, "v": "a", "big": "B"}),
            change(Op.UPDATE, {"id": 1, "v": "b", "big": "B"}),
        ],
        {"upserts": [{"id": 1, "v": "b", "big": "B"}]},
    ),
    (
        "insert then delete is a delete",
        [change(Op.INSERT, {"id": 1, "v": "a", "big": None}), change(Op.DELETE, {}, {"id": 1})],
        {"deletes": [{"id": 1}]},
    ),
    (
        "an unchanged value is taken from the row inserted earlier in the batch",
        [
            change(Op.INSERT, {"id": 1, "v": "a", "big": "B"}),
            change(Op.UPDATE, {"id": 1, "v": "b"}, unchanged=frozenset({"big"})),
        ],
        {"upserts": [{"id": 1, "v": "b", "big": "B"}]},
    ),
    (
        "an unchanged value alone is a partial update",
        [change(Op.UPDATE, {"id": 1, "v": "b"}, unchanged=frozenset({"big"}))],
        {"partial": {frozenset({"big"}): [{"id": 1, "v": "b"}]}},
    ),
    (
        "two partial updates merge",
        [
            change(Op.UPDATE, {"id": 1, "v": "b"}, unchanged=frozenset({"big"})),
            change(Op.UPDATE, {"id": 1, "v": "c"}, unchanged=frozenset({"big"})),
        ],
        {"partial": {frozenset({"big"}): [{"id": 1, "v": "c"}]}},
    ),
    (
        "a key change deletes the old key and writes the new",
        [
            change(Op.INSERT, {"id": 1, "v": "a", "big": "B"}),
            change(Op.UPDATE, {"id": 2, "v": "a", "big": "B"}, {"id": 1}),
        ],
        {"deletes": [{"id": 1}], "upserts": [{"id": 2, "v": "a", "big": "B"}]},
    ),
    (
        "a key change takes unchanged values from the full old row",
        [
            change(
                Op.UPDATE, {"id": 2, "v": "x"}, {"id": 1, "v": "a", "big": "B"}, unchanged=frozenset({"big"})
            )
        ],
        {"deletes": [{"id": 1}], "upserts": [{"id": 2, "v": "x", "big": "B"}]},
    ),
    (
        "delete then insert again is the new row",
        [change(Op.DELETE, {}, {"id": 1}), change(Op.INSERT, {"id": 1, "v": "new", "big": None})],
        {"upserts": [{"id": 1, "v": "new", "big": None}]},
    ),
]


@pytest.mark.parametrize(("name", "changes", "expected"), CASES, ids=[c[0] for c in CASES])
def test_reduction(name: str, changes: list[RowChange], expected: dict[str, Any]) -> None:
    result = reduced(*changes)
    assert result.deletes.to_pylist() == expected.get("deletes", [])
    assert result.upserts.to_pylist() == expected.get("upserts", [])
    assert _rows(result.partial) == expected.get("partial", {})


def test_truncate_drops_what_came_before_and_keeps_what_follows() -> None:
    reducer = TableReducer(TABLE, {c: c for c in TABLE.column_names})
    reducer.add(change(Op.INSERT, {"id": 1, "v": "a", "big": None}))
    reducer.clear()
    reducer.add(change(Op.INSERT, {"id": 2, "v": "b", "big": None}))
    result = reducer.changes()
    assert result.truncate and result.upserts.to_pylist() == [{"id": 2, "v": "b", "big": None}]
    assert (reducer.inserts, reducer.updates, reducer.deletes) == (2, 0, 0)


def test_renamed_and_removed_columns() -> None:
    target = TableSchema(
        REF, (Column("ID", t.simple(Kind.INT64), False), Column("V", t.simple(Kind.TEXT))), ("ID",)
    )
    reducer = TableReducer(target, {"id": "ID", "v": "V"})
    reducer.add(change(Op.INSERT, {"id": 1, "v": "a", "big": "dropped"}))
    assert reducer.changes().upserts.to_pylist() == [{"ID": 1, "V": "a"}]


def test_without_a_primary_key_rows_are_appended_and_deletes_refused() -> None:
    keyless = TableSchema(REF, TABLE.columns)
    reducer = TableReducer(keyless, {c: c for c in keyless.column_names})
    reducer.add(change(Op.INSERT, {"id": 1, "v": "a", "big": None}))
    reducer.add(change(Op.INSERT, {"id": 1, "v": "a", "big": None}))
    assert len(reducer.changes().upserts) == 2
    with pytest.raises(TerminalError, match="without a primary key"):
        reducer.add(change(Op.DELETE, {}, {"id": 1, "v": "a", "big": None}))


def test_a_key_change_with_unsent_values_and_no_old_row_asks_for_a_reload() -> None:
    with pytest.raises(TerminalError, match="reload the table"):
        reduced(change(Op.UPDATE, {"id": 2, "v": "x"}, {"id": 1}, unchanged=frozenset({"big"})))


# A row filter (selection rule filters): v = 'in'. A change whose new row fails it
# deletes the key on the target (it may be there from before); one that passes is
# an upsert of the whole row (moving in inserts it).
IN_FILTER = RowFilter(
    (ColumnFilter("v", Kind.TEXT, (Condition(FilterOp.EQ, ("in",)),)),),
)
FILTER_CASES: list[tuple[str, list[RowChange], dict[str, Any]]] = [
    (
        "an insert that passes",
        [change(Op.INSERT, {"id": 1, "v": "in", "big": "B"})],
        {"upserts": [{"id": 1, "v": "in", "big": "B"}]},
    ),
    (
        "an insert that fails deletes its key",
        [change(Op.INSERT, {"id": 1, "v": "out", "big": "B"})],
        {"deletes": [{"id": 1}]},
    ),
    (
        "an update moving out deletes",
        [change(Op.UPDATE, {"id": 1, "v": "out", "big": "B"})],
        {"deletes": [{"id": 1}]},
    ),
    (
        "an update moving in is the whole row",
        [change(Op.UPDATE, {"id": 1, "v": "in", "big": "B"})],
        {"upserts": [{"id": 1, "v": "in", "big": "B"}]},
    ),
    (
        "a key change moving out deletes old and new keys",
        [change(Op.UPDATE, {"id": 2, "v": "out", "big": "B"}, {"id": 1})],
        {"deletes": [{"id": 1}, {"id": 2}]},
    ),
    (
        "a filtered column not sent kept its value: the update stays partial",
        [change(Op.UPDATE, {"id": 1, "big": "C"}, unchanged=frozenset({"v"}))],
        {"partial": {frozenset({"v"}): [{"id": 1, "big": "C"}]}},
    ),
    ("a delete is a delete", [change(Op.DELETE, {}, {"id": 1})], {"deletes": [{"id": 1}]}),
    (
        "a partial update moving in takes the unchanged values from the old row",
        [change(Op.UPDATE, {"id": 1, "v": "in"}, {"id": 1, "v": "out", "big": "B"}, frozenset({"big"}))],
        {"upserts": [{"id": 1, "v": "in", "big": "B"}]},
    ),
    (
        "a partial update that was in already is made whole too",
        [change(Op.UPDATE, {"id": 1, "v": "in"}, {"id": 1, "v": "in", "big": "B"}, frozenset({"big"}))],
        {"upserts": [{"id": 1, "v": "in", "big": "B"}]},
    ),
    (
        "an unsent filtered value is the old one: a row whose old value fails stays out",
        [change(Op.UPDATE, {"id": 1, "big": "C"}, {"id": 1, "v": "out", "big": "B"}, frozenset({"v"}))],
        {"deletes": [{"id": 1}]},
    ),
    (
        "in, then out, in one batch",
        [
            change(Op.INSERT, {"id": 1, "v": "in", "big": "B"}),
            change(Op.UPDATE, {"id": 1, "v": "out", "big": "B"}),
        ],
        {"deletes": [{"id": 1}]},
    ),
]


@pytest.mark.parametrize(
    ("changes", "expected"), [c[1:] for c in FILTER_CASES], ids=[c[0] for c in FILTER_CASES]
)
def test_row_filter(changes: list[RowChange], expected: dict[str, Any]) -> None:
    reducer = TableReducer(TABLE, {c: c for c in TABLE.column_names}, row_filter=IN_FILTER)
    for c in changes:
        reducer.add(c)
    out = reducer.changes()
    assert not reducer.passes_encoded
    assert sorted(out.deletes.to_pylist(), key=lambda d: d["id"]) == expected.get("deletes", [])
    assert out.upserts.to_pylist() == expected.get("upserts", [])
    assert _rows(out.partial) == expected.get("partial", {})


def test_a_sent_filtered_value_that_fails_moves_the_row_out_though_another_is_unsent() -> None:
    both = RowFilter(
        (
            ColumnFilter("v", Kind.TEXT, (Condition(FilterOp.EQ, ("in",)),)),
            ColumnFilter("big", Kind.TEXT, (Condition(FilterOp.NOTNULL),)),
        )
    )
    reducer = TableReducer(TABLE, {c: c for c in TABLE.column_names}, row_filter=both)
    reducer.add(change(Op.UPDATE, {"id": 1, "big": None}, unchanged=frozenset({"v"})))
    reducer.add(change(Op.UPDATE, {"id": 2, "big": "x"}, unchanged=frozenset({"v"})))
    out = reducer.changes()
    assert out.deletes.to_pylist() == [{"id": 1}]
    assert _rows(out.partial) == {frozenset({"v"}): [{"id": 2, "big": "x"}]}


def test_an_update_moving_out_of_the_filter_is_a_delete_in_the_change_log() -> None:
    reducer = TableReducer(TABLE, {c: c for c in TABLE.column_names}, row_filter=IN_FILTER, log=[])
    anchor = Checkpoint("test", {"n": 1})
    reducer.add(change(Op.INSERT, {"id": 1, "v": "in", "big": "B"}), (anchor, 0))
    reducer.add(change(Op.UPDATE, {"id": 1, "v": "out", "big": "B"}), (anchor, 1))
    reducer.add(change(Op.INSERT, {"id": 2, "v": "out", "big": "B"}), (anchor, 2))  # never in: no entry
    reducer.add(change(Op.UPDATE, {"id": 4, "v": "out", "big": "C"}, {"id": 3, "v": "in"}), (anchor, 3))
    log = reducer.changes().log
    assert [(c.op, c.before, c.index) for c in log] == [
        ("c", None, 0),
        ("d", {"id": 1}, 1),
        ("d", {"id": 3, "v": "in"}, 3),
    ]
    out = reducer.changes()  # a change-log applier reads the log alone: no rows are reduced
    assert (out.upserts.num_rows, out.deletes.num_rows, out.partial) == (0, 0, {})


def test_a_change_log_takes_captured_and_row_changes_in_order_without_folding() -> None:
    reducer = TableReducer(PAIR, PAIR_COLUMNS, log=[], logs_rows=True)
    anchor = Checkpoint("test", {"n": 1})
    assert reducer.add_captured(_captured("c", [{"a": 1, "b": "x", "v": "1"}]), (anchor, 0))
    reducer.add(RowChange(PAIR.ref, Op.UPDATE, {"a": 1, "b": "x", "v": "2"}), (anchor, 1))
    assert reducer.pending and reducer.touched_keys() == [(1, "x")]
    out = reducer.changes()
    assert [(c.op, c.after) for c in logged_changes(out.log)] == [
        ("c", {"a": 1, "b": "x", "v": "1"}),
        ("u", {"a": 1, "b": "x", "v": "2"}),
    ]
    assert not out.upserts.num_rows


def test_touched_keys_name_every_key_a_batch_changes_or_the_whole_table() -> None:
    """Validation during capture queues these keys (replication.cdc.validation)."""
    reducer = TableReducer(TABLE, {c: c for c in TABLE.column_names})
    reducer.add(change(Op.INSERT, {"id": 1, "v": "a", "big": None}))
    reducer.add(change(Op.UPDATE, {"id": 3, "v": "b", "big": None}, {"id": 2}))  # a key change
    reducer.add(change(Op.DELETE, {}, {"id": 4}))
    assert sorted(reducer.touched_keys() or []) == [(1,), (2,), (3,), (4,)]
    reducer.clear()
    assert reducer.touched_keys() is None  # a TRUNCATE: every row
    keyless = TableReducer(TableSchema(REF, TABLE.columns), {c: c for c in TABLE.column_names})
    keyless.add(change(Op.INSERT, {"id": 1, "v": "a", "big": None}))
    assert keyless.touched_keys() is None


def test_captured_encoded_rows_reduce_without_importing_pandas() -> None:
    """pyarrow's ``pa.array`` imports pandas on its first call (~50 MB, up to a
    second): a PostgreSQL->PostgreSQL capture, whose rows pass encoded, never
    needs it, from the stream's captured batch to the reduced one."""
    code = (
        "import sys\n"
        "import pyarrow as pa\n"
        "from conveyor.core import types as t\n"
        "from conveyor.core.schema import Column, TableRef, TableSchema\n"
        "from conveyor.core.types import Kind\n"
        "from conveyor.replication.cdc.reduce import TableReducer\n"
        "from conveyor.connectors.postgres.capture_decode import Chunk\n"
        "table = TableSchema(TableRef('public', 'items'), [Column('id', t.simple(Kind.INT64), False),"
        " Column('d', t.simple(Kind.DATE))], ('id',))\n"
        "reducer = TableReducer(table, {'id': 'id', 'd': 'd'})\n"
        "chunk = Chunk()\n"
        "chunk.add(table, True, b'1\\t2024-01-01\\n', (1,))\n"
        "chunk.add(table, False, b'2\\t2024-01-02\\n', (2,))\n"
        "chunk.add(table, True, b'1\\t2024-01-03\\n', (1,))\n"
        "[captured] = chunk.take()\n"
        "assert captured.changes.schema.field('conveyor_encoded').type == pa.large_binary()\n"
        "assert reducer.add_captured(captured) and (reducer.inserts, reducer.updates) == (1, 2)\n"
        "out = reducer.changes()\n"
        "assert out.encoded_rows() == [b'2\\t2024-01-02\\n', b'1\\t2024-01-03\\n'], out\n"
        "assert bytes(out.encoded_data()) == b'2\\t2024-01-02\\n1\\t2024-01-03\\n' and out.num_rows == 2\n"
        "assert out.upserts.schema.field('d').type == t.simple(Kind.DATE).arrow(), out.upserts.schema\n"
        "assert out.deletes.schema.names == ['id'] and out.deletes.num_rows == 0\n"
        "print('pandas' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


CHILD = TableRef("dynamodb", "Orders_Items")
LINES = TableSchema(
    TableRef("main", "order_items"),
    (Column("order_id", t.simple(Kind.TEXT), False), Column("sku", t.simple(Kind.TEXT))),
)


def grouped(carry: Any = None) -> TableReducer:
    """A child table whose mapping removed ``position``: replaced per parent."""
    rename = {"OrderId": "order_id", "Sku": "sku"}
    return TableReducer(
        LINES, rename, group_key=("order_id",), source_key=("OrderId", "position"), carry=carry
    )


def line(op: Op, order: str, position: int, sku: str | None = None) -> RowChange:
    key = {"OrderId": order, "position": position}
    values = key if sku is None else {**key, "Sku": sku}
    return RowChange(CHILD, op, values, old_key=key)


def test_a_child_table_keyed_by_its_parent_replaces_the_parents_rows() -> None:
    reducer = grouped()
    for position in range(8):
        reducer.add(line(Op.UPDATE, "o1", position, f"s{position}"))
    reducer.add(line(Op.UPDATE, "o2", 0, "x"))
    reducer.add(line(Op.DELETE, "o2", 1))
    reducer.add(line(Op.DELETE, "o3", 0))
    changes = reducer.changes()
    assert changes.key_is_group and changes.table.primary_key == ("order_id",)
    assert changes.deletes.to_pylist() == [{"order_id": "o1"}, {"order_id": "o2"}, {"order_id": "o3"}]
    assert changes.upserts.to_pylist() == [{"order_id": "o1", "sku": f"s{p}"} for p in range(8)] + [
        {"order_id": "o2", "sku": "x"}
    ]
    assert (reducer.updates, reducer.deletes) == (9, 2)


def test_a_change_logs_batch_of_a_child_table_is_keyed_by_its_parent() -> None:
    """No rows are reduced for a change-log applier; its batch is still keyed
    as the rows would be (the lake tells a moved key by it)."""
    reducer = replace(grouped(), log=[])
    reducer.add(line(Op.UPDATE, "o1", 0, "a"), (Checkpoint("test", {}), 0))
    changes = reducer.changes()
    assert changes.key_is_group and changes.table.primary_key == ("order_id",)
    assert not changes.upserts.num_rows and [c.op for c in changes.log] == ["u"]


def test_a_parent_cut_by_a_batch_boundary_continues_in_the_next_batch() -> None:
    first = grouped()
    first.add(line(Op.UPDATE, "o0", 0, "a"))
    for position in range(3):
        first.add(line(Op.UPDATE, "o1", position, f"s{position}"))
    assert first.changes().upserts.num_rows == 4
    second = grouped(first.open_group)
    for position in range(3, 5):
        second.add(line(Op.UPDATE, "o1", position, f"s{position}"))
    changes = second.changes()
    assert changes.deletes.to_pylist() == [{"order_id": "o1"}]
    assert changes.upserts.to_pylist() == [{"order_id": "o1", "sku": f"s{p}"} for p in range(5)]
    # A batch that does not touch the carried parent hands over nothing of it.
    third = grouped(second.open_group)
    third.add(line(Op.UPDATE, "o9", 0, "z"))
    assert third.changes().upserts.to_pylist() == [{"order_id": "o9", "sku": "z"}]


# Captured changes (ChangeBatch.captured), reduced in Arrow.

PAIR = TableSchema(
    TableRef("public", "pair"),
    (
        Column("a", t.simple(Kind.INT64), False),
        Column("b", t.simple(Kind.TEXT), False),
        Column("v", t.simple(Kind.TEXT)),
    ),
    ("a", "b"),
)
PAIR_COLUMNS = {"a": "a", "b": "b", "v": "v"}


def _captured(ops: str, rows: list[dict[str, Any]]) -> ChangeBatch:
    columns = [op_array(ops.encode())]
    columns += [pa.array([r[c] for r in rows], PAIR.column(c).type.arrow()) for c in PAIR.column_names]
    return ChangeBatch.captured(PAIR, pa.RecordBatch.from_arrays(columns, names=[OP, *PAIR.column_names]))


def _sorted(batch: pa.RecordBatch, key: Sequence[str] = ("a", "b")) -> list[dict[str, Any]]:
    return sorted(batch.to_pylist(), key=lambda r: tuple(r[k] for k in key))


RENAMED = TableSchema(
    TableRef("public", "renamed"),
    (Column("A", t.simple(Kind.INT64), False), Column("B", t.simple(Kind.TEXT), False)),
    ("A", "B"),
)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize(
    ("target", "columns"), [(PAIR, PAIR_COLUMNS), (RENAMED, {"a": "A", "b": "B"})], ids=["same", "renamed"]
)
def test_captured_changes_reduce_in_arrow_as_one_by_one(
    seed: int, target: TableSchema, columns: dict[str, str]
) -> None:
    """Random changes over a few composite keys, captured in two batches and
    reduced in Arrow, give the rows, keys and counts the change-by-change
    reducer gives (the captured UPDATE's old key is its key); also through a
    mapping that renames columns and removes one."""
    rng = random.Random(seed)
    key = target.primary_key
    for _ in range(40):
        n = rng.randint(1, 40)
        ops = "".join(rng.choice("cud") for _ in range(n))
        rows = [
            {"a": rng.randint(0, 4), "b": rng.choice("xy"), "v": None if op == "d" else f"v{i}"}
            for i, op in enumerate(ops)
        ]
        one_by_one = TableReducer(target, columns)
        for change_ in row_changes(_captured(ops, rows)):
            one_by_one.add(change_)
        whole = TableReducer(target, columns)
        cut = rng.randint(1, n)
        assert whole.add_captured(_captured(ops[:cut], rows[:cut]))
        if cut < n:
            assert whole.add_captured(_captured(ops[cut:], rows[cut:]))
        want, got = one_by_one.changes(), whole.changes()
        assert _sorted(got.upserts, key) == _sorted(want.upserts, key)
        assert _sorted(got.deletes, key) == _sorted(want.deletes, key)
        assert got.upserts.schema == want.upserts.schema and got.deletes.schema == want.deletes.schema
        assert (whole.inserts, whole.updates, whole.deletes) == (
            one_by_one.inserts,
            one_by_one.updates,
            one_by_one.deletes,
        )


def test_a_change_one_by_one_after_captured_ones_applies_after_them() -> None:
    reducer = TableReducer(PAIR, PAIR_COLUMNS)
    assert reducer.add_captured(_captured("cc", [{"a": 1, "b": "x", "v": "1"}, {"a": 2, "b": "x", "v": "2"}]))
    reducer.add(RowChange(PAIR.ref, Op.DELETE, {"a": 1, "b": "x"}, {"a": 1, "b": "x"}))
    assert reducer.add_captured(_captured("u", [{"a": 2, "b": "x", "v": "3"}]))
    out = reducer.changes()
    assert out.upserts.to_pylist() == [{"a": 2, "b": "x", "v": "3"}]
    assert out.deletes.to_pylist() == [{"a": 1, "b": "x"}]


def test_captured_changes_a_mapping_needs_one_by_one_are_taken_one_at_a_time() -> None:
    """An added column the reducer cannot compute in Arrow or a change log
    of an applier that takes changes one by one needs each change: the
    reducer takes the captured batch's changes one at a time. A filter
    alone, with key histories or with a change log is judged in Arrow
    (test_captured_mappings, test_captured_old_rows)."""
    only_1 = RowFilter((ColumnFilter("v", Kind.TEXT, (Condition(FilterOp.EQ, ("1",)),)),))
    added = TableReducer(PAIR, PAIR_COLUMNS, added=lambda rows, op: [{"v": f"added {op}"} for _ in rows])
    assert not added.add_captured(_captured("c", [{"a": 1, "b": "x", "v": "1"}]))
    assert added.inserts == 1 and added.changes().upserts.to_pylist() == [{"a": 1, "b": "x", "v": "added c"}]
    logged = TableReducer(PAIR, PAIR_COLUMNS, log=[])
    assert not logged.add_captured(_captured("c", [{"a": 1, "b": "x", "v": "1"}]), (Checkpoint("pg", {}), 4))
    assert logged.log == [LoggedChange("c", None, {"a": 1, "b": "x", "v": "1"}, Checkpoint("pg", {}), 4)]
    # What the runner asks a stream for (CapturesRowsInArrow) agrees.
    assert not added.takes_whole and not logged.takes_whole
    filtered_log = TableReducer(PAIR, PAIR_COLUMNS, row_filter=only_1, log=[], logs_rows=True)
    assert filtered_log.takes_whole and filtered_log.keeps_before  # a moved-out row's old row
    assert TableReducer(PAIR, PAIR_COLUMNS).takes_whole
    assert TableReducer(PAIR, PAIR_COLUMNS, row_filter=only_1).takes_whole
    assert TableReducer(PAIR, PAIR_COLUMNS, log=[], logs_rows=True).takes_whole
    assert TableReducer(PAIR, PAIR_COLUMNS, check_keys=True).takes_whole  # histories in Arrow
    assert TableReducer(PAIR, PAIR_COLUMNS, row_filter=only_1, check_keys=True).takes_whole


def test_a_truncate_drops_the_captured_changes_before_it() -> None:
    reducer = TableReducer(PAIR, PAIR_COLUMNS)
    assert reducer.add_captured(_captured("c", [{"a": 1, "b": "x", "v": "1"}]))
    reducer.clear()
    assert reducer.add_captured(_captured("c", [{"a": 2, "b": "y", "v": "2"}]))
    out = reducer.changes()
    assert out.truncate and out.upserts.to_pylist() == [{"a": 2, "b": "y", "v": "2"}]


def test_captured_changes_of_a_single_column_key_reduce_to_the_last_per_key() -> None:
    """One key column: every key once passes as it is (found by hashing);
    a repeated key keeps its last change, in commit order."""
    single = replace(PAIR, primary_key=("a",))
    reducer = TableReducer(single, PAIR_COLUMNS)
    rows = [{"a": 1, "b": "x", "v": "1"}, {"a": 2, "b": "x", "v": "2"}]
    assert reducer.add_captured(replace(_captured("cu", rows), table=single))
    assert reducer.changes().upserts.to_pylist() == rows
    reducer = TableReducer(single, PAIR_COLUMNS)
    rows = [{"a": 1, "b": "x", "v": "1"}, {"a": 2, "b": "x", "v": "2"}, {"a": 1, "b": "y", "v": None}]
    assert reducer.add_captured(replace(_captured("cud", rows), table=single))
    out = reducer.changes()
    assert out.upserts.to_pylist() == [rows[1]] and out.deletes.to_pylist() == [{"a": 1}]


@pytest.mark.parametrize(
    ("start", "length", "want"),
    [(0, 3, b"abcdef"), (1, 2, b"cdef"), (1, 1, b"cde"), (0, 0, b""), (2, 1, b"f")],
)
def test_encoded_data_is_the_rows_of_an_arrow_slice(start: int, length: int, want: bytes) -> None:
    """The applier COPYs ``encoded_data`` as one buffer: a slice's own rows,
    whichever offset width the array has."""
    rows = [b"ab", b"cde", b"f"]
    empty = pa.RecordBatch.from_arrays([], names=[])
    for array in (pa.array(rows, pa.binary()), pa.array(rows, pa.large_binary())):
        changes = ChangeBatch(PAIR, empty, empty, encoded=array.slice(start, length))
        assert bytes(changes.encoded_data()) == want
        assert changes.encoded_rows() == rows[start : start + length]
    assert ChangeBatch(PAIR, empty, empty, encoded=rows[start : start + length]).encoded_data() == want


@pytest.mark.parametrize(
    ("kind", "values"),
    [
        (Kind.INT16, [1, -2, 2**15 - 1]),
        (Kind.INT32, [-(2**31), 7]),
        (Kind.INT64, [-(2**63), 2**63 - 1]),
        (Kind.INT64, [None, 1]),  # not ints alone: through pa.array
    ],
)
def test_integer_keys_built_from_a_buffer_hold_the_values(kind: Kind, values: list[Any]) -> None:
    table = TableSchema(REF, (Column("k", t.simple(kind), False),), ("k",))
    keys = keys_to_batch(table, [(v,) for v in values])
    assert keys.column(0).type == t.simple(kind).arrow() and keys.column(0).to_pylist() == values


def test_an_integer_key_out_of_its_range_is_refused() -> None:
    table = TableSchema(REF, (Column("k", t.simple(Kind.INT16), False),), ("k",))
    with pytest.raises(pa.ArrowInvalid):
        keys_to_batch(table, [(2**15,)])


def test_captured_infinite_dates_fold_and_expand_as_the_streams_strings() -> None:
    """An infinite date or timestamp has no Python value: folded into the
    per-key state (a row change after captured ones) or handed over one by
    one, it is the string a stream delivers, and the batch keeps it exact."""
    dated = TableSchema(
        TableRef("public", "dated"),
        (
            Column("id", t.simple(Kind.INT64), False),
            Column("d", t.simple(Kind.DATE)),
            Column("ts", t.simple(Kind.TIMESTAMPTZ)),
        ),
        ("id",),
    )
    chunk = RowsChunk(dated)
    chunk.add(b"c", {"id": 1, "d": "infinity", "ts": "-infinity"})
    chunk.add(b"c", {"id": 2, "d": dt.date(2024, 2, 29), "ts": None})
    (captured,) = chunk.take()
    assert isinstance(captured, ChangeBatch)
    assert [c.values for c in row_changes(captured)] == [
        {"id": 1, "d": "infinity", "ts": "-infinity"},
        {"id": 2, "d": dt.date(2024, 2, 29), "ts": None},
    ]
    reducer = TableReducer(dated, {c: c for c in dated.column_names})
    assert reducer.add_captured(captured)
    reducer.add(RowChange(dated.ref, Op.UPDATE, {"id": 2, "d": "-infinity", "ts": "infinity"}))
    out = reducer.changes()
    raw = out.upserts.sort_by("id")
    assert raw.column("d").view(pa.int32()).to_pylist() == [t.DATE_INFINITY, t.DATE_NEG_INFINITY]
    assert raw.column("ts").view(pa.int64()).to_pylist() == [t.INT64_NEG_INFINITY, t.INT64_INFINITY]
