"""Arrow record batches as PostgreSQL ``COPY ... FROM STDIN`` text data.

The text format lets the server parse every value with its column's own input
function, so one encoding serves every target type (numeric, uuid, jsonb,
enums, inet ...) and a pre-created target table with other (compatible) types.
Encoding is vectorised with Arrow compute and numpy; only intervals are
formatted per value.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from conveyor.core import types as t
from conveyor.core.arrow_compute import pc
from conveyor.core.calendar import US_PER_DAY, pg_date, pg_timestamp

NULL = "\\N"
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_HEX_PAIRS = np.stack([_HEX[np.arange(256) >> 4], _HEX[np.arange(256) & 15]], axis=1)
# COPY text escapes, backslash first.
_COPY_ESCAPES = (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r"))


def encode_batch(batch: pa.RecordBatch) -> bytes:
    """The rows of ``batch`` as COPY text: tab-separated, ``\\N`` for NULL, one line per row."""
    if batch.num_rows == 0:
        return b""
    fields = [_copy_field(column) for column in batch.columns]
    rows = fields[0] if len(fields) == 1 else pc.binary_join_element_wise(*fields, "\t")
    lines = pc.binary_join_element_wise(rows, "\n", "")
    return _concat(lines)


def _concat(strings: pa.Array) -> bytes:
    """All values of a string array without nulls, back to back."""
    count = len(strings)
    offsets = np.frombuffer(strings.buffers()[1], dtype=np.int32)[strings.offset : strings.offset + count + 1]
    data = strings.buffers()[2]
    assert data is not None
    whole: bytes = data.to_pybytes()
    return whole[offsets[0] : offsets[-1]]


def _copy_field(array: pa.Array) -> pa.Array:
    """One column as COPY text fields (escaped, NULL spelled ``\\N``)."""
    text = to_text(array)
    if _needs_escaping(array.type):
        text = escape(text)
    return pc.fill_null(text, NULL)


def _needs_escaping(dtype: pa.DataType) -> bool:
    return not (
        pa.types.is_integer(dtype)
        or pa.types.is_floating(dtype)
        or pa.types.is_decimal(dtype)
        or pa.types.is_boolean(dtype)
        or pa.types.is_temporal(dtype)
    )


def escape(text: pa.Array) -> pa.Array:
    for plain, escaped in _COPY_ESCAPES:
        text = pc.replace_substring(text, plain, escaped)
    return text


def to_text(array: pa.Array) -> pa.Array:
    """PostgreSQL's text input form of every value (before COPY escaping)."""
    dtype = array.type
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        return array
    if pa.types.is_binary(dtype) or pa.types.is_large_binary(dtype):
        return bytea_hex(array)
    if pa.types.is_timestamp(dtype):
        return _with_infinity(array, pa.int64(), t.INT64_INFINITY)
    if pa.types.is_date32(dtype):
        return _with_infinity(array, pa.int32(), t.DATE_INFINITY)
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
        return array_literal(array)
    if dtype == pa.month_day_nano_interval():
        return pa.array([None if v is None else _interval(v) for v in array.to_pylist()], pa.string())
    if dtype == pa.time64("us"):
        return _time_text(array)
    return array.cast(pa.string())


def _with_infinity(array: pa.Array, raw: pa.DataType, infinity: int) -> pa.Array:
    text = _exact_text(array, raw)
    values = array.view(raw)
    text = pc.if_else(pc.equal(values, pa.scalar(infinity, raw)), pa.scalar("infinity"), text)
    return pc.if_else(pc.equal(values, pa.scalar(-infinity, raw)), pa.scalar("-infinity"), text)


def _exact_text(array: pa.Array, raw: pa.DataType) -> pa.Array:
    """Arrow's text of dates and timestamps, with the values it does not write
    in PostgreSQL's input form (years before 1 or after 9999) in that form."""
    zone = ""
    if pa.types.is_timestamp(array.type) and array.type.tz is not None:
        # Arrow's text of a zoned timestamp wraps years past 32767 (pyarrow 26):
        # the naive text, with the zone added, is exact or marked out of range.
        naive = array.view(raw).view(pa.timestamp(array.type.unit)).cast(pa.string())
        text = pc.binary_join_element_wise(naive, pa.scalar("Z"), "")
        zone = "+00"
    else:
        text = array.cast(pa.string())
    odd = pc.or_(pc.starts_with(text, "-"), pc.starts_with(text, "<"))
    odd = pc.or_(odd, pc.starts_with(text, "0000-"))
    if not pc.any(odd).as_py():
        return text
    values = array.view(raw).to_pylist()
    out = text.to_pylist()
    for i in pc.indices_nonzero(pc.fill_null(odd, False)).to_pylist():
        out[i] = pg_date(values[i]) if raw == pa.int32() else pg_timestamp(values[i], zone)
    return pa.array(out, pa.string())


def _time_text(array: pa.Array) -> pa.Array:
    """time64 values; ``24:00:00`` (which Arrow does not write) included."""
    text = array.cast(pa.string())
    end = pc.equal(array.view(pa.int64()), US_PER_DAY)
    return pc.if_else(end, pa.scalar("24:00:00"), text) if pc.any(end).as_py() else text


def _interval(value: pa.MonthDayNano) -> str:
    months, days, nanos = value
    return f"{months} mons {days} days {nanos // 1000} microseconds"


def bytea_hex(array: pa.Array) -> pa.Array:
    """Binary values in bytea's hex input form, ``\\x0a1b...``."""
    array = array.cast(pa.binary())
    count = len(array)
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int32)[array.offset : array.offset + count + 1]
    offsets = offsets.astype(np.int64)
    data_buffer = array.buffers()[2]
    data = (
        np.frombuffer(data_buffer, dtype=np.uint8)[offsets[0] : offsets[-1]]
        if data_buffer is not None
        else np.empty(0, dtype=np.uint8)
    )
    lengths = np.diff(offsets)
    new_offsets = np.zeros(count + 1, dtype=np.int64)
    np.cumsum(2 + 2 * lengths, out=new_offsets[1:])
    if new_offsets[-1] >= 2**31:
        raise ValueError("a batch of binary values is too large to encode at once; lower CommitRate")
    out = np.empty(int(new_offsets[-1]), dtype=np.uint8)
    starts = new_offsets[:-1]
    out[starts] = ord("\\")
    out[starts + 1] = ord("x")
    if len(data):
        # Byte i of value v lands at starts[v] + 2 + 2 * (i - offsets[v]).
        base = np.repeat(starts + 2 - 2 * (offsets[:-1] - offsets[0]), lengths)
        positions = base + 2 * np.arange(len(data), dtype=np.int64)
        pairs = _HEX_PAIRS[data]
        out[positions] = pairs[:, 0]
        out[positions + 1] = pairs[:, 1]
    text = pa.StringArray.from_buffers(count, pa.py_buffer(new_offsets.astype(np.int32)), pa.py_buffer(out))
    if array.null_count:
        text = pc.if_else(pc.is_valid(array), text, pa.scalar(None, pa.string()))
    return text


def array_literal(array: pa.Array) -> pa.Array:
    """List values as PostgreSQL array literals: ``{"a","b",NULL}``."""
    offsets = array.offsets
    first = offsets[0].as_py()
    elements = array.values.slice(first, offsets[-1].as_py() - first)
    text = to_text(elements)
    quoted = pc.binary_join_element_wise(
        '"', pc.replace_substring(pc.replace_substring(text, "\\", "\\\\"), '"', '\\"'), '"', ""
    )
    quoted = pc.fill_null(quoted, "NULL")
    lists = pa.ListArray.from_arrays(pc.subtract(offsets, first), quoted)
    joined = pc.binary_join(lists, ",")
    literal = pc.binary_join_element_wise("{", joined, "}", "")
    return pc.if_else(pc.is_valid(array), literal, pa.scalar(None, pa.string()))
