"""MySQL and MariaDB column types to conveyor's type system.

Decisions where the mapping is a choice:

* ``tinyint`` (so also ``bool``/``tinyint(1)``) is INT16: a tinyint(1) may hold
  any value in -128..127, so reading it as boolean would lose data. Only
  ``bit(1)`` is BOOLEAN.
* Unsigned integers widen to the next kind that holds their whole range;
  ``bigint unsigned`` (and ``bit(64)``) become decimal(20,0).
* ``decimal(p,s)`` with p > 38 (MySQL allows 65) travels as NUMERIC text.
* ``datetime`` is TIMESTAMP (no zone); ``timestamp`` is TIMESTAMPTZ, read in a
  UTC session.
* ``year`` is INT16, ``set(...)`` is TEXT (the comma-separated members).
* MariaDB's ``json`` is ``longtext`` with a ``CHECK (json_valid(col))``
  constraint: the caller says whether the column has one (``is_json``).
* Spatial types travel as WKT text (see :func:`select_expression`); any other
  type travels as its text form, with its native spelling kept.
* ``float`` is selected as a DOUBLE, which the text protocol spells exactly
  (it rounds a FLOAT to 6 significant digits).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from conveyor.connectors.mysql.connection import quote
from conveyor.core import types as t
from conveyor.core.types import ColumnType, Kind

_SIMPLE: dict[str, Kind] = {
    "float": Kind.FLOAT32,
    "double": Kind.FLOAT64,
    "real": Kind.FLOAT64,
    "tinytext": Kind.TEXT,
    "text": Kind.TEXT,
    "mediumtext": Kind.TEXT,
    "longtext": Kind.TEXT,
    "binary": Kind.BYTES,
    "varbinary": Kind.BYTES,
    "tinyblob": Kind.BYTES,
    "blob": Kind.BYTES,
    "mediumblob": Kind.BYTES,
    "longblob": Kind.BYTES,
    "date": Kind.DATE,
    "time": Kind.TIME,
    "datetime": Kind.TIMESTAMP,
    "timestamp": Kind.TIMESTAMPTZ,
    "year": Kind.INT16,
    "json": Kind.JSON,
    "uuid": Kind.UUID,
    "set": Kind.TEXT,
}

# Signed and unsigned integer types to the smallest kind holding their range.
_INTEGERS: dict[str, tuple[Kind, Kind | None]] = {
    "tinyint": (Kind.INT16, Kind.INT16),
    "smallint": (Kind.INT16, Kind.INT32),
    "mediumint": (Kind.INT32, Kind.INT32),
    "int": (Kind.INT32, Kind.INT64),
    "integer": (Kind.INT32, Kind.INT64),
    "bigint": (Kind.INT64, None),  # unsigned: decimal(20,0)
}

SPATIAL = frozenset(
    {
        "geometry",
        "point",
        "linestring",
        "polygon",
        "multipoint",
        "multilinestring",
        "multipolygon",
        "geometrycollection",
        "geomcollection",
    }
)

_UNSIGNED_BIGINT_DIGITS = 20
_SIZE = re.compile(r"\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\)")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "Z": "\x1a", "b": "\b"}


@dataclass(frozen=True)
class NativeColumn:
    """A column as information_schema.COLUMNS describes it."""

    data_type: str  # DATA_TYPE, e.g. 'decimal'
    column_type: str  # COLUMN_TYPE, e.g. 'decimal(12,2) unsigned'
    char_length: int | None = None  # CHARACTER_MAXIMUM_LENGTH
    precision: int | None = None  # NUMERIC_PRECISION
    scale: int | None = None  # NUMERIC_SCALE
    is_json: bool = False  # a CHECK (json_valid(col)) constraint holds (MariaDB json)


UNREADABLE_LABEL = "?"
"""How MariaDB's catalog spells a character of an enum label it cannot show (4-byte UTF-8)."""


def from_native(col: NativeColumn) -> ColumnType:
    """The conveyor type of a MySQL/MariaDB column."""
    name = col.data_type.strip().lower()
    native = col.column_type
    unsigned = "unsigned" in native.lower()
    if name in _INTEGERS:
        signed_kind, unsigned_kind = _INTEGERS[name]
        kind = unsigned_kind if unsigned else signed_kind
        if kind is None:
            return t.decimal(_UNSIGNED_BIGINT_DIGITS, 0, native=native)
        return t.simple(kind, native=native)
    if name in {"decimal", "numeric", "dec", "fixed"}:
        precision, scale = _decimal_size(col)
        if precision <= t.MAX_DECIMAL_PRECISION:
            return t.decimal(precision, scale, native=native)
        return t.simple(Kind.NUMERIC, native=native)
    if name == "bit":
        width = _bit_width(col)
        if width == 1:
            return t.simple(Kind.BOOLEAN, native=native)
        if width < 64:
            return t.simple(Kind.INT64, native=native)
        return t.decimal(_UNSIGNED_BIGINT_DIGITS, 0, native=native)
    if name in {"char", "varchar"}:
        return t.varchar(
            col.char_length if col.char_length is not None else _first_size(native), native=native
        )
    if name == "enum":
        labels = enum_labels(native)
        if any(UNREADABLE_LABEL in label for label in labels):
            # information_schema (and SHOW CREATE TABLE) spell a label's 4-byte
            # character as '?', so the catalog's labels are not the table's: an
            # enum built from them would refuse the rows holding such a label.
            # The label travels as text instead, exactly as the source returns it.
            return t.simple(Kind.TEXT, native=native)
        return t.enum(labels, native=native)
    if col.is_json and name in {"longtext", "text", "mediumtext", "tinytext", "varchar"}:
        return t.simple(Kind.JSON, native=native)
    if name in _SIMPLE:
        return t.simple(_SIMPLE[name], native=native)
    return t.simple(Kind.TEXT, native=native)


def is_spatial(ctype: ColumnType) -> bool:
    return ctype.kind is Kind.TEXT and (ctype.native or "").split("(")[0].strip().lower() in SPATIAL


def select_expression(name: str, ctype: ColumnType) -> str:
    """How to select a column so its value arrives in the form it travels as."""
    if is_spatial(ctype):
        return f"ST_AsText({quote(name)})"
    if ctype.kind is Kind.FLOAT32:
        # The text protocol spells a FLOAT with 6 significant digits (16777217
        # arrives as 16777200); as a DOUBLE it is the float's exact value.
        return f"CAST({quote(name)} AS DOUBLE)"
    return quote(name)


# Kinds whose values travel as strings: validation merges their keys in code
# point order, which is neither MySQL's collation order nor (for uuid, enum)
# the order of the stored value.
_STRING_KINDS = frozenset({Kind.TEXT, Kind.ENUM, Kind.UUID, Kind.JSON})


def order_expression(name: str, ctype: ColumnType) -> str:
    """How to ORDER BY a key column so rows come in the order Python compares
    the values they travel as.

    String keys sort by their UTF-8 bytes (which is code point order): a binary
    string compares byte by byte without padding, unlike the column's collation
    (case- and accent-insensitive, PAD SPACE) or even ``utf8mb4_bin`` (PAD SPACE:
    'a' sorts after 'a\\t'). ``CONVERT`` first, so a column in another
    character set sorts by its UTF-8 form; an enum sorts by its label, not its
    index, and a uuid by its text, not MariaDB's swapped storage order.
    """
    if ctype.kind in _STRING_KINDS:
        return f"CAST(CONVERT({select_expression(name, ctype)} USING utf8mb4) AS BINARY)"
    return quote(name)


def enum_labels(column_type: str) -> tuple[str, ...]:
    """The labels of ``enum('a','it''s, b')`` in declaration order. Quotes inside a
    label are doubled (or backslash-escaped); commas and parentheses may appear
    inside a label, so the text is scanned, not split."""
    start = column_type.find("(")
    if start < 0:
        return ()
    labels: list[str] = []
    i, n = start + 1, len(column_type)
    while i < n:
        ch = column_type[i]
        if ch == "'":
            label, i = _quoted(column_type, i + 1)
            labels.append(label)
        elif ch == ")":
            break
        else:
            i += 1
    return tuple(labels)


def _quoted(text: str, i: int) -> tuple[str, int]:
    """The string starting after an opening quote at ``i - 1``, and the index after
    its closing quote."""
    out: list[str] = []
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "\\" and i + 1 < n:
            nxt = text[i + 1]
            out.append(_ESCAPES.get(nxt, nxt))
            i += 2
        elif ch == "'":
            if i + 1 < n and text[i + 1] == "'":
                out.append("'")
                i += 2
            else:
                return "".join(out), i + 1
        else:
            out.append(ch)
            i += 1
    raise ValueError(f"unterminated label in {text!r}")


def _first_size(column_type: str) -> int | None:
    m = _SIZE.search(column_type)
    return int(m.group(1)) if m else None


def _decimal_size(col: NativeColumn) -> tuple[int, int]:
    m = _SIZE.search(col.column_type)
    if m:
        return int(m.group(1)), int(m.group(2) or 0)
    # MySQL's default for a bare DECIMAL is decimal(10,0).
    return col.precision or 10, col.scale or 0


def _bit_width(col: NativeColumn) -> int:
    if col.precision is not None:
        return col.precision
    return _first_size(col.column_type) or 1
