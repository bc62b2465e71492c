"""The DuckDB full load's memory: the file's memory_limit lowered only while
loads alone stream rows, and the key order that spares the duplicate check."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from conveyor.connectors.duckdb.key_order import AscendingKey
from conveyor.connectors.duckdb.memory import MemoryLimit, memory_limit_of, size_bytes, stream_limit
from conveyor.core.schema import Column, TableRef, TableSchema
from conveyor.core.types import ColumnType, Kind


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1GB", 10**9),
        ("128MB", 128 * 10**6),
        ("512MiB", 512 * 2**20),
        ("1.5GB", 15 * 10**8),
        ("64 kib", 65536),
    ],
)
def test_sizes_read_as_duckdb_reads_them(text: str, expected: int) -> None:
    assert size_bytes(text) == expected


@pytest.mark.parametrize(
    ("limit", "expected"),
    [
        ("1GB", 128 * 2**20),
        ("4GiB", 512 * 2**20),
        ("200MB", 128 * 2**20),
        ("96MB", 96 * 10**6),
        ("1MB", 10**6),
    ],
)
def test_stream_limit_is_an_eighth_at_least_128mb_at_most_the_limit(limit: str, expected: int) -> None:
    assert stream_limit(limit) == expected


def _limit(conn: duckdb.DuckDBPyConnection) -> int:
    row = conn.execute("SELECT value FROM duckdb_settings() WHERE name = 'memory_limit'").fetchone()
    assert row is not None
    return size_bytes(str(row[0]).replace(" ", ""))


def test_the_limit_is_lowered_only_while_nothing_but_streams_run(tmp_path: Path) -> None:
    conn = duckdb.connect(str(tmp_path / "w.duckdb"), config={"memory_limit": "1GiB"})
    memory = MemoryLimit("1GiB")
    full, low = 2**30, 128 * 2**20
    memory.enter_busy(conn)  # a load begins
    assert _limit(conn) == full
    with memory.streaming(conn):
        assert memory.low and _limit(conn) == low
        with memory.busy(conn):  # a change batch, or another load's key
            assert not memory.low and _limit(conn) == full
            assert memory.note() == ""
        assert _limit(conn) == low
        assert memory.note() == "; 128MiB while full loads only stream rows"
    assert _limit(conn) == full
    memory.leave_busy(conn)
    assert _limit(conn) == full
    conn.close()


def test_an_in_memory_database_keeps_its_limit() -> None:
    conn = duckdb.connect(":memory:", config={"memory_limit": "1GiB"})
    memory = memory_limit_of(":memory:", "1GiB")
    memory.enter_busy(conn)
    with memory.streaming(conn):
        assert not memory.low and _limit(conn) == 2**30
    memory.leave_busy(conn)
    conn.close()


def _table(kind: Kind) -> TableSchema:
    columns = (Column("id", ColumnType(kind)), Column("v", ColumnType(Kind.TEXT)))
    return TableSchema(TableRef("main", "t"), columns, ("id",))


def _batches(keys: list[list[int]]) -> list[pa.RecordBatch]:
    return [
        pa.record_batch([pa.array(k, pa.int64()), pa.array(["x"] * len(k), pa.string())], names=["id", "v"])
        for k in keys
    ]


@pytest.mark.parametrize(
    ("keys", "holds"),
    [
        ([[1, 2, 3], [4, 5], [], [9]], True),
        ([[1, 2, 3], [3, 4]], False),  # a duplicate across batches
        ([[1, 2, 2]], False),  # within a batch
        ([[1, 3, 2]], False),  # out of order: may repeat later
        ([[5], [4]], False),
    ],
)
def test_a_strictly_ascending_key_proves_no_duplicate(keys: list[list[int]], holds: bool) -> None:
    watcher = AscendingKey.of(_table(Kind.INT64), ("ID",))
    assert watcher is not None
    seen = list(watcher.watch(iter(_batches(keys))))
    assert len(seen) == len(keys)
    assert watcher.holds is holds


def test_a_null_key_or_an_unvouched_kind_proves_nothing() -> None:
    watcher = AscendingKey.of(_table(Kind.INT64), ("id",))
    assert watcher is not None
    watcher.see(pa.record_batch([pa.array([1, None], pa.int64()), pa.array(["a", "b"])], names=["id", "v"]))
    assert not watcher.holds
    assert AscendingKey.of(_table(Kind.FLOAT64), ("id",)) is None
    assert AscendingKey.of(_table(Kind.UUID), ("id",)) is None
    two = TableSchema(TableRef("main", "t"), _table(Kind.INT64).columns, ("id", "v"))
    assert AscendingKey.of(two, ("id", "v")) is None
