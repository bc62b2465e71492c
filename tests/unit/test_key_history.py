"""What a reduced batch keeps of each key's changes for the apply-conflict
policies (``ChangeBatch.checks``), and where those policies are refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conveyor.connectors.changes import RowChange
from conveyor.core import types as t
from conveyor.core.batch import ChangeBatch, KeyHistory, Op
from conveyor.core.errors import ConfigError
from conveyor.core.schema import Column, TableRef, TableSchema
from conveyor.core.types import Kind
from conveyor.replication.cdc.reduce import TableReducer
from conveyor.replication.settings import InsertPolicy, parse_task_settings

REF = TableRef("public", "items")
TABLE = TableSchema(
    REF,
    (Column("id", t.simple(Kind.INT64), False), Column("v", t.simple(Kind.TEXT))),
    ("id",),
)


def change(
    op: Op, values: dict[str, Any], old: dict[str, Any] | None = None, unchanged: frozenset[str] = frozenset()
) -> RowChange:
    return RowChange(REF, op, values, old, unchanged)


def reduced(*changes: RowChange, check_keys: bool = True) -> ChangeBatch:
    reducer = TableReducer(TABLE, {c: c for c in TABLE.column_names}, check_keys=check_keys)
    for c in changes:
        reducer.add(c)
    return reducer.changes()


def histories(batch: ChangeBatch) -> dict[int, KeyHistory]:
    assert batch.checks is not None
    return dict(zip(batch.checks.keys.column("id").to_pylist(), batch.checks.history, strict=True))


def test_each_key_keeps_its_first_change_and_what_followed() -> None:
    batch = reduced(
        change(Op.INSERT, {"id": 1, "v": "a"}),
        change(Op.UPDATE, {"id": 1, "v": "b"}),
        change(Op.UPDATE, {"id": 2, "v": "b"}),
        change(Op.DELETE, {"id": 2}),
        change(Op.DELETE, {"id": 3}),
        change(Op.INSERT, {"id": 3, "v": "c"}),
        change(Op.INSERT, {"id": 4, "v": "d"}),
        change(Op.UPDATE, {"id": 5, "v": "e"}, unchanged=frozenset({"v"})),
    )
    assert histories(batch) == {
        1: KeyHistory(Op.INSERT, alone=False, reinserted=False, partial=False),
        2: KeyHistory(Op.UPDATE, alone=False, reinserted=False, partial=False),
        3: KeyHistory(Op.DELETE, alone=False, reinserted=True, partial=False),
        4: KeyHistory(Op.INSERT, alone=True, reinserted=False, partial=False),
        5: KeyHistory(Op.UPDATE, alone=True, reinserted=False, partial=True),
    }
    assert batch.checks is not None
    assert batch.checks.staged().to_pydict()["conveyor_check_present"] == [False, True, True, False, True]


def test_an_insert_followed_by_partial_updates_names_the_columns_it_alone_set() -> None:
    """A refused INSERT leaves those columns the target row's own; a whole
    change after it (an UPDATE, a DELETE) ends what it decides."""
    unsent = frozenset({"v"})
    batch = reduced(
        change(Op.INSERT, {"id": 1, "v": "a"}),
        change(Op.UPDATE, {"id": 1}, unchanged=unsent),
        change(Op.INSERT, {"id": 2, "v": "a"}),
        change(Op.UPDATE, {"id": 2, "v": "b"}),
        change(Op.UPDATE, {"id": 2}, unchanged=unsent),
        change(Op.INSERT, {"id": 3, "v": "a"}),
        change(Op.DELETE, {"id": 3}),
        change(Op.INSERT, {"id": 3, "v": "c"}),
        change(Op.UPDATE, {"id": 3}, unchanged=unsent),
    )
    assert histories(batch) == {
        1: KeyHistory(Op.INSERT, alone=False, reinserted=False, partial=False, inherited=unsent),
        2: KeyHistory(Op.INSERT, alone=False, reinserted=False, partial=False),
        3: KeyHistory(Op.INSERT, alone=False, reinserted=True, partial=False),
    }
    assert batch.upserts.to_pylist() == [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}, {"id": 3, "v": "c"}]


def test_a_key_change_judges_the_old_key_only() -> None:
    batch = reduced(change(Op.UPDATE, {"id": 7, "v": "a"}, old={"id": 6, "v": "a"}))
    assert histories(batch) == {6: KeyHistory(Op.UPDATE, alone=True, reinserted=False, partial=False)}


def test_nothing_is_kept_unless_asked_or_after_a_truncate() -> None:
    assert reduced(change(Op.INSERT, {"id": 1, "v": "a"}), check_keys=False).checks is None
    reducer = TableReducer(TABLE, {c: c for c in TABLE.column_names}, check_keys=True)
    reducer.add(change(Op.INSERT, {"id": 1, "v": "a"}))
    reducer.clear()
    reducer.add(change(Op.INSERT, {"id": 2, "v": "b"}))
    assert reducer.changes().checks is None  # the table is emptied first: no conflict can arise


def test_only_written_keys_turn_the_judging_on() -> None:
    errors = parse_task_settings({}, "settings").error_behavior
    assert not errors.judges_apply_conflicts
    assert errors.insert_conflicts is InsertPolicy.INSERT_RECORD  # unwritten: idempotent
    assert errors.update_conflicts == "UPDATE_RECORD"
    written = parse_task_settings(
        {"ErrorBehavior": {"ApplyErrorEscalationCount": 5}}, "settings"
    ).error_behavior
    assert written.judges_apply_conflicts
    assert written.written_conflict_keys() == ["ErrorBehavior.ApplyErrorEscalationCount"]
    old = parse_task_settings(
        {"ErrorBehavior": {"ApplyErrorInsertPolicy": "UPDATE_RECORD"}}, "s"
    ).error_behavior
    assert old.insert_conflicts is InsertPolicy.INSERT_RECORD


@pytest.mark.parametrize("engine", ["lake", "nats"])
def test_a_lake_or_nats_target_refuses_the_keys(tmp_path: Path, engine: str) -> None:
    from conveyor.stack.loader import load_stack

    endpoint = (
        "{engine: lake, path: lake}" if engine == "lake" else "{engine: nats, url: 'nats://127.0.0.1:4222'}"
    )
    (tmp_path / "s.yaml").write_text(
        "endpoints:\n  src: {engine: sqlite, path: ./a.sqlite}\n"
        f"  out: {endpoint}\n"
        "tasks:\n  t:\n    source: src\n    target: out\n    migration_type: full-load-and-cdc\n"
        "    settings: {ErrorBehavior: {ApplyErrorInsertPolicy: LOG_ERROR}}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_stack(tmp_path / "s.yaml")
    text = str(caught.value)
    assert "tasks.t.settings: ErrorBehavior.ApplyErrorInsertPolicy" in text
    assert f"a {engine} target applies every change as it comes" in text
