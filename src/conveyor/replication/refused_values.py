"""A value refused during a full load as the apply-exceptions table records it:
its table, row key, column, value (printable, bounded) and reason."""

from __future__ import annotations

import pyarrow as pa

from conveyor.connectors.base import (
    RejectedValue,
)
from conveyor.core.errors import DataError
from conveyor.core.schema import TableSchema
from conveyor.replication.table_plan import TablePlan


def rejection(table: TableSchema, batch: pa.RecordBatch, exc: DataError) -> RejectedValue:
    """The apply-exceptions entry for the row ``exc`` names."""
    assert exc.row is not None
    return rejected_value(table, batch.slice(exc.row, 1).to_pylist()[0], exc.column, str(exc))


def rejected_value(
    table: TableSchema, row: dict[str, object], column: str | None, reason: str
) -> RejectedValue:
    value = row.get(column) if column else None
    return RejectedValue(
        table=table.ref,
        key={k: None if row[k] is None else _printable(row[k]) for k in table.primary_key},
        column=column,
        value=None if value is None else _printable(value),
        reason=reason,
    )


def source_rejection(plan: TablePlan, batch: pa.RecordBatch, exc: DataError) -> RejectedValue:
    """The apply-exceptions entry for a source row the mapping refused: the
    key and value as the source has them, named as the target names them."""
    assert exc.row is not None
    row = batch.slice(exc.row, 1).to_pylist()[0]
    names = plan.source_columns or tuple(plan.target.column_names)
    source_of = dict(zip(plan.target.column_names, names, strict=True))
    value = row.get(source_of.get(exc.column or "") or "")
    return RejectedValue(
        table=plan.target.ref,
        key={k: _printable(row.get(source_of.get(k) or k)) for k in plan.target.primary_key},
        column=exc.column,
        value=None if value is None else _printable(value),
        reason=str(exc),
    )


def _printable(value: object) -> str:
    """A value as text for the exceptions table (NUL characters spelled out)."""
    text = value.hex() if isinstance(value, bytes) else str(value)
    return text.replace("\x00", "\\x00")
