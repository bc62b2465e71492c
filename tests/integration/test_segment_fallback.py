"""`SegmentedLoadSettings.Workers: store` with engines workers cannot share
(an SQLite source, a DuckDB target): the segments are read in the task's own
process, nothing is published for workers, and the table loads whole."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import duckdb
import pytest

from conveyor.connectors.base import EndpointConfig, PrepMode
from conveyor.connectors.duckdb.target import DuckDBTarget
from conveyor.connectors.sqlite.source import SQLiteSource
from conveyor.core.row_filter import range_segments
from conveyor.core.types import Kind
from conveyor.replication.full_load import FullLoad
from conveyor.replication.segment_load import StoreSegments
from conveyor.replication.settings import SegmentedLoadSettings
from conveyor.replication.table_plan import TABLE_COMPLETED, TablePlan
from conveyor.store.segments import SegmentQueue
from conveyor.store.store import Store

pytestmark = pytest.mark.integration


def test_unshareable_engines_load_segments_in_process(tmp_path: Path) -> None:
    db = tmp_path / "src.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"v{i}") for i in range(1, 1001)])
    source = SQLiteSource(EndpointConfig("src", "sqlite", path=str(db)))
    target = DuckDBTarget(EndpointConfig("dw", "duckdb", path=str(tmp_path / "dw.duckdb")))
    store = Store.open(home=tmp_path / "home")
    try:
        (table,) = source.tables()
        plan = replace(TablePlan(table, table), segments=range_segments("id", Kind.INT64, (250, 500)))
        snapshot = source.snapshot()
        try:
            settings = SegmentedLoadSettings.model_validate({"Workers": "store"})
            workers = StoreSegments(SegmentQueue(store), "t", 1, snapshot, target, settings)
            (progress,) = FullLoad(
                snapshot, target, [plan], PrepMode.DROP_AND_CREATE, segmented=workers
            ).run()
        finally:
            snapshot.close()
        assert (progress.state, progress.rows) == (TABLE_COMPLETED, 1000)
        assert SegmentQueue(store).segments(1) == []
    finally:
        store.close()
        target.close()
        source.close()
    with duckdb.connect(str(tmp_path / "dw.duckdb")) as con:
        assert con.execute("SELECT count(*), sum(id) FROM main.t").fetchone() == (1000, 500500)
