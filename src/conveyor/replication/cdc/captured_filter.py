"""A selection rule's filter on captured changes (``ChangeBatch.captured``),
judged as the change-by-change reducer judges each change: an INSERT or
UPDATE whose new row fails it moves its row out of the target (a DELETE of
its key); a DELETE is never judged; a partial UPDATE is judged on the
filtered columns it sent (an unsent one kept its value, which the stream
did not say)."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from conveyor.connectors.arrow_rows import column_values
from conveyor.core.arrow_compute import pc
from conveyor.core.batch import OP, UNCHANGED, Op, op_array
from conveyor.core.row_filter import RowFilter

_DELETE = Op.DELETE.encode()


@dataclass(frozen=True)
class Judged:
    """``rows`` with the changes that failed the filter made DELETEs of their
    key (their values kept: conversions still see them, as one by one);
    ``counted``, the operations of the others; ``unsent``, the columns a
    partial UPDATE that passed left unsent (the first such, None when none)."""

    rows: pa.RecordBatch
    counted: pa.Array
    moved_out: int
    unsent: frozenset[str] | None


def judge(row_filter: RowFilter, batch: pa.RecordBatch) -> Judged:
    """``batch`` (source column names) judged by ``row_filter``."""
    n = batch.num_rows
    ops = batch.column(OP).to_pylist()
    names = batch.schema.names
    unsent: list[list[str] | None] = batch.column(UNCHANGED).to_pylist() if UNCHANGED in names else [None] * n
    fails = bytearray(n)
    for column_filter in row_filter.columns:
        column = column_filter.column
        for i, value in enumerate(column_values(batch.column(column))):
            left = unsent[i]
            if fails[i] or ops[i] == _DELETE or (left is not None and column in left):
                continue
            if not column_filter.test(value):
                fails[i] = 1
    first_unsent = next(
        (
            frozenset(u)
            for op, u, failed in zip(ops, unsent, fails, strict=True)
            if u and not failed and op != _DELETE
        ),
        None,
    )
    moved_out = sum(fails)
    if not moved_out:
        return Judged(batch, batch.column(OP), 0, first_unsent)
    failed = pc.not_equal(pa.Array.from_buffers(pa.uint8(), n, [None, pa.py_buffer(bytes(fails))]), 0)
    arrays = batch.columns
    arrays[names.index(OP)] = pc.if_else(failed, op_array(_DELETE)[0], batch.column(OP))
    if UNCHANGED in names:
        lists = batch.column(UNCHANGED)
        arrays[names.index(UNCHANGED)] = pc.if_else(failed, pa.nulls(1, lists.type)[0], lists)
    rows = pa.RecordBatch.from_arrays(arrays, schema=batch.schema)
    return Judged(rows, batch.column(OP).filter(pc.invert(failed)), moved_out, first_unsent)
