"""MySQL/MariaDB's side of validation: rows as the server's own text, in key
order, spelled as ``core.canonical_text`` spells values.

The server's text protocol prints every value; pymysql is asked not to convert
them, and each text is brought to the canonical spelling by string rules that
change nothing but the spelling (a fraction's trailing zeros, ``+00`` for a
UTC timestamp, hex for binary data), so a value the load changed still reads
differently. Values whose text is not exact are selected in a form that is:
``float`` as DOUBLE (the server rounds a FLOAT's text to 6 digits), bits as
numbers, years as numbers (0, not 0000), spatial values as WKT (as the load reads them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from conveyor.connectors.base import KeyLookupUnsupported
from conveyor.connectors.mysql.connection import quote
from conveyor.connectors.mysql.types import is_spatial, order_expression
from conveyor.core.canonical_text import float_text
from conveyor.core.schema import Column, TableSchema
from conveyor.core.types import Kind

Spell = Callable[[Any], str]


def _base(native: str | None) -> str:
    return (native or "").split("(")[0].strip().split(" ")[0].lower()


def select_text(column: Column) -> str:
    name = quote(column.name)
    if is_spatial(column.type):
        return f"ST_AsText({name})"
    if column.type.kind is Kind.FLOAT32:
        return f"CAST({name} AS DOUBLE)"
    if _base(column.type.native) in {"bit", "year"}:
        return f"({name} + 0)"  # a number: the server spells a year 0 as 0000, the load reads 0
    return name


_INTEGERS = {Kind.INT16, Kind.INT32, Kind.INT64}


def key_filter(table: TableSchema, keys: Sequence[tuple[str | None, ...]]) -> str:
    """``(k1, k2) IN ((1, 2), ...)`` for integer keys; other key types raise
    ``KeyLookupUnsupported`` (a text key's collation may match other spellings,
    other types' canonical texts are not MySQL literals)."""
    if not table.primary_key or any(table.column(k).type.kind not in _INTEGERS for k in table.primary_key):
        raise KeyLookupUnsupported(f"keys of {table.ref} cannot be looked up on MySQL/MariaDB")
    if not keys:
        return "FALSE"
    columns = ", ".join(quote(k) for k in table.primary_key)
    tuples = ", ".join("(" + ", ".join(str(int(v or "")) for v in key) + ")" for key in keys)
    return f"({columns}) IN ({tuples})"


def query(table: TableSchema, ref: str, where: str | None = None) -> str:
    text = f"SELECT {', '.join(select_text(c) for c in table.columns)} FROM {ref}"
    if where is not None:
        text += f" WHERE {where}"
    if table.primary_key:
        text += " ORDER BY " + ", ".join(order_expression(k, table.column(k).type) for k in table.primary_key)
    return text


def _ascii(value: Any) -> str:
    return value.decode() if isinstance(value, bytes | bytearray) else str(value)


def _trim_fraction(text: str) -> str:
    """``10:00:00.500000`` -> ``10:00:00.5``; ``10:00:00.000`` -> ``10:00:00``."""
    if "." not in text:
        return text
    return text.rstrip("0").rstrip(".")


def speller(column: Column) -> Spell:
    """How one value of the server's text becomes canonical text."""
    kind = column.type.kind
    if kind is Kind.BOOLEAN:
        return lambda v: {"1": "t", "0": "f"}.get(_ascii(v), _ascii(v))
    if kind is Kind.FLOAT32:
        return lambda v: float_text(float(_ascii(v)), True)
    if kind is Kind.FLOAT64:
        return lambda v: float_text(float(_ascii(v)), False)
    if kind in {Kind.TIME, Kind.TIMESTAMP}:
        return lambda v: _trim_fraction(_ascii(v))
    if kind is Kind.TIMESTAMPTZ:
        return lambda v: _trim_fraction(_ascii(v)) + "+00"
    if kind is Kind.BYTES:
        return lambda v: "\\x" + (v if isinstance(v, bytes | bytearray) else str(v).encode()).hex()
    if kind is Kind.UUID:
        return lambda v: _ascii(v).lower()
    return _text


def _text(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        try:
            return value.decode()
        except UnicodeDecodeError:
            return "\\x" + value.hex()  # not UTF-8 text: spelled so it cannot equal any text
    return str(value)


def spell_rows(rows: list[tuple[Any, ...]], spellers: list[Spell]) -> list[tuple[str | None, ...]]:
    return [
        tuple(None if v is None else spell(v) for spell, v in zip(spellers, row, strict=True)) for row in rows
    ]


def rows_of(cursor: Any, table: TableSchema, batch_rows: int) -> Iterator[list[tuple[str | None, ...]]]:
    spellers = [speller(c) for c in table.columns]
    while rows := cursor.fetchmany(batch_rows):
        yield spell_rows(list(rows), spellers)
