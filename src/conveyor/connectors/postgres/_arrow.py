"""Bringing batches read by the ADBC PostgreSQL driver to conveyor's Arrow types."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from conveyor.core import types as t
from conveyor.core.errors import DataError

# PostgreSQL keeps timestamps as microseconds since 2000-01-01 and dates as days
# since then, with int64/int32 max and min meaning +/-infinity. The ADBC driver
# adds the 1970 offset without an overflow check, so the infinities arrive as
# these wrapped values; no real PostgreSQL value maps onto them.
_PG_EPOCH_US = 946_684_800_000_000
_PG_EPOCH_DAYS = 10_957
_TS_POS_WRAPPED = -(2**63) + _PG_EPOCH_US - 1
_TS_NEG_WRAPPED = -(2**63) + _PG_EPOCH_US
_DATE_POS_WRAPPED = -(2**31) + _PG_EPOCH_DAYS - 1
_DATE_NEG_WRAPPED = -(2**31) + _PG_EPOCH_DAYS


def conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """Cast each column of ``batch`` to the type ``schema`` gives it."""
    arrays = [
        conform_array(batch.column(i), schema.field(i).type, schema.field(i).name) for i in range(len(schema))
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def conform_array(array: pa.Array, target: pa.DataType, name: str) -> pa.Array:
    if isinstance(array.type, pa.ExtensionType):
        array = array.storage
    if pa.types.is_timestamp(target) and pa.types.is_timestamp(array.type):
        return _fix_infinity(array, pa.int64(), _TS_POS_WRAPPED, _TS_NEG_WRAPPED, t.INT64_INFINITY, target)
    if pa.types.is_date32(target) and pa.types.is_date32(array.type):
        return _fix_infinity(array, pa.int32(), _DATE_POS_WRAPPED, _DATE_NEG_WRAPPED, t.DATE_INFINITY, target)
    if array.type == target:
        return array
    try:
        return array.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise DataError(f"column {name!r}: cannot carry a value as {target}: {exc}") from None


def _fix_infinity(
    array: pa.Array, raw: pa.DataType, pos: int, neg: int, infinity: int, target: pa.DataType
) -> pa.Array:
    values = array.view(raw)
    if pc.any(pc.or_(pc.equal(values, pos), pc.equal(values, neg))).as_py():
        values = pc.if_else(pc.equal(values, pos), pa.scalar(infinity, raw), values)
        values = pc.if_else(pc.equal(values, neg), pa.scalar(-infinity, raw), values)
    return values.view(target) if values.type != target else values
