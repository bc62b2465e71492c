"""Reading a table by segments (parallel-load ``ranges``): each segment is one
pushed-down read of the same snapshot. Where the snapshot serves reads from
several threads at once (``concurrent_reads``: PostgreSQL attaches every
connection to the exported snapshot), up to ``MAX_READERS`` segments are read
in parallel into a bounded queue; the one consumer (the table's load, one
target transaction) takes batches in whatever order they come. Otherwise the
segments are read one after another.

Closing the returned iterator (a stopped or failed load) stops the readers:
each closes its read (and its connection) and exits within ``read_ahead``'s poll."""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Iterator, Sequence

import pyarrow as pa

from conveyor.connectors.base import ReadsConcurrently, SupportsRowFilter
from conveyor.core.read_ahead import Handoff
from conveyor.core.row_filter import RowFilter
from conveyor.core.schema import TableSchema

MAX_READERS = 4
_QUEUED_BATCHES = 4


def read_segments(
    snapshot: SupportsRowFilter, table: TableSchema, batch_rows: int, segments: Sequence[RowFilter]
) -> Iterator[pa.RecordBatch]:
    concurrent = isinstance(snapshot, ReadsConcurrently) and snapshot.concurrent_reads
    readers = min(MAX_READERS, len(segments)) if concurrent else 1
    if readers <= 1:
        return itertools.chain.from_iterable(snapshot.read_where(table, batch_rows, s) for s in segments)
    return _parallel(snapshot, table, batch_rows, segments, readers)


class _Done:
    """A reader finished (``error`` None) or failed."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


def _parallel(
    snapshot: SupportsRowFilter,
    table: TableSchema,
    batch_rows: int,
    segments: Sequence[RowFilter],
    readers: int,
) -> Iterator[pa.RecordBatch]:
    todo: queue.SimpleQueue[RowFilter] = queue.SimpleQueue()
    for segment in segments:
        todo.put(segment)
    out: Handoff[pa.RecordBatch | _Done] = Handoff(_QUEUED_BATCHES)
    put = out.put

    def read() -> None:
        error: BaseException | None = None
        try:
            while not out.stopped:
                try:
                    segment = todo.get_nowait()
                except queue.Empty:
                    break
                batches = snapshot.read_where(table, batch_rows, segment)
                try:
                    for batch in batches:
                        if not put(batch):
                            return
                finally:
                    close = getattr(batches, "close", None)
                    if close is not None:
                        close()
        except BaseException as exc:  # handed to the consumer, raised there
            error = exc
        put(_Done(error))

    threads = [
        threading.Thread(target=read, name=f"segments-{table.ref}-{i}", daemon=True) for i in range(readers)
    ]
    for thread in threads:
        thread.start()
    try:
        running = len(threads)
        while running:
            item = out.get()
            if isinstance(item, _Done):
                running -= 1
                if item.error is not None:
                    raise item.error
                continue
            yield item
    finally:
        out.stop()
        for thread in threads:
            thread.join(timeout=30)
