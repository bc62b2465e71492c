"""A table as the mapping rules make it (``MappedTable``): its source and
target shapes, and what turns a source batch or change row into the
target's (renames, added columns, conversions, masks, before images, LOB
limits). :mod:`mappings` builds it from the rules."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa

from conveyor.connectors.arrow_rows import column_values
from conveyor.core.arrow_compute import pc
from conveyor.core.batch import OP, UNCHANGED, Op, op_array
from conveyor.core.row_filter import RowFilter
from conveyor.core.schema import TableSchema
from conveyor.replication.conversions import Conversion
from conveyor.replication.expressions import FULL_LOAD_OPERATION, AddedColumn, Evaluator
from conveyor.replication.lob_limits import LobLimit
from conveyor.replication.masking import Mask


@dataclass(frozen=True)
class ColumnMap:
    """One target column and the source column it is filled from (None: no source)."""

    target: str
    source: str | None


_OPERATIONS = {Op.READ: FULL_LOAD_OPERATION, Op.INSERT: "INSERT", Op.UPDATE: "UPDATE", Op.DELETE: "DELETE"}


@dataclass(frozen=True)
class MappedTable:
    """A selected table: ``columns`` lists the target columns and their source
    columns (None for a column an add-column rule computes, see ``added``).
    ``row_filter`` selects the source rows (selection rule filters), ``masks``
    rewrite target columns (data masking), ``load_order`` orders the full load
    (higher first)."""

    source: TableSchema
    target: TableSchema
    columns: tuple[ColumnMap, ...]
    added: tuple[AddedColumn, ...] = ()
    evaluator: Evaluator | None = field(default=None, compare=False, repr=False)
    row_filter: RowFilter | None = None
    masks: tuple[Mask, ...] = ()
    load_order: int = 0
    conversions: tuple[Conversion, ...] = ()
    # parallel-load ranges: the full load reads the table segment by segment
    # (each segment's filter includes ``row_filter``).
    segments: tuple[RowFilter, ...] = ()
    # parallel-load partitions-auto / partitions-list: workers load the table
    # partition by partition (partitions-list: these named partitions first).
    partitions_auto: bool = False
    partitions_named: tuple[str, ...] = ()
    # A child table whose mapping removed the element's position from its key
    # (a DynamoDB child table keyed by its parent alone): the target has no
    # unique key, and change capture replaces a parent's rows as a whole
    # (these target columns: the parent's key).
    group_key: tuple[str, ...] = ()
    # add-before-image-columns: (before-image column, the target column whose
    # value before an UPDATE it holds); NULL in the full load and for INSERTs.
    before_images: tuple[tuple[str, str], ...] = ()
    # Limited LOB mode: the LOB columns cut to a size (None: copied whole).
    lob_limit: LobLimit | None = None

    @property
    def converts(self) -> bool:
        """Whether change capture's rows need ``convert_row``."""
        return bool(self.conversions) or self.lob_limit is not None

    def source_columns(self) -> list[str]:
        """Source columns to read, in target order."""
        return [c.source for c in self.columns if c.source is not None]

    @property
    def passes_values(self) -> bool:
        """Whether target values are the source's as they are (no masking, no
        type change, no filter): what a raw same-engine copy or an encoded row
        pass-through needs."""
        return not self.masks and not self.converts and self.row_filter is None and not self.segments

    def project(self, records: pa.RecordBatch, timestamp: datetime | None = None) -> pa.RecordBatch:
        """Rename and drop columns of a source batch, compute added columns
        ($AR_H_OPERATION 'INSERT', $AR_H_TIMESTAMP ``timestamp`` or now) and
        mask; the result has ``target.arrow_schema()``. A value an added
        column's type cannot take raises DataError."""
        schema = self.target.arrow_schema()
        computed: dict[str, pa.Array] = {}
        if self.evaluator is not None:
            values = self.evaluator.evaluate(records, FULL_LOAD_OPERATION, timestamp)
            computed = {c.name: a for c, a in zip(self.added, values, strict=True)}
        masks = {m.column: m for m in self.masks}
        conversions = {c.column: c for c in self.conversions}
        arrays: list[pa.Array] = []
        for cmap, arrow_field in zip(self.columns, schema, strict=True):
            if cmap.source is None:
                arrays.append(computed.get(cmap.target, pa.nulls(records.num_rows, type=arrow_field.type)))
                continue
            index = records.schema.get_field_index(cmap.source)
            if index < 0:
                raise ValueError(f"batch for {self.source.ref} has no column {cmap.source!r}")
            array = records.column(index)
            conversion = conversions.get(cmap.target)
            if conversion is not None:
                array = conversion.array(array)
            elif not array.type.equals(arrow_field.type):
                array = array.cast(arrow_field.type)
            if self.lob_limit is not None and cmap.target in self.lob_limit.columns:
                array = self.lob_limit.array(cmap.target, array)
            arrays.append(array)
        for i, cmap in enumerate(self.columns):
            mask = masks.get(cmap.target)
            if mask is not None:
                arrays[i] = mask.array(arrays[i])
        return pa.RecordBatch.from_arrays(arrays, schema=schema)

    def convert_row(self, row: dict[str, Any]) -> None:
        """Convert a CDC row's values (target column names) to the types
        change-data-type rules set, in place; DataError when one does not convert."""
        for conversion in self.conversions:
            if conversion.column in row:
                row[conversion.column] = conversion.value(row[conversion.column])
        if self.lob_limit is not None:
            self.lob_limit.cut_row(row)

    def convert_changes(self, changes: pa.RecordBatch, mask: bool = True) -> pa.RecordBatch:
        """Captured changes in target column names (``ChangeBatch.captured``,
        a partial UPDATE's unsent values null) converted, cut and masked as
        ``convert_row`` and ``mask_row`` do each change: every conversion
        first (DataError, before any cut, for a value that does not
        convert), then LOB cuts, then masks (a DELETE's old row too: a
        change log publishes it), unless ``mask`` is false."""
        # Added and before-image columns are neither converted nor cut here, as
        # one by one (a before image holds its column's converted value): masked alone.
        added = self.added_names | {name for name, _ in self.before_images}
        conversions = {c.column: c for c in self.conversions if c.column not in added}
        cut = [c for c in self.lob_limit.columns if c not in added] if self.lob_limit is not None else ()
        masks = {m.column: m for m in self.masks} if mask else {}
        arrays = changes.columns
        names = changes.schema.names
        for i, name in enumerate(names):
            if name in conversions:
                arrays[i] = conversions[name].array(arrays[i])
        for i, name in enumerate(names):
            if name in cut:
                assert self.lob_limit is not None
                arrays[i] = self.lob_limit.cut_changes(name, arrays[i])
        for i, name in enumerate(names):
            if name in masks:
                arrays[i] = masks[name].array(arrays[i])
        return pa.RecordBatch.from_arrays(arrays, names=names)

    def mask_row(self, row: dict[str, Any]) -> None:
        """Mask a CDC row given in target column names, in place (a column the
        row lacks is unchanged and stays so)."""
        for mask in self.masks:
            value = row.get(mask.column)
            if value is not None:
                row[mask.column] = mask.one()(value)

    @property
    def added_names(self) -> frozenset[str]:
        """Target names of the columns add-column rules compute."""
        return frozenset(c.name for c in self.added)

    def compute_added_changes(
        self, changes: pa.RecordBatch, timestamp: datetime | None = None
    ) -> tuple[dict[str, pa.Array], list[list[str] | None] | None]:
        """For captured changes (``ChangeBatch.captured``, source column
        names): the added columns' values by target name, as
        ``compute_added`` gives them each change (an INSERT's operation for
        the INSERTs, an UPDATE's for the UPDATEs; null for a DELETE), and per
        row the added columns left out because their expression reads a
        column the row did not send (None when no row has one)."""
        assert self.evaluator is not None
        evaluator = self.evaluator
        ops = changes.column(OP)
        deleted = pc.indices_nonzero(pc.equal(ops, op_array(Op.DELETE.encode())[0]))
        taken: list[pa.Array] = [deleted]  # the rows of each part, DELETEs' (null) first
        parts: list[list[pa.Array]] = []
        for op in (Op.INSERT, Op.UPDATE):
            rows = pc.indices_nonzero(pc.equal(ops, op_array(op.encode())[0]))
            if not len(rows):
                continue
            some = changes.take(rows)
            inputs = {c.name: column_values(some.column(c.name)) for c in evaluator.inputs}
            parts.append(evaluator.evaluate_values(inputs, len(rows), _OPERATIONS[op], timestamp))
            taken.append(rows)
        in_order = pc.sort_indices(pa.concat_arrays(taken))  # the parts' rows back in commit order
        values = {
            c.name: pa.concat_arrays(
                [pa.nulls(len(deleted), c.type.arrow()), *(part[j] for part in parts)]
            ).take(in_order)
            for j, c in enumerate(self.added)
        }
        if UNCHANGED not in changes.schema.names:
            return values, None
        needs = [(a.name, frozenset(columns)) for a, columns in zip(self.added, evaluator.needs, strict=True)]
        unsent: list[list[str] | None] = []
        for names in changes.column(UNCHANGED).to_pylist():
            left = [name for name, reads in needs if not reads.isdisjoint(names)] if names else []
            unsent.append(left or None)
        return values, unsent if any(unsent) else None

    def compute_added(
        self, rows: Sequence[Mapping[str, Any]], op: Op = Op.INSERT, timestamp: datetime | None = None
    ) -> list[dict[str, Any]]:
        """For CDC: the added columns of rows given in *source* column names
        (``RowChange.values``), as ``{target name: value}`` per row, ready to merge
        into the renamed row. ``op`` gives $AR_H_OPERATION, ``timestamp``
        $AR_H_TIMESTAMP (default now). An added column whose expression reads a
        source column a row lacks (unchanged, not sent) is left out of that row:
        the caller must treat it as unchanged. Empty dicts when nothing is added."""
        if self.evaluator is None:
            return [{} for _ in rows]
        return self.evaluator.evaluate_rows(rows, _OPERATIONS[op], timestamp)
