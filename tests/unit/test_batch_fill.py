"""When the capture loop's batch is due: full, old enough, or a paced
applier's file large enough; and how much of a captured batch fits."""

from __future__ import annotations

import time

import pyarrow as pa

from conveyor.core.batch import OP, Checkpoint, Logged, LoggedRows, op_array
from conveyor.core.schema import TableRef
from conveyor.replication.cdc.batch_fill import BatchFill

ORDERS = TableRef("shop", "orders")
START = Checkpoint("sqlite", 0)


class TenBytesARow:
    """A paced applier's rule (``PacesBatches``): files of 100 bytes."""

    batch_seconds = 3600.0
    batch_min_bytes = 100

    def change_bytes(self, table: TableRef, change: Logged) -> int:
        return 10 * (change.rows.num_rows if isinstance(change, LoggedRows) else 1)


def _rows(n: int) -> LoggedRows:
    batch = pa.RecordBatch.from_arrays([op_array(b"c" * n), pa.array(range(n))], names=[OP, "id"])
    return LoggedRows(batch, START, 0)


def test_a_batch_is_due_when_full_or_old_enough() -> None:
    fill = BatchFill(max_changes=3, flush_seconds=0.05)
    assert not fill.due and fill.paced_due()  # nothing pending; unpaced batches are always "paced due"
    fill.note(2)
    assert not fill.due
    fill.note()
    assert fill.due and fill.pending == 3
    fill.handed()
    assert not fill.due and fill.pending == 0
    fill.note()
    time.sleep(0.06)
    assert fill.due


def test_a_paced_batch_is_due_when_a_tables_file_is_large_enough() -> None:
    fill = BatchFill(max_changes=1000, flush_seconds=0.0, pacing=TenBytesARow())
    fill.note(9)
    fill.note_logged(ORDERS, _rows(9))
    assert not fill.due and not fill.paced_due()  # 90 bytes, and the interval is an hour
    fill.note()
    fill.note_logged(ORDERS, _rows(1))
    assert fill.due
    fill.handed()
    fill.note()
    fill.note_logged(ORDERS, _rows(1))
    assert not fill.due  # the file size starts over with the next batch


def test_room_is_what_fills_the_batch_or_the_file() -> None:
    unpaced = BatchFill(max_changes=50, flush_seconds=1.0)
    unpaced.note(20)
    assert unpaced.room(ORDERS, _rows(100)) == (30, None)
    paced = BatchFill(max_changes=50, flush_seconds=1.0, pacing=TenBytesARow())
    paced.note(4)
    paced.note_logged(ORDERS, _rows(4))
    assert paced.room(ORDERS, _rows(100)) == (6, 10.0)  # 60 bytes left in the file
    assert paced.room(ORDERS, None) == (46, None)  # encoded rows: no file measures them
