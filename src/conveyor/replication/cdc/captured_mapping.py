"""A table's mapping on its captured changes (``ChangeBatch.captured``), in
Arrow, as the change-by-change reducer applies it to each change: the
selection rule's filter on the source values (an INSERT or UPDATE whose new
row fails it moves its row out of the target: a DELETE of its key; a DELETE
is never judged; a partial UPDATE is judged on the filtered columns it sent,
an unsent one kept its value, which the stream did not say), then the
renames, the added columns and the conversions and masks."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

import pyarrow as pa

from conveyor.connectors.arrow_rows import column_values
from conveyor.core.arrow_compute import pc
from conveyor.core.batch import OP, UNCHANGED, Op, op_array
from conveyor.core.errors import DataError
from conveyor.core.row_filter import ColumnFilter, RowFilter
from conveyor.core.schema import TableSchema

AddedColumns = Callable[[pa.RecordBatch], tuple[dict[str, pa.Array], list[list[str] | None] | None]]
"""Captured changes (source names) -> the added columns by target name, and
per row those left unsent (``MappedTable.compute_added_changes``)."""
Conversions = Callable[[pa.RecordBatch], pa.RecordBatch]
"""Captured changes (target names) converted, cut and masked
(``MappedTable.convert_changes``)."""

_DELETE = Op.DELETE.encode()
MOVED_OUT = "conveyor_moved_out"
"""A boolean column marking the changes a filter moved out (made DELETEs),
when asked (``judge``'s ``mark``): key histories leave them unjudged."""


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
    return Judged(rows, batch.column(OP).filter(pc.invert(failed)), moved_out, first_unsent)


def _naming(lists: pa.Array, column: str) -> pa.Array:
    """Which rows' unsent-column lists name ``column``."""
    rows = bytearray(len(lists))
    owners = pc.list_parent_indices(lists).filter(pc.equal(pc.list_flatten(lists), column))
    for row in owners.to_pylist():
        rows[row] = 1
    return pc.not_equal(pa.Array.from_buffers(pa.uint8(), len(lists), [None, pa.py_buffer(bytes(rows))]), 0)


@dataclass(frozen=True)
class CapturedMapping:
    """One table's mapping on captured changes: ``rename`` maps source to
    target names (a column it lacks is dropped), ``added`` computes the
    add-column rules' columns, ``convert`` converts and masks."""

    table: TableSchema
    rename: Mapping[str, str]
    row_filter: RowFilter | None = None
    added: AddedColumns | None = None
    convert: Conversions | None = None
    mark_moved_out: bool = False  # for key histories (``MOVED_OUT``)

    def apply(self, batch: pa.RecordBatch) -> Judged | None:
        """``batch`` (source names) in the target's column names, judged by
        the filter, with its added columns, converted and masked; None when
        a value does not convert or evaluate (the changes then go one by
        one, where the change that holds it is named)."""
        judged = Judged(batch, batch.column(OP), 0, None)
        if self.row_filter is not None:
            judged = judge(self.row_filter, batch, self.mark_moved_out)
        rows = judged.rows if self._identity else self._renamed(judged.rows)
        try:
            if self.added is not None:
                rows = self._with_added(rows, *self.added(judged.rows))
            if self.convert is not None:
                rows = self.convert(rows)
        except DataError:
            return None
        return replace(judged, rows=rows)

    @property
    def _identity(self) -> bool:
        return all(k == v for k, v in self.rename.items()) and self.rename.keys() == set(
            self.table.column_names
        )

    def _renamed(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        sources = list(self.rename)
        rows = batch.select([OP, *sources]).rename_columns([OP, *(self.rename[c] for c in sources)])
        if MOVED_OUT in batch.schema.names:
            rows = rows.append_column(MOVED_OUT, batch.column(MOVED_OUT))
        if UNCHANGED not in batch.schema.names:
            return rows
        unsent = [
            None if names is None else [self.rename[c] for c in names if c in self.rename] or None
            for names in batch.column(UNCHANGED).to_pylist()
        ]
        return rows.append_column(UNCHANGED, pa.array(unsent, batch.schema.field(UNCHANGED).type))

    def _with_added(
        self, rows: pa.RecordBatch, added: dict[str, pa.Array], unsent: list[list[str] | None] | None
    ) -> pa.RecordBatch:
        """``rows`` with the added columns, in the target's order; an added
        column whose input a row did not send is named unsent in it."""
        arrays = dict(zip(rows.schema.names, rows.columns, strict=True)) | added
        names = [OP, *self.table.column_names, *((MOVED_OUT,) if MOVED_OUT in arrays else ())]
        if UNCHANGED in arrays:
            names.append(UNCHANGED)
            if unsent is not None:
                lists = arrays[UNCHANGED].to_pylist()
                merged = [
                    [*(had or ()), *(more or ())] or None for had, more in zip(lists, unsent, strict=True)
                ]
                arrays[UNCHANGED] = pa.array(merged, arrays[UNCHANGED].type)
        return pa.RecordBatch.from_arrays([arrays[n] for n in names], names=names)
