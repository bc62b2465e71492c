"""pgoutput tuples as lines of PostgreSQL's COPY text format, and back.

pgoutput sends every value as its type's output text, in the replication
session's settings (``text_values.SESSION_OPTIONS``: ISO dates, ISO 8601
intervals, hex bytea, shortest exact floats, UTC), which every PostgreSQL
server's input functions read back exactly. A PostgreSQL target whose columns
have the source's very types can therefore take a change's row as the COPY text
line those values make: tab-separated, ``\\N`` for NULL, and backslash, tab,
newline and carriage return escaped. Nothing is converted to Python on the way
except the key columns, which batching needs.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Sequence
from typing import Any

from conveyor.connectors.postgres.text_values import Converter

TEXT_FORMAT = "postgres-copy-text"

_TEXT, _NULL = 0x74, 0x6E  # tuple value tags 't' and 'n'
_COUNT = struct.Struct("!h").unpack_from
_LENGTH = struct.Struct("!i").unpack_from
_NULL_FIELD = b"\\N"
_ESCAPES = {b"\\": b"\\\\", b"\t": b"\\t", b"\n": b"\\n", b"\r": b"\\r"}
_UNESCAPES = {value[1:2]: key for key, value in _ESCAPES.items()}
_SPECIALS = b"\\\t\n\r"
_SPECIAL = re.compile(rb"[\\\t\n\r]")
_ESCAPED = re.compile(rb"\\(.)", re.DOTALL)


def encoded_format(encoding: str) -> str:
    """The format name of lines whose text is in ``encoding`` (a Python codec
    name): a target accepts them only when its connection uses that encoding."""
    return f"{TEXT_FORMAT}/{encoding}"


def tuple_line(
    columns: int,
    keys: Sequence[tuple[int, str, Converter]],
    payload: bytes,
    pos: int,
    encoding: str,
) -> tuple[bytes, tuple[Any, ...]] | None:
    """The tuple at ``pos`` as one COPY text line (ending in a newline) and its
    key values (``keys``: position, name, converter); None when the tuple holds
    an unchanged TOASTed or a binary value, does not have ``columns`` values, or
    has a NULL key (the caller decodes it in full then)."""
    if _COUNT(payload, pos)[0] != columns:
        return None
    pos += 2
    fields: list[bytes] = []
    append, length, null = fields.append, _LENGTH, _NULL_FIELD  # locals: this runs per change
    nulls = 0
    for _ in range(columns):
        tag = payload[pos]
        if tag == _TEXT:
            start = pos + 5
            pos = start + length(payload, pos + 1)[0]
            append(payload[start:pos])
        elif tag == _NULL:
            append(null)
            nulls += 1
            pos += 1
        else:
            return None
    key = []
    for index, _, convert in keys:
        value = fields[index]
        if value is null:
            return None
        key.append(convert(value.decode(encoding)))
    line = b"\t".join(fields)
    # Only the separators and the NULL markers may be special: otherwise some
    # value holds a character COPY needs escaped (rare: escape value by value).
    if len(line) - len(line.translate(None, _SPECIALS)) != columns - 1 + nulls:
        line = b"\t".join(f if f is null else _escape(f) for f in fields)
    return line + b"\n", tuple(key)


def _escape(value: bytes) -> bytes:
    return _SPECIAL.sub(lambda m: _ESCAPES[m.group(0)], value)


def line_values(
    line: bytes, names: Sequence[str], convert: Sequence[Converter], encoding: str
) -> dict[str, Any]:
    """A line made by :func:`tuple_line` as Python values by column name (the
    rare case a batch needs a whole row it holds as a line)."""
    fields = line.rstrip(b"\n").split(b"\t")
    if len(fields) != len(names):
        raise ValueError(f"a COPY line has {len(fields)} fields, the table {len(names)} columns")
    return {
        name: None if field == _NULL_FIELD else to_value(_unescape(field).decode(encoding))
        for name, to_value, field in zip(names, convert, fields, strict=True)
    }


def _unescape(value: bytes) -> bytes:
    if b"\\" not in value:
        return value
    return _ESCAPED.sub(lambda m: _UNESCAPES[m.group(1)], value)


LineDecoder = Callable[[bytes], dict[str, Any]]
