"""Curation on a Spark standalone cluster (``--engine spark``): the same raw
files give the same curated table as the embedded engine, a SIGKILL anywhere
then a rerun equals the source, and raw files on S3 go through a local
staging folder. The master's ``/json/`` shows the applications ran there."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from conveyor.connectors.base import PrepMode
from conveyor.connectors.lake import layout as lay
from conveyor.connectors.lake.apply import LakeApplier
from conveyor.connectors.lake.settings import lake_config
from conveyor.connectors.lake.target import LakeTarget
from conveyor.core.batch import Checkpoint
from conveyor.core.faults import ENV as FAULT_ENV
from conveyor.lake.controller import CONTROLLER_FILE, Controller, open_lake
from conveyor.lake.curate import process
from conveyor.lake.spark_engine import FAULT_BEFORE_COMMIT, SparkEngine
from integration.test_lake_curation import (
    NAME,
    REGIONS,
    TABLE,
    World,
    apply_stack,
    change_file,
    controller_for,
    curated,
    expected,
    key_row,
    lake_of,
    s3_lake,
)
from support.change_log import upserted
from support.cli import conveyor
from support.spark import SparkCluster

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def cli(home: Path, *args: str, fault: str | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI, with time for a Spark session on a busy machine."""
    return conveyor(home, *args, env={FAULT_ENV: fault} if fault else None, timeout=600)


def _table(root: Path) -> list[dict[str, object]]:
    lake = lake_of(root)
    try:
        return curated(lake)
    finally:
        lake.close()


def test_spark_and_embedded_engines_curate_the_same_files_alike(
    tmp_path: Path, spark_cluster: SparkCluster
) -> None:
    before = len(spark_cluster.completed_apps())
    world = World(tmp_path / "raw")
    world.source = {k: {"id": k, "region": REGIONS[k % 3], "qty": k, "note": f"n{k}"} for k in range(1, 41)}
    world.full_load()
    world.apply([("U", {"id": 2, "region": "eu", "qty": 20, "note": None}), ("D", key_row(4))])
    world.apply(
        [
            ("I", {"id": 50, "region": "us", "qty": 5, "note": "new"}),
            ("U", {"id": 50, "region": "ap", "qty": 6, "note": "moved"}),
            ("D", key_row(2)),
            ("I", {"id": 2, "region": "us", "qty": 2, "note": "back"}),
        ]
    )
    roots = {"embedded": tmp_path / "embedded", "spark": tmp_path / "spark"}
    for root in roots.values():
        shutil.copytree(world.root, root)
    engine = SparkEngine(spark_cluster.master_url)
    try:
        for name, root in roots.items():  # a full load with changes
            lake = lake_of(root)
            [result] = process(
                lake, controller_for(lake, partition=("region",)), engine=engine if name == "spark" else None
            )
            assert result.status == "processed", result.error
            assert result.engine == name
            lake.close()
        assert _table(roots["spark"]) == _table(roots["embedded"]) == expected(world.source)
        # changes on the curated tables: the touched partitions rewritten, others kept
        ops = [
            ("U", {"id": 3, "region": "eu", "qty": 30, "note": "moved"}),
            ("D", key_row(6)),
            ("I", {"id": 60, "region": "eu", "qty": 1, "note": None}),
        ]
        world.apply(ops)
        # partial updates (an unchanged TOASTed note): from the table, and from the key's previous change
        partial = [
            ("U", {"id": 7, "region": REGIONS[1], "qty": 70, "note": None}),
            ("U", {"id": 8, "region": REGIONS[2], "qty": 8, "note": "eight"}),
            ("U", {"id": 8, "region": REGIONS[2], "qty": 80, "note": None}),
        ]
        rel = change_file(world.root, world.clock.stamp(), partial)
        marks = world.root / lay.unchanged_path(rel)
        marks.parent.mkdir(parents=True, exist_ok=True)
        marks.write_text(json.dumps({"rows": [[0, ["note"]], [2, ["note"]]]}))
        world.source[7] = {"id": 7, "region": REGIONS[1], "qty": 70, "note": "n7"}
        world.source[8] = {"id": 8, "region": REGIONS[2], "qty": 80, "note": "eight"}
        for name, root in roots.items():
            shutil.copytree(world.root, root, dirs_exist_ok=True)
            lake = lake_of(root)
            [result] = process(lake, Controller(lake), engine=engine if name == "spark" else None)
            assert result.status == "processed", result.error
            assert (result.inserted, result.updated, result.deleted) == (1, 3, 1), result.as_dict()
            lake.close()
        assert _table(roots["spark"]) == _table(roots["embedded"]) == expected(world.source)
        spark_lake = lake_of(roots["spark"])
        controller = Controller(spark_lake)
        dt = DeltaTable(spark_lake.table_uri(NAME))
        assert controller.get(NAME).table_version == dt.version()
        assert dt.metadata().partition_columns == ["region"]
        spark_lake.close()
    finally:
        engine.close()
    apps = spark_cluster.wait_completed(before + 1)
    assert any(app["name"] == "conveyor-curation" for app in apps[before:] + apps[:before]), apps
    assert len(apps) > before


def test_killed_spark_runs_then_a_rerun_equal_the_source(tmp_path: Path, spark_cluster: SparkCluster) -> None:
    """Killed before its Delta commit, then (after more changes) between that commit and the
    controller's update: the next run still equals the source. One world for both kills, as
    each Spark run starts a driver."""
    home = apply_stack(tmp_path, "  sales.orders: {primary_key: id, partition_key: region}\n")
    world = World(tmp_path / "lake")
    world.source = {k: {"id": k, "region": REGIONS[k % 3], "qty": k, "note": None} for k in range(1, 21)}
    world.full_load()
    spark = ("--engine", "spark", "--master", spark_cluster.master_url)
    changes = [
        [("D", key_row(5)), ("U", {"id": 1, "region": "eu", "qty": 100, "note": "big"})],
        [("I", {"id": 30, "region": "ap", "qty": 3, "note": "after"}), ("D", key_row(7))],
    ]
    for fault, batch in zip((f"{FAULT_BEFORE_COMMIT}:1", "lake-before-controller:1"), changes, strict=True):
        world.apply(batch)
        killed = cli(home, "lake", "process", *spark, "--json", fault=fault)
        assert killed.returncode == -9, (fault, killed.stderr)
    world.apply([("U", {"id": 2, "region": "us", "qty": 22, "note": "last"})])
    rerun = cli(home, "lake", "process", *spark, "--json")
    assert rerun.returncode == 0, rerun.stderr
    results = json.loads(rerun.stdout)
    assert [r["status"] for r in results] == ["processed"], results
    assert results[0]["engine"] == "spark"
    assert _table(world.root) == expected(world.source)
    controller = json.loads((world.root / "curated" / CONTROLLER_FILE).read_text())["tables"][NAME]
    assert controller["LastIncrementalFile"] == world.clock.last + ".csv"


def test_raw_files_on_s3_through_a_local_staging_folder(moto_url: str, spark_cluster: SparkCluster) -> None:
    config = s3_lake(moto_url, "spark-lake", "raw")
    rows = [{"id": k, "region": REGIONS[k % 3], "qty": k, "note": None} for k in range(1, 9)]
    target = LakeTarget(config)
    load = target.begin_load(TABLE, PrepMode.DROP_AND_CREATE)
    load.write(pa.RecordBatch.from_pylist(rows, schema=TABLE.arrow_schema()))
    load.commit()
    target.close()
    applier = LakeApplier(config)
    upsert = {"id": 2, "region": "eu", "qty": 20, "note": "s3"}
    applier.apply_changes("t", [upserted(TABLE, [upsert], [{"id": 4}])], Checkpoint("sqlite", {"n": 1}))
    applier.close()
    lake = open_lake(lake_config(config))
    engine = SparkEngine(spark_cluster.master_url)
    try:
        [result] = process(lake, controller_for(lake, partition=("region",)), engine=engine)
        assert result.status == "processed" and result.engine == "spark", result.error
        applier = LakeApplier(config)
        more = [upserted(TABLE, [{"id": 9, "region": "us", "qty": 9, "note": "late"}], [{"id": 1}])]
        applier.apply_changes("t", more, Checkpoint("sqlite", {"n": 2}))
        applier.close()
        [result] = process(lake, Controller(lake), engine=engine)
        assert result.status == "processed", result.error
    finally:
        engine.close()
    dt = DeltaTable(lake.table_uri(NAME), storage_options=lake.storage_options())
    got = sorted(dt.to_pyarrow_table().to_pylist(), key=lambda r: r["id"])
    want = {r["id"]: r for r in rows}
    want[2] = upsert
    del want[4], want[1]
    want[9] = {"id": 9, "region": "us", "qty": 9, "note": "late"}
    assert got == [want[k] for k in sorted(want)]
    assert Controller(lake).get(NAME).table_version == dt.version()
    lake.close()
