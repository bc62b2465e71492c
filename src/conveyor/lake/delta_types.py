"""The column types Delta stores: Arrow tables made ready for a Delta write."""

from __future__ import annotations

import pyarrow as pa

from conveyor.connectors.lake import files as lake_files


def _delta_type(dtype: pa.DataType) -> pa.DataType | None:
    """The type a column is stored as in Delta (None: as it is)."""
    if pa.types.is_timestamp(dtype):
        return pa.timestamp("us", "UTC" if dtype.tz else None)
    if pa.types.is_time(dtype) or dtype == pa.month_day_nano_interval() or pa.types.is_null(dtype):
        return pa.string()
    if pa.types.is_unsigned_integer(dtype):
        return {8: pa.int16(), 16: pa.int32(), 32: pa.int64()}.get(dtype.bit_width, pa.decimal128(20, 0))
    if pa.types.is_float16(dtype):
        return pa.float32()
    if pa.types.is_date64(dtype):
        return pa.date32()
    if pa.types.is_dictionary(dtype):
        return _delta_type(dtype.value_type) or dtype.value_type
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
        inner = _delta_type(dtype.value_type)
        return None if inner is None else pa.list_(inner)
    return None


def delta_ready(data: pa.Table) -> pa.Table:
    arrays = []
    fields = []
    for read, given in zip(data.schema, data.columns, strict=True):
        f, column = read, given
        if pa.types.is_list(f.type) and lake_files.text_intervals_type(f.type) != f.type:
            column = pa.chunked_array([lake_files.intervals_as_text(given.combine_chunks())])
            f = pa.field(f.name, column.type)
        target = _delta_type(f.type)
        if target is None:
            arrays.append(column)
            fields.append(pa.field(f.name, f.type, nullable=True))
            continue
        if target == pa.string() and not pa.types.is_null(f.type):
            converted: pa.Array | pa.ChunkedArray = lake_files.text_column(column.combine_chunks())
        else:
            converted = column.cast(target, safe=False)
        arrays.append(converted)
        fields.append(pa.field(f.name, target, nullable=True))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))
