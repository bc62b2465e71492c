"""Values between a mapping expression and Arrow: each column's values as SQLite
binds them (the expression engine is SQLite's, as the migration service's is), and
an expression's result converted to the added column's declared type."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, time
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

import pyarrow as pa

from conveyor.core.types import ColumnType, Kind

AFFINITY = {
    Kind.INT16: "INTEGER",
    Kind.INT32: "INTEGER",
    Kind.INT64: "INTEGER",
    Kind.BOOLEAN: "INTEGER",
    Kind.FLOAT32: "REAL",
    Kind.FLOAT64: "REAL",
    Kind.DECIMAL: "NUMERIC",
    Kind.NUMERIC: "NUMERIC",
    Kind.BYTES: "BLOB",
}
NOT_REFERABLE = frozenset({Kind.INTERVAL, Kind.ARRAY})


def sqlite_values(array: pa.Array | pa.ChunkedArray, kind: Kind) -> list[Any]:
    """A column's values as SQLite takes them (see the module docstring)."""
    if kind is Kind.BOOLEAN:
        array = array.cast(pa.int64())
    elif kind is Kind.TIMESTAMPTZ:
        array = array.cast(pa.timestamp("us")).cast(pa.string())
    elif kind in (Kind.DECIMAL, Kind.DATE, Kind.TIME, Kind.TIMESTAMP):
        array = array.cast(pa.string())
    return array.to_pylist()  # type: ignore[no-any-return]


def sqlite_value(value: object, kind: Kind) -> object:
    """One CDC value as SQLite takes it: the same as :func:`sqlite_values`."""
    if value is None or isinstance(value, str):
        return value  # also the "infinity" PostgreSQL sends for dates and timestamps
    if kind is Kind.BOOLEAN and isinstance(value, bool):
        return int(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value.isoformat(sep=" ", timespec="microseconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, time):
        return value.replace(tzinfo=None).isoformat(timespec="microseconds")
    if isinstance(value, (int, float, bytes)):
        return value
    raise Unconvertible(value)


def timestamp_text(value: datetime | None) -> str:
    value = value or datetime.now(UTC)
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat(sep=" ", timespec="microseconds")


_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "0"})


class Unconvertible(Exception):
    pass


def _to_int(value: object) -> int:
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise Unconvertible
        return math.trunc(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return _to_int(_to_float(value))
    raise Unconvertible


def _to_float(value: object) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            raise Unconvertible from None
    raise Unconvertible


def _to_decimal(value: object) -> Decimal:
    if isinstance(value, (int, float, str)):
        try:
            result = Decimal(repr(value) if isinstance(value, float) else str(value).strip())
        except InvalidOperation:
            raise Unconvertible from None
        if not result.is_finite():
            raise Unconvertible
        return result
    raise Unconvertible


def _to_bool(value: object) -> bool:
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise Unconvertible


def _to_timestamp(value: object) -> datetime:
    if not isinstance(value, str):
        raise Unconvertible
    try:
        result = datetime.fromisoformat(value.strip())
    except ValueError:
        raise Unconvertible from None
    if result.tzinfo is not None:
        result = result.astimezone(UTC).replace(tzinfo=None)
    return result


def _to_date(value: object) -> date:
    if not isinstance(value, str):
        raise Unconvertible
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise Unconvertible from None


def _to_time(value: object) -> time:
    if not isinstance(value, str):
        raise Unconvertible
    try:
        return time.fromisoformat(value.strip())
    except ValueError:
        raise Unconvertible from None


def converter(column_type: ColumnType) -> Any:
    kind = column_type.kind
    if kind in (Kind.INT16, Kind.INT32, Kind.INT64):
        return _to_int
    if kind in (Kind.FLOAT32, Kind.FLOAT64):
        return _to_float
    if kind is Kind.DECIMAL:
        exponent = Decimal(1).scaleb(-(column_type.scale or 0))

        def to_decimal(value: object) -> Decimal:
            try:
                return _to_decimal(value).quantize(exponent, rounding=ROUND_HALF_EVEN)
            except InvalidOperation:
                raise Unconvertible from None

        return to_decimal
    if kind is Kind.NUMERIC:
        return lambda value: str(_to_decimal(value))
    if kind is Kind.BOOLEAN:
        return _to_bool
    if kind is Kind.DATE:
        return _to_date
    if kind is Kind.TIME:
        return _to_time
    if kind is Kind.TIMESTAMP:
        return _to_timestamp
    return None  # text and bytes: SQLite's CAST already made the value
