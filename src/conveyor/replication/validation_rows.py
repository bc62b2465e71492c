"""Both sides of a validated table as rows of canonical text, in key order.

``sides`` picks how each side is read: a source that prints its own text
(PostgreSQL) is read as that text, and the target's values are rendered into
it; otherwise both sides' values are rendered alike. ``keyed`` pairs each row
with a Python value ordered as both databases order the key, and refuses rows
that do not come in that order (the merge would pair them wrongly).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

import pyarrow as pa

from conveyor.connectors.base import ReportsRejections, Snapshot, SupportsTextRows, Target
from conveyor.core.canonical_text import json_document, render_column, xml_document
from conveyor.core.errors import DataError
from conveyor.core.schema import TableSchema
from conveyor.core.types import ColumnType, Kind, is_lob
from conveyor.replication.settings import ValidationSettings
from conveyor.replication.table_plan import TablePlan, read_source

Values = tuple[str | None, ...]
Row = tuple[Any, Values, Values]  # (sort key, key texts, column texts)


class OutOfOrder(Exception):
    """A side's rows did not come in the key order the merge needs."""


def source_view(plan: TablePlan) -> TableSchema | None:
    """The source table as the target's columns (renamed back), when every
    target column is a source column of the same kind and the mapping neither
    filters rows nor converts or masks values; else None."""
    if plan.row_filter is not None or not plan.raw_copy:
        return None
    names = plan.source_columns or tuple(plan.target.column_names)
    if any(n is None for n in names):
        return None
    columns = []
    for name, tcol in zip(names, plan.target.columns, strict=True):
        assert name is not None
        scol = plan.source.column(name)
        if scol.type.kind is not tcol.type.kind:
            return None
        columns.append(scol)
    by_target = dict(zip(plan.target.column_names, names, strict=True))
    key = tuple(by_target[k] or k for k in plan.target.primary_key)
    return TableSchema(plan.source.ref, tuple(columns), key)


def rendered(batches: Iterable[pa.RecordBatch], types: Sequence[ColumnType]) -> Iterator[list[Values]]:
    for batch in batches:
        columns = [render_column(batch.column(i), types[i]) for i in range(len(types))]
        yield list(zip(*columns, strict=True))


def sides(
    snapshot: Snapshot,
    target: Target,
    plan: TablePlan,
    partition: int,
    notes: list[str],
    refused: list[Values] | None = None,
) -> tuple[Iterator[list[Values]], Iterator[list[Values]], list[ColumnType], str]:
    """Both sides' rows as texts in key order, their types and how they are
    compared. Source rows the mapping could not convert (in the exceptions
    table, not on the target) are left out; their target keys go to ``refused``."""
    view = source_view(plan)
    if view is not None and isinstance(snapshot, SupportsTextRows):
        types = [c.type for c in view.columns]
        source = snapshot.read_text(view, partition)
        if isinstance(target, SupportsTextRows):
            notes.extend(_other_types(plan, view, target.describe(plan.target.ref)))
            return source, target.read_text(plan.target, partition), types, "source text, target text"
        target_rows = rendered(target.read(plan.target, partition, order_by_key=True), types)
        return source, target_rows, types, "source text, target rendered as source text"
    types = [c.type for c in plan.target.columns]
    read = read_source(snapshot, plan, partition, order_by_key=True)
    source = rendered(_projected(plan, read, refused if refused is not None else []), types)
    target_rows = rendered(target.read(plan.target, partition, order_by_key=True), types)
    return source, target_rows, types, VALUES_AS_READ


VALUES_AS_READ = "values as read, rendered alike"


def left_out(snapshot: Snapshot, plan: TablePlan) -> list[Values]:
    """The target keys of the rows the source's reader left out of its last
    read of the table (a value the column's type cannot hold: SQLite's dynamic
    typing, a zero date): in the exceptions table, not on the target. Read
    after the table's source rows were."""
    if not isinstance(snapshot, ReportsRejections):
        return []
    key_sources = _key_sources(plan)
    found: dict[Values, None] = {}
    for rejected in snapshot.rejections(plan.source.ref):
        if not rejected.row_loaded:
            values = rejected.key
            found[tuple(None if values.get(k) is None else str(values.get(k)) for k in key_sources)] = None
    return list(found)


def _key_sources(plan: TablePlan) -> list[str]:
    """The source columns of the target's key, in its order."""
    by_target = dict(
        zip(plan.target.column_names, plan.source_columns or plan.target.column_names, strict=True)
    )
    return [by_target[k] or k for k in plan.target.primary_key]


def _projected(
    plan: TablePlan, batches: Iterator[pa.RecordBatch], refused: list[Values]
) -> Iterator[pa.RecordBatch]:
    """The source batches as the target gets them, without the rows the mapping
    cannot convert (change-data-type): their keys, as the target names them, go
    to ``refused``."""
    key_sources = _key_sources(plan)
    for read in batches:
        pending = read
        while True:
            try:
                yield plan.project(pending)
                break
            except DataError as exc:
                if exc.row is None:
                    raise
                row = pending.slice(exc.row, 1).to_pylist()[0]
                refused.append(tuple(None if row.get(k) is None else str(row.get(k)) for k in key_sources))
                pending = pending.filter(pa.array([i != exc.row for i in range(pending.num_rows)]))


def _other_types(plan: TablePlan, view: TableSchema, existing: TableSchema | None) -> list[str]:
    """A note when target columns are of other types than the source's: each
    side is then compared as its own type's text, which may differ for equal values."""
    if existing is None or existing.native_engine != plan.source.native_engine:
        return []  # another engine's spellings: types are not comparable by name
    have = {c.name: c for c in existing.columns}
    other = [
        f"{name} ({scol.type.native} -> {have[name].type.native})"
        for name, scol in zip(plan.target.column_names, view.columns, strict=True)
        if name in have and scol.type.native != have[name].type.native
    ]
    if not other:
        return []
    return [f"target columns of other types, compared as each side's own text: {', '.join(other)}"]


def normaliser(
    names: Sequence[str],
    types: Sequence[ColumnType],
    settings: ValidationSettings,
    notes: list[str],
    uncompared: Sequence[str] = (),
) -> Callable[[Values], Values]:
    """What is done to every row's texts before comparing, on both sides alike:
    JSON as documents; LOB columns skipped or cut per the settings; the
    ``uncompared`` columns (before images) left out."""
    json_at = [i for i, t in enumerate(types) if t.kind is Kind.JSON]
    xml_at = [i for i, t in enumerate(types) if (t.native or "").lower() == "xml"]
    lobs = [i for i, t in enumerate(types) if is_lob(t)]
    skipped = lobs if settings.skip_lob_columns else []
    cut = settings.validation_partial_lob_size * 1024
    if skipped:
        notes.append(f"SkipLobColumns: not compared: {', '.join(names[i] for i in skipped)}")
    elif cut and lobs:
        notes.append(
            f"ValidationPartialLobSize: only the first {settings.validation_partial_lob_size} KB compared "
            f"of {', '.join(names[i] for i in lobs)}"
        )
    partial = [] if skipped or not cut else lobs
    if uncompared:
        notes.append(
            "before-image columns not compared (the source keeps no value from before its rows' "
            f"last UPDATE): {', '.join(uncompared)}"
        )
        skipped = sorted({*skipped, *(names.index(n) for n in uncompared)})

    def normal(values: Values) -> Values:
        if not (json_at or xml_at or skipped or partial):
            return values
        out = list(values)
        for i in json_at:
            out[i] = json_document(out[i])
        for i in xml_at:
            out[i] = xml_document(out[i])
        for i in skipped:
            out[i] = None
        for i in partial:
            text = out[i]
            out[i] = None if text is None else text[:cut]
        return tuple(out)

    return normal


def sort_key(kind: Kind) -> Callable[[str | None], Any]:
    """A Python value ordered as both databases order the key column."""
    if kind in {Kind.INT16, Kind.INT32, Kind.INT64}:
        return lambda text: int(text or 0)
    if kind in {Kind.DECIMAL, Kind.NUMERIC}:
        return _number_order
    if kind in {Kind.FLOAT32, Kind.FLOAT64}:
        return lambda text: (1, 0.0) if text == "NaN" else (0, float(text or 0))
    if kind in {Kind.DATE, Kind.TIMESTAMP, Kind.TIMESTAMPTZ}:
        return _time_order
    return lambda text: text or ""


def _number_order(text: str | None) -> tuple[int, Decimal]:
    try:
        value = Decimal(text or "0")
    except InvalidOperation:
        return (2, Decimal(0))
    return (1, Decimal(0)) if value.is_nan() else (0, value)


def _time_order(text: str | None) -> tuple[int, int, str]:
    text = text or ""
    if text in {"infinity", "-infinity"}:
        return (1 if text == "infinity" else -1, 0, "")
    bc = text.endswith(" BC")
    year, _, rest = text.removesuffix(" BC").partition("-")
    return (0, (1 - int(year)) if bc else int(year), rest)


def keyed(
    batches: Iterator[list[Values]],
    key_at: Sequence[int],
    orders: Sequence[Callable[[str | None], Any]],
    normal: Callable[[Values], Values],
    side: str,
    key_names: Sequence[str],
    counter: list[int],
) -> Iterator[Row]:
    previous: Any = None
    pairs = list(zip(orders, key_at, strict=True))
    for batch in batches:
        counter[0] += 1
        for values in batch:
            order = tuple([f(values[i]) for f, i in pairs])
            if previous is not None and order <= previous:
                keys = [values[i] for i in key_at]
                if order == previous:
                    raise OutOfOrder(f"the {side} holds the key ({', '.join(key_names)}) = {keys} twice")
                raise OutOfOrder(
                    f"the {side}'s rows do not come in the order of the key ({', '.join(key_names)}) "
                    f"that both sides must share: {keys} after a key not smaller; "
                    "such a key type cannot be validated yet"
                )
            previous = order
            yield order, tuple([values[i] for i in key_at]), normal(values)
