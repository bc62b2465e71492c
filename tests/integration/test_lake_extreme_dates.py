"""Curation of dates deltalake's statistics cannot hold (past year 262143, and
PostgreSQL's infinity): into a new table, over an existing one created without
them (overwrite by a later full load, merge/rewrite of changes, append)."""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from conveyor.connectors.base import EndpointConfig, PrepMode
from conveyor.connectors.lake.apply import LakeApplier
from conveyor.connectors.lake.settings import lake_config
from conveyor.connectors.lake.target import LakeTarget
from conveyor.core import types as t
from conveyor.core.batch import Checkpoint
from conveyor.core.schema import Column, TableRef, TableSchema
from conveyor.core.types import Kind
from conveyor.lake.controller import Controller, ControllerEntry, open_lake
from conveyor.lake.curate import process
from support.change_log import upserted

pytestmark = pytest.mark.integration

TABLE = TableSchema(
    TableRef("s", "dates"),
    (Column("id", t.simple(Kind.INT64), False), Column("d", t.simple(Kind.DATE))),
    ("id",),
)
LAST = 2_145_042_905  # 5874897-12-31, PostgreSQL's last date, as date32
FIRST = -2_440_588  # 4714-11-24 BC


def _endpoint(root: Path, data_format: str) -> EndpointConfig:
    return EndpointConfig("lake", "lake", path=str(root), options={"settings": {}, "format": data_format})


def _batch(rows: list[tuple[int, int]]) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays(
        [
            pa.array([r[0] for r in rows], pa.int64()),
            pa.array([r[1] for r in rows], pa.int32()).view(pa.date32()),
        ],
        schema=TABLE.arrow_schema(),
    )


def _full_load(root: Path, rows: list[tuple[int, int]], data_format: str) -> None:
    target = LakeTarget(_endpoint(root, data_format))
    load = target.begin_load(TABLE, PrepMode.DROP_AND_CREATE)
    load.write(_batch(rows))
    load.commit()
    target.close()


def _curate(root: Path, data_format: str, key: tuple[str, ...]) -> dict[int, int]:
    lake = open_lake(lake_config(_endpoint(root, data_format)))
    controller = Controller(lake)
    controller.load()
    if "s.dates" not in controller.entries:
        controller.entries["s.dates"] = ControllerEntry("s.dates", True, key)
        controller.save()
    [result] = process(lake, controller, ["s.dates"])
    assert result.status == "processed", result.error
    data = DeltaTable(lake.table_uri("s.dates")).to_pyarrow_table()
    lake.close()
    days = data.column("d").combine_chunks().view(pa.int32()).to_pylist()
    return dict(zip(data.column("id").to_pylist(), days, strict=True))


@pytest.mark.parametrize(("data_format", "key"), [("csv", ("id",)), ("parquet", ("id",)), ("csv", ())])
def test_extreme_dates_curate_into_new_and_existing_tables(
    tmp_path: Path, data_format: str, key: tuple[str, ...]
) -> None:
    _full_load(tmp_path, [(1, 0)], data_format)
    assert _curate(tmp_path, data_format, key) == {1: 0}  # created without extreme dates
    applier = LakeApplier(_endpoint(tmp_path, data_format))
    rows = [{"id": 2, "d": "infinity"}, {"id": 3, "d": LAST}, {"id": 4, "d": FIRST}]
    applier.apply_changes("t", [upserted(TABLE, rows)], Checkpoint("sqlite", {"n": 1}))
    applier.close()
    infinity = t.DATE_INFINITY
    assert _curate(tmp_path, data_format, key) == {1: 0, 2: infinity, 3: LAST, 4: FIRST}
    time.sleep(0.01)
    _full_load(tmp_path, [(5, -infinity), (6, LAST)], data_format)  # overwrites the table
    assert _curate(tmp_path, data_format, key) == {5: -infinity, 6: LAST}
