"""A column of MySQL's text-protocol values straight to Arrow, one vectorized cast.

PyMySQL builds a Python object per value (``int()``, ``Decimal()``, a regex and
``datetime()`` per DATETIME), which was most of a full load's time. Read without
its converters, a numeric or temporal column arrives as the server's text
('123.45', '2024-01-02 03:04:05.500000'), and Arrow's cast parses the whole
column in C++. A column the cast does not take exactly (a zero date, a date
before year 1, anything unparsable) returns None: the caller then converts it
value by value as before, which reports what cannot be carried.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from conveyor.core.schema import Column
from conveyor.core.types import Kind

# A column of text values (None for NULL) as the column's Arrow array, or None
# when some value does not cast exactly.
TextCast = Callable[[Sequence[str | bytes | None]], pa.Array | None]

_INTEGERS = frozenset({Kind.INT16, Kind.INT32, Kind.INT64})
_STRINGS = frozenset({Kind.TEXT, Kind.JSON, Kind.ENUM})
_TIMESTAMP = pa.timestamp("us")
_TIMESTAMP_UTC = pa.timestamp("us", tz="UTC")
# Year 0 parses in Arrow, but has no Python date (PyMySQL hands such a value
# back as text, which the full load reports).
_FIRST_DAY = -719_162  # 0001-01-01 in days since 1970-01-01
_FIRST_MICROSECOND = _FIRST_DAY * 86_400 * 1_000_000


def text_cast(column: Column, base: str) -> TextCast | None:
    """How a column of ``column``'s text values casts to its Arrow type, or None
    when its values are converted one by one (``base``: the native type's first
    word; ``bit`` values are bytes, not text)."""
    kind = column.type.kind
    if base == "bit":
        return None
    if kind in _INTEGERS or kind is Kind.FLOAT64 or kind is Kind.DECIMAL:
        return _cast_to(column.type.arrow())
    if kind is Kind.FLOAT32:
        # Selected as DOUBLE text: parsed as a double, then narrowed, as a
        # Python float given to a float32 array is.
        return _then(_cast_to(pa.float64()), pa.float32())
    if kind in _STRINGS:
        # Text as it is; bytes (from a driver that hands every value over so)
        # are checked to be UTF-8 by Arrow, else converted one by one (which reports them).
        return _cast_to(column.type.arrow())
    if kind is Kind.DATE:
        return _checked(pa.date32(), pa.int32(), _FIRST_DAY)
    if kind is Kind.TIMESTAMP:
        return _checked(_TIMESTAMP, pa.int64(), _FIRST_MICROSECOND)
    if kind is Kind.TIMESTAMPTZ:
        # Read in a UTC session: the wall-clock text is UTC.
        return _then(_checked(_TIMESTAMP, pa.int64(), _FIRST_MICROSECOND), _TIMESTAMP_UTC)
    return None


def _cast_to(target: pa.DataType) -> TextCast:
    # Bytes (a driver that hands every value over so) are taken as binary and
    # cast from there, which is about twice as fast as pa.array(..., pa.string())
    # checking each value's UTF-8; Arrow parses numbers from binary directly,
    # dates and times only from (checked) strings.
    from_binary = target if pa.types.is_integer(target) or pa.types.is_floating(target) else pa.string()
    from_binary_then = None if from_binary == target or target == pa.string() else target

    def cast(values: Sequence[str | bytes | None]) -> pa.Array | None:
        try:
            if type(next((v for v in values if v is not None), None)) is bytes:
                array = pa.array(values, pa.binary()).cast(from_binary)
                return array if from_binary_then is None else array.cast(from_binary_then)
            return pa.array(values, pa.string()).cast(target)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
            return None

    return cast


def _then(first: TextCast, target: pa.DataType) -> TextCast:
    def cast(values: Sequence[str | bytes | None]) -> pa.Array | None:
        array = first(values)
        return None if array is None else array.cast(target)

    return cast


def _checked(target: pa.DataType, storage: pa.DataType, lowest: int) -> TextCast:
    parse = _cast_to(target)

    def cast(values: Sequence[str | bytes | None]) -> pa.Array | None:
        array = parse(values)
        if array is None:
            return None
        least = pc.min(array.view(storage)).as_py()
        return None if least is not None and least < lowest else array

    return cast
