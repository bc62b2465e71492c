"""Row changes as a stream captures them in Arrow (``ChangeBatch.captured``),
for tests of what takes captured batches."""

from __future__ import annotations

from collections.abc import Sequence

from conveyor.connectors.captured_rows import RowsChunk, whole_row
from conveyor.connectors.changes import RowChange
from conveyor.core.batch import ChangeBatch
from conveyor.core.schema import TableSchema


def captured(changes: Sequence[RowChange], table: TableSchema, before: bool = False) -> ChangeBatch:
    """``changes`` of ``table`` as one captured batch; each must be one a
    captured batch can hold (``whole_row``). ``before``: with the UPDATEs'
    whole old rows (``BEFORE``)."""
    chunk = RowsChunk(table)
    for change in changes:
        row = whole_row(change, table, set(table.column_names), before)
        assert row is not None, change
        chunk.add(*row)
    (batch,) = chunk.take()
    assert isinstance(batch, ChangeBatch)
    return batch
