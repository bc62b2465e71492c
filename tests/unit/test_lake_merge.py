"""The curation's last-operation-wins merge, vectorised in Arrow, against a plain
dict replay of the same operations: in memory, and as a Delta merge with the
partition pruning predicate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from deltalake import CommitProperties, DeltaTable, write_deltalake
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conveyor.lake.change_rows import OP, SEQ, apply_in_memory, last_per_key
from conveyor.lake.delta_write import merge, rewrite

SCHEMA = pa.schema([("k1", pa.int64()), ("k2", pa.string()), ("part", pa.string()), ("v", pa.int64())])
KEY = ["k1", "k2"]

key_st = st.tuples(st.integers(0, 5), st.sampled_from(["a", "b"]))
row_st = st.builds(
    lambda key, part, v: {"k1": key[0], "k2": key[1], "part": part, "v": v},
    key_st,
    st.sampled_from(["x", "y", "z"]),
    st.integers(-5, 5),
)
op_st = st.tuples(st.sampled_from(["I", "U", "D"]), row_st)


def replay(base: list[dict[str, Any]], ops: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    state = {(r["k1"], r["k2"]): r for r in base}
    for op, row in ops:
        key = (row["k1"], row["k2"])
        if op == "D":
            state.pop(key, None)
        else:
            state[key] = row
    return sorted(state.values(), key=lambda r: (r["k1"], r["k2"]))


def changes_table(ops: list[tuple[str, dict[str, Any]]]) -> pa.Table:
    data = pa.Table.from_pylist([row for _, row in ops], schema=SCHEMA)
    data = data.add_column(0, OP, pa.array([op for op, _ in ops], pa.string()))
    return data.append_column(SEQ, pa.array(range(len(ops)), pa.int64()))


def unique_base(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return list({(r["k1"], r["k2"]): r for r in rows}.values())


def ordered(table: pa.Table) -> list[dict[str, Any]]:
    return sorted(table.select(SCHEMA.names).to_pylist(), key=lambda r: (r["k1"], r["k2"]))


@given(base=st.lists(row_st, max_size=12), ops=st.lists(op_st, max_size=30))
def test_in_memory_merge_equals_the_replay(
    base: list[dict[str, Any]], ops: list[tuple[str, dict[str, Any]]]
) -> None:
    base = unique_base(base)
    reduced = last_per_key(changes_table(ops), KEY)
    # one row per key, in the order of each key's last operation
    assert reduced.num_rows == len({(r["k1"], r["k2"]) for _, r in ops})
    assert reduced.column(SEQ).to_pylist() == sorted(reduced.column(SEQ).to_pylist())
    merged = apply_in_memory(pa.Table.from_pylist(base, schema=SCHEMA), reduced, KEY)
    assert ordered(merged) == replay(base, ops)


@given(base=st.lists(row_st, max_size=12), ops=st.lists(op_st, max_size=30))
def test_without_a_key_every_non_delete_row_is_appended(
    base: list[dict[str, Any]], ops: list[tuple[str, dict[str, Any]]]
) -> None:
    reduced = last_per_key(changes_table(ops), [])
    merged = apply_in_memory(pa.Table.from_pylist(base, schema=SCHEMA), reduced, [])
    assert merged.to_pylist() == [*base, *(row for op, row in ops if op != "D")]


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    base=st.lists(row_st, max_size=12),
    batches=st.lists(st.lists(op_st, min_size=1, max_size=12), min_size=1, max_size=3),
)
def test_delta_merge_equals_the_replay(
    tmp_path_factory: pytest.TempPathFactory,
    base: list[dict[str, Any]],
    batches: list[list[tuple[str, dict[str, Any]]]],
) -> None:
    path = str(tmp_path_factory.mktemp("delta") / "t")
    base = unique_base(base)
    write_deltalake(path, pa.Table.from_pylist(base, schema=SCHEMA), partition_by=["part"])
    expected = base
    for ops in batches:
        reduced = last_per_key(changes_table(ops), KEY)
        merge(DeltaTable(path), reduced, KEY, ["part"], CommitProperties())
        expected = replay(expected, ops)
        assert ordered(DeltaTable(path).to_pyarrow_table()) == expected


def test_the_merge_touches_only_the_changed_partitions(tmp_path: Path) -> None:
    path = str(tmp_path / "t")
    rows = [{"k1": i, "k2": "a", "part": p, "v": 0} for i, p in enumerate(["x", "y", "z"] * 3)]
    write_deltalake(path, pa.Table.from_pylist(rows, schema=SCHEMA), partition_by=["part"])
    # key 1 lives in y and moves to z: only y's file is rewritten (z gets a new file)
    before = set(DeltaTable(path).file_uris())
    ops = [("U", {"k1": 1, "k2": "a", "part": "z", "v": 9})]
    metrics = merge(
        DeltaTable(path), last_per_key(changes_table(ops), KEY), KEY, ["part"], CommitProperties()
    )
    after = set(DeltaTable(path).file_uris())
    assert metrics["num_target_files_removed"] == 1
    assert [uri for uri in before - after if "part=y" in uri] == list(before - after)
    assert {uri for uri in before if "part=y" not in uri} <= after
    assert ordered(DeltaTable(path).to_pyarrow_table()) == replay(rows, ops)


COUNTS = ("num_target_rows_inserted", "num_target_rows_updated", "num_target_rows_deleted")


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    base=st.lists(row_st, max_size=12),
    batches=st.lists(st.lists(op_st, min_size=1, max_size=12), min_size=1, max_size=3),
    partitioned=st.booleans(),
    one_column_key=st.booleans(),
)
def test_partition_rewrite_equals_the_merge_and_the_replay(
    tmp_path_factory: pytest.TempPathFactory,
    base: list[dict[str, Any]],
    batches: list[list[tuple[str, dict[str, Any]]]],
    partitioned: bool,
    one_column_key: bool,
) -> None:
    """The rewrite of the touched partitions (one overwrite commit with a
    partition predicate) leaves what the merge leaves, with the same counts,
    with a one-column key (k2 constant) and a two-column one."""
    key = ["k1"] if one_column_key else KEY
    if one_column_key:
        base = [{**r, "k2": "a"} for r in base]
        batches = [[(op, {**r, "k2": "a"}) for op, r in ops] for ops in batches]
    root = tmp_path_factory.mktemp("delta")
    merged, rewritten = str(root / "m"), str(root / "r")
    part = ["part"] if partitioned else []
    base = unique_base(base)
    for path in (merged, rewritten):
        write_deltalake(path, pa.Table.from_pylist(base, schema=SCHEMA), partition_by=part or None)
    expected = base
    for ops in batches:
        reduced = last_per_key(changes_table(ops), key)
        by_merge = merge(DeltaTable(merged), reduced, key, part, CommitProperties())
        commit = CommitProperties(custom_metadata={"conveyor.curation": "{}"})
        by_rewrite = rewrite(DeltaTable(rewritten), reduced, key, part, commit)
        if by_rewrite is None:
            # Nothing of the table is touched (say, a delete of a key it never had):
            # the caller merges, as here.
            by_rewrite = merge(DeltaTable(rewritten), reduced, key, part, commit)
        assert {k: by_rewrite[k] for k in COUNTS} == {k: by_merge[k] for k in COUNTS}
        expected = replay(expected, ops)
        assert ordered(DeltaTable(rewritten).to_pyarrow_table()) == expected
        assert ordered(DeltaTable(merged).to_pyarrow_table()) == expected
        if any(by_rewrite[k] for k in COUNTS):  # a batch that changes nothing makes no commit
            assert DeltaTable(rewritten).history(1)[0].get("conveyor.curation") == "{}"


def test_a_few_keys_in_partitions_of_many_files_are_merged(tmp_path: Path) -> None:
    path = str(tmp_path / "t")
    for start in range(0, 40, 10):
        rows = [{"k1": i, "k2": "a", "part": "x", "v": 0} for i in range(start, start + 10)]
        write_deltalake(path, pa.Table.from_pylist(rows, schema=SCHEMA), partition_by=["part"], mode="append")
    reduced = last_per_key(changes_table([("U", {"k1": 3, "k2": "a", "part": "x", "v": 1})]), KEY)
    assert rewrite(DeltaTable(path), reduced, KEY, ["part"], CommitProperties()) is None
