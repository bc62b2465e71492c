"""Reading a table by segments (parallel-load ``ranges``: each segment is one
pushed-down read of the same snapshot) or by partitions (``partitions-auto``,
``partitions-list``: each leaf partition read as a table of the same columns,
with the table's filter). Where the snapshot serves reads from
several threads at once (``concurrent_reads``: PostgreSQL attaches every
connection to the exported snapshot), up to ``MAX_READERS`` segments are read
in parallel into a bounded queue; the one consumer (the table's load, one
target transaction) takes batches in whatever order they come. Otherwise the
segments are read one after another.

Closing the returned iterator (a stopped or failed load) stops the readers:
each closes its read (and its connection) and exits within ``read_ahead``'s poll."""

from __future__ import annotations

import functools
import itertools
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace

import pyarrow as pa

from conveyor.connectors.base import ReadsConcurrently, Snapshot, SupportsRowFilter
from conveyor.core.read_ahead import Handoff
from conveyor.core.row_filter import RowFilter
from conveyor.core.schema import TableRef, TableSchema

MAX_READERS = 4
_QUEUED_BATCHES = 4


Read = Callable[[], Iterator[pa.RecordBatch]]


def read_segments(
    snapshot: SupportsRowFilter, table: TableSchema, batch_rows: int, segments: Sequence[RowFilter]
) -> Iterator[pa.RecordBatch]:
    reads = [functools.partial(snapshot.read_where, table, batch_rows, s) for s in segments]
    return _read_all(reads_concurrently(snapshot), table, reads)


def read_partitions(
    snapshot: Snapshot,
    table: TableSchema,
    batch_rows: int,
    partitions: Sequence[TableRef],
    where: RowFilter | None,
) -> Iterator[pa.RecordBatch]:
    """The table's rows, partition by partition (``where`` pushed down into
    each read: the caller checked the snapshot can)."""
    reads: list[Read] = []
    for ref in partitions:
        part = replace(table, ref=ref)
        if where is None:
            reads.append(functools.partial(snapshot.read, part, batch_rows))
        else:
            assert isinstance(snapshot, SupportsRowFilter)
            reads.append(functools.partial(snapshot.read_where, part, batch_rows, where))
    return _read_all(reads_concurrently(snapshot), table, reads)


def reads_concurrently(snapshot: object) -> bool:
    return isinstance(snapshot, ReadsConcurrently) and snapshot.concurrent_reads


def _read_all(concurrent: bool, table: TableSchema, reads: Sequence[Read]) -> Iterator[pa.RecordBatch]:
    readers = min(MAX_READERS, len(reads)) if concurrent else 1
    if readers <= 1:
        return itertools.chain.from_iterable(read() for read in reads)
    return _parallel(table, reads, readers)


class _Done:
    """A reader finished (``error`` None) or failed."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


def _parallel(table: TableSchema, reads: Sequence[Read], readers: int) -> Iterator[pa.RecordBatch]:
    todo: queue.SimpleQueue[Read] = queue.SimpleQueue()
    for read_one in reads:
        todo.put(read_one)
    out: Handoff[pa.RecordBatch | _Done] = Handoff(_QUEUED_BATCHES)
    put = out.put

    def read() -> None:
        error: BaseException | None = None
        try:
            while not out.stopped:
                try:
                    read_one = todo.get_nowait()
                except queue.Empty:
                    break
                batches = read_one()
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
