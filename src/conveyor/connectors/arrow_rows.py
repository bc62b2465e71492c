"""Row dictionaries (change events' values) as Arrow record batches."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from conveyor.core import types as t
from conveyor.core.schema import TableSchema
from conveyor.core.types import Kind

_INFINITE = {"infinity": 1, "-infinity": -1}


def rows_to_batch(
    table: TableSchema, rows: Sequence[dict[str, Any]], columns: Sequence[str]
) -> pa.RecordBatch:
    """``columns`` of ``rows`` as a batch with the table's Arrow types. Infinite
    dates and timestamps arrive as the strings ``"infinity"``/``"-infinity"``."""
    arrays = []
    fields = []
    for name in columns:
        column = table.column(name)
        values = [row.get(name) for row in rows]
        arrays.append(_array(column.type.kind, values, column.type.arrow()))
        fields.append(pa.field(name, column.type.arrow()))
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))


def _array(kind: Kind, values: list[Any], dtype: pa.DataType) -> pa.Array:
    if kind in {Kind.DATE, Kind.TIMESTAMP, Kind.TIMESTAMPTZ} and any(isinstance(v, str) for v in values):
        return _with_infinity(kind, values, dtype)
    return pa.array(values, type=dtype)


def _with_infinity(kind: Kind, values: list[Any], dtype: pa.DataType) -> pa.Array:
    """Finite values through Arrow, infinite ones as core.types' sentinels."""
    raw = pa.int32() if kind is Kind.DATE else pa.int64()
    infinity = t.DATE_INFINITY if kind is Kind.DATE else t.INT64_INFINITY
    finite = pa.array([None if isinstance(v, str) else v for v in values], type=dtype).view(raw).to_pylist()
    merged = [
        infinity * _INFINITE[v] if isinstance(v, str) else f for v, f in zip(values, finite, strict=True)
    ]
    return pa.array(merged, type=raw).view(dtype)
