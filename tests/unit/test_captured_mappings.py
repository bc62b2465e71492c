"""Captured changes of a table whose mapping filters rows (selection rule
filters), converts (change-data-type, limited LOB mode) and masks columns
are taken whole, in Arrow, and give what the change-by-change reducer gives
for the same changes; a value that does not convert sends the batch one by
one, where the change is named."""

from __future__ import annotations

import logging
import random
from typing import Any

import pyarrow as pa
import pytest

from conveyor.connectors.arrow_rows import logged_changes
from conveyor.connectors.captured_rows import whole_row
from conveyor.connectors.changes import RowChange
from conveyor.core import row_filter as row_filters
from conveyor.core.batch import ChangeBatch, Checkpoint, KeyHistory, Logged, LoggedChange, LoggedRows, Op
from conveyor.core.errors import DataError
from conveyor.core.row_filter import ColumnFilter, Condition, FilterOp, RowFilter
from conveyor.core.schema import Column, TableRef, TableSchema
from conveyor.core.types import Kind, simple
from conveyor.replication.cdc import change_filter
from conveyor.replication.cdc.capture_table import table_reducer
from conveyor.replication.cdc.change_filter import judge
from conveyor.replication.mapped_table import MappedTable
from conveyor.replication.mappings import TableMappings
from conveyor.replication.settings import TargetMetadata
from support.captured import captured

REF = TableRef("app", "docs")
DOCS = TableSchema(
    REF,
    (
        Column("id", simple(Kind.INT64), nullable=False),
        Column("n", simple(Kind.INT64)),
        Column("qty", simple(Kind.TEXT, "varchar")),
        Column("phone", simple(Kind.TEXT, "varchar")),
        Column("body", simple(Kind.TEXT, "text")),
        Column("note", simple(Kind.TEXT, "varchar")),
    ),
    ("id",),
)
SELECT = {
    "rule-type": "selection",
    "rule-id": "1",
    "rule-name": "docs",
    "object-locator": {"schema-name": "app", "table-name": "docs"},
    "rule-action": "include",
}


def _column_rule(rule_id: int, column: str, action: str, **more: Any) -> dict[str, Any]:
    return {
        "rule-type": "transformation",
        "rule-id": str(rule_id),
        "rule-name": f"r{rule_id}",
        "rule-target": "column",
        "object-locator": {"schema-name": "app", "table-name": "docs", "column-name": column},
        "rule-action": action,
        **more,
    }


FILTERS = [
    {
        "filter-type": "source",
        "column-name": "n",
        "filter-conditions": [{"filter-operator": "between", "start-value": "100", "end-value": "3000"}],
    },
    {
        "filter-type": "source",
        "column-name": "note",
        "filter-conditions": [{"filter-operator": "gte", "value": "n1"}],
    },
]


def _added(rule_id: int, name: str, expression: str, data_type: dict[str, Any]) -> dict[str, Any]:
    return {
        "rule-type": "transformation",
        "rule-id": str(rule_id),
        "rule-name": f"r{rule_id}",
        "rule-target": "column",
        "object-locator": {"schema-name": "app", "table-name": "docs"},
        "rule-action": "add-column",
        "value": name,
        "expression": expression,
        "data-type": data_type,
    }


ADDED = [
    _added(5, "op", "$AR_H_OPERATION", {"type": "string", "length": 10}),
    _added(6, "tag", "$note || ':' || $phone", {"type": "string", "length": 100}),
    _added(7, "twice", "$n * 2", {"type": "int8"}),
]
# masked after it is added, as the full load masks it
MASK_TAG = _column_rule(8, "tag", "data-masking-digits-mask", value="*")


def _mapped(mask: str, filtered: bool = False, added: bool = False) -> MappedTable:
    rules = [
        {**SELECT, "filters": FILTERS} if filtered else SELECT,
        *((*ADDED, MASK_TAG) if added else ()),
        _column_rule(2, "qty", "change-data-type", **{"data-type": {"type": "int4"}}),
        _column_rule(3, "phone", mask, **({"value": "#"} if mask == "data-masking-digits-mask" else {})),
        _column_rule(4, "note", "rename", value="remark"),
    ]
    limited = TargetMetadata.model_validate({"LimitedSizeLobMode": True, "LobMaxSize": 1})
    [mapped] = TableMappings.parse({"rules": rules}, "mappings.json").for_task(limited).select([DOCS])
    assert mapped.conversions and mapped.masks and mapped.lob_limit is not None
    assert (mapped.row_filter is not None) == filtered
    assert (mapped.evaluator is not None) == added
    return mapped


def _changes(rng: random.Random, n: int) -> list[RowChange]:
    there = {i for i in range(6) if rng.random() < 0.5}
    out: list[RowChange] = []
    for i in range(n):
        key = rng.randint(0, 5)
        row = {
            "id": key,
            "n": None if rng.random() < 0.1 else rng.randint(-5, 5000),
            "qty": None if rng.random() < 0.1 else str(rng.randint(-5, 5000)),
            "phone": None if rng.random() < 0.1 else f"555-01{i:02d}",
            "body": "é" * rng.choice([3, 700]),  # 1,400 bytes: over the 1 KB limit
            "note": f"n{i}",
        }
        if key not in there:
            out.append(RowChange(REF, Op.INSERT, row))
            there.add(key)
        elif rng.random() < 0.2:
            out.append(RowChange(REF, Op.DELETE, {"id": key}, old_key={"id": key}))
            there.discard(key)
        else:
            unsent = frozenset(rng.choice([(), ("body",), ("phone", "body"), ("qty", "note"), ("n",)]))
            out.append(
                RowChange(REF, Op.UPDATE, {c: v for c, v in row.items() if c not in unsent}, unchanged=unsent)
            )
    return out


def _chunk(changes: list[RowChange]) -> ChangeBatch:
    return captured(changes, DOCS)


def _checks(batch: ChangeBatch) -> dict[int, KeyHistory] | None:
    if batch.checks is None:
        return None
    return {k["id"]: h for k, h in zip(batch.checks.keys.to_pylist(), batch.checks.history, strict=True)}


def _sorted(rows: pa.RecordBatch) -> list[dict[str, Any]]:
    return sorted(rows.to_pylist(), key=lambda r: r["id"])


@pytest.mark.parametrize("added", [False, True], ids=["", "added"])
@pytest.mark.parametrize("filtered", [False, True], ids=["all", "filtered"])
@pytest.mark.parametrize("mask", ["data-masking-digits-mask", "data-masking-hash-mask"])
@pytest.mark.parametrize("seed", range(4))
def test_filtered_added_converted_and_masked_changes_reduce_in_arrow_as_one_by_one(
    seed: int, mask: str, filtered: bool, added: bool
) -> None:
    rng = random.Random(seed)
    mapped = _mapped(mask, filtered, added)
    for _ in range(20):
        changes = _changes(rng, rng.randint(1, 30))
        check_keys = rng.random() < 0.5  # apply conflicts judged: each key's history
        one_by_one = table_reducer(mapped, check_keys=check_keys)
        for c in changes:
            one_by_one.add(c)
        in_arrow = table_reducer(mapped, check_keys=check_keys)
        assert in_arrow.takes_whole
        cut = rng.randint(1, len(changes))
        assert in_arrow.add_captured(_chunk(changes[:cut]))
        if cut < len(changes):
            assert in_arrow.add_captured(_chunk(changes[cut:]))
        folded = table_reducer(mapped, check_keys=check_keys)  # a change one by one folds the captured
        assert folded.add_captured(_chunk(changes[:cut]))
        for c in changes[cut:]:
            folded.add(c)
        want = one_by_one.changes()
        assert all(len(r["body"].encode()) <= 1024 for r in want.upserts.to_pylist())
        for got, reducer in ((in_arrow.changes(), in_arrow), (folded.changes(), folded)):
            assert (reducer.inserts, reducer.updates, reducer.deletes, reducer.filtered) == (
                one_by_one.inserts,
                one_by_one.updates,
                one_by_one.deletes,
                one_by_one.filtered,
            )
            assert _sorted(got.upserts) == _sorted(want.upserts)
            assert got.upserts.schema == want.upserts.schema
            assert _checks(got) == _checks(want)
            assert got.upserts.schema.types == mapped.target.arrow_schema().types
            assert _sorted(got.deletes) == _sorted(want.deletes)
            assert {u: _sorted(r) for u, r in got.partial.items() if r.num_rows} == {
                u: _sorted(r) for u, r in want.partial.items() if r.num_rows
            }


def test_a_change_log_holds_the_converted_and_masked_rows_a_deletes_old_row_too() -> None:
    """A DELETE's old row (REPLICA IDENTITY FULL) is published: masked as the rows written."""
    mapped = _mapped("data-masking-digits-mask")
    old = {
        "id": 2,
        "n": 1,
        "qty": "9",
        "phone": "555-0202",
        "body": "c",
        "note": "o",
    }  # REPLICA IDENTITY FULL
    changes = [
        RowChange(
            REF, Op.INSERT, {"id": 1, "n": 1, "qty": "7", "phone": "555-0101", "body": "b", "note": "n"}
        ),
        RowChange(
            REF, Op.UPDATE, {"id": 1, "n": 1, "qty": "8", "note": "m"}, unchanged=frozenset({"phone", "body"})
        ),
        RowChange(REF, Op.DELETE, old, old_key=old),
    ]
    reducer = table_reducer(mapped, keep_log=True, log_rows=True)
    assert reducer.add_captured(_chunk(changes), (Checkpoint("postgres", {"lsn": "0/1"}), 0))
    assert reducer.log is not None
    [logged] = reducer.log
    assert isinstance(logged, LoggedRows)
    assert logged.rows.column("qty").type == pa.int32()
    assert logged.rows.column("phone").to_pylist() == ["###-####", None, "###-####"]
    one_by_one = table_reducer(mapped, keep_log=True)
    for i, c in enumerate(changes):
        one_by_one.add(c, (Checkpoint("postgres", {"lsn": "0/1"}), i))
    assert one_by_one.log is not None

    def rows(log: list[LoggedChange]) -> list[tuple[str, dict[str, Any] | None]]:
        return [(c.op, c.before if c.op == "d" else c.after) for c in log]

    assert rows(list(logged_changes(reducer.log))) == rows(list(logged_changes(one_by_one.log)))


def test_a_value_that_does_not_convert_sends_the_batch_one_by_one_where_it_is_named() -> None:
    mapped = _mapped("data-masking-digits-mask")
    good = RowChange(REF, Op.INSERT, {"id": 1, "n": 1, "qty": "7", "phone": None, "body": "b", "note": "n"})
    bad = RowChange(
        REF, Op.INSERT, {"id": 2, "n": 1, "qty": "twelve", "phone": None, "body": "b", "note": "n"}
    )
    reducer = table_reducer(mapped)
    with pytest.raises(DataError, match="'twelve' cannot be converted to int32"):
        reducer.add_captured(_chunk([good, bad]))
    assert reducer.inserts == 1  # one at a time: the change before it was taken


def test_cuts_in_arrow_are_logged_as_one_by_one(caplog: pytest.LogCaptureFixture) -> None:
    """The first cut of a column, then one in every thousand, with the count so far."""
    mapped = _mapped("data-masking-digits-mask")
    long = {"n": 1, "qty": "1", "phone": None, "body": "x" * 2000, "note": "n"}
    reducer = table_reducer(mapped)
    caplog.set_level(logging.WARNING, logger="conveyor.replication.lob_limits")
    for start in (0, 600, 1200):
        batch = [RowChange(REF, Op.INSERT, {"id": i, **long}) for i in range(start, start + 600)]
        assert reducer.add_captured(_chunk(batch))
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 2, said
    assert said[0].endswith("600 value(s) cut in change capture so far")
    assert said[1].endswith("1200 value(s) cut in change capture so far")
    assert {len(b) for b in reducer.changes().upserts.column("body").to_pylist()} == {1024}


def test_a_partial_update_passing_the_filter_is_said_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(change_filter, "_WARNED", set())
    mapped = _mapped("data-masking-digits-mask", filtered=True)
    partial = RowChange(
        REF, Op.UPDATE, {"id": 1, "n": 200, "note": "n5"}, unchanged=frozenset({"qty", "phone", "body"})
    )
    failing = RowChange(
        REF, Op.UPDATE, {"id": 2, "n": 5, "note": "n5"}, unchanged=frozenset({"qty", "phone", "body"})
    )
    reducer = table_reducer(mapped)
    assert reducer.add_captured(_chunk([failing]))
    assert not caplog.messages  # moved out: nothing is missed
    assert reducer.add_captured(_chunk([partial, partial]))
    assert reducer.add_captured(_chunk([partial]))
    [said] = caplog.messages
    assert said.startswith(
        "table app.docs: an UPDATE that passes the source filter left values unsent (body, phone, qty)"
    )
    out = reducer.changes()
    assert out.deletes.to_pylist() == [{"id": 2}] and reducer.filtered == 1 and reducer.updates == 3


def test_a_partial_update_whose_old_row_came_whole_is_judged_whole() -> None:
    """REPLICA IDENTITY FULL: the unsent values are the old row's, so a row
    moving into the filter arrives whole, as one by one."""
    mapped = _mapped("data-masking-digits-mask", filtered=True)
    old = {"id": 1, "n": 5, "qty": "3", "phone": None, "body": "b", "note": "n7"}
    moved_in = RowChange(
        REF, Op.UPDATE, {"id": 1, "n": 500, "note": "n7"}, old, frozenset({"qty", "phone", "body"})
    )
    assert whole_row(moved_in, DOCS, set(DOCS.column_names)) == (b"u", {**old, "n": 500}, frozenset(), None)
    # the old row itself too, when asked (``BEFORE``)
    assert whole_row(moved_in, DOCS, set(DOCS.column_names), True) == (
        b"u",
        {**old, "n": 500},
        frozenset(),
        old,
    )
    in_arrow, one_by_one = table_reducer(mapped), table_reducer(mapped)
    assert in_arrow.add_captured(_chunk([moved_in]))
    one_by_one.add(moved_in)
    assert (
        in_arrow.changes().upserts.to_pylist()
        == one_by_one.changes().upserts.to_pylist()
        == [{"id": 1, "n": 500, "qty": 3, "phone": None, "body": "b", "remark": "n7"}]
    )


def test_an_added_value_that_does_not_fit_sends_the_batch_one_by_one_where_it_is_named() -> None:
    rules = [SELECT, _added(5, "number", "$note", {"type": "int8"})]
    [mapped] = TableMappings.parse({"rules": rules}, "mappings.json").select([DOCS])
    good = RowChange(REF, Op.INSERT, {"id": 1, "n": 1, "qty": "7", "phone": None, "body": "b", "note": "12"})
    bad = RowChange(REF, Op.INSERT, {"id": 2, "n": 1, "qty": "7", "phone": None, "body": "b", "note": "n2"})
    reducer = table_reducer(mapped)
    assert reducer.takes_whole
    assert reducer.add_captured(_chunk([good]))
    with pytest.raises(
        DataError, match="added column 'number': row 0: the expression's value 'n2' is not a int64"
    ):
        reducer.add_captured(_chunk([good, bad]))
    assert reducer.inserts == 2  # one at a time: the change before it was taken


def test_a_change_log_holds_the_added_columns_as_one_by_one() -> None:
    mapped = _mapped("data-masking-digits-mask", added=True)
    old = {"id": 2, "n": 1, "qty": "9", "phone": "555-0202", "body": "c", "note": "o"}
    changes = [
        RowChange(
            REF, Op.INSERT, {"id": 1, "n": 4, "qty": "7", "phone": "555-0101", "body": "b", "note": "x"}
        ),
        RowChange(
            REF, Op.UPDATE, {"id": 1, "n": 5, "qty": "8", "note": "m"}, unchanged=frozenset({"phone", "body"})
        ),
        RowChange(REF, Op.DELETE, old, old_key=old),
    ]
    at = (Checkpoint("postgres", {"lsn": "0/1"}), 0)
    reducer = table_reducer(mapped, keep_log=True, log_rows=True)
    assert reducer.add_captured(_chunk(changes), at)
    assert reducer.log is not None
    one_by_one = table_reducer(mapped, keep_log=True)
    for i, c in enumerate(changes):
        one_by_one.add(c, (at[0], i))
    assert one_by_one.log is not None

    def rows(log: list[Logged]) -> list[tuple[str, dict[str, Any] | None]]:
        # A DELETE's old row: added columns absent one by one, null captured (the same in a file).
        return [
            (c.op, {k: v for k, v in (c.before or {}).items() if v is not None} if c.op == "d" else c.after)
            for c in logged_changes(log)
        ]

    logged = rows(reducer.log)
    assert logged == rows(one_by_one.log)
    assert [row and (row.get("op"), row.get("tag"), row.get("twice")) for _, row in logged] == [
        ("INSERT", "x:***-****", 8),
        ("UPDATE", None, 10),  # tag reads the unsent phone: left out, as one by one
        (None, None, None),
    ]


@pytest.mark.parametrize("in_arrow", [True, False], ids=["arrow", "by-value"])
@pytest.mark.parametrize("seed", range(4))
def test_arrow_and_value_by_value_filters_judge_alike(
    seed: int, in_arrow: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Integer and text columns are judged by Arrow's kernels, others value by
    value: both give, for every operator, NULLs, unsent columns and non-ASCII
    text, what ``ColumnFilter.test`` gives each change."""
    if not in_arrow:
        monkeypatch.setattr(row_filters, "_IN_ARROW", frozenset())
    rng = random.Random(seed)
    words = ["", "a", "b", "ab", "é", "z", "Z", "ä", "n1", "n10", "n2"]
    ints = [-5, 0, 1, 2, 7, 2**40]
    for _ in range(40):
        conditions: list[tuple[str, Any]] = []
        for kind, pool in ((Kind.INT64, ints), (Kind.TEXT, words)):
            picked = []
            for _ in range(rng.randint(1, 2)):
                op = rng.choice(list(FilterOp))
                values: tuple[Any, ...] = ()
                if op in (FilterOp.BETWEEN, FilterOp.NOTBETWEEN):
                    values = tuple(sorted(rng.sample(pool, 2)))
                elif op not in (FilterOp.NULL, FilterOp.NOTNULL):
                    values = (rng.choice(pool),)
                picked.append(Condition(op, values))
            conditions.append((kind, tuple(picked)))
        row_filter = RowFilter(
            (
                ColumnFilter("n", conditions[0][0], conditions[0][1]),
                ColumnFilter("note", conditions[1][0], conditions[1][1]),
            )
        )
        changes = []
        for i in range(30):
            row = {
                "id": i,
                "n": rng.choice([*ints, None]),
                "qty": None,
                "phone": None,
                "body": None,
                "note": rng.choice([*words, None]),
            }
            op = rng.choice([Op.INSERT, Op.UPDATE, Op.UPDATE, Op.DELETE])
            if op is Op.DELETE:
                changes.append(RowChange(REF, op, row, old_key=row))
                continue
            unsent = (
                frozenset(rng.choice([(), ("n",), ("note",), ("body",)])) if op is Op.UPDATE else frozenset()
            )
            values = {c: v for c, v in row.items() if c not in unsent}
            changes.append(RowChange(REF, op, values, unchanged=unsent))
        judged = judge(row_filter, _chunk(changes).changes)
        want = [
            c.op is not Op.DELETE
            and not all(
                f.test(c.values.get(f.column)) for f in row_filter.columns if f.column not in c.unchanged
            )
            for c in changes
        ]
        got = [
            op == b"d" and c.op is not Op.DELETE
            for op, c in zip(judged.rows.column("conveyor_op").to_pylist(), changes, strict=True)
        ]
        assert got == want, row_filter
        assert judged.moved_out == sum(want)
