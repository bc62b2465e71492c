"""Values read from MySQL/MariaDB into Arrow: each column's converter from what
PyMySQL returns (or the text protocol's bytes) to the in-flight value, with the
values a column cannot hold refused per row."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pymysql
from pymysql.converters import through

from conveyor.connectors.mysql.text_columns import TextCast
from conveyor.core.errors import DataError
from conveyor.core.schema import Column, TableSchema
from conveyor.core.types import Kind

if TYPE_CHECKING:
    from typing import TypeAlias

    Connection: TypeAlias = pymysql.connections.Connection[pymysql.cursors.Cursor]

_ONE_DAY = dt.timedelta(days=1)
_ONE_US = dt.timedelta(microseconds=1)


class _Unrepresentable(Exception):
    def __init__(self, value: Any, why: str) -> None:
        super().__init__(why)
        self.value = value
        self.why = why


Converter = Callable[[Any], Any]


def base_type(native: str | None) -> str:
    return (native or "").split("(")[0].strip().split(" ")[0].lower()


def column_converter(table: TableSchema, column: Column) -> Converter | None:
    """How one value pymysql returns becomes the value Arrow is given, or None
    when pymysql's value is already right."""
    kind = column.type.kind
    base = base_type(column.type.native)
    if base == "bit":
        if kind is Kind.BOOLEAN:
            return lambda v: _bits(v) != 0
        if kind is Kind.DECIMAL:
            return lambda v: Decimal(_bits(v))
        return _bits
    if kind is Kind.NUMERIC:
        return lambda v: format(Decimal(v), "f")
    if kind is Kind.DATE:
        return _date
    if kind is Kind.TIMESTAMP:
        return _datetime
    if kind is Kind.TIMESTAMPTZ:
        return lambda v: _datetime(v).replace(tzinfo=dt.UTC)
    if kind is Kind.TIME:
        return _time
    if kind is Kind.UUID:
        return lambda v: _string(v).lower()
    if kind in {Kind.TEXT, Kind.JSON, Kind.ENUM}:
        return _string
    if kind is Kind.BYTES:
        return lambda v: v.encode() if isinstance(v, str) else v
    return None


def _bits(value: Any) -> int:
    return int.from_bytes(value, "big") if isinstance(value, bytes | bytearray) else int(value)


def _string(value: Any) -> str:
    if type(value) is str:
        return value
    if isinstance(value, bytes | bytearray):
        try:
            return value.decode()
        except UnicodeDecodeError:
            raise _Unrepresentable(value, "it is not UTF-8 text") from None
    if isinstance(value, set | frozenset):
        return ",".join(sorted(value))
    return str(value)


def _date(value: Any) -> dt.date:
    # pymysql hands back the text of dates it cannot build: '0000-00-00',
    # '2024-00-10' (zero parts are allowed unless sql_mode forbids them).
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    raise _Unrepresentable(value, "a date with a zero year, month or day has no calendar day")


def _datetime(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    raise _Unrepresentable(value, "a date with a zero year, month or day has no calendar day")


def _time(value: Any) -> int:
    if isinstance(value, dt.timedelta):
        if dt.timedelta(0) <= value < _ONE_DAY:
            return value // _ONE_US
        raise _Unrepresentable(_time_text(value), "a time of day must lie within 00:00:00..23:59:59.999999")
    raise _Unrepresentable(value, "it is not a time of day")


def _time_text(value: dt.timedelta) -> str:
    """A timedelta as MySQL spells a TIME ('-838:59:59', '25:00:00.5')."""
    micros = value // _ONE_US
    sign = "-" if micros < 0 else ""
    micros = abs(micros)
    seconds, fraction = divmod(micros, 1_000_000)
    text = f"{sign}{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
    return text + (f".{fraction:06d}".rstrip("0") if fraction else "")


def text_decoders(description: Any, decoders: dict[int, Any]) -> list[Converter | None]:
    """Per column, the converter PyMySQL applies to the text of a value (None: none)."""
    found = [decoders.get(d[1]) for d in description]
    return [None if f is None or f is through else f for f in found]


def _decoded(decoder: Converter, value: Any) -> Any:
    """What PyMySQL's converter makes of a value's text. A driver that hands
    every value over as bytes (MySQL Connector/Python's C extension) gives
    numbers and times as ASCII bytes, which PyMySQL gives as ``str``."""
    return decoder(value.decode("ascii") if type(value) is bytes else value)


def decoded_rows(
    decode: Sequence[Converter | None], rows: Sequence[tuple[Any, ...]]
) -> list[tuple[Any, ...]]:
    """Text rows as PyMySQL's converters would have returned them."""
    return [
        tuple(v if v is None or f is None else _decoded(f, v) for f, v in zip(decode, row, strict=True))
        for row in rows
    ]


def texts_to_arrays(
    table: TableSchema,
    converters: Sequence[Converter | None],
    casts: Sequence[TextCast | None],
    decode: Sequence[Converter | None],
    rows: Sequence[tuple[Any, ...]],
) -> list[pa.Array]:
    """The batch's columns from text rows: a whole-column cast where it is exact,
    else value by value from what PyMySQL's converter makes of each text."""
    arrays = []
    for column, convert, cast, decoder, values in zip(
        table.columns, converters, casts, decode, zip(*rows, strict=True), strict=True
    ):
        array = None if cast is None else cast(values)
        if array is None:
            decoded = (
                values if decoder is None else [None if v is None else _decoded(decoder, v) for v in values]
            )
            array = _to_arrow(table, column, convert, decoded)
        arrays.append(array)
    return arrays


def values_to_arrays(
    table: TableSchema, converters: Sequence[Converter | None], rows: Sequence[tuple[Any, ...]]
) -> list[pa.Array]:
    columns = list(zip(*rows, strict=True))
    return [
        _to_arrow(table, col, convert, values)
        for col, convert, values in zip(table.columns, converters, columns, strict=True)
    ]


def _to_arrow(
    table: TableSchema, column: Column, convert: Converter | None, values: Sequence[Any]
) -> pa.Array:
    target = column.type.arrow()
    what = f"table {table.ref}: column {column.name!r} ({column.type.native})"
    try:
        if convert is not None:
            values = [None if v is None else convert(v) for v in values]
        return pa.array(values, type=target)
    except _Unrepresentable as exc:
        raise DataError(
            f"{what} holds {exc.value!r}, which is not a {column.type.describe()} value: {exc.why}",
            column=column.name,
        ) from None
    except (pa.ArrowInvalid, pa.ArrowTypeError, ArithmeticError, ValueError, TypeError) as exc:
        raise DataError(
            f"{what} holds a value that is not {column.type.describe()}: {exc}", column=column.name
        ) from None
