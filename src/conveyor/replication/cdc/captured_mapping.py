"""A table's mapping on its captured changes (``ChangeBatch.captured``), in
Arrow, as the change-by-change reducer applies it to each change: the
selection rule's filter on the source values (``change_filter.judge``), then
the renames, the added and before-image columns (from ``BEFORE``, an UPDATE's
old row) and the conversions and masks. A change log says a row the filter
moved out as one by one does (``CapturedMapping._as_logged``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Protocol

import pyarrow as pa

from conveyor.core.arrow_compute import pc
from conveyor.core.batch import BEFORE, OP, UNCHANGED, Op, op_array
from conveyor.core.errors import DataError
from conveyor.core.row_filter import RowFilter
from conveyor.core.schema import TableSchema
from conveyor.replication.cdc.before_images import BeforeImages
from conveyor.replication.cdc.change_filter import MOVED_OUT, Judged, judge

AddedColumns = Callable[[pa.RecordBatch], tuple[dict[str, pa.Array], list[list[str] | None] | None]]
"""Captured changes (source names) -> the added columns by target name, and
per row those left unsent (``MappedTable.compute_added_changes``)."""


class Conversions(Protocol):
    """Captured changes (target names) converted, cut and masked (unless
    ``mask`` is false; ``MappedTable.convert_changes``)."""

    def __call__(self, changes: pa.RecordBatch, mask: bool = True) -> pa.RecordBatch: ...


_DELETE = Op.DELETE.encode()


@dataclass(frozen=True)
class CapturedMapping:
    """One table's mapping on captured changes: ``rename`` maps source to
    target names (a column it lacks is dropped), ``added`` computes the
    add-column rules' columns, ``convert`` converts and masks,
    ``before_images`` computes the add-before-image-columns rules' columns. ``logged``: the rows are a change
    log's (``KeepsChangeLog``), which says a row the filter moved out as
    the source sent it (``_as_logged``)."""

    table: TableSchema
    rename: Mapping[str, str]
    row_filter: RowFilter | None = None
    added: AddedColumns | None = None
    convert: Conversions | None = None
    mark_moved_out: bool = False  # for key histories (``MOVED_OUT``)
    before_images: BeforeImages | None = None
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
        logged_old: pa.RecordBatch | None = None  # a moved-out UPDATE's row in the log
        try:
            if self.logged and judged.moved is not None:
                logged_old = self._old_rows(batch, mask=True)[0]
            if self.added is not None or self.before_images:
                arrays = dict(zip(rows.schema.names, rows.columns, strict=True))
                unsent = None
                if self.added is not None:
                    added, unsent = self.added(judged.rows)
                    arrays |= added
                if self.before_images:  # masked as their columns, once, below
                    images = self.before_images.of_batch(arrays[OP], *self._old_rows(batch, mask=False))
                    if images is None:
                        return None
                    arrays |= images
                rows = self._assembled(arrays, unsent)
            if self.convert is not None:
                rows = self.convert(rows)
        except DataError:
            return None
        if logged_old is not None:
            assert judged.moved is not None
            rows = self._as_logged(rows, judged.moved, batch.column(OP), logged_old)
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

    def _old_rows(self, batch: pa.RecordBatch, mask: bool) -> tuple[pa.RecordBatch, pa.Array | None]:
        """Each change's old row as one by one has it, in target names,
        converted and, when ``mask``, masked: an UPDATE's whole old row where
        the source sent it (``BEFORE``), else its key alone (the other
        columns null; a captured row's key is its old key). Then which rows
        came whole (None: none)."""
        n = batch.num_rows
        before = batch.column(BEFORE) if BEFORE in batch.schema.names else None
        olds = (
            dict(zip((f.name for f in before.type), before.flatten(), strict=True))
            if before is not None
            else {}
        )
        key = set(self.table.primary_key)
        arrays = [op_array(_DELETE * n)]
        for source, target in self.rename.items():
            new = batch.column(source)
            old = olds.get(source)
            arrays.append(new if target in key else old if old is not None else pa.nulls(n, new.type))
        rows = pa.RecordBatch.from_arrays(arrays, names=[OP, *self.rename.values()])
        converted = self.convert(rows, mask=mask) if self.convert is not None else rows
        return converted, (before.is_valid() if before is not None else None)

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
