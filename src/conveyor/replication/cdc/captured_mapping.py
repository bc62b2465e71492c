"""A table's mapping on its captured changes (``ChangeBatch.captured``), in
Arrow, as the change-by-change reducer applies it to each change: the
selection rule's filter on the source values (an INSERT or UPDATE whose new
row fails it moves its row out of the target: a DELETE of its key; a DELETE
is never judged; a partial UPDATE is judged on the filtered columns it sent,
an unsent one kept its value, which the stream did not say), then the
renames, the added and before-image columns (from ``BEFORE``, an UPDATE's
old row) and the conversions and masks. A change log says a row the filter
moved out as one by one does (``CapturedMapping._as_logged``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

import pyarrow as pa

from conveyor.connectors.arrow_rows import column_values
from conveyor.core.arrow_compute import pc
from conveyor.core.batch import BEFORE, OP, UNCHANGED, Op, op_array
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


@dataclass(frozen=True)
class CapturedMapping:
    """One table's mapping on captured changes: ``rename`` maps source to
    target names (a column it lacks is dropped), ``added`` computes the
    add-column rules' columns, ``convert`` converts and masks,
    ``before_images`` are the add-before-image-columns rules' (before-image
    column, its column) in target names. ``logged``: the rows are a change
    log's (``KeepsChangeLog``), which says a row the filter moved out as
    the source sent it (``_as_logged``)."""

    table: TableSchema
    rename: Mapping[str, str]
    row_filter: RowFilter | None = None
    added: AddedColumns | None = None
    convert: Conversions | None = None
    mark_moved_out: bool = False  # for key histories (``MOVED_OUT``)
    before_images: tuple[tuple[str, str], ...] = ()
    logged: bool = False

    def apply(self, batch: pa.RecordBatch) -> Judged | None:
        """``batch`` (source names) in the target's column names, judged by
        the filter, with its added and before-image columns, converted and
        masked; None when a value does not convert or evaluate, or a before
        image needs an old value the source did not send (the changes then
        go one by one, where the change that holds it is named)."""
        judged = Judged(batch, batch.column(OP), 0, None)
        if self.row_filter is not None:
            judged = judge(self.row_filter, batch, self.mark_moved_out)
        if self._identity:
            rows = judged.rows
            if BEFORE in rows.schema.names:
                rows = rows.drop_columns([BEFORE])
        else:
            rows = self._renamed(judged.rows)
        old: tuple[pa.RecordBatch, pa.Array | None] | None = None
        try:
            if self.before_images or (self.logged and judged.moved is not None):
                old = self._old_rows(batch)
            if self.added is not None or self.before_images:
                arrays = dict(zip(rows.schema.names, rows.columns, strict=True))
                unsent = None
                if self.added is not None:
                    added, unsent = self.added(judged.rows)
                    arrays |= added
                if self.before_images:
                    assert old is not None
                    images = self._before_images(arrays, *old)
                    if images is None:
                        return None
                    arrays |= images
                rows = self._assembled(arrays, unsent)
            if self.convert is not None:
                rows = self.convert(rows)
        except DataError:
            return None
        if self.logged and judged.moved is not None:
            assert old is not None
            rows = self._as_logged(rows, judged.moved, batch.column(OP), old[0])
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

    def _old_rows(self, batch: pa.RecordBatch) -> tuple[pa.RecordBatch, pa.Array | None]:
        """Each change's old row as one by one has it, in target names and
        converted (not masked): an UPDATE's whole old row where the source sent
        it (``BEFORE``), else its key alone (the other columns null; a
        captured row's key is its old key). Then which rows came whole (None:
        none)."""
        n = batch.num_rows
        before = batch.column(BEFORE) if BEFORE in batch.schema.names else None
        olds = (
            dict(zip((f.name for f in before.type), before.flatten(), strict=True))
            if before is not None
            else {}
        )
        key = set(self.table.primary_key)
        arrays = [op_array(_DELETE * n)]  # a DELETE's values are converted, never masked
        for source, target in self.rename.items():
            new = batch.column(source)
            arrays.append(new if target in key else olds.get(source, pa.nulls(n, new.type)))
        rows = pa.RecordBatch.from_arrays(arrays, names=[OP, *self.rename.values()])
        converted = self.convert(rows) if self.convert is not None else rows
        return converted, (before.is_valid() if before is not None else None)

    def _before_images(
        self, arrays: dict[str, pa.Array], old: pa.RecordBatch, whole: pa.Array | None
    ) -> dict[str, pa.Array] | None:
        """The before-image columns: an UPDATE's old value of each column
        (a key column's own: the key did not change), NULL for the others;
        None when an UPDATE came without the old value of a column that is
        not a key column (``whole``: which rows' old rows came whole)."""
        updated = pc.equal(arrays[OP], op_array(_UPDATE)[0])
        without = updated if whole is None else pc.and_(updated, pc.invert(whole))
        out: dict[str, pa.Array] = {}
        for name, column in self.before_images:
            if column not in self.table.primary_key and pc.any(without).as_py():
                return None
            value = old.column(column)
            image = pc.if_else(updated, value, pa.nulls(1, value.type)[0])
            wanted = self.table.column(name).type.arrow()
            out[name] = image if image.type == wanted else image.cast(wanted)
        return out

    def _assembled(
        self, arrays: dict[str, pa.Array], unsent: list[list[str] | None] | None
    ) -> pa.RecordBatch:
        """The target's columns in its order; an added column whose input a
        row did not send is named unsent in it."""
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

    def _as_logged(
        self, rows: pa.RecordBatch, moved: pa.Array, ops: pa.Array, old: pa.RecordBatch
    ) -> pa.RecordBatch:
        """``rows`` as a change log says them, as one by one: an UPDATE the
        filter moved out is a DELETE of its old row as the source sent it (its
        key alone, or whole), an INSERT it moved out is left out (``OP``
        null: the row never was on the target)."""
        moved_update = pc.and_(moved, pc.equal(ops, op_array(_UPDATE)[0]))
        left_out = pc.and_(moved, pc.invert(moved_update))
        arrays = rows.columns
        for i, name in enumerate(rows.schema.names):
            column = arrays[i]
            if name == OP:
                arrays[i] = pc.if_else(left_out, pa.nulls(1, column.type)[0], column)
            elif name in self.table.column_names:
                was = old.column(name) if name in old.schema.names else pa.nulls(len(column), column.type)
                arrays[i] = pc.if_else(moved_update, was.cast(column.type), column)
        return pa.RecordBatch.from_arrays(arrays, schema=rows.schema)


_UPDATE = Op.UPDATE.encode()
