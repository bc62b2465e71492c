"""The engine-neutral type system.

Every connector maps its native column types to a :class:`ColumnType` and back.
A ColumnType also fixes the Arrow type batches carry between stages, so a value
crosses from one engine to another through exactly one representation:

======================  ==============================================
kind                    Arrow in flight
======================  ==============================================
int16/int32/int64       int16/int32/int64
decimal(p, s), p <= 38  decimal128(p, s)
numeric (unbounded)     string (the exact decimal text, 'NaN' allowed)
float32/float64         float32/float64 (NaN and +/-Infinity kept)
text / varchar(n)       string
bytes                   binary
boolean                 bool
date                    date32 (PostgreSQL +/-infinity as int32 max/-max)
time                    time64[us]
timestamp               timestamp[us] (+/-infinity as int64 max/-max)
timestamptz             timestamp[us, UTC] (same instant)
interval                month_day_nano_interval
uuid                    string (canonical 8-4-4-4-12 lowercase form)
json                    string (the document's text)
array(element)          list<element>
enum(labels)            string
======================  ==============================================

Infinity uses DuckDB's own encoding, so Arrow data with infinities is read by
DuckDB as ``infinity`` without conversion.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import pyarrow as pa

INT64_INFINITY = 2**63 - 1
INT64_NEG_INFINITY = -(2**63 - 1)
DATE_INFINITY = 2**31 - 1
DATE_NEG_INFINITY = -(2**31 - 1)
MAX_DECIMAL_PRECISION = 38


class Kind(StrEnum):
    INT16 = "int16"
    INT32 = "int32"
    INT64 = "int64"
    DECIMAL = "decimal"
    NUMERIC = "numeric"
    FLOAT32 = "float32"
    FLOAT64 = "float64"
    TEXT = "text"
    BYTES = "bytes"
    BOOLEAN = "boolean"
    DATE = "date"
    TIME = "time"
    TIMESTAMP = "timestamp"
    TIMESTAMPTZ = "timestamptz"
    INTERVAL = "interval"
    UUID = "uuid"
    JSON = "json"
    ARRAY = "array"
    ENUM = "enum"


@dataclass(frozen=True)
class ColumnType:
    """An engine-neutral column type.

    ``length`` is the maximum character length of a varchar (None for text);
    ``precision``/``scale`` belong to DECIMAL; ``element`` to ARRAY;
    ``labels`` to ENUM (in declaration order). ``native`` keeps the source's own
    spelling for messages and for same-engine copies.
    """

    kind: Kind
    length: int | None = None
    precision: int | None = None
    scale: int | None = None
    element: ColumnType | None = None
    labels: tuple[str, ...] = ()
    native: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.kind is Kind.DECIMAL:
            if self.precision is None or self.scale is None:
                raise ValueError("decimal needs precision and scale")
            if not 0 < self.precision <= MAX_DECIMAL_PRECISION:
                raise ValueError(f"decimal precision {self.precision} is outside 1..{MAX_DECIMAL_PRECISION}")
            if not 0 <= self.scale <= self.precision:
                raise ValueError(f"decimal scale {self.scale} is outside 0..{self.precision}")
        if self.kind is Kind.ARRAY and self.element is None:
            raise ValueError("array needs an element type")

    def describe(self) -> str:
        """A short human spelling, used in messages and `tasks describe`."""
        if self.kind is Kind.DECIMAL:
            return f"decimal({self.precision},{self.scale})"
        if self.kind is Kind.TEXT and self.length is not None:
            return f"varchar({self.length})"
        if self.kind is Kind.ARRAY:
            assert self.element is not None
            return f"{self.element.describe()}[]"
        if self.kind is Kind.ENUM:
            return f"enum({', '.join(self.labels)})"
        return self.kind.value

    def arrow(self) -> pa.DataType:
        """The Arrow type values of this column travel as."""
        if self.kind is Kind.DECIMAL:
            assert self.precision is not None and self.scale is not None
            return pa.decimal128(self.precision, self.scale)
        if self.kind is Kind.ARRAY:
            assert self.element is not None
            return pa.list_(self.element.arrow())
        return _ARROW_BY_KIND[self.kind]


_ARROW_BY_KIND: dict[Kind, pa.DataType] = {
    Kind.INT16: pa.int16(),
    Kind.INT32: pa.int32(),
    Kind.INT64: pa.int64(),
    Kind.NUMERIC: pa.string(),
    Kind.FLOAT32: pa.float32(),
    Kind.FLOAT64: pa.float64(),
    Kind.TEXT: pa.string(),
    Kind.BYTES: pa.binary(),
    Kind.BOOLEAN: pa.bool_(),
    Kind.DATE: pa.date32(),
    Kind.TIME: pa.time64("us"),
    Kind.TIMESTAMP: pa.timestamp("us"),
    Kind.TIMESTAMPTZ: pa.timestamp("us", tz="UTC"),
    Kind.INTERVAL: pa.month_day_nano_interval(),
    Kind.UUID: pa.string(),
    Kind.JSON: pa.string(),
    Kind.ENUM: pa.string(),
}


_LOB_NATIVES = frozenset(
    {"text", "xml", "character varying", "varchar", "citext", "longtext", "mediumtext", "clob"}
)


def is_lob(ctype: ColumnType) -> bool:
    """Whether the migration service counts a column of this type as a LOB:
    binary, JSON, and text without a length limit."""
    if ctype.kind in {Kind.BYTES, Kind.JSON}:
        return True
    native = (ctype.native or "text").split("(")[0].lower()
    return ctype.kind is Kind.TEXT and ctype.length is None and native in _LOB_NATIVES


def simple(kind: Kind, native: str | None = None) -> ColumnType:
    return ColumnType(kind, native=native)


def decimal(precision: int, scale: int, native: str | None = None) -> ColumnType:
    return ColumnType(Kind.DECIMAL, precision=precision, scale=scale, native=native)


def varchar(length: int | None, native: str | None = None) -> ColumnType:
    return ColumnType(Kind.TEXT, length=length, native=native)


def array(element: ColumnType, native: str | None = None) -> ColumnType:
    return ColumnType(Kind.ARRAY, element=element, native=native)


def enum(labels: tuple[str, ...], native: str | None = None) -> ColumnType:
    return ColumnType(Kind.ENUM, labels=labels, native=native)
