"""The lake's curation job: raw LOAD and change files (as the lake target writes
them) into curated Delta tables, checked against a plain dict that replays the
same operations (the source the files describe)."""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from deltalake import DeltaTable
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conveyor.connectors.base import EndpointConfig, PrepMode
from conveyor.connectors.lake import files as lake_files
from conveyor.connectors.lake import layout as lay
from conveyor.connectors.lake.apply import LakeApplier
from conveyor.connectors.lake.settings import lake_config
from conveyor.connectors.lake.target import LakeTarget
from conveyor.core import types as t
from conveyor.core.batch import Checkpoint
from conveyor.core.faults import ENV as FAULT_ENV
from conveyor.core.schema import Column, TableRef, TableSchema
from conveyor.core.types import Kind
from conveyor.lake import delta_write
from conveyor.lake.catalog import build_catalog, run_query
from conveyor.lake.controller import CONTROLLER_FILE, Controller, ControllerEntry, Lake, open_lake
from conveyor.lake.curate import process
from support.change_log import upserted
from support.cli import conveyor

pytestmark = pytest.mark.integration

REF = TableRef("sales", "orders")
TABLE = TableSchema(
    REF,
    (
        Column("id", t.simple(Kind.INT64), False),
        Column("region", t.simple(Kind.TEXT)),
        Column("qty", t.simple(Kind.INT64)),
        Column("note", t.simple(Kind.TEXT)),
    ),
    ("id",),
)
NAME = "sales.orders"
REGIONS = ("eu", "us", "ap")


# --- the raw lake, written as the lake target writes it ------------------------------------


def endpoint(root: Path, bucket_path: str = "", data_format: str = "csv", **settings: Any) -> EndpointConfig:
    return EndpointConfig(
        name="lake",
        engine="lake",
        path=str(root),
        options={"settings": settings, "format": data_format, "bucket_path": bucket_path},
    )


def full_load(root: Path, rows: list[dict[str, Any]], bucket_path: str, **kw: Any) -> None:
    """A full load of ``rows`` into ``<bucket_path>/sales/orders/LOAD...``."""
    target = LakeTarget(endpoint(root, bucket_path, **kw))
    load = target.begin_load(TABLE, PrepMode.DROP_AND_CREATE)
    if rows:
        load.write(pa.RecordBatch.from_pylist(rows, schema=TABLE.arrow_schema()))
    load.commit()
    target.close()


@dataclass
class Clock:
    """Change-file stamps: real time, strictly increasing, 2 ms apart."""

    last: str = ""

    def stamp(self) -> str:
        time.sleep(0.002)
        stamp = lay.change_stamp(datetime.now(UTC))
        while stamp <= self.last:
            time.sleep(0.001)
            stamp = lay.change_stamp(datetime.now(UTC))
        self.last = stamp
        return stamp


def change_file(
    root: Path, stamp: str, ops: list[tuple[str, dict[str, Any]]], folder: str = "cdc", **kw: Any
) -> str:
    """A change file as the service writes it: ``Op`` first, rows in order
    (keys may repeat within a file, as the service's files do)."""
    config = lake_config(endpoint(root, "", **kw))
    layout = lay.file_layout(config.settings, config.data_format, changes=True)
    table = pa.Table.from_pylist([row for _, row in ops], schema=TABLE.arrow_schema())
    framed = lay.frame(
        table.to_batches()[0] if table.num_rows else pa.RecordBatch.from_pylist([], TABLE.arrow_schema()),
        layout,
        pa.array([op for op, _ in ops], pa.string()),
        None,
    )
    rel = f"{folder}/{REF.schema}/{REF.name}/{stamp}.{layout.ext}"
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    lake_files.write_whole_file(str(path), framed, layout)
    return rel


def key_row(key: int) -> dict[str, Any]:
    return {"id": key, "region": None, "qty": None, "note": None}


def lake_of(root: Path, **kw: Any) -> Lake:
    return open_lake(lake_config(endpoint(root, "", **kw)))


def controller_for(
    lake: Lake, primary_key: tuple[str, ...] = ("id",), partition: tuple[str, ...] = ()
) -> Controller:
    controller = Controller(lake)
    controller.entries[NAME] = ControllerEntry(NAME, True, primary_key, partition)
    controller.save()
    return controller


def curated(lake: Lake) -> list[dict[str, Any]]:
    dt = DeltaTable(lake.table_uri(NAME))
    return sorted(dt.to_pyarrow_table().to_pylist(), key=lambda r: (r["id"], str(r)))


def expected(source: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    return [source[k] for k in sorted(source)]


# --- the property: curated == the dict that replays the operations ---------------------------


@dataclass
class World:
    root: Path
    source: dict[int, dict[str, Any]] = field(default_factory=dict)
    clock: Clock = field(default_factory=Clock)
    loads: int = 0

    def apply(self, ops: list[tuple[str, dict[str, Any]]]) -> None:
        change_file(self.root, self.clock.stamp(), ops)
        for op, row in ops:
            if op == "D":
                self.source.pop(row["id"], None)
            else:
                self.source[row["id"]] = row

    def full_load(self) -> None:
        self.loads += 1
        time.sleep(0.002)
        full_load(self.root, expected(self.source), f"loads/2026/01/{self.loads:02d}")
        time.sleep(0.002)


row_st = st.builds(
    lambda key, region, qty: {"id": key, "region": region, "qty": qty, "note": f"n{qty}"},
    st.integers(1, 12),
    st.sampled_from(REGIONS),
    st.integers(0, 1000),
)
op_st = st.one_of(
    st.tuples(st.sampled_from(["I", "U"]), row_st),
    st.tuples(st.just("D"), st.integers(1, 12).map(key_row)),
)
step_st = st.one_of(
    st.tuples(st.just("changes"), st.lists(op_st, min_size=1, max_size=8)),
    st.tuples(st.just("full"), st.none()),
    st.tuples(st.just("process"), st.none()),
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=st.lists(step_st, min_size=1, max_size=9), partitioned=st.booleans())
def test_curation_matches_the_replayed_operations(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[str, Any]], partitioned: bool
) -> None:
    world = World(tmp_path_factory.mktemp("lake"))
    world.full_load()  # the task's (empty) full load records the table's shape
    lake = lake_of(world.root)
    controller = controller_for(lake, partition=("region",) if partitioned else ())
    processed = False
    for kind, ops in [*steps, ("process", None)]:
        if kind == "changes":
            world.apply(ops)
        elif kind == "full":
            world.full_load()
        else:
            results = process(lake, controller)
            assert [r.status for r in results] in (["processed"], ["unchanged"]), results
            assert not results[0].skipped
            processed = processed or results[0].status == "processed"
            if processed:
                assert curated(lake) == expected(world.source)
    if partitioned and processed:
        assert DeltaTable(lake.table_uri(NAME)).metadata().partition_columns == ["region"]
    lake.close()


# --- the fixed cases the property also covers ---------------------------------------------


def test_repeated_keys_delete_then_reinsert_and_a_later_full_load(tmp_path: Path) -> None:
    world = World(tmp_path)
    lake = lake_of(tmp_path)
    controller = controller_for(lake, partition=("region",))
    r = {k: {"id": k, "region": REGIONS[k % 3], "qty": k, "note": "a"} for k in range(1, 7)}
    world.source = {k: dict(v) for k, v in r.items()}
    world.full_load()
    world.apply([("U", {**r[1], "qty": 10}), ("U", {**r[1], "qty": 11}), ("D", key_row(2))])
    world.apply([("I", {**r[2], "note": "back"}), ("D", key_row(3)), ("U", {**r[4], "region": "us"})])
    [result] = process(lake, controller)
    assert result.status == "processed" and result.full_load is not None
    assert curated(lake) == expected(world.source)
    assert {row["id"]: row["qty"] for row in curated(lake)}[1] == 11
    version = DeltaTable(lake.table_uri(NAME)).version()

    # nothing new: nothing written
    [again] = process(lake, controller)
    assert again.status == "unchanged"
    assert DeltaTable(lake.table_uri(NAME)).version() == version

    # a change to one partition rewrites only that partition's files
    eu_key = next(k for k, v in world.source.items() if v["region"] == "eu")
    world.apply([("U", {**world.source[eu_key], "note": "eu only"})])
    [merged] = process(lake, controller)
    assert merged.files_rewritten == 1
    assert curated(lake) == expected(world.source)

    # a full load arriving after changes replaces the state; later changes apply on it
    world.source = {k: {"id": k, "region": "ap", "qty": 0, "note": "reloaded"} for k in (20, 21)}
    world.full_load()
    world.apply([("U", {"id": 21, "region": "eu", "qty": 5, "note": "after"})])
    [reloaded] = process(lake, controller)
    assert reloaded.full_load is not None
    assert curated(lake) == expected(world.source)
    entry = Controller(lake).get(NAME)
    assert entry.last_incremental_file == world.clock.last + ".csv"
    assert entry.last_full_load_date is not None
    lake.close()


def test_seed_003_two_full_loads_in_two_dated_folders(tmp_path: Path) -> None:
    """Two full loads on two dates land in two dated folders; curating the
    later one replaces the earlier state (also when both arrive before a run)."""
    first = [{"id": k, "region": "eu", "qty": k, "note": "day 1"} for k in range(1, 5)]
    second = [{"id": k, "region": "us", "qty": k * 10, "note": "day 2"} for k in range(3, 7)]
    full_load(tmp_path, first, "raw/{date:%Y/%m/%d}")
    day1 = next(p for p in (tmp_path / "raw").rglob("LOAD00000001.csv"))
    lake = lake_of(tmp_path)
    controller = controller_for(lake)
    [one] = process(lake, controller)
    assert one.full_load is not None and curated(lake) == first
    full_load(tmp_path, second, "raw/2099/01/02")  # a later day's folder
    [two] = process(lake, controller)
    assert two.full_load is not None and two.full_load.endswith("raw/2099/01/02/sales/orders")
    assert curated(lake) == second
    assert day1.exists()  # the earlier load's files stay where they were written

    # resetting LastFullLoadDate reprocesses the newest full load only
    controller.entries[NAME].last_full_load_date = None
    controller.save()
    [three] = process(lake, controller)
    assert three.full_load is not None and three.full_load.endswith("2099/01/02/sales/orders")
    assert curated(lake) == second
    lake.close()


def test_changes_from_the_lake_applier_with_date_partitions(tmp_path: Path) -> None:
    settings_: dict[str, Any] = {"DatePartitionEnabled": True, "CdcPath": "changes", "AddColumnName": True}
    rows = [{"id": k, "region": "eu", "qty": k, "note": None} for k in range(1, 4)]
    full_load(tmp_path, rows, "", **settings_)
    applier = LakeApplier(endpoint(tmp_path, "", **settings_))
    for n, (upserts, deletes) in enumerate(
        [
            ([{"id": 2, "region": "us", "qty": 20, "note": "x"}], [{"id": 3}]),
            ([{"id": 4, "region": "ap", "qty": 4, "note": ""}], [{"id": 1}]),
        ]
    ):
        applier.apply_changes("t", [upserted(TABLE, upserts, deletes)], Checkpoint("sqlite", {"n": n}))
        time.sleep(0.002)
    applier.close()
    lake = lake_of(tmp_path, **settings_)
    controller = controller_for(lake, partition=("region",))
    [result] = process(lake, controller)
    assert result.status == "processed" and len(result.change_files) == 2
    assert curated(lake) == [
        {"id": 2, "region": "us", "qty": 20, "note": "x"},
        {"id": 4, "region": "ap", "qty": 4, "note": ""},
    ]
    lake.close()


def test_parquet_files_and_append_only_tables(tmp_path: Path) -> None:
    rows = [{"id": 1, "region": "eu", "qty": 1, "note": "a"}]
    full_load(tmp_path, rows, "", data_format="parquet")
    clock = Clock()
    change_file(
        tmp_path,
        clock.stamp(),
        [("I", {"id": 2, "region": "eu", "qty": 2, "note": "b"}), ("D", key_row(1))],
        data_format="parquet",
    )
    change_file(
        tmp_path,
        clock.stamp(),
        [("U", {"id": 2, "region": "us", "qty": 3, "note": "c"})],
        data_format="parquet",
    )
    lake = lake_of(tmp_path, data_format="parquet")
    controller = controller_for(lake, primary_key=())
    [result] = process(lake, controller)
    assert result.status == "processed"
    # no primary key: every insert and update is appended, deletes are ignored
    assert [(r["id"], r["qty"]) for r in curated(lake)] == [(1, 1), (2, 2), (2, 3)]
    lake.close()


def test_a_foreign_and_a_corrupt_file_are_skipped_and_reported(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.source = {1: {"id": 1, "region": "eu", "qty": 1, "note": "a"}}
    world.full_load()
    world.apply([("U", {"id": 1, "region": "eu", "qty": 2, "note": "b"})])
    folder = tmp_path / "cdc" / "sales" / "orders"
    (folder / "README.txt").write_text("not a change file")
    bad = folder / f"{world.clock.stamp()}.csv"
    bad.write_text('U,1,"unterminated\n')
    world.apply([("I", {"id": 2, "region": "us", "qty": 5, "note": "c"})])
    # a second table whose raw files are fine
    other = TableSchema(TableRef("sales", "items"), TABLE.columns, ("id",))
    target = LakeTarget(endpoint(tmp_path, "items"))
    load = target.begin_load(other, PrepMode.DROP_AND_CREATE)
    load.write(
        pa.RecordBatch.from_pylist(
            [{"id": 9, "region": "eu", "qty": 9, "note": "i"}], schema=other.arrow_schema()
        )
    )
    load.commit()
    target.close()
    lake = lake_of(tmp_path)
    controller = controller_for(lake)
    controller.entries["sales.items"] = ControllerEntry("sales.items", True, ("id",))
    controller.save()
    results = {r.table: r for r in process(lake, controller)}
    orders = results[NAME]
    assert orders.status == "processed"
    reasons = {Path(s["file"]).name: s["reason"] for s in orders.skipped}
    assert reasons["README.txt"] == "not a LOAD or change file"
    assert reasons[bad.name].startswith("unreadable")
    assert curated(lake) == expected(world.source)
    assert results["sales.items"].status == "processed"
    assert Controller(lake).get(NAME).last_incremental_file == world.clock.last + ".csv"
    lake.close()


def test_a_failing_table_does_not_stop_the_others(tmp_path: Path) -> None:
    full_load(tmp_path, [{"id": 1, "region": "eu", "qty": 1, "note": "a"}], "")
    lake = lake_of(tmp_path)
    controller = Controller(lake)
    controller.entries["sales.orders"] = ControllerEntry("sales.orders", True, ("nope",))
    controller.entries["sales.zzz"] = ControllerEntry("sales.zzz", True, ("id",))
    controller.save()
    results = {r.table: r for r in process(lake, controller)}
    assert results["sales.orders"].status == "failed"
    assert "nope" in (results["sales.orders"].error or "")
    assert results["sales.zzz"].status == "unchanged"
    assert Controller(lake).get(NAME).last_full_load_date is None
    lake.close()


# --- the command line, and a crash between the commit and the controller --------------------


def cli(home: Path, *args: str, fault: str | None = None) -> subprocess.CompletedProcess[str]:
    return conveyor(home, *args, env={FAULT_ENV: fault} if fault else None, timeout=60)


def apply_stack(tmp_path: Path, lake_tables: str) -> Path:
    home = tmp_path / "home"
    stack = tmp_path / "conveyor.yaml"
    stack.write_text(
        "endpoints:\n"
        "  lake: {engine: lake, path: ./lake}\n"
        "  src: {engine: sqlite, path: ./src.sqlite}\n"
        "tasks:\n  load: {source: src, target: lake}\n"
        f"lake_tables:\n{lake_tables}"
    )
    result = cli(home, "apply", str(stack))
    assert result.returncode == 0, result.stderr
    return home


def test_cli_tables_process_and_query(tmp_path: Path) -> None:
    home = apply_stack(tmp_path, "  sales.orders: {primary_key: id, partition_key: region}\n")
    root = tmp_path / "lake"
    world = World(root)
    world.source = {k: {"id": k, "region": REGIONS[k % 3], "qty": k, "note": None} for k in range(1, 6)}
    world.full_load()
    world.apply([("D", key_row(5)), ("U", {"id": 1, "region": "eu", "qty": 100, "note": "big"})])

    listed = json.loads(cli(home, "lake", "tables", "--json").stdout)
    assert listed == [
        {
            "Table": NAME,
            "Lake": "lake",
            "ActiveFlag": True,
            "PrimaryKey": "id",
            "PartitionKey": "region",
            "LastFullLoadDate": None,
            "LastIncrementalFile": None,
            "TableVersion": None,
        }
    ]
    done = cli(home, "lake", "process", "--json")
    assert done.returncode == 0, done.stderr
    [result] = json.loads(done.stdout)
    assert result["status"] == "processed" and result["change_files"] == 1

    query = cli(
        home,
        "query",
        "SELECT region, count(*) AS n, sum(qty) AS q FROM sales.orders GROUP BY region ORDER BY region",
        "--json",
    )
    assert query.returncode == 0, query.stderr
    by_region: dict[str, list[int]] = {}
    for row in world.source.values():
        by_region.setdefault(row["region"], []).append(row["qty"])
    assert json.loads(query.stdout) == [
        {"region": r, "n": len(v), "q": sum(v)} for r, v in sorted(by_region.items())
    ]
    shown = cli(home, "query", "SELECT id, note FROM sales.orders WHERE id = 1")
    assert shown.returncode == 0 and "big" in shown.stdout

    bad = cli(home, "query", "SELECT * FROM sales.nothing")
    assert bad.returncode == 2 and "nothing" in bad.stderr

    edited = cli(home, "lake", "tables", "set", NAME, "--inactive", "--partition-key", "null", "--json")
    assert edited.returncode == 0, edited.stderr
    [entry] = json.loads(edited.stdout)
    assert entry["ActiveFlag"] is False and entry["PartitionKey"] is None
    [skipped] = json.loads(cli(home, "lake", "process", NAME, "--json").stdout)
    assert skipped["status"] == "inactive"
    assert cli(home, "lake", "tables", "set", "sales.nope", "--active").returncode == 0
    missing = cli(home, "lake", "process", "sales.unknown")
    assert missing.returncode == 2 and "sales.unknown" in missing.stderr


@pytest.mark.parametrize("primary_key", ["id", "[]"])
def test_a_crash_between_commit_and_controller_reprocesses_safely(tmp_path: Path, primary_key: str) -> None:
    home = apply_stack(tmp_path, f"  sales.orders: {{primary_key: {primary_key}, partition_key: region}}\n")
    root = tmp_path / "lake"
    world = World(root)
    world.source = {k: {"id": k, "region": REGIONS[k % 3], "qty": k, "note": None} for k in range(1, 6)}
    world.full_load()
    inserts = [("I", {"id": k, "region": "ap", "qty": k, "note": "new"}) for k in (7, 8)]
    world.apply(inserts)
    appended = [row for _, row in inserts]

    killed = cli(home, "lake", "process", "--json", fault="lake-before-controller:1")
    assert killed.returncode == -9, killed.stderr
    controller = json.loads((root / "curated" / CONTROLLER_FILE).read_text())["tables"][NAME]
    assert controller["LastIncrementalFile"] is None  # the commit happened, the controller did not move

    rerun = cli(home, "lake", "process", "--json")
    assert rerun.returncode == 0, rerun.stderr
    [result] = json.loads(rerun.stdout)
    assert result["recovered"] is True and result["status"] == "unchanged"
    lake = lake_of(root)
    rows = curated(lake)
    lake.close()
    # with a key and append-only alike: the full load plus the inserts, once
    assert rows == expected(world.source)
    assert sorted(r["id"] for r in rows) == [*range(1, 6), *(r["id"] for r in appended)]
    controller = json.loads((root / "curated" / CONTROLLER_FILE).read_text())["tables"][NAME]
    assert controller["LastIncrementalFile"] == world.clock.last + ".csv"


def test_the_catalog_registers_every_curated_table_as_schema_dot_table(tmp_path: Path) -> None:
    full_load(tmp_path, [{"id": k, "region": "eu", "qty": k, "note": None} for k in (1, 2, 3)], "")
    lake = lake_of(tmp_path)
    controller = controller_for(lake, partition=("region",))
    controller.entries["sales.never"] = ControllerEntry("sales.never", True, ("id",))  # no files: no view
    controller.save()
    process(lake, controller)
    catalog = build_catalog([lake])
    assert set(catalog.tables) == {NAME}
    result = run_query(catalog, "SELECT sum(qty) AS total, count(note) AS notes FROM sales.orders")
    assert result.to_pylist() == [{"total": 6, "notes": 0}]
    catalog.connection.close()
    lake.close()


# --- on an S3-compatible store (moto on loopback) -------------------------------------------


def s3_lake(moto_url: str, bucket: str, bucket_path: str) -> EndpointConfig:
    """A lake endpoint on a new bucket of the moto server."""
    import boto3  # type: ignore[import-untyped]

    boto3.client(
        "s3", endpoint_url=moto_url, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    ).create_bucket(Bucket=bucket)
    return EndpointConfig(
        "lake",
        "lake",
        path=f"s3://{bucket}/prefix",
        options={
            "settings": {"AccessKeyId": "testing", "SecretAccessKey": "testing"},
            "format": "parquet",
            "bucket_path": bucket_path,
            "endpoint_url": moto_url,
            "region": "us-east-1",
        },
    )


def test_curation_on_s3(moto_url: str) -> None:
    config = s3_lake(moto_url, "lake", "raw/2026/11/23")
    rows = [{"id": k, "region": REGIONS[k % 3], "qty": k, "note": None} for k in range(1, 5)]
    target = LakeTarget(config)
    load = target.begin_load(TABLE, PrepMode.DROP_AND_CREATE)
    load.write(pa.RecordBatch.from_pylist(rows, schema=TABLE.arrow_schema()))
    load.commit()
    target.close()
    time.sleep(0.002)
    applier = LakeApplier(config)
    upsert = {"id": 2, "region": "eu", "qty": 20, "note": "s3"}
    changes = [upserted(TABLE, [upsert], [{"id": 4}])]
    applier.apply_changes("t", changes, Checkpoint("sqlite", {"n": 1}))
    applier.close()
    lake = open_lake(lake_config(config))
    assert lake.curated_root == "s3://lake/prefix/curated"
    controller = controller_for(lake, partition=("region",))
    [result] = process(lake, controller)
    assert result.status == "processed", result.error
    dt = DeltaTable(lake.table_uri(NAME), storage_options=lake.storage_options())
    got = sorted(dt.to_pyarrow_table().to_pylist(), key=lambda r: r["id"])
    assert got == [rows[0], {"id": 2, "region": "eu", "qty": 20, "note": "s3"}, rows[2]]
    assert Controller(lake).get(NAME).table_version == dt.version()
    catalog = build_catalog([lake])
    assert run_query(catalog, "SELECT count(*) AS n FROM sales.orders").to_pylist() == [{"n": 3}]
    catalog.connection.close()
    lake.close()


def test_repeated_curation_runs_on_s3(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Raw files land on S3 and are curated, then more change files land and
    are curated by a second and a third run in the same process (the third
    merging), then a run recovers a lost controller update. The S3 server
    answers from a thread of this process, so a deltalake call that holds the
    GIL while it waits on S3 would stall here until its requests time out."""
    config = s3_lake(moto_url, "lake-again", "raw")
    source = {k: {"id": k, "region": REGIONS[k % 3], "qty": k, "note": None} for k in range(1, 9)}
    target = LakeTarget(config)
    load = target.begin_load(TABLE, PrepMode.DROP_AND_CREATE)
    load.write(pa.RecordBatch.from_pylist(expected(source), schema=TABLE.arrow_schema()))
    load.commit()
    target.close()
    lake = open_lake(lake_config(config))
    controller = controller_for(lake, partition=("region",))
    batches: list[tuple[list[dict[str, Any]], list[int]]] = [
        ([{"id": 2, "region": "eu", "qty": 20, "note": "u1"}], [4]),
        (
            [
                {"id": 1, "region": "ap", "qty": 10, "note": "u2"},
                {"id": 9, "region": "us", "qty": 9, "note": "i2"},
            ],
            [3, 5],
        ),
        (
            [
                {"id": 10, "region": "eu", "qty": 100, "note": "i3"},
                {"id": 6, "region": "eu", "qty": 60, "note": "u3"},
            ],
            [9],
        ),
    ]
    versions: list[int] = []
    last_files: list[str] = []
    for n, (upserts, deletes) in enumerate(batches):
        time.sleep(0.002)
        applier = LakeApplier(config)
        changes = [upserted(TABLE, upserts, [{"id": k} for k in deletes])]
        applier.apply_changes("t", changes, Checkpoint("sqlite", {"n": n}))
        applier.close()
        for row in upserts:
            source[row["id"]] = row
        for k in deletes:
            source.pop(k, None)
        if n == 2:  # a merge instead of a rewrite of the touched partitions
            monkeypatch.setattr(delta_write, "prefer_rewrite", lambda *args: False)
        [result] = process(lake, controller)
        assert result.status == "processed", result.error
        assert len(result.change_files) == 1
        dt = DeltaTable(lake.table_uri(NAME), storage_options=lake.storage_options())
        got = sorted(dt.to_pyarrow_table().to_pylist(), key=lambda r: r["id"])
        assert got == expected(source), f"run {n + 1}"
        entry = Controller(lake).get(NAME)
        assert entry.table_version == dt.version() == result.version
        assert entry.last_incremental_file is not None
        assert not versions or (
            entry.table_version > versions[-1] and entry.last_incremental_file > last_files[-1]
        )
        versions.append(entry.table_version)
        last_files.append(entry.last_incremental_file)
    assert result.updated == 1 and result.inserted == 1 and result.deleted == 1  # the merge's counts

    [idle] = process(lake, controller)
    assert idle.status == "unchanged" and idle.version == versions[-1]
    # the controller file lost the last two runs' updates: the table's commits restore them
    controller.entries[NAME].last_incremental_file = last_files[0]
    controller.entries[NAME].table_version = versions[0]
    controller.save()
    [again] = process(lake, Controller(lake))
    assert again.recovered and again.status == "unchanged", again.error
    entry = Controller(lake).get(NAME)
    assert (entry.table_version, entry.last_incremental_file) == (versions[-1], last_files[-1])
    catalog = build_catalog([lake])
    assert run_query(catalog, "SELECT count(*) AS n FROM sales.orders").to_pylist() == [{"n": len(source)}]
    catalog.connection.close()
    lake.close()


@pytest.mark.parametrize(
    ("data_format", "settings_"),
    [("parquet", {}), ("csv", {"AddColumnName": True}), ("csv", {})],
    ids=["parquet", "csv-header", "csv-headerless"],
)
def test_a_cdc_only_table_without_a_full_load(
    tmp_path: Path, data_format: str, settings_: dict[str, Any]
) -> None:
    """Change files only (a cdc task): Parquet and CSV with a header row
    describe themselves; headerless CSV cannot be read and says why."""
    config = endpoint(tmp_path, "", data_format, **settings_)
    applier = LakeApplier(config)
    batches = [
        (
            [
                {"id": 1, "region": "eu", "qty": 1, "note": "a"},
                {"id": 2, "region": "us", "qty": 2, "note": "b"},
            ],
            [],
        ),
        ([{"id": 1, "region": "eu", "qty": 10, "note": "a2"}], [{"id": 2}]),
    ]
    for n, (upserts, deletes) in enumerate(batches):
        changes = [upserted(TABLE, upserts, deletes)]
        applier.apply_changes("t", changes, Checkpoint("sqlite", {"n": n}))
        time.sleep(0.002)
    applier.close()
    lake = open_lake(lake_config(config))
    controller = controller_for(lake, partition=("region",))
    [result] = process(lake, controller)
    if settings_ or data_format == "parquet":
        assert result.status == "processed", result.error
        assert curated(lake) == [{"id": 1, "region": "eu", "qty": 10, "note": "a2"}]
    else:
        assert result.status == "failed"
        assert len(result.skipped) == 2 and "headerless" in result.skipped[0]["reason"]
        assert Controller(lake).get(NAME).last_incremental_file is None
    lake.close()
