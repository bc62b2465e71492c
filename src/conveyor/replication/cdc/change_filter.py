"""The selection rule's filter on captured changes: an INSERT or UPDATE
whose new row fails it moves its row out of the target (a DELETE of its
key); a DELETE is never judged; a partial UPDATE is judged on the filtered
columns it sent (an unsent one kept its value, which the stream did not
say). Change by change (``passes``, on the source values) and in Arrow for
captured batches (``judge``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import pyarrow as pa

from conveyor.connectors.arrow_rows import column_values
from conveyor.connectors.changes import RowChange
from conveyor.core.arrow_compute import pc
from conveyor.core.batch import OP, UNCHANGED, Op, op_array
from conveyor.core.row_filter import ColumnFilter, RowFilter
from conveyor.core.schema import TableRef

log = logging.getLogger(__name__)
_WARNED: set[TableRef] = set()  # tables whose filter met an update it could not judge whole (said once)
_DELETE = Op.DELETE.encode()

MOVED_OUT = "conveyor_moved_out"
"""A boolean column marking the changes a filter moved out (made DELETEs),
when asked (``judge``'s ``mark``): key histories leave them unjudged."""


@dataclass(frozen=True)
class Judged:
    """``rows`` with the changes that failed the filter made DELETEs of their
    key (their values kept: conversions still see them, as one by one);
    ``counted``, the operations of the others; ``unsent``, the columns a
    partial UPDATE that passed left unsent (the first such, None when none);
    ``moved``, which rows failed (None when none did)."""

    rows: pa.RecordBatch
    counted: pa.Array
    moved_out: int
    unsent: frozenset[str] | None
    moved: pa.Array | None = None


def judge(row_filter: RowFilter, batch: pa.RecordBatch, mark: bool = False) -> Judged:
    """``batch`` (source column names) judged by ``row_filter`` (see the module
    docstring): integer and text columns by Arrow's kernels
    (``ColumnFilter.passing``), the others value by value.
    ``mark``: the rows moved out are marked (``MOVED_OUT``)."""
    n = batch.num_rows
    names = batch.schema.names
    deleted = pc.equal(batch.column(OP), op_array(_DELETE)[0])
    lists = batch.column(UNCHANGED) if UNCHANGED in names else None
    fails = bytearray(n)  # the columns judged value by value
    by_value: list[ColumnFilter] = []
    failed: pa.Array | None = None
    for column_filter in row_filter.columns:
        passes = column_filter.passing(batch.column(column_filter.column))
        if passes is None:
            by_value.append(column_filter)
            continue
        judged = pc.invert(deleted)
        if lists is not None:
            judged = pc.and_(judged, pc.invert(_naming(lists, column_filter.column)))
        failing = pc.and_(judged, pc.invert(passes))
        failed = failing if failed is None else pc.or_(failed, failing)
    ops = batch.column(OP).to_pylist() if by_value or lists is not None else []
    unsent: list[list[str] | None] = lists.to_pylist() if lists is not None else [None] * n
    for column_filter in by_value:
        column = column_filter.column
        for i, value in enumerate(column_values(batch.column(column))):
            left = unsent[i]
            if fails[i] or ops[i] == _DELETE or (left is not None and column in left):
                continue
            if not column_filter.test(value):
                fails[i] = 1
    if by_value:
        failing = pc.not_equal(pa.Array.from_buffers(pa.uint8(), n, [None, pa.py_buffer(bytes(fails))]), 0)
        failed = failing if failed is None else pc.or_(failed, failing)
    assert failed is not None, "a filter judges at least one column"
    moved_out = pc.sum(failed).as_py() or 0
    first_unsent = None
    if lists is not None and lists.null_count < n:
        first_unsent = next(
            (
                frozenset(u)
                for op, u, out in zip(ops, unsent, failed.to_pylist(), strict=True)
                if u and not out and op != _DELETE
            ),
            None,
        )
    if not moved_out:
        return Judged(batch, batch.column(OP), 0, first_unsent)
    arrays = batch.columns
    arrays[names.index(OP)] = pc.if_else(failed, op_array(_DELETE)[0], batch.column(OP))
    if UNCHANGED in names:
        lists = batch.column(UNCHANGED)
        arrays[names.index(UNCHANGED)] = pc.if_else(failed, pa.nulls(1, lists.type)[0], lists)
    rows = pa.RecordBatch.from_arrays(arrays, schema=batch.schema)
    if mark:
        rows = rows.append_column(MOVED_OUT, failed)
    return Judged(rows, batch.column(OP).filter(pc.invert(failed)), moved_out, first_unsent, failed)


def _naming(lists: pa.Array, column: str) -> pa.Array:
    """Which rows' unsent-column lists name ``column``."""
    rows = bytearray(len(lists))
    owners = pc.list_parent_indices(lists).filter(pc.equal(pc.list_flatten(lists), column))
    for row in owners.to_pylist():
        rows[row] = 1
    return pc.not_equal(pa.Array.from_buffers(pa.uint8(), len(lists), [None, pa.py_buffer(bytes(rows))]), 0)


def passes(row_filter: RowFilter, change: RowChange) -> bool:
    """Whether an INSERT's or UPDATE's new row passes the filter, judged by
    the filtered columns it carries (one the source did not send kept its
    value; without the old row it cannot be judged)."""
    return all(
        f.test(change.values.get(f.column)) for f in row_filter.columns if f.column not in change.unchanged
    )


def completed(change: RowChange) -> RowChange:
    """A partial UPDATE made whole from the old row when the source sent
    one (REPLICA IDENTITY FULL, a full binlog row image): an unsent value
    is the old one. A row moving into the filter then arrives whole."""
    old = change.old_key or {}
    if not change.unchanged <= old.keys():
        return change
    values = {**{c: old[c] for c in change.unchanged}, **change.values}
    return replace(change, values=values, unchanged=frozenset())


def warn_unsent(table: TableRef, unsent: frozenset[str]) -> None:
    """Once per table: an UPDATE that passed the filter left ``unsent``
    columns unsent and came without the old row."""
    if table in _WARNED:
        return
    _WARNED.add(table)
    log.warning(
        "table %s: an UPDATE that passes the source filter left values unsent (%s) and "
        "came without the old row: if it moved the row into the filter, the target "
        "misses the row. Set REPLICA IDENTITY FULL on the source table to make this exact",
        table,
        ", ".join(sorted(unsent)),
    )
