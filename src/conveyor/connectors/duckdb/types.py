"""DuckDB's type names, read back into conveyor types (for existing tables)."""

from __future__ import annotations

import re

from conveyor.connectors.duckdb.names import literal
from conveyor.core import types as t
from conveyor.core.types import ColumnType, Kind

_NAMES: dict[str, Kind] = {
    "SMALLINT": Kind.INT16,
    "INTEGER": Kind.INT32,
    "BIGINT": Kind.INT64,
    "FLOAT": Kind.FLOAT32,
    "REAL": Kind.FLOAT32,
    "DOUBLE": Kind.FLOAT64,
    "VARCHAR": Kind.TEXT,
    "BLOB": Kind.BYTES,
    "BOOLEAN": Kind.BOOLEAN,
    "DATE": Kind.DATE,
    "TIME": Kind.TIME,
    "TIMESTAMP": Kind.TIMESTAMP,
    "TIMESTAMP WITH TIME ZONE": Kind.TIMESTAMPTZ,
    "INTERVAL": Kind.INTERVAL,
    "UUID": Kind.UUID,
    "JSON": Kind.JSON,
}
_DECIMAL = re.compile(r"^DECIMAL\((\d+),\s*(\d+)\)$")
_ENUM = re.compile(r"^ENUM\((.*)\)$")


def from_duckdb(name: str) -> ColumnType:
    """The conveyor type of a DuckDB column type as information_schema spells it.
    Types Conveyor does not create (HUGEINT, STRUCT, MAP ...) raise ValueError."""
    if name.endswith("[]"):
        return t.array(from_duckdb(name[:-2]), native=name)
    if match := _DECIMAL.match(name):
        return t.decimal(int(match.group(1)), int(match.group(2)), native=name)
    if match := _ENUM.match(name):
        labels = tuple(label.replace("''", "'") for label in re.findall(r"'((?:[^']|'')*)'", match.group(1)))
        return t.enum(labels, native=name)
    if name in _NAMES:
        return t.simple(_NAMES[name], native=name)
    raise ValueError(f"DuckDB type {name} has no conveyor counterpart")


_DDL: dict[Kind, str] = {
    Kind.INT16: "SMALLINT",
    Kind.INT32: "INTEGER",
    Kind.INT64: "BIGINT",
    Kind.NUMERIC: "VARCHAR",
    Kind.FLOAT32: "REAL",
    Kind.FLOAT64: "DOUBLE",
    Kind.TEXT: "VARCHAR",
    Kind.BYTES: "BLOB",
    Kind.BOOLEAN: "BOOLEAN",
    Kind.DATE: "DATE",
    Kind.TIME: "TIME",
    Kind.TIMESTAMP: "TIMESTAMP",
    Kind.TIMESTAMPTZ: "TIMESTAMPTZ",
    Kind.INTERVAL: "INTERVAL",
    Kind.UUID: "UUID",
    Kind.JSON: "JSON",
}


def to_ddl(ctype: ColumnType) -> str:
    """DuckDB's spelling of a conveyor type. Unbounded numerics stay exact as
    their decimal text (DuckDB's DECIMAL stops at 38 digits)."""
    if ctype.kind is Kind.DECIMAL:
        return f"DECIMAL({ctype.precision},{ctype.scale})"
    if ctype.kind is Kind.ARRAY:
        assert ctype.element is not None
        return to_ddl(ctype.element) + "[]"
    if ctype.kind is Kind.ENUM:
        return "ENUM(" + ", ".join(literal(label) for label in ctype.labels) + ")"
    return _DDL[ctype.kind]
