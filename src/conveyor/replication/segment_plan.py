"""Which segments a table's full load is split into, and their JSON form for
the metadata store.

Segments come from a parallel-load ``ranges`` rule (``TablePlan.segments``),
or, for a table without one, from key-range auto-splitting: a table the source
estimates above ``SegmentedLoadSettings.SplitAboveRows`` rows, with a one-column
integer primary key, is cut into ``Segments`` equal ranges of that key between
its min and max in the load's snapshot (min/max ranges: cheap through the key's
index; a skewed key gives uneven segments, which the workers even out by
claiming the next segment as they finish one)."""

from __future__ import annotations

import itertools
import logging
from typing import Any

from conveyor.connectors.base import Snapshot, SupportsSharedSnapshot
from conveyor.core.row_filter import ColumnFilter, Condition, FilterOp, RowFilter, literal_text, parse_value
from conveyor.core.types import Kind
from conveyor.replication.settings import SegmentedLoadSettings
from conveyor.replication.table_plan import TablePlan

log = logging.getLogger(__name__)

_INTEGER_KINDS = frozenset({Kind.INT16, Kind.INT32, Kind.INT64})


def table_segments(
    plan: TablePlan, snapshot: Snapshot, settings: SegmentedLoadSettings
) -> tuple[RowFilter, ...]:
    """The plan's segments: its parallel-load ranges, else key ranges when the
    table is big enough to split (see the module docstring), else none."""
    if plan.segments:
        return plan.segments
    limit = settings.split_above_rows
    estimated = plan.source.estimated_rows or 0
    if not limit or estimated <= limit:
        return ()
    key = plan.source.primary_key
    if len(key) != 1 or plan.source.column(key[0]).type.kind not in _INTEGER_KINDS:
        log.info(
            "table %s: about %d rows, but not split by key range: that needs a one-column integer key",
            plan.source.ref,
            estimated,
        )
        return ()
    if not isinstance(snapshot, SupportsSharedSnapshot):
        return ()
    bounds = snapshot.key_range(plan.source, key[0])
    if bounds is None:
        return ()
    column = plan.source.column(key[0])
    segments = key_ranges(key[0], column.type.kind, int(bounds[0]), int(bounds[1]), settings.segments)
    log.info(
        "table %s: about %d rows, split into %d key ranges of %s",
        plan.source.ref,
        estimated,
        len(segments),
        key[0],
    )
    return tuple(s.also(plan.row_filter) for s in segments)


def key_ranges(column: str, kind: Kind, low: int, high: int, count: int) -> tuple[RowFilter, ...]:
    """``count`` (fewer for a narrow range) ranges ``low <= column <= high`` of
    about equal width, covering every integer from low to high exactly once."""
    count = max(1, min(count, high - low + 1))
    width = (high - low + 1) / count
    starts = [low + round(i * width) for i in range(count)] + [high + 1]
    return tuple(
        RowFilter(
            (
                ColumnFilter(column, kind, (Condition(FilterOp.GTE, (a,)),)),
                ColumnFilter(column, kind, (Condition(FilterOp.LT, (b,)),)),
            ),
            f"key range {a}..{b - 1}",
        )
        for a, b in itertools.pairwise(starts)
    )


def encode_filter(where: RowFilter) -> dict[str, Any]:
    """A row filter as JSON (values as the text an SQL cast reads)."""
    return {
        "origin": where.origin,
        "columns": [
            {
                "column": f.column,
                "kind": f.kind.value,
                "conditions": [
                    {"op": c.op.value, "values": [literal_text(v) for v in c.values]} for c in f.conditions
                ],
            }
            for f in where.columns
        ],
    }


def decode_filter(doc: dict[str, Any]) -> RowFilter:
    """``encode_filter`` read back, values typed by their column's kind."""
    columns = []
    for f in doc["columns"]:
        kind = Kind(f["kind"])
        conditions = tuple(
            Condition(FilterOp(c["op"]), tuple(parse_value(v, kind) for v in c["values"]))
            for c in f["conditions"]
        )
        columns.append(ColumnFilter(f["column"], kind, conditions))
    return RowFilter(tuple(columns), doc.get("origin", ""))
