"""Row filters (selection rule filters) as a MariaDB/MySQL WHERE condition.
Text is compared as binary UTF-8 (code point order, case-sensitive, no
trailing-space padding), literals are quoted by the connection (which knows
NO_BACKSLASH_ESCAPES), as :mod:`conveyor.core.row_filter` says. Boolean
columns are filtered after reading (not pushed down)."""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from conveyor.connectors.mysql.connection import quote
from conveyor.core.row_filter import ColumnFilter, RowFilter, literal_text, render_sql
from conveyor.core.types import Kind

_NUMBERS = frozenset({Kind.INT16, Kind.INT32, Kind.INT64, Kind.DECIMAL, Kind.NUMERIC})
_TEMPORAL = {Kind.DATE: "DATE", Kind.TIMESTAMP: "DATETIME(6)", Kind.TIMESTAMPTZ: "DATETIME(6)"}
_PUSHED = _NUMBERS | {Kind.FLOAT32, Kind.FLOAT64, Kind.TEXT} | set(_TEMPORAL)


def pushes_down(where: RowFilter) -> bool:
    if not all(f.kind in _PUSHED for f in where.columns):
        return False
    return all(
        math.isfinite(v)
        for f in where.columns
        for c in f.conditions
        for v in c.values
        if isinstance(v, float)
    )


def where_condition(where: RowFilter, escape: Callable[[str], str]) -> str:
    """``escape`` quotes a string literal (``Connection.escape``)."""

    def column(f: ColumnFilter) -> str:
        if f.kind is Kind.TEXT:
            return f"CAST(CONVERT({quote(f.column)} USING utf8mb4) AS BINARY)"
        return quote(f.column)

    def literal(value: Any, kind: Kind) -> str:
        text = format(value, "f") if isinstance(value, Decimal) else literal_text(value)
        if kind in _NUMBERS:
            return text  # an int or a finite Decimal: digits, sign, point, exponent
        if kind in (Kind.FLOAT32, Kind.FLOAT64):
            return text if "e" in text else text + "e0"  # a double literal, not a decimal
        if kind is Kind.TEXT:
            return f"CAST(CONVERT({escape(text)} USING utf8mb4) AS BINARY)"
        if kind is Kind.TIMESTAMPTZ:  # sessions run in UTC
            text = literal_text(value.replace(tzinfo=None))
        return f"CAST({escape(text)} AS {_TEMPORAL[kind]})"

    return render_sql(where, column, literal)
