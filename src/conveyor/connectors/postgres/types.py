"""PostgreSQL column types to and from conveyor's type system."""

from __future__ import annotations

from dataclasses import dataclass

from conveyor.core import types as t
from conveyor.core.types import ColumnType, Kind

_SIMPLE: dict[str, Kind] = {
    "int2": Kind.INT16,
    "int4": Kind.INT32,
    "int8": Kind.INT64,
    "float4": Kind.FLOAT32,
    "float8": Kind.FLOAT64,
    "text": Kind.TEXT,
    "bytea": Kind.BYTES,
    "bool": Kind.BOOLEAN,
    "date": Kind.DATE,
    "time": Kind.TIME,
    "timestamp": Kind.TIMESTAMP,
    "timestamptz": Kind.TIMESTAMPTZ,
    "interval": Kind.INTERVAL,
    "uuid": Kind.UUID,
    "json": Kind.JSON,
    "jsonb": Kind.JSON,
}

# How conveyor types are spelled in a PostgreSQL table created by Conveyor
# (when the source is not PostgreSQL, or for columns added by mappings).
_DDL: dict[Kind, str] = {
    Kind.INT16: "smallint",
    Kind.INT32: "integer",
    Kind.INT64: "bigint",
    Kind.NUMERIC: "numeric",
    Kind.FLOAT32: "real",
    Kind.FLOAT64: "double precision",
    Kind.TEXT: "text",
    Kind.BYTES: "bytea",
    Kind.BOOLEAN: "boolean",
    Kind.DATE: "date",
    Kind.TIME: "time(6) without time zone",
    Kind.TIMESTAMP: "timestamp(6) without time zone",
    Kind.TIMESTAMPTZ: "timestamp(6) with time zone",
    Kind.INTERVAL: "interval",
    Kind.UUID: "uuid",
    Kind.JSON: "json",  # the document as written: jsonb would reorder keys and drop duplicates
    Kind.ENUM: "text",
}


@dataclass(frozen=True)
class NativeColumn:
    """A column as pg_catalog describes it."""

    type_name: str  # pg_type.typname of the column (or of the array element)
    formatted: str  # format_type(atttypid, atttypmod), e.g. 'numeric(12,2)'
    typmod: int
    is_array: bool
    is_enum: bool
    enum_labels: tuple[str, ...] = ()
    dims: int = 1
    """An array column's declared dimensions (pg_attribute.attndims; ``int[][]`` is 2)."""


def from_native(col: NativeColumn) -> ColumnType:
    """The conveyor type of a PostgreSQL column. Types without a conveyor kind
    (inet, money, ranges, geometric ...) travel as their text form."""
    element = _scalar(col)
    if col.is_array:
        for _ in range(max(col.dims, 1) - 1):  # a declared dimension is a list level
            element = t.array(element)
        return t.array(element, native=col.formatted)
    return element


def array_dims(ctype: ColumnType) -> int:
    """How many list levels an array type has (0 for a scalar)."""
    dims = 0
    while ctype.kind is Kind.ARRAY:
        assert ctype.element is not None
        ctype, dims = ctype.element, dims + 1
    return dims


def _scalar(col: NativeColumn) -> ColumnType:
    name = col.type_name
    native = col.formatted.removesuffix("[]")
    if col.is_enum:
        return t.enum(col.enum_labels, native=native)
    if name == "numeric":
        if col.typmod >= 4:
            precision = ((col.typmod - 4) >> 16) & 0xFFFF
            scale = (col.typmod - 4) & 0xFFFF
            if precision <= t.MAX_DECIMAL_PRECISION and scale <= precision:
                return t.decimal(precision, scale, native=native)
        return t.simple(Kind.NUMERIC, native=native)
    if name in {"varchar", "bpchar"}:
        return t.varchar(col.typmod - 4 if col.typmod >= 4 else None, native=native)
    kind = _SIMPLE.get(name, Kind.TEXT)
    return t.simple(kind, native=native)


def needs_text_cast(ctype: ColumnType) -> bool:
    """Whether a column is read as ``col::text`` to reach its in-flight Arrow type."""
    scalar = ctype.element if ctype.kind is Kind.ARRAY else ctype
    assert scalar is not None
    if scalar.kind is Kind.ARRAY:  # more than one dimension: parsed from the text
        return True
    if scalar.kind in {Kind.UUID, Kind.JSON, Kind.NUMERIC, Kind.DECIMAL, Kind.ENUM}:
        return True
    # Types with no conveyor kind of their own (inet, money, ...) travel as text.
    return scalar.kind is Kind.TEXT and (scalar.native or "text").split("(")[0] not in {
        "text",
        "character varying",
        "character",
    }


def to_ddl(ctype: ColumnType, same_engine: bool) -> str:
    """The type to declare for a column in a table Conveyor creates.

    A PostgreSQL source's own spelling is kept when loading PostgreSQL into
    PostgreSQL, so the target has exactly the source's types.
    """
    if same_engine and ctype.native:
        return ctype.native
    if ctype.kind is Kind.ARRAY:
        assert ctype.element is not None
        return to_ddl(ctype.element, same_engine) + "[]"
    if ctype.kind is Kind.DECIMAL:
        return f"numeric({ctype.precision},{ctype.scale})"
    if ctype.kind is Kind.TEXT and ctype.length is not None:
        return f"varchar({ctype.length})"
    return _DDL[ctype.kind]
