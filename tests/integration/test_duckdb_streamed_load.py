"""The streamed DuckDB load (one INSERT pulling the source's batches): every
row once, a source error reported as itself, stop mid-table."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from conveyor.connectors.base import EndpointConfig, PrepMode
from conveyor.connectors.duckdb.target import DuckDBTarget
from conveyor.core.errors import DataError
from conveyor.core.schema import Column, TableRef, TableSchema
from conveyor.core.types import ColumnType, Kind
from conveyor.replication.full_load import FullLoad
from conveyor.replication.table_plan import TABLE_COMPLETED, TABLE_ERROR, TABLE_QUEUED, TablePlan

pytestmark = pytest.mark.integration

TABLE = TableSchema(
    TableRef("public", "ids"),
    (Column("id", ColumnType(Kind.INT64), False), Column("v", ColumnType(Kind.TEXT), True)),
    ("id",),
)


class _Snapshot:
    """A source of ``batches`` batches (endless when None) that fails after
    ``fail_after`` of them when asked to."""

    def __init__(self, batches: int | None = None, fail_after: int | None = None) -> None:
        self.batches = batches
        self.fail_after = fail_after
        self.closed = threading.Event()

    def read(
        self, table: TableSchema, batch_rows: int, order_by_key: bool = False
    ) -> Iterator[pa.RecordBatch]:
        try:
            i = 0
            while self.batches is None or i < self.batches:
                if i == self.fail_after:
                    raise DataError("source says no")
                ids = range(i * batch_rows, (i + 1) * batch_rows)
                yield pa.record_batch(
                    {"id": pa.array(ids, pa.int64()), "v": pa.array([f"v{n}" for n in ids])},
                    schema=table.arrow_schema(),
                )
                i += 1
        finally:
            self.closed.set()


@pytest.fixture
def duck(tmp_path: Path) -> Iterator[DuckDBTarget]:
    target = DuckDBTarget(EndpointConfig("dw", "duckdb", path=str(tmp_path / "dw.duckdb")))
    yield target
    target.close()


def _load(snapshot: _Snapshot, duck: DuckDBTarget, stop: threading.Event | None = None) -> FullLoad:
    return FullLoad(
        snapshot,  # type: ignore[arg-type]
        duck,
        [TablePlan(TABLE, TABLE)],
        PrepMode.DROP_AND_CREATE,
        batch_rows=100,
        stop=stop or threading.Event(),
    )


def test_every_row_is_loaded_once_and_the_session_keeps_its_settings(duck: DuckDBTarget) -> None:
    [progress] = _load(_Snapshot(batches=500), duck).run()
    assert progress.state == TABLE_COMPLETED, progress.error
    assert progress.rows == 50_000
    cur = duck._connection().cursor()
    row = cur.execute(
        "SELECT count(*), count(DISTINCT id), sum(id), min(v), max(v) FROM public.ids"
    ).fetchone()
    assert row == (50_000, 50_000, sum(range(50_000)), "v0", "v9999")
    assert cur.execute("SELECT current_setting('preserve_insertion_order')").fetchone() == (True,)


def test_source_error_in_a_streamed_load_is_reported_as_itself(duck: DuckDBTarget) -> None:
    snapshot = _Snapshot(fail_after=5)
    [progress] = _load(snapshot, duck).run()
    assert progress.state == TABLE_ERROR
    assert progress.error == "source says no"
    assert snapshot.closed.is_set()
    assert duck.describe(TABLE.ref) is None  # created by the load, rolled back


def test_stop_ends_a_streamed_load_mid_table(duck: DuckDBTarget) -> None:
    snapshot = _Snapshot()
    stop = threading.Event()
    timer = threading.Timer(0.3, stop.set)
    timer.start()
    try:
        [progress] = _load(snapshot, duck, stop).run()
    finally:
        timer.cancel()
    assert progress.state == TABLE_QUEUED
    assert progress.rows == 0
    assert snapshot.closed.wait(5)
    assert duck.describe(TABLE.ref) is None
