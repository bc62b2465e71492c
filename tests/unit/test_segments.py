"""Reading a table by range segments: every segment's rows exactly once, a
reader's error raised to the load, and readers stopped when the load stops."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pyarrow as pa
import pytest

from conveyor.core.row_filter import RowFilter, range_segments
from conveyor.core.schema import Column, TableRef, TableSchema
from conveyor.core.types import Kind, simple
from conveyor.replication.segments import read_segments

TABLE = TableSchema(TableRef("s", "t"), (Column("id", simple(Kind.INT64)),), ("id",))
ROWS = [*range(1, 101), None]


class FakeSnapshot:
    """Reads from several threads, as PostgreSQL's snapshot does."""

    def __init__(self, concurrent: bool, fail_on: int | None = None) -> None:
        self.concurrent_reads = concurrent
        self.fail_on = fail_on
        self.closed = 0
        self.started = 0
        self.threads: set[str] = set()
        self._lock = threading.Lock()

    def pushes_down(self, table: TableSchema, where: RowFilter) -> bool:
        return True

    def read_where(
        self, table: TableSchema, batch_rows: int, where: RowFilter, order_by_key: bool = False
    ) -> Iterator[pa.RecordBatch]:
        try:
            with self._lock:
                self.threads.add(threading.current_thread().name)
                self.started += 1
            ids = [i for i in ROWS if where.matches({"id": i})]
            for start in range(0, len(ids), batch_rows):
                chunk = ids[start : start + batch_rows]
                if self.fail_on is not None and self.fail_on in chunk:
                    raise RuntimeError(f"lost the connection reading {self.fail_on}")
                yield pa.RecordBatch.from_pydict({"id": pa.array(chunk, pa.int64())})
        finally:
            with self._lock:
                self.closed += 1


SEGMENTS = range_segments("id", Kind.INT64, (10, 20, 50, 70, 90))


@pytest.mark.parametrize("concurrent", [True, False])
def test_every_row_once(concurrent: bool) -> None:
    snapshot = FakeSnapshot(concurrent)
    read = [v for b in read_segments(snapshot, TABLE, 7, SEGMENTS) for v in b.column(0).to_pylist()]
    assert sorted(read, key=lambda v: -1 if v is None else v) == [None, *range(1, 101)]
    assert snapshot.closed == len(SEGMENTS)
    assert (len(snapshot.threads) > 1) == concurrent


def test_a_reader_error_is_raised_to_the_load() -> None:
    snapshot = FakeSnapshot(True, fail_on=55)
    with pytest.raises(RuntimeError, match="lost the connection reading 55"):
        for _ in read_segments(snapshot, TABLE, 3, SEGMENTS):
            pass


def test_a_stopped_load_stops_the_readers() -> None:
    snapshot = FakeSnapshot(True)
    before = threading.active_count()
    batches = read_segments(snapshot, TABLE, 1, SEGMENTS)
    next(batches)
    batches.close()  # type: ignore[attr-defined]
    assert threading.active_count() == before
    assert 0 < snapshot.started < len(SEGMENTS)  # the readers stopped taking segments
    assert snapshot.closed == snapshot.started  # and closed what they had open
