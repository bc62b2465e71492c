"""Partial UPDATEs (unsent, unchanged values such as PostgreSQL's TOASTed
ones) captured in Arrow: reduced in Arrow, folded after a change one by one,
and handed over one by one, they give what the change-by-change reducer
gives for the same changes."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import pyarrow as pa
import pytest

from conveyor.connectors.arrow_rows import Unrepresentable, logged_changes
from conveyor.connectors.captured_rows import RowRuns, RowsChunk, row_changes, whole_row
from conveyor.connectors.changes import RowChange
from conveyor.core import types as t
from conveyor.core.batch import UNCHANGED, ChangeBatch, Checkpoint, KeyHistory, LoggedRows, Op
from conveyor.core.schema import Column, TableRef, TableSchema
from conveyor.core.types import Kind
from conveyor.replication.cdc.reduce import TableReducer
from support.captured import captured

DOCS = TableSchema(
    TableRef("public", "docs"),
    (
        Column("a", t.simple(Kind.INT64), False),
        Column("b", t.simple(Kind.TEXT), False),
        Column("v", t.simple(Kind.TEXT)),
        Column("w", t.simple(Kind.TEXT)),
    ),
    ("a", "b"),
)
SAME = {c: c for c in DOCS.column_names}
RENAMED = TableSchema(
    TableRef("public", "renamed"),
    (
        Column("A", t.simple(Kind.INT64), False),
        Column("B", t.simple(Kind.TEXT), False),
        Column("V", t.simple(Kind.TEXT)),
    ),
    ("A", "B"),
)
RENAMING = {"a": "A", "b": "B", "v": "V"}  # w removed
UPDATE, INSERT = b"u", b"c"


def _changes(rng: random.Random, n: int, partial: bool = True) -> list[RowChange]:
    """Random changes over a few keys, as a source sends them: an UPDATE or
    DELETE only of a key that is there, an INSERT only of one that is not
    (``partial``: some UPDATEs leave columns unsent)."""
    there = {(a, b) for a in range(4) for b in "xy" if rng.random() < 0.5}  # on the target already
    out: list[RowChange] = []
    for i in range(n):
        key = (rng.randint(0, 3), rng.choice("xy"))
        row = {"a": key[0], "b": key[1], "v": f"v{i}", "w": None if rng.random() < 0.2 else f"w{i}"}
        if key not in there:
            out.append(RowChange(DOCS.ref, Op.INSERT, row))
            there.add(key)
        elif rng.random() < 0.2:
            out.append(
                RowChange(DOCS.ref, Op.DELETE, {"a": key[0], "b": key[1]}, old_key={"a": key[0], "b": key[1]})
            )
            there.discard(key)
        else:
            unsent = frozenset(rng.choice([(), ("v",), ("w",), ("v", "w")]) if partial else ())
            values = {c: v for c, v in row.items() if c not in unsent}
            out.append(RowChange(DOCS.ref, Op.UPDATE, values, unchanged=unsent))
    return out


def _chunk(changes: list[RowChange], table: TableSchema = DOCS) -> ChangeBatch:
    return captured(changes, table)


def _sorted(rows: pa.RecordBatch, key: tuple[str, ...]) -> list[dict[str, Any]]:
    return sorted(rows.to_pylist(), key=lambda r: tuple(r[k] for k in key))


def _partial(batch: ChangeBatch, key: tuple[str, ...]) -> Mapping[frozenset[str], list[dict[str, Any]]]:
    return {unsent: _sorted(rows, key) for unsent, rows in batch.partial.items() if rows.num_rows}


def _checks(batch: ChangeBatch) -> dict[tuple[Any, ...], KeyHistory] | None:
    if batch.checks is None:
        return None
    keys = batch.checks.keys.to_pylist()
    return {tuple(k.values()): h for k, h in zip(keys, batch.checks.history, strict=True)}


@pytest.mark.parametrize("partial", [True, False], ids=["partial", "whole"])
@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize(("target", "columns"), [(DOCS, SAME), (RENAMED, RENAMING)], ids=["same", "renamed"])
def test_partial_updates_reduce_in_arrow_as_one_by_one(
    seed: int, target: TableSchema, columns: dict[str, str], partial: bool
) -> None:
    """Key histories too (apply conflicts judged): the same for every key."""
    rng = random.Random(seed)
    key = target.primary_key
    for _ in range(30):
        changes = _changes(rng, rng.randint(1, 40), partial)
        check_keys = rng.random() < 0.5
        one_by_one = TableReducer(target, columns, check_keys=check_keys)
        for c in changes:
            one_by_one.add(c)
        in_arrow = TableReducer(target, columns, check_keys=check_keys)
        cut = rng.randint(1, len(changes))
        assert in_arrow.add_captured(_chunk(changes[:cut]))
        if cut < len(changes):
            assert in_arrow.add_captured(_chunk(changes[cut:]))
        folded = TableReducer(
            target, columns, check_keys=check_keys
        )  # a change one by one folds the captured ones
        assert folded.add_captured(_chunk(changes[:cut]))
        for c in changes[cut:]:
            folded.add(c)
        want = one_by_one.changes()
        for got, reducer in ((in_arrow.changes(), in_arrow), (folded.changes(), folded)):
            assert _sorted(got.upserts, key) == _sorted(want.upserts, key)
            assert _sorted(got.deletes, key) == _sorted(want.deletes, key)
            assert _partial(got, key) == _partial(want, key)
            assert got.upserts.schema == want.upserts.schema
            assert _checks(got) == _checks(want)
            assert (got.checks is None) == (not check_keys)
            for unsent, rows in got.partial.items():
                assert rows.schema.names == [c for c in target.column_names if c not in unsent]
            assert (reducer.inserts, reducer.updates, reducer.deletes) == (
                one_by_one.inserts,
                one_by_one.updates,
                one_by_one.deletes,
            )


def test_a_partial_update_of_a_key_inserted_earlier_in_the_batch_is_whole() -> None:
    changes = [
        RowChange(DOCS.ref, Op.INSERT, {"a": 1, "b": "x", "v": "v1", "w": "w1"}),
        RowChange(DOCS.ref, Op.UPDATE, {"a": 1, "b": "x", "v": "v2"}, unchanged=frozenset({"w"})),
        RowChange(DOCS.ref, Op.UPDATE, {"a": 2, "b": "x", "w": "w3"}, unchanged=frozenset({"v"})),
        RowChange(DOCS.ref, Op.UPDATE, {"a": 2, "b": "x", "v": "v4"}, unchanged=frozenset({"w"})),
        RowChange(DOCS.ref, Op.UPDATE, {"a": 3, "b": "x"}, unchanged=frozenset({"v", "w"})),
    ]
    reducer = TableReducer(DOCS, SAME)
    assert reducer.add_captured(_chunk(changes))
    out = reducer.changes()
    # Key 2 is whole too: w sent by its first UPDATE, v by its second.
    assert out.upserts.to_pylist() == [
        {"a": 1, "b": "x", "v": "v2", "w": "w1"},
        {"a": 2, "b": "x", "v": "v4", "w": "w3"},
    ]
    assert out.partial.keys() == {frozenset({"v", "w"})}
    assert out.partial[frozenset({"v", "w"})].to_pylist() == [{"a": 3, "b": "x"}]


def test_captured_partial_updates_go_one_by_one_and_into_a_change_log_as_sent() -> None:
    changes = [
        RowChange(DOCS.ref, Op.INSERT, {"a": 1, "b": "x", "v": "v1", "w": "w1"}),
        RowChange(DOCS.ref, Op.UPDATE, {"a": 1, "b": "x", "v": "v2"}, unchanged=frozenset({"w"})),
    ]
    captured = _chunk(changes)
    assert captured.changes is not None
    assert captured.changes.column(UNCHANGED).to_pylist() == [None, ["w"]]
    back = list(row_changes(captured))
    assert [(c.op, c.values, c.unchanged) for c in back] == [(c.op, c.values, c.unchanged) for c in changes]
    start = Checkpoint("postgres", {"lsn": "0/1"})
    logged = list(logged_changes([LoggedRows(captured.changes, start, 0)]))
    assert [(e.op, e.after) for e in logged] == [("c", changes[0].values), ("u", changes[1].values)]


def test_a_renamed_mapping_names_the_unsent_columns_in_target_names() -> None:
    changes = [
        RowChange(DOCS.ref, Op.UPDATE, {"a": 1, "b": "x", "w": "w1"}, unchanged=frozenset({"v"})),
        RowChange(DOCS.ref, Op.UPDATE, {"a": 2, "b": "x", "v": "v2"}, unchanged=frozenset({"w"})),
    ]
    logging = TableReducer(RENAMED, RENAMING, log=[], logs_rows=True)
    assert logging.add_captured(_chunk(changes), (Checkpoint("postgres", {}), 0))
    [entry] = logging.log or []
    assert isinstance(entry, LoggedRows)
    assert entry.rows.column(UNCHANGED).to_pylist() == [["V"], None]  # w is not on the target
    only_log = logging.changes()  # a change-log applier reads the log alone: no rows are reduced
    assert only_log.log == (entry,) and not only_log.upserts.num_rows and not only_log.partial
    reducer = TableReducer(RENAMED, RENAMING)
    assert reducer.add_captured(_chunk(changes))
    out = reducer.changes()
    assert out.upserts.to_pylist() == [{"A": 2, "B": "x", "V": "v2"}]
    assert out.partial[frozenset({"V"})].to_pylist() == [{"A": 1, "B": "x"}]


def test_what_a_captured_batch_cannot_hold_goes_as_it_is() -> None:
    names = set(DOCS.column_names)
    moved = RowChange(DOCS.ref, Op.UPDATE, {"a": 2, "b": "x"}, {"a": 1, "b": "x"}, frozenset({"v", "w"}))
    key_unsent = RowChange(DOCS.ref, Op.UPDATE, {"a": 1, "v": "v", "w": "w"}, unchanged=frozenset({"b"}))
    insert_unsent = RowChange(DOCS.ref, Op.INSERT, {"a": 1, "b": "x", "v": "v"}, unchanged=frozenset({"w"}))
    sent_and_unsent = RowChange(
        DOCS.ref, Op.UPDATE, {"a": 1, "b": "x", "v": "v"}, unchanged=frozenset({"v", "w"})
    )
    for change in (moved, key_unsent, insert_unsent, sent_and_unsent):
        assert whole_row(change, DOCS, names) is None
    runs = RowRuns({DOCS.ref: (DOCS, names, False)})
    partial = RowChange(DOCS.ref, Op.UPDATE, {"a": 1, "b": "x", "v": "v"}, unchanged=frozenset({"w"}))
    assert runs.add(partial, DOCS) == []
    [batch] = runs.flush()
    assert isinstance(batch, ChangeBatch) and batch.num_rows == 1 and not batch.one_at_a_time
    # The others go in a batch of the form the reducer takes one change at a time, exactly.
    for change in (moved, key_unsent, insert_unsent):
        assert runs.add(change, DOCS) == []
    [general] = runs.flush()
    assert general.one_at_a_time and list(row_changes(general)) == [moved, key_unsent, insert_unsent]


def test_a_run_arrow_refuses_goes_one_by_one_with_its_unsent_columns() -> None:
    chunk = RowsChunk(DOCS)
    chunk.add(INSERT, {"a": 1, "b": "x", "v": "v", "w": "w"})
    chunk.add(UPDATE, {"a": "not an integer", "b": "x", "v": "v2"}, frozenset({"w"}))
    [batch] = chunk.take()
    assert batch.one_at_a_time
    first, second = row_changes(batch)
    assert first == RowChange(DOCS.ref, Op.INSERT, {"a": 1, "b": "x", "v": "v", "w": "w"})
    refused = second.values.pop("a")
    assert isinstance(refused, Unrepresentable) and refused.text == "not an integer"
    assert second.unchanged == frozenset({"w"}) and second.values == {"b": "x", "v": "v2"}


def test_a_key_type_arrow_cannot_sort_merges_partial_updates_in_python() -> None:
    """An interval primary key (Arrow neither sorts nor compares
    month_day_nano): the key's runs are found by hashing, with the same result."""
    spans = TableSchema(
        TableRef("public", "spans"),
        (
            Column("span", t.simple(Kind.INTERVAL), False),
            Column("v", t.simple(Kind.TEXT)),
            Column("w", t.simple(Kind.TEXT)),
        ),
        ("span",),
    )
    one, two = pa.MonthDayNano([1, 2, 3]), pa.MonthDayNano([0, 1, 0])
    changes = [
        RowChange(spans.ref, Op.INSERT, {"span": one, "v": "v1", "w": "w1"}),
        RowChange(spans.ref, Op.UPDATE, {"span": two, "v": "v2"}, unchanged=frozenset({"w"})),
        RowChange(spans.ref, Op.UPDATE, {"span": one, "v": "v3"}, unchanged=frozenset({"w"})),
    ]
    reducer = TableReducer(spans, {c: c for c in spans.column_names}, check_keys=True)
    assert reducer.add_captured(_chunk(changes, spans))
    out = reducer.changes()
    assert out.upserts.to_pylist() == [{"span": one, "v": "v3", "w": "w1"}]
    assert _checks(out) == {
        (one,): KeyHistory(
            Op.INSERT, alone=False, reinserted=False, partial=False, inherited=frozenset({"w"})
        ),
        (two,): KeyHistory(Op.UPDATE, alone=True, reinserted=False, partial=True),
    }
    assert {u: rows.to_pylist() for u, rows in out.partial.items()} == {
        frozenset({"w"}): [{"span": two, "v": "v2"}]
    }
    # Whole rows only, a key repeated: the last change per key, found the same way.
    whole = [
        RowChange(spans.ref, Op.INSERT, {"span": one, "v": "v1", "w": "w1"}),
        RowChange(spans.ref, Op.UPDATE, {"span": one, "v": "v4", "w": "w4"}),
    ]
    reducer = TableReducer(spans, {c: c for c in spans.column_names}, check_keys=True)
    assert reducer.add_captured(_chunk(whole, spans))
    out = reducer.changes()
    assert out.upserts.to_pylist() == [{"span": one, "v": "v4", "w": "w4"}]
    assert _checks(out) == {(one,): KeyHistory(Op.INSERT, alone=False, reinserted=False, partial=False)}
