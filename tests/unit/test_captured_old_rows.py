"""Captured changes with each UPDATE's whole old row (``BEFORE``, asked for
before-image columns and for the change log of a filtered table) give, in
Arrow, what the change-by-change reducer gives for the same changes: the
same target rows, and the same change log (a row the filter moves out is a
DELETE of its old row as the source sent it; an INSERT it moves out is not
in the log, and the changes after it keep their place)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from conveyor.connectors.arrow_rows import Unrepresentable, logged_changes
from conveyor.connectors.captured_rows import RowRuns, RowsChunk, row_changes
from conveyor.connectors.changes import RowChange
from conveyor.core.batch import BEFORE, ChangeBatch, Checkpoint, Logged, LoggedRows, Op
from conveyor.core.errors import DataError
from conveyor.core.schema import Column, TableRef, TableSchema
from conveyor.core.types import Kind, simple
from conveyor.replication.cdc.capture_table import table_reducer
from conveyor.replication.cdc.reduce import TableReducer
from conveyor.replication.mapped_table import MappedTable
from conveyor.replication.mappings import TableMappings
from support.captured import captured

REF = TableRef("app", "docs")
DOCS = TableSchema(
    REF,
    (
        Column("id", simple(Kind.INT64), nullable=False),
        Column("n", simple(Kind.INT64)),
        Column("qty", simple(Kind.TEXT, "varchar")),
        Column("phone", simple(Kind.TEXT, "varchar")),
        Column("note", simple(Kind.TEXT, "varchar")),
    ),
    ("id",),
)
LOCATOR = {"schema-name": "app", "table-name": "docs"}
FILTER = {
    "filter-type": "source",
    "column-name": "n",
    "filter-conditions": [{"filter-operator": "between", "start-value": "100", "end-value": "3000"}],
}
AT = Checkpoint("postgres", {"lsn": "0/1"})


def _column_rule(rule_id: int, column: str, action: str, **more: Any) -> dict[str, Any]:
    return {
        "rule-type": "transformation",
        "rule-id": str(rule_id),
        "rule-name": f"r{rule_id}",
        "rule-target": "column",
        "object-locator": {**LOCATOR, "column-name": column},
        "rule-action": action,
        **more,
    }


def _mapped(images: str | None, filtered: bool = False) -> MappedTable:
    """docs with qty to int4, phone's digits masked, note renamed remark;
    before-image columns of ``images`` (a column-filter), a source filter."""
    select = {
        "rule-type": "selection",
        "rule-id": "1",
        "rule-name": "docs",
        "object-locator": LOCATOR,
        "rule-action": "include",
        **({"filters": [FILTER]} if filtered else {}),
    }
    rules = [
        select,
        _column_rule(2, "qty", "change-data-type", **{"data-type": {"type": "int4"}}),
        _column_rule(3, "phone", "data-masking-digits-mask", value="#"),
        _column_rule(4, "note", "rename", value="remark"),
    ]
    if images is not None:
        rules.append(
            {
                "rule-type": "transformation",
                "rule-id": "5",
                "rule-name": "bi",
                "rule-target": "column",
                "object-locator": LOCATOR,
                "rule-action": "add-before-image-columns",
                "before-image-def": {"column-prefix": "old_", "column-filter": images},
            }
        )
    [mapped] = TableMappings.parse({"rules": rules}, "mappings.json").select([DOCS])
    assert bool(mapped.before_images) == (images is not None)
    return mapped


class Source:
    """A source table's rows, and changes to them as a stream sends them:
    with the whole old row of each UPDATE and DELETE (``full``: REPLICA
    IDENTITY FULL) or the DELETE's key alone."""

    def __init__(self, rng: random.Random, full: bool) -> None:
        self.rng, self.full = rng, full
        self.rows: dict[int, dict[str, Any]] = {}
        for key in range(6):
            if rng.random() < 0.5:
                self.rows[key] = self._row(key, key)

    def _row(self, key: int, i: int) -> dict[str, Any]:
        rng = self.rng
        return {
            "id": key,
            "n": None if rng.random() < 0.1 else rng.randint(-5, 5000),
            "qty": None if rng.random() < 0.1 else str(rng.randint(-5, 5000)),
            "phone": None if rng.random() < 0.1 else f"555-01{i:02d}",
            "note": f"n{i}",
        }

    def changes(self, n: int) -> list[RowChange]:
        rng = self.rng
        out: list[RowChange] = []
        for i in range(n):
            key = rng.randint(0, 5)
            row = self._row(key, i)
            old = self.rows.get(key)
            if old is None:
                out.append(RowChange(REF, Op.INSERT, row))
                self.rows[key] = row
            elif rng.random() < 0.2:
                out.append(RowChange(REF, Op.DELETE, {}, old_key=old if self.full else {"id": key}))
                del self.rows[key]
            else:
                unsent = frozenset(rng.choice([(), ("phone",), ("qty", "note"), ("n",)]))
                values = {c: v for c, v in row.items() if c not in unsent}
                out.append(
                    RowChange(REF, Op.UPDATE, values, old_key=old if self.full else None, unchanged=unsent)
                )
                self.rows[key] = {**old, **values}
        return out


def _apply(state: dict[int, dict[str, Any]], batch: ChangeBatch) -> None:
    """A reduced batch on a target's rows by key, as a target applies it."""
    for row in batch.deletes.to_pylist():
        state.pop(row["id"], None)
    for row in batch.upserts.to_pylist():
        state[row["id"]] = row
    for rows in batch.partial.values():
        for row in rows.to_pylist():
            if row["id"] in state:
                state[row["id"]] = {**state[row["id"]], **row}


def _loaded(mapped: MappedTable, rows: dict[int, dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """The target's rows for the source's: its INSERTs, one by one."""
    reducer = table_reducer(mapped)
    for row in rows.values():
        reducer.add(RowChange(REF, Op.INSERT, row))
    state: dict[int, dict[str, Any]] = {}
    if reducer.pending:
        _apply(state, reducer.changes())
    for row in state.values():  # loaded rows have no before image
        row.update({name: None for name, _ in mapped.before_images})
    return state


def _counts(reducer: TableReducer) -> tuple[int, ...]:
    return reducer.inserts, reducer.updates, reducer.deletes, reducer.filtered


@pytest.mark.parametrize("images", ["all", "pk-only", None])
@pytest.mark.parametrize("filtered", [False, True], ids=["all-rows", "filtered"])
@pytest.mark.parametrize("seed", range(4))
def test_before_images_and_filters_in_arrow_leave_the_target_as_one_by_one(
    seed: int, filtered: bool, images: str | None
) -> None:
    rng = random.Random(seed)
    mapped = _mapped(images, filtered)
    for _ in range(15):
        source = Source(rng, full=True)
        start = _loaded(mapped, source.rows)
        changes = source.changes(rng.randint(1, 30))
        one_by_one = table_reducer(mapped)
        for change in changes:
            one_by_one.add(change)
        in_arrow = table_reducer(mapped)
        assert in_arrow.takes_whole and in_arrow.keeps_before == bool(images)
        batch = captured(changes, DOCS, before=in_arrow.keeps_before)
        if images and any(c.op is Op.UPDATE for c in changes):
            assert BEFORE in batch.changes.schema.names
        assert in_arrow.add_captured(batch)
        want, got = dict(start), dict(start)
        _apply(want, one_by_one.changes())
        _apply(got, in_arrow.changes())
        assert got == want
        assert _counts(in_arrow) == _counts(one_by_one)


def test_an_update_without_its_old_row_sends_the_batch_one_by_one_where_it_is_named() -> None:
    """Without REPLICA IDENTITY FULL a before image of a column other than the
    key has no value: the changes go one by one, and the table is suspended
    with the reason; a key's before image is its own value."""
    rng = random.Random(7)
    source = Source(rng, full=False)
    changes = [c for c in source.changes(40) if c.op is not Op.INSERT][:10]
    assert any(c.op is Op.UPDATE for c in changes)
    reducer = table_reducer(_mapped("all"))
    with pytest.raises(DataError, match="before-image column 'old_n' needs the value of 'n' before"):
        reducer.add_captured(captured(changes, DOCS, before=True))
    keys_only = table_reducer(_mapped("pk-only"))
    assert keys_only.add_captured(captured(changes, DOCS, before=True))
    one_by_one = table_reducer(_mapped("pk-only"))
    for change in changes:
        one_by_one.add(change)
    got, want = keys_only.changes(), one_by_one.changes()
    assert sorted(
        got.upserts.to_pylist() + [r for p in got.partial.values() for r in p.to_pylist()], key=str
    ) == sorted(want.upserts.to_pylist() + [r for p in want.partial.values() for r in p.to_pylist()], key=str)
    assert any(r["old_id"] == r["id"] for r in got.upserts.to_pylist())


def _said(log: list[Logged]) -> list[tuple[int, str, dict[str, Any] | None]]:
    """Each logged change's index, operation and row (a DELETE's old row:
    columns it lacks one by one are null captured, the same in a file)."""
    return [
        (
            c.index,
            c.op,
            {k: v for k, v in (c.before or {}).items() if v is not None} if c.op == "d" else c.after,
        )
        for c in logged_changes(log)
    ]


@pytest.mark.parametrize("full", [True, False], ids=["full", "default"])
@pytest.mark.parametrize("images", ["all", None])
@pytest.mark.parametrize("seed", range(4))
def test_a_filtered_change_log_in_arrow_says_what_one_by_one_says(
    seed: int, images: str | None, full: bool
) -> None:
    rng = random.Random(seed)
    mapped = _mapped(images if full else None, filtered=True)
    moved_updates = moved_inserts = 0
    for _ in range(15):
        source = Source(rng, full)
        changes = source.changes(rng.randint(1, 30))
        one_by_one = table_reducer(mapped, keep_log=True)
        for i, change in enumerate(changes):
            one_by_one.add(change, (AT, i))
        in_arrow = table_reducer(mapped, keep_log=True, log_rows=True)
        assert in_arrow.takes_whole and in_arrow.keeps_before
        cut = rng.randint(1, len(changes))
        assert in_arrow.add_captured(captured(changes[:cut], DOCS, before=True), (AT, 0))
        if cut < len(changes):
            assert in_arrow.add_captured(captured(changes[cut:], DOCS, before=True), (AT, cut))
        assert in_arrow.log is not None and one_by_one.log is not None
        assert all(isinstance(entry, LoggedRows) for entry in in_arrow.log)
        said = _said(in_arrow.log)
        assert said == _said(one_by_one.log)
        assert _counts(in_arrow) == _counts(one_by_one)
        moved_inserts += len(changes) - len(said)
        moved_updates += sum(
            1 for c, (_, op, _) in zip(changes, said, strict=False) if c.op is Op.UPDATE and op == "d"
        )
    assert moved_inserts and (moved_updates or not full)  # the cases this is about came up


def test_a_moved_out_updates_old_row_is_converted_and_masked() -> None:
    """As one by one: the old row is the target's form of it (qty an int4),
    masked as every row a change log publishes."""
    mapped = _mapped(None, filtered=True)
    old = {"id": 1, "n": 500, "qty": "7", "phone": "555-0101", "note": "a"}
    changes = [
        RowChange(REF, Op.UPDATE, {**old, "n": 5, "note": "b"}, old_key=old),  # moves out
        RowChange(REF, Op.INSERT, {**old, "id": 2, "n": 1}),  # never in: not logged
        RowChange(REF, Op.INSERT, {**old, "id": 3}),
    ]
    reducer = table_reducer(mapped, keep_log=True, log_rows=True)
    assert reducer.add_captured(captured(changes, DOCS, before=True), (AT, 4))
    assert reducer.log is not None
    assert [(c.index, c.op, c.before or c.after) for c in logged_changes(reducer.log)] == [
        (4, "d", {"id": 1, "n": 500, "qty": 7, "phone": "###-####", "remark": "a"}),
        (6, "c", {"id": 3, "n": 500, "qty": 7, "phone": "###-####", "remark": "a"}),
    ]
    assert reducer.filtered == 2 and (reducer.inserts, reducer.updates) == (1, 0)


def test_a_value_arrow_refuses_keeps_its_old_row_one_by_one() -> None:
    """A run Arrow cannot hold goes one change at a time, each UPDATE with its old row."""
    chunk = RowsChunk(DOCS)
    old = {"id": 1, "n": 1, "qty": "1", "phone": None, "note": "a"}
    chunk.add(b"u", {**old, "n": 2**70}, frozenset(), old)  # past int64
    [batch] = chunk.take()
    [change] = row_changes(batch)
    assert batch.one_at_a_time and change.before == old
    assert isinstance(change.values["n"], Unrepresentable) and change.values["n"].text == str(2**70)


# --- Changes in batches as the source sent them -------------------------------------
# Changes a captured batch of whole rows cannot say (a moved key, an old row not
# sent whole, a value Arrow refuses, a table whose changes go one at a time)
# travel in captured batches too (``captured_rows.general_row``): the reducer
# takes them one at a time and leaves the target, the change log and the refused
# values exactly as the changes a stream decoded would.


class Stream:
    """Changes to ``docs`` as an engine's stream decodes them: ``pg`` sends a
    moved row's old key alone and a DELETE's key; ``pg-full`` (REPLICA
    IDENTITY FULL) every UPDATE's and DELETE's whole old row as its old key;
    ``mysql`` every UPDATE's whole old row as ``before`` (its old key where
    it moved) and a DELETE's whole row with its key."""

    def __init__(self, rng: random.Random, style: str) -> None:
        self.rng, self.style = rng, style
        self.rows: dict[int, dict[str, Any]] = {k: self._row(k, k) for k in range(6) if rng.random() < 0.5}

    def _row(self, key: int, i: int) -> dict[str, Any]:
        rng = self.rng
        refused = rng.random() < 0.1
        return {
            "id": key,
            "n": Unrepresentable(f"v{i}", "past int64") if refused else rng.randint(-5, 5000),
            "qty": None if rng.random() < 0.1 else str(rng.randint(-5, 5000)),
            "phone": None if rng.random() < 0.1 else f"555-01{i:02d}",
            "note": f"n{i}",
        }

    def changes(self, n: int) -> list[RowChange]:
        rng, style = self.rng, self.style
        out: list[RowChange] = []
        for i in range(n):
            key = rng.randint(0, 5)
            old = self.rows.get(key)
            if old is None:
                row = self._row(key, i)
                out.append(RowChange(REF, Op.INSERT, row))
                self.rows[key] = row
                continue
            choice = rng.random()
            if choice < 0.2:
                del self.rows[key]
                if style == "mysql":
                    out.append(RowChange(REF, Op.DELETE, old, old_key={"id": key}))
                else:
                    out.append(
                        RowChange(REF, Op.DELETE, {}, old_key=old if style == "pg-full" else {"id": key})
                    )
                continue
            moved_to = next((k for k in range(6, 12) if k not in self.rows), None) if choice < 0.4 else None
            row = self._row(key if moved_to is None else moved_to, i)
            unsent: frozenset[str] = frozenset()
            if moved_to is None and style != "mysql" and rng.random() < 0.3:
                unsent = frozenset({"phone"})  # an unchanged TOASTed value
                row = {c: v for c, v in row.items() if c not in unsent}
            old_key = None
            if style == "pg-full":
                old_key = old
            elif moved_to is not None:
                old_key = {"id": key}
            before = old if style == "mysql" else None
            out.append(RowChange(REF, Op.UPDATE, row, old_key=old_key, unchanged=unsent, before=before))
            if moved_to is not None:
                del self.rows[key]
            self.rows[row["id"]] = {**old, **row}
        return out


def _general(changes: list[RowChange]) -> list[ChangeBatch]:
    """``changes`` as a stream delivers them for a table not asked whole."""
    runs = RowRuns()
    out = [event for change in changes for event in runs.add(change, DOCS)]
    out += runs.flush()
    assert all(isinstance(e, ChangeBatch) and e.one_at_a_time for e in out)
    return out  # type: ignore[return-value]


def _outcome(reducer: TableReducer, start: dict[int, dict[str, Any]]) -> tuple[Any, ...]:
    """The target's rows after the reduced batch, the values held out as
    unrepresentable, the change log and the counts."""
    batch = reducer.changes()
    state = dict(start)
    _apply(state, batch)
    held = sorted((r.column, r.value, r.reason, str(r.key)) for r in batch.unrepresentable)
    logged = [(c.op, c.before, c.after, c.index) for c in logged_changes(batch.log)]
    return state, held, logged, _counts(reducer)


@pytest.mark.parametrize("keep_log", [False, True], ids=["rows", "change-log"])
@pytest.mark.parametrize("style", ["pg", "pg-full", "mysql"])
@pytest.mark.parametrize("seed", range(4))
def test_changes_in_batches_one_at_a_time_leave_the_target_as_the_decoded_changes(
    seed: int, style: str, keep_log: bool
) -> None:
    rng = random.Random(seed)
    mapped = _mapped(None)
    for _ in range(15):
        stream = Stream(rng, style)
        start = _loaded(mapped, {k: r for k, r in stream.rows.items() if type(r["n"]) is int})
        changes = stream.changes(rng.randint(1, 30))
        decoded = table_reducer(mapped, keep_log=keep_log)
        for i, change in enumerate(changes):
            decoded.add(change, (AT, i))
        batches = _general(changes)
        assert sum(b.num_rows for b in batches) == len(changes)
        captured = table_reducer(mapped, keep_log=keep_log)
        index = 0
        for batch in batches:
            assert not captured.add_captured(batch, (AT, index))  # one at a time
            index += batch.num_rows
        assert _outcome(captured, start) == _outcome(decoded, start)


def test_a_moved_row_keeps_its_old_key_and_old_row_apart() -> None:
    """A moved key's old key comes back as it was sent: the key alone, or
    the whole old row where the source sent one (then also its before)."""
    old = {"id": 1, "n": 1, "qty": "1", "phone": None, "note": "a"}
    new = {**old, "id": 7}
    key_only = RowChange(REF, Op.UPDATE, new, old_key={"id": 1})
    whole = RowChange(REF, Op.UPDATE, new, old_key=old)
    same_key = RowChange(REF, Op.UPDATE, {**old, "n": 2}, old_key=old)
    got = [c for b in _general([key_only, whole, same_key]) for c in row_changes(b)]
    assert got == [
        key_only,
        RowChange(REF, Op.UPDATE, new, old_key=old, before=old),
        RowChange(REF, Op.UPDATE, {**old, "n": 2}, before=old),  # the old key is the key itself
    ]
