"""Bringing batches read by the ADBC PostgreSQL driver to conveyor's Arrow types,
exactly, or with the rows that cannot be carried named and taken out.

The reader's query (``source.select_query``) adds a check column per column
whose values can be out of Arrow's reach (see ``checks``): a value the
server finds (an array with more than one dimension or a lower bound other
than 1, an interval whose time part overflows nanoseconds) makes that row a
``Refusal``. Values only the Arrow side can spot (timestamps the driver
wrapped past int64, numeric NaN or infinities in a decimal column) are found
here. ``conform`` returns the batch without the refused rows, and the
refusals, in row order.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from psycopg import sql

from conveyor.connectors.arrow_rows import Unrepresentable, column_array
from conveyor.connectors.postgres.text_values import array_shape_refusal, converter
from conveyor.connectors.postgres.types import array_dims
from conveyor.core import types as t
from conveyor.core.arrow_compute import pc
from conveyor.core.calendar import civil_from_days
from conveyor.core.errors import DataError
from conveyor.core.schema import TableSchema
from conveyor.core.types import ColumnType, Kind

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
# PostgreSQL's earliest timestamp, 4713-11-24 00:00:00 BC, in microseconds since
# 1970. A timestamp after 294247-01-10 04:00:54.775807 (int64 microseconds since
# 1970) wraps in the driver to below this: a value no source can hold.
PG_MIN_TIMESTAMP_US = -211_813_488_000_000_000 + _PG_EPOCH_US
_US_PER_DAY = 86_400_000_000
# PostgreSQL numeric values no decimal holds, as its text output spells them.
NUMERIC_SPECIALS = "^(NaN|Infinity|-Infinity)$"
# An interval's time part in nanoseconds must fit int64.
_INTERVAL_OVERFLOW = (
    "abs(extract(hour from {c}) * 3600 + extract(minute from {c}) * 60 + extract(second from {c}))"
    " * 1000000000 > 9223372036854775807"
)


@dataclass(frozen=True)
class Refusal:
    """A row of a read batch that cannot be carried: its index, column, value
    (as text) and why."""

    row: int
    column: str
    value: str | None
    reason: str


def checks(table: TableSchema, columns: Sequence[str]) -> tuple[list[sql.Composable], list[str]]:
    """The check expressions that follow the table's columns in the reader's
    select list (non-NULL: the row's value has no exact in-flight form, as
    text), and the names of the columns they check, in order. An interval
    column is also read through ``interval_guard``."""
    checked: list[sql.Composable] = []
    names: list[str] = []
    for name in columns:
        ctype = table.column(name).type
        ident = sql.Identifier(name)
        if ctype.kind is Kind.ARRAY:
            dims = array_dims(ctype)
            lower = " OR ".join(f"array_lower({{c}}, {d}) <> 1" for d in range(1, dims + 1))
            checked.append(
                sql.SQL(f"CASE WHEN array_ndims({{c}}) <> {dims} OR {lower} THEN {{c}}::text END").format(
                    c=ident
                )
            )
            names.append(name)
        elif ctype.kind is Kind.INTERVAL:
            condition = sql.SQL(_INTERVAL_OVERFLOW).format(c=ident)
            checked.append(sql.SQL("CASE WHEN {} THEN {}::text END").format(condition, ident))
            names.append(name)
    return checked, names


def interval_guard(name: str) -> sql.Composable:
    """An interval column's value, NULL where its check refuses it (the driver
    fails the whole read on such a value)."""
    ident = sql.Identifier(name)
    condition = sql.SQL(_INTERVAL_OVERFLOW).format(c=ident)
    return sql.SQL("CASE WHEN {} THEN NULL ELSE {} END AS {}").format(condition, ident, ident)


def conform(
    batch: pa.RecordBatch, schema: pa.Schema, table: TableSchema, checked: Sequence[str] = ()
) -> tuple[pa.RecordBatch, list[Refusal]]:
    """Cast each column of ``batch`` to the type ``schema`` gives it. The batch
    holds ``schema``'s columns, then one check column per name of ``checked``."""
    width = len(schema)
    refusals: list[Refusal] = []
    for offset, name in enumerate(checked):
        found = batch.column(width + offset)
        for row in pc.indices_nonzero(found.is_valid()).to_pylist():
            text = found[row].as_py()
            refusals.append(Refusal(row, name, text, _check_reason(table.column(name).type, text)))
    arrays = []
    for i in range(width):
        field = schema.field(i)
        ctype = table.column(field.name).type if field.name in table.column_names else None
        array, found_here = _conform_column(batch.column(i), field.type, field.name, ctype)
        arrays.append(array)
        refusals.extend(found_here)
    result = pa.RecordBatch.from_arrays(arrays, schema=schema)
    if not refusals:
        return result, []
    refused = {r.row for r in refusals}
    keep = pa.array([i not in refused for i in range(batch.num_rows)])
    first: dict[int, Refusal] = {}
    for r in sorted(refusals, key=lambda r: r.row):
        first.setdefault(r.row, r)
    return result.filter(keep), list(first.values())


def _check_reason(ctype: ColumnType, found: str) -> str:
    if ctype.kind is Kind.INTERVAL:
        return "interval's time part exceeds the in-flight range (+/-292 years in nanoseconds)"
    return array_shape_refusal(found, array_dims(ctype)) or f"array {found[:60]!r} has no exact list form"


def _conform_column(
    array: pa.Array, target: pa.DataType, name: str, ctype: ColumnType | None
) -> tuple[pa.Array, list[Refusal]]:
    if isinstance(array.type, pa.ExtensionType):
        array = array.storage
    refusals: list[Refusal] = []
    if ctype is not None and array_dims(ctype) > 1 and pa.types.is_string(array.type):
        return _nested_lists(array, ctype, name, refusals), refusals
    if ctype is not None and ctype.kind is Kind.DECIMAL and pa.types.is_string(array.type):
        # A pattern, not a value set: building one from Python values imports pandas.
        special = pc.match_substring_regex(array, NUMERIC_SPECIALS)
        if pc.any(special).as_py():
            for row in pc.indices_nonzero(pc.fill_null(special, False)).to_pylist():
                value = array[row].as_py()
                reason = f"numeric {value} has no form in decimal({ctype.precision},{ctype.scale})"
                refusals.append(Refusal(row, name, value, reason))
            array = pc.if_else(special, pa.scalar(None, pa.string()), array)
    return conform_array(array, target, name, refusals), refusals


def _nested_lists(texts: pa.Array, ctype: ColumnType, name: str, refusals: list[Refusal]) -> pa.Array:
    """A multi-dimensional array column, read as its text, as nested lists
    (the ADBC driver flattens such arrays); a value of other dimensions or
    bounds is refused by row."""
    convert = converter(ctype)
    values: list[Any] = []
    for row, text in enumerate(texts.to_pylist()):
        value = None if text is None else convert(text)
        if type(value) is Unrepresentable:
            refusals.append(Refusal(row, name, value.text, value.reason))
            value = None
        values.append(value)
    return column_array(ctype, values)


def conform_array(
    array: pa.Array, target: pa.DataType, name: str, refusals: list[Refusal] | None = None
) -> pa.Array:
    """``array`` as ``target``; timestamps the driver wrapped are added to
    ``refusals`` (by row) when given, else raised as a DataError."""
    if isinstance(array.type, pa.ExtensionType):
        array = array.storage
    if pa.types.is_timestamp(target) and pa.types.is_timestamp(array.type):
        at_max = pc.equal(array.view(pa.int64()), _int(t.INT64_INFINITY, pa.int64()))  # DuckDB's infinity
        fixed = _fix_infinity(array, pa.int64(), _TS_POS_WRAPPED, _TS_NEG_WRAPPED, t.INT64_INFINITY, target)
        _wrapped(fixed, at_max, name, refusals)
        return fixed
    if pa.types.is_date32(target) and pa.types.is_date32(array.type):
        return _fix_infinity(array, pa.int32(), _DATE_POS_WRAPPED, _DATE_NEG_WRAPPED, t.DATE_INFINITY, target)
    if pa.types.is_list(target) and pa.types.is_list(array.type):
        inner: list[Refusal] = []
        offsets = array.offsets
        first, last = offsets[0].as_py(), offsets[-1].as_py()
        values = conform_array(array.values.slice(first, last - first), target.value_type, name, inner)
        if inner:
            ends = offsets.to_numpy()[1:] - first
            for r in inner:  # element index -> the row holding it
                if refusals is None:
                    raise DataError(f"column {name!r}: {r.reason}", column=name)
                row = int(np.searchsorted(ends, r.row, side="right"))
                refusals.append(Refusal(row, name, r.value, r.reason))
        relative = pc.subtract(offsets, pa.scalar(first, offsets.type)) if first else offsets
        return pa.ListArray.from_arrays(relative, values, type=target, mask=pc.invert(array.is_valid()))
    if array.type == target:
        return array
    try:
        return array.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise DataError(f"column {name!r}: cannot carry a value as {target}: {exc}") from None


def _wrapped(values: pa.Array, at_max: pa.Array, name: str, refusals: list[Refusal] | None) -> None:
    """Timestamps below PostgreSQL's minimum (the driver wrapped a value past
    int64 microseconds since 1970, beyond 294247-01-10), or at int64's maximum
    (``at_max``: 294247-01-10 04:00:54.775807, which is infinity in flight)."""
    ints = values.view(pa.int64())
    below = pc.and_(
        pc.less(ints, _int(PG_MIN_TIMESTAMP_US, pa.int64())),
        pc.not_equal(ints, _int(t.INT64_NEG_INFINITY, pa.int64())),
    )
    below = pc.or_(below, at_max)
    if not pc.any(below).as_py():
        return
    for row in pc.indices_nonzero(pc.fill_null(below, False)).to_pylist():
        micros = ints[row].as_py()
        value = format_micros(micros if micros == t.INT64_INFINITY else micros + 2**64)
        reason = f"timestamp {value} is after 294247-01-10 04:00:54.775806, the latest the target can hold"
        if refusals is None:
            raise DataError(f"column {name!r}: {reason}", column=name)
        refusals.append(Refusal(row, name, value, reason))


def format_micros(micros: int) -> str:
    """Microseconds since 1970 as PostgreSQL's ISO text (any year, ' BC')."""
    days, rest = divmod(micros, _US_PER_DAY)
    year, month, day = civil_from_days(days)
    seconds, fraction = divmod(rest, 1_000_000)
    clock = f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    if fraction:
        clock += f".{fraction:06d}".rstrip("0")
    if year <= 0:
        return f"{1 - year:04d}-{month:02d}-{day:02d} {clock} BC"
    return f"{year:04d}-{month:02d}-{day:02d} {clock}"


@functools.cache
def _int(value: int, kind: pa.DataType) -> pa.Scalar:
    """An integer scalar made from its bytes: pyarrow imports pandas (about
    36 MB, a second on a cold cache) the first time it converts a Python value,
    which a load of Arrow batches never otherwise needs."""
    data = pa.py_buffer(value.to_bytes(kind.bit_width // 8, "little", signed=True))
    return pa.Array.from_buffers(kind, 1, [None, data])[0]


def _fix_infinity(
    array: pa.Array, raw: pa.DataType, pos: int, neg: int, infinity: int, target: pa.DataType
) -> pa.Array:
    values = array.view(raw)
    at_pos, at_neg = pc.equal(values, _int(pos, raw)), pc.equal(values, _int(neg, raw))
    if pc.any(pc.or_(at_pos, at_neg)).as_py():
        values = pc.if_else(at_pos, _int(infinity, raw), values)
        values = pc.if_else(pc.equal(values, _int(neg, raw)), _int(-infinity, raw), values)
    return values.view(target) if values.type != target else values
