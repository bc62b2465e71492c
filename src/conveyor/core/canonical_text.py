"""Values as canonical text: PostgreSQL's own output spelling of every type.

Validation compares every value as text. A PostgreSQL source sends its own
output text (``COPY ... TO STDOUT`` under fixed session settings: DateStyle ISO,
TimeZone UTC, IntervalStyle postgres, extra_float_digits 1, bytea_output hex);
any other side's Arrow values are rendered here into exactly that text, so a
value that changed on the way (a microsecond, a year wrapped to BC, a 2-D array
flattened, a lower bound dropped, a numeric's scale) reads differently.

Dates and timestamps are rendered from their integer storage, never through
Python's ``datetime`` (which has no infinity, no BC and no year past 9999).
"""

from __future__ import annotations

import json
import math
import re
from decimal import Context, Decimal
from typing import Any

import numpy as np
import pyarrow as pa

from conveyor.core.arrow_compute import pc
from conveyor.core.calendar import civil_from_days
from conveyor.core.types import DATE_INFINITY, INT64_INFINITY, ColumnType, Kind

_US_PER_DAY = 86_400_000_000
_ARRAY_SPECIAL = frozenset('{},"\\ \t\n\r\v\f')
_UNIT_US = {"s": 1_000_000, "ms": 1_000, "us": 1}


def render_column(array: pa.Array, ctype: ColumnType) -> list[str | None]:
    """Every value of ``array`` as PostgreSQL would print it as ``ctype`` (None for NULL)."""
    array = _plain(array)
    dtype = array.type
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
        element = ctype.element if ctype.kind is Kind.ARRAY and ctype.element is not None else ctype
        return _lists(array, element)
    if pa.types.is_timestamp(dtype):
        with_zone = ctype.kind is Kind.TIMESTAMPTZ or (
            ctype.kind is not Kind.TIMESTAMP and dtype.tz is not None
        )
        if dtype.unit == "us" and _within(array.view(pa.int64()), _FIRST_US, _LAST_US):
            return _trimmed(array.view(pa.int64()).view(pa.timestamp("us")), "+00" if with_zone else "")
        return [None if v is None else timestamp_text(v, with_zone) for v in _micros(array)]
    if pa.types.is_date32(dtype):
        if _within(array.view(pa.int32()), _FIRST_DAY, _LAST_DAY):
            return array.cast(pa.string()).to_pylist()  # type: ignore[no-any-return]
        return [None if v is None else date_text(v) for v in array.view(pa.int32()).to_pylist()]
    if pa.types.is_date64(dtype):
        return [None if v is None else date_text(v // 86_400_000) for v in array.view(pa.int64()).to_pylist()]
    if pa.types.is_time(dtype):
        if dtype == pa.time64("us") and _within(array.view(pa.int64()), 0, _US_PER_DAY - 1):
            return _trimmed(array, "")  # 24:00:00 is PostgreSQL's, not Arrow's
        return [None if v is None else clock_text(v) for v in _micros(array)]
    if dtype == pa.month_day_nano_interval():
        return [
            None if v is None else interval_text(v.months, v.days, v.nanoseconds) for v in array.to_pylist()
        ]
    if pa.types.is_floating(dtype):
        if pa.types.is_float64(dtype):
            return [None if v is None else _double_text(v) for v in array.to_pylist()]
        return [None if v is None else float_text(v, True) for v in array.to_pylist()]
    if pa.types.is_boolean(dtype):
        return [None if v is None else ("t" if v else "f") for v in array.to_pylist()]
    if pa.types.is_integer(dtype):
        return [None if v is None else str(v) for v in array.to_pylist()]
    if pa.types.is_decimal(dtype):
        return [None if v is None else decimal_text(v) for v in array.to_pylist()]
    if pa.types.is_binary(dtype) or pa.types.is_large_binary(dtype) or pa.types.is_fixed_size_binary(dtype):
        uuid = ctype.kind is Kind.UUID
        return [None if v is None else binary_text(v, uuid) for v in array.to_pylist()]
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        return array.to_pylist()  # type: ignore[no-any-return]
    if pa.types.is_null(dtype):
        return [None] * len(array)
    return [None if v is None else str(v) for v in array.to_pylist()]


def _plain(array: pa.Array) -> pa.Array:
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if isinstance(array.type, pa.ExtensionType):
        array = array.storage
    if pa.types.is_dictionary(array.type):
        array = array.dictionary_decode()
    if hasattr(pa, "string_view") and array.type in (pa.string_view(), pa.binary_view()):
        array = array.cast(pa.string() if array.type == pa.string_view() else pa.binary())
    return array


# Years 1..9999, where Arrow's own formatting is PostgreSQL's (vectorised).
_FIRST_DAY, _LAST_DAY = -719_162, 2_932_896
_FIRST_US, _LAST_US = _FIRST_DAY * _US_PER_DAY, (_LAST_DAY + 1) * _US_PER_DAY - 1


def _within(values: pa.Array, first: int, last: int) -> bool:
    if values.null_count == len(values):
        return True
    low, high = pc.min_max(values).values()
    return bool(first <= low.as_py() and high.as_py() <= last)


def _trimmed(array: pa.Array, suffix: str) -> list[str | None]:
    """Arrow's text of microsecond times and timestamps (``... 00:00:00.120000``)
    with the fraction's trailing zeros dropped, as PostgreSQL prints them."""
    text = pc.replace_substring_regex(array.cast(pa.string()), r"\.?0+$", "")
    if suffix:
        text = pc.binary_join_element_wise(text, suffix, "")
    return text.to_pylist()  # type: ignore[no-any-return]


def _micros(array: pa.Array) -> list[int | None]:
    """Timestamps and times as integer microseconds (infinities kept as stored)."""
    unit = array.type.unit
    raw: list[int | None] = array.view(pa.int64() if array.type.bit_width == 64 else pa.int32()).to_pylist()
    if unit == "ns":
        return [None if v is None else (v if abs(v) == INT64_INFINITY else v // 1000) for v in raw]
    factor = _UNIT_US[unit]
    return raw if factor == 1 else [None if v is None else v * factor for v in raw]


def _lists(array: pa.Array, element: ColumnType) -> list[str | None]:
    values = array.values
    nested = pa.types.is_list(_plain(values).type) or pa.types.is_large_list(_plain(values).type)
    texts = render_column(values, element)
    items = texts if nested else [quote_element(t) for t in texts]
    offsets = array.offsets.to_pylist()
    valid = array.is_valid().to_pylist()
    out: list[str | None] = []
    for i, ok in enumerate(valid):
        if not ok:
            out.append(None)
            continue
        parts = items[offsets[i] : offsets[i + 1]]
        out.append("{" + ",".join("NULL" if p is None else p for p in parts) + "}")
    return out


def quote_element(text: str | None) -> str | None:
    """An array element as array_out writes it: quoted when empty, NULL-like, or
    holding a delimiter, brace, quote, backslash or white space."""
    if text is None:
        return None
    if text == "" or text.upper() == "NULL" or any(c in _ARRAY_SPECIAL for c in text):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def _ymd(days: int) -> tuple[str, bool]:
    year, month, day = civil_from_days(days)
    bc = year <= 0
    return f"{(1 - year) if bc else year:04d}-{month:02d}-{day:02d}", bc


def date_text(days: int) -> str:
    if days == DATE_INFINITY:
        return "infinity"
    if days == -DATE_INFINITY:
        return "-infinity"
    text, bc = _ymd(days)
    return text + (" BC" if bc else "")


def clock_text(micros: int) -> str:
    """HH:MM:SS with the fraction's trailing zeros dropped (24:00:00 allowed)."""
    seconds, fraction = divmod(micros, 1_000_000)
    hours, rest = divmod(seconds, 3600)
    text = f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"
    return text + (f".{fraction:06d}".rstrip("0") if fraction else "")


def timestamp_text(micros: int, with_zone: bool) -> str:
    if micros == INT64_INFINITY:
        return "infinity"
    if micros == -INT64_INFINITY:
        return "-infinity"
    days, in_day = divmod(micros, _US_PER_DAY)
    ymd, bc = _ymd(days)
    return f"{ymd} {clock_text(in_day)}" + ("+00" if with_zone else "") + (" BC" if bc else "")


def _trunc_div(a: int, b: int) -> tuple[int, int]:
    """C's truncating division: quotient and remainder share a's sign."""
    q = abs(a) // abs(b)
    q = q if (a >= 0) == (b >= 0) else -q
    return q, a - q * b


def interval_text(months: int, days: int, nanos: int) -> str:
    """IntervalStyle postgres (EncodeInterval, INTSTYLE_POSTGRES)."""
    years, months = _trunc_div(months, 12)
    parts: list[str] = []
    before = False
    for value, unit in ((years, "year"), (months, "mon"), (days, "day")):
        if value:
            plus = "+" if before and value > 0 else ""
            parts.append(f"{plus}{value} {unit}{'' if value == 1 else 's'}")
            before = value < 0
    micros = nanos // 1000 if nanos >= 0 else -((-nanos) // 1000)
    hours, rest = _trunc_div(micros, 3_600_000_000)
    minutes, rest = _trunc_div(rest, 60_000_000)
    seconds, fraction = _trunc_div(rest, 1_000_000)
    if not parts or micros:
        minus = micros < 0
        clock = f"{abs(hours):02d}:{abs(minutes):02d}:{abs(seconds):02d}"
        if fraction:
            clock += f".{abs(fraction):06d}".rstrip("0")
        parts.append(("-" if minus else "+" if before else "") + clock)
    return " ".join(parts)


def _double_text(value: float) -> str:
    """float_text of a double, fast where Python's repr is already fixed notation."""
    if 1e-4 <= abs(value) < 1e15:
        text = repr(value)
        return text[:-2] if text.endswith(".0") else text
    return float_text(value, False)


def float_text(value: float, single: bool) -> str:
    """float4out/float8out with extra_float_digits 1: the shortest exact digits,
    fixed notation for decimal exponents -4..14 (float4: -4..5), else 1.5e+20."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    shortest = (
        np.format_float_scientific(np.float32(value), unique=True, trim="-") if single else repr(float(value))
    )
    sign, digit_tuple, exponent = Decimal(shortest).as_tuple()
    assert isinstance(exponent, int)
    digits = "".join(map(str, digit_tuple)).rstrip("0")
    exponent += len(digit_tuple) - len(digits)
    point = exponent + len(digits) - 1  # decimal exponent of the first digit
    prefix = "-" if sign else ""
    if -4 <= point < (6 if single else 15):
        if point < 0:
            return f"{prefix}0.{'0' * (-point - 1)}{digits}"
        whole, fraction = digits[: point + 1].ljust(point + 1, "0"), digits[point + 1 :]
        return prefix + whole + (f".{fraction}" if fraction else "")
    mantissa = digits[0] + (f".{digits[1:]}" if len(digits) > 1 else "")
    return f"{prefix}{mantissa}e{'+' if point >= 0 else '-'}{abs(point):02d}"


def decimal_text(value: Decimal) -> str:
    if value.is_nan():
        return "NaN"
    if value.is_infinite():
        return "Infinity" if value > 0 else "-Infinity"
    text = format(value, "f")
    return text.lstrip("-") if value == 0 else text


def binary_text(value: bytes, uuid: bool) -> str:
    if uuid and len(value) == 16:
        h = value.hex()
        return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
    return "\\x" + value.hex()


def json_document(text: str | None) -> str | None:
    """A JSON text as one canonical document: keys sorted, no insignificant
    space, numbers by value (json and jsonb spell the same document differently).
    A json text's duplicate keys are all kept, in their order (json keeps them).
    Text that is not JSON stays as it is."""
    if text is None:
        return None
    try:
        return _canonical_json(
            json.loads(text, parse_float=Decimal, parse_int=Decimal, object_pairs_hook=_Pairs)
        )
    except (ValueError, RecursionError):
        return text


_XML_DECLARATION = re.compile(
    r"""\A<\?xml\s+version\s*=\s*(["'])1\.0\1(\s+encoding\s*=\s*(["'])[A-Za-z0-9._-]+\3)?\s*\?>"""
)


def xml_document(text: str | None) -> str | None:
    """An XML text without a declaration that says only ``version="1.0"`` and an
    encoding: the text is decoded already, and PostgreSQL's output drops such a
    declaration where its binary form (a load's) keeps it. A declaration with
    ``standalone`` stays, as everything else does."""
    if text is None:
        return None
    return _XML_DECLARATION.sub("", text, count=1)


class _Pairs(list[tuple[str, Any]]):
    """A JSON object's members as written (duplicate keys included)."""


def _canonical_json(value: Any) -> str:
    if isinstance(value, _Pairs):
        members = sorted(value, key=lambda pair: pair[0])  # stable: duplicates keep their order
        items = (json.dumps(k, ensure_ascii=False) + ":" + _canonical_json(v) for k, v in members)
        return "{" + ",".join(items) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_canonical_json(v) for v in value) + "]"
    if isinstance(value, Decimal):
        if not value.is_finite():
            return str(value)
        # As many digits as the number has: the default context (28) would round
        # 30-digit numbers that differ in their last digit to one spelling.
        return str(value.normalize(Context(prec=max(1, len(value.as_tuple().digits)))))
    return json.dumps(value, ensure_ascii=False)
