"""Binlog values as the full load's values: per column, how the value
pymysqlreplication (or the row-image decoder) gives becomes exactly the value
:mod:`conveyor.connectors.mysql.source` produces for the same column, so
validation compares them equal. A value with no such counterpart raises
:class:`UnrepresentableValue`, which the stream turns into an
``Unrepresentable`` for the applier to refuse per DataErrorPolicy."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pymysql

from conveyor.connectors.mysql.connection import error_reason, text
from conveyor.connectors.mysql.types import SPATIAL, enum_labels
from conveyor.core.schema import Column
from conveyor.core.types import Kind

if TYPE_CHECKING:
    from conveyor.connectors.mysql.capture_binlog import Connection

_EPOCH = dt.datetime(1970, 1, 1)  # pymysqlreplication gives TIMESTAMPs as naive UTC
_ONE_DAY = dt.timedelta(days=1)
_SIZE = re.compile(r"\(\s*(\d+)\s*\)")
_UUID_BYTES = 16


class UnrepresentableValue(Exception):
    def __init__(self, value: Any, why: str) -> None:
        super().__init__(why)
        self.value = value
        self.why = why


Convert = Callable[[Any, str], Any]  # (binlog value, its none-source) -> in-flight value


def _base(native: str | None) -> str:
    return (native or "").split("(")[0].strip().split(" ")[0].lower()


class ValueConverters:
    """Per column: how pymysqlreplication's value becomes the in-flight value the
    full load gives for the column."""

    def __init__(self, wkt: Callable[[bytes], str]) -> None:
        self._wkt = wkt

    def for_column(self, column: Column) -> Convert:
        kind, native, base = column.type.kind, column.type.native, _base(column.type.native)
        if base == "bit":
            if kind is Kind.BOOLEAN:
                return lambda v, _s: _bits(v) != 0
            if kind is Kind.DECIMAL:
                return lambda v, _s: Decimal(_bits(v))
            return lambda v, _s: _bits(v)
        if base == "set":
            order = {label: i for i, label in enumerate(enum_labels(native or ""))}
            return lambda v, s: set_text(v, s, order)
        if base == "year":
            # The binlog's byte is the year minus 1900, and 0 is year 0000:
            # pymysqlreplication reads it as 1900, a year a YEAR column cannot hold.
            return lambda v, _s: 0 if v == 1900 else v
        if base in SPATIAL and kind is Kind.TEXT:
            return lambda v, s: None if v is None else self._wkt(v)
        if kind is Kind.DECIMAL:
            return lambda v, _s: None if v is None else Decimal(v)
        if kind is Kind.NUMERIC:
            return lambda v, _s: None if v is None else format(Decimal(v), "f")
        if kind is Kind.DATE:
            return _date
        if kind is Kind.TIMESTAMP:
            return _datetime
        if kind is Kind.TIMESTAMPTZ:
            return _timestamp
        if kind is Kind.TIME:
            return _time
        if kind is Kind.JSON:
            return lambda v, _s: None if v is None else _json_text(v)
        if kind is Kind.UUID:
            return lambda v, _s: None if v is None else _uuid(v)
        if kind in {Kind.TEXT, Kind.ENUM}:
            return lambda v, _s: None if v is None else _string(v)
        if kind is Kind.BYTES:
            width = _fixed_binary_width(native)
            return lambda v, _s: None if v is None else _bytes(v, width)
        return lambda v, _s: v


def _bits(value: Any) -> int:
    if isinstance(value, str):
        return int(value, 2) if value else 0
    if isinstance(value, bytes | bytearray):
        return int.from_bytes(value, "big")
    return int(value)


def set_text(value: Any, source: str, order: Mapping[str, int]) -> str | None:
    """A SET's members as the full load reads them: in declaration order (``order``: label -> position)."""
    if value is None:
        # pymysqlreplication gives None for the empty set too (none-source "empty set").
        return "" if source == "empty set" else None
    if isinstance(value, str):
        return value
    members = sorted((_string(m) for m in value), key=lambda m: (order.get(m, len(order)), m))
    return ",".join(members)


def _string(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        try:
            return bytes(value).decode()
        except UnicodeDecodeError:
            raise UnrepresentableValue(value, "it is not UTF-8 text") from None
    return str(value)


def _uuid(value: Any) -> str:
    if isinstance(value, str):
        try:
            return str(uuid.UUID(value))
        except ValueError:
            value = value.encode()  # its bytes, decoded as text ('' for the all-zero uuid)
    if isinstance(value, bytes | bytearray):
        # MariaDB's uuid arrives as its 16 bytes, trailing zero bytes stripped.
        if len(value) > _UUID_BYTES:
            raise UnrepresentableValue(value, "it is not a 16-byte uuid")
        return str(uuid.UUID(bytes=bytes(value).ljust(_UUID_BYTES, b"\0")))
    return _string(value).lower()


def _bytes(value: Any, width: int | None) -> bytes:
    data = value.encode() if isinstance(value, str) else bytes(value)
    # binary(n) arrives without its trailing zero padding; the full load reads it padded.
    if width is not None and len(data) < width:
        data += b"\0" * (width - len(data))
    return data


def _fixed_binary_width(native: str | None) -> int | None:
    if _base(native) != "binary":
        return None
    m = _SIZE.search(native or "")
    return int(m.group(1)) if m else 1


def _date(value: Any, source: str) -> dt.date | None:
    if value is None:
        if source.startswith("out of"):
            raise UnrepresentableValue(
                "0000-00-00", "a date with a zero year, month or day has no calendar day"
            )
        return None
    return value  # type: ignore[no-any-return]


def _datetime(value: Any, source: str) -> dt.datetime | None:
    if value is None:
        if source.startswith("out of"):
            raise UnrepresentableValue(
                "0000-00-00 00:00:00", "a date with a zero year, month or day has no calendar day"
            )
        return None
    return value  # type: ignore[no-any-return]


def _timestamp(value: Any, _source: str) -> dt.datetime | None:
    if value is None:
        return None
    if value == _EPOCH:
        # TIMESTAMP's range starts one second after the epoch: 0 is the zero value.
        raise UnrepresentableValue(
            "0000-00-00 00:00:00", "a date with a zero year, month or day has no calendar day"
        )
    return value.replace(tzinfo=dt.UTC)  # type: ignore[no-any-return]


def _time(value: Any, _source: str) -> dt.time | None:
    if value is None:
        return None
    if isinstance(value, dt.timedelta):
        if dt.timedelta(0) <= value < _ONE_DAY:
            micros = value // dt.timedelta(microseconds=1)
            seconds, micro = divmod(micros, 1_000_000)
            return dt.time(seconds // 3600, seconds // 60 % 60, seconds % 60, micro)
        raise UnrepresentableValue(str(value), "a time of day must lie within 00:00:00..23:59:59.999999")
    raise UnrepresentableValue(value, "it is not a time of day")


def _json_text(value: Any) -> str:
    """MariaDB's json is longtext (a str as stored). MySQL's binary JSON arrives
    parsed: spell it as MySQL prints it."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        return _string(value)
    return json.dumps(_json_plain(value), ensure_ascii=False, separators=(", ", ": "))


def _json_plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {_string(k): _json_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_plain(v) for v in value]
    if isinstance(value, bytes | bytearray):
        return _string(value)
    if isinstance(value, Decimal):
        return float(value)
    return value


def geometry_text(conn: Connection, value: bytes) -> str:
    """A geometry in MySQL's internal form (4-byte SRID + WKB) as the WKT text
    the full load selects, spelled by the server on ``conn``."""
    try:
        with conn.cursor() as cur:
            srid = int.from_bytes(value[:4], "little")
            cur.execute("SELECT ST_AsText(ST_GeomFromWKB(%s, %s))", (bytes(value[4:]), srid))
            row = cur.fetchone()
        conn.rollback()
    except pymysql.err.MySQLError as exc:
        why = f"the server cannot read it as a geometry: {error_reason(exc)}"
        raise UnrepresentableValue(value, why) from None
    if row is None or row[0] is None:
        raise UnrepresentableValue(value, "the server cannot read it as a geometry")
    return text(row[0])
