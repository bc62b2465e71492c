"""Row images of binlog rows events, decoded straight from the event's bytes.

pymysqlreplication decodes every value through a chain of type tests and a
packet reader that copies a few bytes at a time (most of the capture's time,
bench/profiles/mariadb-cdc-*.txt). For a table whose columns all have one of
the types below, this module compiles, once per table map, one reader per
column that takes the value from the event's bytes at an offset, and decodes
every row of an event in one pass. Values, and the ``none_sources`` of NULLs,
are exactly pymysqlreplication's (its own algorithms, quirks included;
tests/integration/test_mysql_row_images.py compares both for every type
handled). Any other column type (JSON of MySQL, BIT, ENUM, SET, TIME2,
GEOMETRY, the old DATETIME/TIMESTAMP forms), a partial-update event or a
packet already read past its header leaves the event to pymysqlreplication.
"""

from __future__ import annotations

import codecs
import datetime as dt
import struct
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from pymysqlreplication.constants import FIELD_TYPE  # type: ignore[import-untyped]
from pymysqlreplication.constants.NONE_SOURCE import (  # type: ignore[import-untyped]
    COLS_BITMAP,
    NULL,
    OUT_OF_DATE_RANGE,
    OUT_OF_DATETIME2_RANGE,
)
from pymysqlreplication.row_event import (  # type: ignore[import-untyped]
    DeleteRowsEvent,
    RowsEvent,
    UpdateRowsEvent,
    WriteRowsEvent,
)

# (event bytes, offset) -> (value, offset after it)
Reader = Callable[[bytes, int], tuple[Any, int]]
# A table's compiled readers: (column name, reader, none source when the reader gives None)
Compiled = tuple[tuple[str, Reader, str | None], ...]

_FIXED: dict[tuple[int, bool], struct.Struct] = {
    (FIELD_TYPE.TINY, False): struct.Struct("<b"),
    (FIELD_TYPE.TINY, True): struct.Struct("<B"),
    (FIELD_TYPE.SHORT, False): struct.Struct("<h"),
    (FIELD_TYPE.SHORT, True): struct.Struct("<H"),
    (FIELD_TYPE.LONG, False): struct.Struct("<i"),
    (FIELD_TYPE.LONG, True): struct.Struct("<I"),
    (FIELD_TYPE.LONGLONG, False): struct.Struct("<q"),
    (FIELD_TYPE.LONGLONG, True): struct.Struct("<Q"),
    (FIELD_TYPE.FLOAT, False): struct.Struct("<f"),
    (FIELD_TYPE.FLOAT, True): struct.Struct("<f"),
    (FIELD_TYPE.DOUBLE, False): struct.Struct("<d"),
    (FIELD_TYPE.DOUBLE, True): struct.Struct("<d"),
}
_DIGITS_PER_INTEGER = 9
_COMPRESSED_BYTES = (0, 1, 1, 2, 2, 3, 3, 4, 4, 4)
_FSP_BYTES = {1: 1, 2: 1, 3: 2, 4: 2, 5: 3, 6: 3}
_SUPPORTED = {
    FIELD_TYPE.TINY,
    FIELD_TYPE.SHORT,
    FIELD_TYPE.INT24,
    FIELD_TYPE.LONG,
    FIELD_TYPE.LONGLONG,
    FIELD_TYPE.FLOAT,
    FIELD_TYPE.DOUBLE,
    FIELD_TYPE.YEAR,
    FIELD_TYPE.NEWDECIMAL,
    FIELD_TYPE.VARCHAR,
    FIELD_TYPE.STRING,
    FIELD_TYPE.BLOB,
    FIELD_TYPE.DATE,
    FIELD_TYPE.DATETIME2,
    FIELD_TYPE.TIMESTAMP2,
}
_EPOCH_UTC = dt.datetime(1970, 1, 1)


def _fixed(packer: struct.Struct) -> Reader:
    unpack, size = packer.unpack_from, packer.size

    def read(data: bytes, off: int) -> tuple[Any, int]:
        return unpack(data, off)[0], off + size

    return read


def _int24(unsigned: bool) -> Reader:
    def read(data: bytes, off: int) -> tuple[Any, int]:
        return int.from_bytes(data[off : off + 3], "little", signed=not unsigned), off + 3

    return read


def _year(data: bytes, off: int) -> tuple[Any, int]:
    return data[off] + 1900, off + 1


def _text(decode: Callable[[bytes], Any], length_size: int) -> Reader:
    def read(data: bytes, off: int) -> tuple[Any, int]:
        start = off + length_size
        end = start + int.from_bytes(data[off:start], "little")
        return decode(data[start:end]), end

    return read


def _string_decoder(column: Any, ignore_decode_errors: bool) -> Callable[[bytes], Any]:
    """pymysqlreplication's RowsEvent.__read_string, decided once per column."""
    errors = "ignore" if ignore_decode_errors else "strict"
    if column.character_set_name is None:
        return lambda raw: raw.decode(errors=errors)
    encoding = RowsEvent.charset_to_encoding(column.character_set_name)
    try:
        codecs.lookup(encoding)
    except LookupError:
        # An encoding Python does not know (binary): the bytes, as it gives them;
        # empty bytes decode to "" before Python looks the encoding up.
        return lambda raw: raw if raw else raw.decode(encoding, errors)
    return lambda raw: raw.decode(encoding, errors)


def _be_signed(raw: bytes) -> int:
    """read_int_be_by_size for sizes 1-4: big-endian, signed."""
    return int.from_bytes(raw, "big", signed=True)


def _decimal(column: Any) -> Reader:
    """RowsEvent.__read_new_decimal, the same digits in the same order."""
    integral = column.precision - column.decimals
    uncomp_integral = integral // _DIGITS_PER_INTEGER
    uncomp_fractional = column.decimals // _DIGITS_PER_INTEGER
    comp_integral = integral - uncomp_integral * _DIGITS_PER_INTEGER
    comp_fractional = column.decimals - uncomp_fractional * _DIGITS_PER_INTEGER
    head = _COMPRESSED_BYTES[comp_integral]
    tail = _COMPRESSED_BYTES[comp_fractional]
    size = head + 4 * (uncomp_integral + uncomp_fractional) + tail

    def read(data: bytes, off: int) -> tuple[Any, int]:
        first = data[off]
        if first & 0x80:
            res, mask = "", 0
        else:
            res, mask = "-", -1
        raw = bytes((first ^ 0x80,)) + data[off + 1 : off + size]
        pos = 0
        if head:
            res += str(_be_signed(raw[:head]) ^ mask)
            pos = head
        for _ in range(uncomp_integral):
            res += f"{_be_signed(raw[pos : pos + 4]) ^ mask:09d}"
            pos += 4
        res += "."
        for _ in range(uncomp_fractional):
            res += f"{_be_signed(raw[pos : pos + 4]) ^ mask:09d}"
            pos += 4
        if tail:
            res += f"{_be_signed(raw[pos : pos + tail]) ^ mask:0{comp_fractional}d}"
        return Decimal(res), off + size

    return read


def _fsp(column: Any) -> tuple[int, Callable[[bytes], int]]:
    """RowsEvent.__read_fsp: (bytes, bytes -> microseconds)."""
    fsp = column.fsp
    size = _FSP_BYTES.get(fsp, 0)
    scale = 10 ** (6 - fsp) if size else 0

    def micro(raw: bytes) -> int:
        value = int.from_bytes(raw, "big", signed=True)  # read_int_be_by_size
        if fsp % 2:
            value = int(value / 10)
        return value * scale

    return size, micro


def _date(data: bytes, off: int) -> tuple[Any, int]:
    time = int.from_bytes(data[off : off + 3], "little")
    if time == 0:
        return None, off + 3
    year = (time & ((1 << 15) - 1) << 9) >> 9
    month = (time & ((1 << 4) - 1) << 5) >> 5
    day = time & ((1 << 5) - 1)
    if year == 0 or month == 0 or day == 0:
        return None, off + 3
    return dt.date(year=year, month=month, day=day), off + 3


def _datetime2(column: Any) -> Reader:
    fsp_size, micro = _fsp(column)

    def read(data: bytes, off: int) -> tuple[Any, int]:
        packed = int.from_bytes(data[off : off + 5], "big")  # read_int40_be: unsigned
        end = off + 5 + fsp_size
        year_month = (packed >> 22) & ((1 << 17) - 1)
        try:
            value = dt.datetime(
                year=year_month // 13,
                month=year_month % 13,
                day=(packed >> 17) & 0x1F,
                hour=(packed >> 12) & 0x1F,
                minute=(packed >> 6) & 0x3F,
                second=packed & 0x3F,
            )
        except ValueError:
            return None, end
        if fsp_size:
            microsecond = micro(data[off + 5 : end])
            if microsecond > 0:
                value = value.replace(microsecond=microsecond)
        return value, end

    return read


def _timestamp2(column: Any) -> Reader:
    fsp_size, micro = _fsp(column)

    def read(data: bytes, off: int) -> tuple[Any, int]:
        seconds = int.from_bytes(data[off : off + 4], "big", signed=True)
        end = off + 4 + fsp_size
        # datetime.utcfromtimestamp(seconds), without its deprecation warning
        value = _EPOCH_UTC + dt.timedelta(seconds=seconds)
        if fsp_size:
            microsecond = micro(data[off + 4 : end])
            if microsecond > 0:
                value = value.replace(microsecond=microsecond)
        return value, end

    return read


def _reader(column: Any, ignore_decode_errors: bool) -> tuple[Reader, str | None]:
    kind = column.type
    if (kind, bool(column.unsigned)) in _FIXED:
        return _fixed(_FIXED[(kind, bool(column.unsigned))]), None
    if kind == FIELD_TYPE.INT24:
        return _int24(bool(column.unsigned)), None
    if kind == FIELD_TYPE.YEAR:
        return _year, None
    if kind == FIELD_TYPE.NEWDECIMAL:
        return _decimal(column), None
    if kind in (FIELD_TYPE.VARCHAR, FIELD_TYPE.STRING):
        return _text(_string_decoder(column, ignore_decode_errors), 2 if column.max_length > 255 else 1), None
    if kind == FIELD_TYPE.BLOB:
        return _text(_string_decoder(column, ignore_decode_errors), column.length_size), None
    if kind == FIELD_TYPE.DATE:
        return _date, OUT_OF_DATE_RANGE
    if kind == FIELD_TYPE.DATETIME2:
        return _datetime2(column), OUT_OF_DATETIME2_RANGE
    return _timestamp2(column), None  # TIMESTAMP2: _compile admits nothing else


def compile_columns(columns: Sequence[Any], ignore_decode_errors: bool = False) -> Compiled | None:
    """Readers for a table map's columns, or None when one of them is a type
    left to pymysqlreplication (or has no name)."""
    compiled = []
    for column in columns:
        if column.type not in _SUPPORTED or not column.name:
            return None
        reader, none_source = _reader(column, ignore_decode_errors)
        compiled.append((str(column.name), reader, none_source))
    return tuple(compiled)


_LAYOUTS: dict[tuple[bytes, int], tuple[tuple[bool, ...], int]] = {}


def _layout(present: bytes, columns: int) -> tuple[tuple[bool, ...], int]:
    """Which columns an image carries, and its null bitmap's length (the bits
    set in the whole present bitmap, as pymysqlreplication's BitCount counts)."""
    key = (bytes(present), columns)
    layout = _LAYOUTS.get(key)
    if layout is None:
        flags = tuple(bool(present[i >> 3] & (1 << (i & 7))) for i in range(columns))
        layout = (flags, (sum(bin(b).count("1") for b in present) + 7) // 8)
        if len(_LAYOUTS) < 4096:  # a handful per table in practice
            _LAYOUTS[key] = layout
    return layout


def _image(
    compiled: Compiled, layout: tuple[tuple[bool, ...], int], data: bytes, off: int
) -> tuple[dict[str, Any], dict[str, str], int]:
    """One row image from ``off``: (values, none sources, offset after it)."""
    flags, null_bytes = layout
    nulls = data[off : off + null_bytes]
    off += null_bytes
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    if all(flags):  # a FULL row image: the null bitmap's bits are the columns'
        for index, (name, read, none_source) in enumerate(compiled):
            if nulls[index >> 3] & (1 << (index & 7)):
                values[name] = None
                sources[name] = NULL
                continue
            value, off = read(data, off)
            values[name] = value
            if value is None:
                sources[name] = none_source or NULL
        return values, sources, off
    null_index = 0
    for (name, read, none_source), carried in zip(compiled, flags, strict=True):
        if not carried:
            values[name] = None
            sources[name] = COLS_BITMAP
            continue
        if nulls[null_index >> 3] & (1 << (null_index & 7)):
            values[name] = None
            sources[name] = NULL
        else:
            value, off = read(data, off)
            values[name] = value
            if value is None:
                sources[name] = none_source or NULL
        null_index += 1
    return values, sources, off


class _Tables:
    """Compiled readers per table map entry (the same object while the map holds)."""

    def __init__(self) -> None:
        self._compiled: dict[int, tuple[Any, Compiled | None]] = {}

    def get(self, event: Any) -> Compiled | None:
        table = event.table_map.get(event.table_id)
        if table is None:
            return None
        cached = self._compiled.get(event.table_id)
        if cached is None or cached[0] is not table:
            ignore_errors = bool(getattr(event, "_ignore_decode_errors", False))
            cached = (table, compile_columns(event.columns, ignore_errors))
            self._compiled[event.table_id] = cached
        return cached[1]


class RowImageDecoder:
    """``rows(event)``: the event's rows as pymysqlreplication's ``event.rows``
    would give them, decoded here when its table allows (else by it)."""

    def __init__(self) -> None:
        self._tables = _Tables()
        self.decoded_events = 0  # events decoded here (the rest: by pymysqlreplication)

    def rows(self, event: Any) -> list[dict[str, Any]]:
        try:
            fast = self._fast(event)
        except (IndexError, ValueError, struct.error, OverflowError):
            fast = None  # pymysqlreplication reads it again, and raises what it raises
        if fast is None:
            return list(event.rows)
        self.decoded_events += 1
        return fast

    def _fast(self, event: Any) -> list[dict[str, Any]] | None:
        if not isinstance(event, WriteRowsEvent | UpdateRowsEvent | DeleteRowsEvent):
            return None
        if event.event_type not in _V1_V2_ROWS or not getattr(event, "complete", True):
            return None
        compiled = self._tables.get(event)
        if compiled is None or len(compiled) != event.number_of_columns:
            return None
        wrapper = event.packet
        if getattr(wrapper, "_BinLogPacketWrapper__data_buffer", b"") != b"":
            return None  # bytes pushed back: not a plain view of the packet
        packet = wrapper.packet
        start = packet._position
        data: bytes = packet._data[start : start + (event.event_size - wrapper.read_bytes)]
        rows: list[dict[str, Any]] = []
        off, end = 0, len(data)
        columns = len(compiled)
        if isinstance(event, UpdateRowsEvent):
            before = _layout(event.columns_present_bitmap, columns)
            after = _layout(event.columns_present_bitmap2, columns)
            while off < end:
                old, old_sources, off = _image(compiled, before, data, off)
                new, new_sources, off = _image(compiled, after, data, off)
                rows.append(
                    {
                        "before_values": old,
                        "before_none_sources": old_sources,
                        "after_values": new,
                        "after_none_sources": new_sources,
                    }
                )
        else:
            present = _layout(event.columns_present_bitmap, columns)
            while off < end:
                values, sources, off = _image(compiled, present, data, off)
                rows.append({"values": values, "none_sources": sources})
        if off != end:
            return None  # not the layout expected: let pymysqlreplication read it
        return rows


# WRITE/UPDATE/DELETE_ROWS_EVENT v1 (23-25) and v2 (30-32); not PARTIAL_UPDATE_ROWS_EVENT (39).
_V1_V2_ROWS = frozenset({23, 24, 25, 30, 31, 32})
