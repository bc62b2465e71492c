"""Column values as JSON, exactly, by the column's type (docs/nats.md lists
the encoding). A value the encoding cannot represent raises ``Unrepresentable``:
it is refused and reported, never altered.

Values arrive in conveyor's in-flight form (``connectors.changes``), or for a
full load as Arrow arrays, where dates and timestamps come as their integer
storage (days, microseconds since 1970-01-01) so PostgreSQL's infinities
(core.types' sentinels) and years Python cannot hold are told apart.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pyarrow as pa

from conveyor.core.types import (
    DATE_INFINITY,
    DATE_NEG_INFINITY,
    INT64_INFINITY,
    INT64_NEG_INFINITY,
    ColumnType,
    Kind,
)

EPOCH_DATE = date(1970, 1, 1)
EPOCH = datetime(1970, 1, 1)
INFINITIES = ("infinity", "-infinity")


class Unrepresentable(ValueError):
    """A value the JSON encoding cannot carry exactly (in ``column`` when known)."""

    def __init__(self, message: str, column: str | None = None) -> None:
        super().__init__(message)
        self.column = column


class Unreadable:
    """A full-load value Arrow could not turn into a Python value (a date in an
    array beyond year 9999): refused when encoded."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def __repr__(self) -> str:
        return f"<unreadable: {self.reason}>"


def _refuse(ctype: ColumnType, value: Any, why: str = "") -> Unrepresentable:
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return Unrepresentable(f"{ctype.describe()} value {shown} cannot be encoded{': ' + why if why else ''}")


def _text(ctype: ColumnType, value: Any) -> str:
    if not isinstance(value, str):
        raise _refuse(ctype, value, "not text")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _refuse(ctype, value, "not valid Unicode (a lone surrogate)") from None
    return value


def _int(ctype: ColumnType, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _refuse(ctype, value, "not an integer")
    return value


def _decimal(ctype: ColumnType, value: Any) -> str:
    if isinstance(value, Decimal):
        return format(value, "f")
    if ctype.kind is Kind.NUMERIC and isinstance(value, str):
        return _text(ctype, value)  # the exact decimal text, 'NaN' included
    raise _refuse(ctype, value, "not a decimal")


def _float(ctype: ColumnType, value: Any) -> float | str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _refuse(ctype, value, "not a number")
    number = float(value)
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "Infinity" if number > 0 else "-Infinity"
    return number


def _bytes(ctype: ColumnType, value: Any) -> str:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise _refuse(ctype, value, "not bytes")
    return base64.b64encode(bytes(value)).decode("ascii")


def _bool(ctype: ColumnType, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _refuse(ctype, value, "not a boolean")
    return value


def _date(ctype: ColumnType, value: Any) -> str:
    if isinstance(value, str) and value in INFINITIES:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        if value == DATE_INFINITY:
            return "infinity"
        if value == DATE_NEG_INFINITY:
            return "-infinity"
        try:
            value = EPOCH_DATE + timedelta(days=value)
        except OverflowError:
            raise _refuse(ctype, value, "a day outside years 1 to 9999") from None
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.isoformat()
    raise _refuse(ctype, value, "not a date")


def _time(ctype: ColumnType, value: Any) -> str:
    if isinstance(value, time) and value.tzinfo is None:
        return value.isoformat(timespec="microseconds")
    raise _refuse(ctype, value, "not a time of day")


def _timestamp(ctype: ColumnType, value: Any) -> str:
    aware = ctype.kind is Kind.TIMESTAMPTZ
    if isinstance(value, str) and value in INFINITIES:
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        if value == INT64_INFINITY:
            return "infinity"
        if value == INT64_NEG_INFINITY:
            return "-infinity"
        try:
            value = EPOCH + timedelta(microseconds=value)
        except OverflowError:
            raise _refuse(ctype, value, "an instant outside years 1 to 9999") from None
        if aware:
            value = value.replace(tzinfo=UTC)
    if isinstance(value, datetime):
        if aware:
            if value.tzinfo is None:
                raise _refuse(ctype, value, "a timestamptz without a time zone")
            try:
                instant: datetime = value.astimezone(UTC)
            except OverflowError:
                raise _refuse(ctype, value, "an instant outside years 1 to 9999 in UTC") from None
            return instant.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
        if value.tzinfo is not None:
            raise _refuse(ctype, value, "a timestamp without time zone holding one")
        return value.isoformat(timespec="microseconds")
    raise _refuse(ctype, value, "not a timestamp")


def _interval(ctype: ColumnType, value: Any) -> dict[str, int]:
    if isinstance(value, pa.MonthDayNano):
        return {"months": value.months, "days": value.days, "nanoseconds": value.nanoseconds}
    raise _refuse(ctype, value, "not an interval")


def _array(ctype: ColumnType, value: Any) -> list[Any]:
    assert ctype.element is not None
    if not isinstance(value, list | tuple):
        raise _refuse(ctype, value, "not an array")
    element = ctype.element
    return [encode_value(element, item) for item in value]


_BY_KIND: dict[Kind, Callable[[ColumnType, Any], Any]] = {
    Kind.INT16: _int,
    Kind.INT32: _int,
    Kind.INT64: _int,
    Kind.DECIMAL: _decimal,
    Kind.NUMERIC: _decimal,
    Kind.FLOAT32: _float,
    Kind.FLOAT64: _float,
    Kind.TEXT: _text,
    Kind.UUID: _text,
    Kind.JSON: _text,
    Kind.ENUM: _text,
    Kind.BYTES: _bytes,
    Kind.BOOLEAN: _bool,
    Kind.DATE: _date,
    Kind.TIME: _time,
    Kind.TIMESTAMP: _timestamp,
    Kind.TIMESTAMPTZ: _timestamp,
    Kind.INTERVAL: _interval,
    Kind.ARRAY: _array,
}


def encode_value(ctype: ColumnType, value: Any) -> Any:
    """``value`` of a ``ctype`` column as a JSON value; raises Unrepresentable."""
    if value is None:
        return None
    if isinstance(value, Unreadable):
        raise _refuse(ctype, value, value.reason)
    return _BY_KIND[ctype.kind](ctype, value)


def column_values(ctype: ColumnType, column: pa.Array | pa.ChunkedArray) -> list[Any]:
    """A full-load column as Python values ``encode_value`` takes: dates and
    timestamps as their integer storage (see the module's docstring)."""
    if ctype.kind is Kind.DATE:
        return list(column.cast(pa.int32()).to_pylist())
    if ctype.kind in (Kind.TIMESTAMP, Kind.TIMESTAMPTZ):
        return list(column.cast(pa.int64()).to_pylist())
    try:
        return list(column.to_pylist())
    except (OverflowError, ValueError, pa.ArrowException):
        values: list[Any] = []
        for i in range(len(column)):
            try:
                values.append(column[i].as_py())
            except (OverflowError, ValueError, pa.ArrowException) as exc:
                values.append(Unreadable(str(exc)))
        return values
