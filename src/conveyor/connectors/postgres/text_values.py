"""PostgreSQL text output to conveyor's in-flight Python values.

The change stream (pgoutput) carries every value as its type's text output.
``converter(column_type)`` gives a function from that text to the value the
full-load path produces for the same column (ADBC -> Arrow -> ``to_pylist``),
so that a row captured by CDC and the same row read by a full load compare
equal. Build the converters once per relation (``converters(schema)``) and
apply them per value.

The text is expected in the forms these session settings give, which the
replication connection sets (``SESSION_OPTIONS``): ``DateStyle=ISO``,
``IntervalStyle=iso_8601``, ``TimeZone=UTC``, ``bytea_output=hex`` and
``extra_float_digits=3`` (shortest exact floats). Offsets other than UTC are
still parsed correctly.

Infinite dates and timestamps stay the strings ``"infinity"`` and
``"-infinity"`` (see connectors.changes). Values no Python value can hold
(BC dates, years after 9999, ``24:00:00``) become the integer of their Arrow
type (days or microseconds since 1970), which ``arrow_rows`` takes as is.
Values no Arrow value can hold exactly (timestamps past int64 microseconds,
arrays with lower bounds other than 1 or more than one dimension, decimal
NaN, intervals past int64 nanoseconds) become ``Unrepresentable``, which the
applier refuses with the column and the reason.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any

import pyarrow as pa

from conveyor.connectors.arrow_rows import Unrepresentable
from conveyor.core.calendar import days_from_civil
from conveyor.core.errors import DataError
from conveyor.core.schema import TableSchema
from conveyor.core.types import ColumnType, Kind

Converter = Callable[[str], Any]

SESSION_OPTIONS = (
    "-c DateStyle=ISO -c IntervalStyle=iso_8601 -c TimeZone=UTC -c bytea_output=hex -c extra_float_digits=3"
)

_INFINITIES = {"infinity": "infinity", "-infinity": "-infinity"}
_FLOAT32 = struct.Struct("f")


def converters(schema: TableSchema) -> list[Converter]:
    return [converter(c.type) for c in schema.columns]


def converter(ctype: ColumnType) -> Converter:
    """The function from a non-NULL text value of this column to its Python value."""
    kind = ctype.kind
    if kind is Kind.ARRAY:
        dims, leaf = 0, ctype
        while leaf.kind is Kind.ARRAY:
            assert leaf.element is not None
            dims, leaf = dims + 1, leaf.element
        return _array_converter(converter(leaf), dims)
    return _BY_KIND.get(kind, _identity)


# The text itself: ``str`` of a str is that str (a C call, cheaper than a Python one).
_identity: Converter = str


def _bool(text: str) -> bool:
    return text == "t"


def _bytes(text: str) -> bytes:
    if text.startswith("\\x"):
        return bytes.fromhex(text[2:])
    return _bytes_escape(text)


def _bytes_escape(text: str) -> bytes:
    """bytea's ``escape`` output (a server whose bytea_output is not hex)."""
    out = bytearray()
    raw = text.encode("latin-1")
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch == 0x5C:  # backslash
            if raw[i + 1] == 0x5C:
                out.append(0x5C)
                i += 2
            else:
                out.append(int(raw[i + 1 : i + 4], 8))
                i += 4
        else:
            out.append(ch)
            i += 1
    return bytes(out)


def _float32(text: str) -> float:
    # What a float32 Arrow value gives back: the float64 nearest the float32.
    value: float = _FLOAT32.unpack(_FLOAT32.pack(float(text)))[0]
    return value


def _decimal(text: str) -> Decimal | Unrepresentable:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise DataError(f"{text!r} is not a decimal") from None
    if not value.is_finite():
        return Unrepresentable(text, "a decimal column's Arrow type has no NaN or infinity")
    return value


# Values out of Python's range (BC, years after 9999) in PostgreSQL's ISO output.
_DATE_TEXT = re.compile(r"(\d{4,})-(\d\d)-(\d\d)( BC)?")
_TIMESTAMP_TEXT = re.compile(
    r"(\d{4,})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?"
    r"(?:([+-])(\d\d)(?::(\d\d))?(?::(\d\d))?)?( BC)?"
)
_US_PER_DAY = 86_400_000_000
_INT64_MAX = 2**63 - 1
_MIDNIGHT_END = "24:00:00"


def _days(year: str, month: str, day: str, bc: str | None) -> int:
    if not (1 <= int(month) <= 12 and 1 <= int(day) <= 31):
        raise DataError(f"{year}-{month}-{day} is not a date")
    astronomical = 1 - int(year) if bc else int(year)  # 1 BC is year 0
    return days_from_civil(astronomical, int(month), int(day))


def _date(text: str) -> date | str | int:
    """A date; one out of Python's range as days since 1970 (date32's integer)."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        if text in _INFINITIES:
            return text
        match = _DATE_TEXT.fullmatch(text)
        if match is None:
            raise DataError(f"date {text!r} is not in ISO form") from None
        return _days(*match.groups())


def _time(text: str) -> time | int:
    """A time; ``24:00:00`` (which PostgreSQL allows) as its time64 integer."""
    try:
        return time.fromisoformat(text)
    except ValueError:
        if text == _MIDNIGHT_END:
            return _US_PER_DAY
        raise DataError(f"time {text!r} has no Python value") from None


def _raw_timestamp(text: str, kind: str) -> int | Unrepresentable:
    """A timestamp out of Python's range as microseconds since 1970 (UTC), or
    Unrepresentable past int64."""
    match = _TIMESTAMP_TEXT.fullmatch(text)
    if match is None:
        raise DataError(f"{kind} {text!r} is not in ISO form") from None
    year, month, day, hh, mm, ss, fraction, sign, oh, om, os_, bc = match.groups()
    if int(hh) > 23 or int(mm) > 59 or int(ss) > 59:
        raise DataError(f"{kind} {text!r} is not a time of day")
    seconds = int(hh) * 3600 + int(mm) * 60 + int(ss)
    if sign is not None:
        offset = int(oh) * 3600 + int(om or 0) * 60 + int(os_ or 0)
        seconds -= offset if sign == "+" else -offset
    micros = _days(year, month, day, bc) * _US_PER_DAY + seconds * 1_000_000
    micros += int((fraction or "0").ljust(6, "0"))
    if abs(micros) >= _INT64_MAX:
        return Unrepresentable(text, f"{kind} is beyond int64 microseconds since 1970 (year 294247)")
    return micros


def _timestamp(text: str) -> datetime | str | int | Unrepresentable:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        if text in _INFINITIES:
            return text
        return _raw_timestamp(text, "timestamp")


def _timestamptz(text: str) -> datetime | str | int | Unrepresentable:
    # With TimeZone=UTC the text ends in '+00', which fromisoformat takes (3.11+)
    # and gives the UTC singleton for.
    try:
        value = datetime.fromisoformat(text)
        tz = value.tzinfo
        if tz is UTC:
            return value
        if tz is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
    except (ValueError, OverflowError):
        if text in _INFINITIES:
            return text
        return _raw_timestamp(text, "timestamptz")


_ISO_INTERVAL = re.compile(
    r"P(?:(-?\d+)Y)?(?:(-?\d+)M)?(?:(-?\d+)D)?(?:T(?:(-?\d+)H)?(?:(-?\d+)M)?(?:(-?\d+)(?:\.(\d+))?S)?)?"
)
_PG_INTERVAL_PART = re.compile(r"([-+]?\d+) (year|mon|day)s?")
_PG_INTERVAL_TIME = re.compile(r"([-+])?(\d+):(\d+):(\d+)(?:\.(\d+))?$")
_NANOS_PER_SECOND = 1_000_000_000


def _seconds_nanos(whole: str, fraction: str | None) -> int:
    nanos = abs(int(whole)) * _NANOS_PER_SECOND
    if fraction:
        nanos += int(fraction[:9].ljust(9, "0"))
    return -nanos if whole.startswith("-") else nanos


def _interval(text: str) -> pa.MonthDayNano | Unrepresentable:
    """IntervalStyle iso_8601 ('P1Y2M-3DT4H5M6.789S'), or postgres
    ('1 year 2 mons -3 days +04:05:06.789'); Unrepresentable when the time
    part overflows int64 nanoseconds."""
    value = _interval_value(text)
    if abs(value.nanoseconds) > _INT64_MAX:
        return Unrepresentable(
            text, "interval's time part exceeds the in-flight range (+/-292 years in nanoseconds)"
        )
    return value


def _interval_value(text: str) -> pa.MonthDayNano:
    match = _ISO_INTERVAL.fullmatch(text)
    if match is not None:
        years, months, days, hours, minutes, seconds, fraction = match.groups()
        nanos = (int(hours or 0) * 3600 + int(minutes or 0) * 60) * _NANOS_PER_SECOND
        if seconds is not None:
            nanos += _seconds_nanos(seconds, fraction)
        return pa.MonthDayNano([int(years or 0) * 12 + int(months or 0), int(days or 0), nanos])
    return _postgres_interval(text)


def _postgres_interval(text: str) -> pa.MonthDayNano:
    months = days = nanos = 0
    rest = text
    clock = _PG_INTERVAL_TIME.search(rest)
    if clock is not None:
        sign, hours, minutes, seconds, fraction = clock.groups()
        nanos = (int(hours) * 3600 + int(minutes) * 60) * _NANOS_PER_SECOND + _seconds_nanos(
            seconds, fraction
        )
        if sign == "-":
            nanos = -nanos
        rest = rest[: clock.start()]
    matched = 0
    for number, unit in _PG_INTERVAL_PART.findall(rest):
        matched += 1
        if unit == "year":
            months += int(number) * 12
        elif unit == "mon":
            months += int(number)
        else:
            days += int(number)
    if clock is None and not matched:
        raise DataError(f"interval {text!r} has no Python value")
    return pa.MonthDayNano([months, days, nanos])


_BY_KIND: dict[Kind, Converter] = {
    Kind.INT16: int,
    Kind.INT32: int,
    Kind.INT64: int,
    Kind.DECIMAL: _decimal,
    Kind.NUMERIC: _identity,
    Kind.FLOAT32: _float32,
    Kind.FLOAT64: float,
    Kind.TEXT: _identity,
    Kind.BYTES: _bytes,
    Kind.BOOLEAN: _bool,
    Kind.DATE: _date,
    Kind.TIME: _time,
    Kind.TIMESTAMP: _timestamp,
    Kind.TIMESTAMPTZ: _timestamptz,
    Kind.INTERVAL: _interval,
    Kind.UUID: _identity,
    Kind.JSON: _identity,
    Kind.ENUM: _identity,
}


def array_shape_refusal(text: str, dims: int = 1) -> str | None:
    """Why an array's text output has no exact form in a list column of
    ``dims`` levels (None when it has): a lower bound other than 1 (PostgreSQL
    writes bounds only then), or another number of dimensions."""
    if text.startswith("["):
        bounds = text[: text.index("=")]
        return f"array bounds {bounds} (lower bound other than 1) cannot be kept by a list column"
    found = len(text) - len(text.lstrip("{"))
    if text != "{}" and found != dims:
        return (
            f"{found}-dimensional array has no exact form in a list column of {dims} dimension(s)"
            " (declare the column with one [] per dimension, e.g. integer[][], for nested lists)"
        )
    return None


def _array_converter(element: Converter, dims: int) -> Converter:
    def convert(text: str) -> list[Any] | Unrepresentable:
        refusal = array_shape_refusal(text, dims)
        if refusal is not None:
            return Unrepresentable(text, refusal)
        items = _convert_items(parse_array(text), element)
        return _first_unrepresentable(items) or items

    return convert


def _first_unrepresentable(items: list[Any]) -> Unrepresentable | None:
    for item in items:
        if type(item) is Unrepresentable:
            return item
        if type(item) is list and (found := _first_unrepresentable(item)) is not None:
            return found
    return None


def _convert_items(items: Sequence[Any], element: Converter) -> list[Any]:
    return [
        None if item is None else _convert_items(item, element) if isinstance(item, list) else element(item)
        for item in items
    ]


def parse_array(text: str) -> list[Any]:
    """An array's text output as a list of element texts (None for NULL);
    nested lists for a multidimensional array."""
    if text.startswith("["):  # explicit bounds: '[0:1]={1,2}'
        text = text[text.index("=") + 1 :]
    if text == "{}":
        return []
    if "\\" not in text and '"' not in text and "{" not in text[1:]:
        return [None if item == "NULL" else item for item in text[1:-1].split(",")]
    result, pos = _parse_level(text, 0)
    if pos != len(text):
        raise DataError(f"malformed array text {text[:60]!r}")
    return result


def _parse_level(text: str, pos: int) -> tuple[list[Any], int]:
    if text[pos] != "{":
        raise DataError(f"malformed array text {text[:60]!r}")
    pos += 1
    items: list[Any] = []
    if text[pos] == "}":
        return items, pos + 1
    n = len(text)
    while pos < n:
        ch = text[pos]
        if ch == "{":
            nested, pos = _parse_level(text, pos)
            items.append(nested)
        elif ch == '"':
            pos += 1
            chars = []
            while text[pos] != '"':
                if text[pos] == "\\":
                    pos += 1
                chars.append(text[pos])
                pos += 1
            items.append("".join(chars))
            pos += 1
        else:
            end = pos
            while text[end] not in ",}":
                end += 1
            item = text[pos:end]
            items.append(None if item == "NULL" else item)
            pos = end
        if text[pos] == ",":
            pos += 1
        elif text[pos] == "}":
            return items, pos + 1
        else:
            raise DataError(f"malformed array text {text[:60]!r}")
    raise DataError(f"malformed array text {text[:60]!r}")
