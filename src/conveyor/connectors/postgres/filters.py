"""Row filters (selection rule filters) as a PostgreSQL WHERE condition:
literals quoted by psycopg and cast to the column's kind, text compared in
code point order (``COLLATE "C"``), as :mod:`conveyor.core.row_filter` says."""

from __future__ import annotations

from typing import Any

from psycopg import sql

from conveyor.core.row_filter import ColumnFilter, RowFilter, literal_text, render_sql
from conveyor.core.types import Kind

_CASTS = {
    Kind.INT16: "bigint",
    Kind.INT32: "bigint",
    Kind.INT64: "bigint",
    Kind.DECIMAL: "numeric",
    Kind.NUMERIC: "numeric",
    Kind.FLOAT32: "double precision",
    Kind.FLOAT64: "double precision",
    Kind.TEXT: "text",
    Kind.BOOLEAN: "boolean",
    Kind.DATE: "date",
    Kind.TIMESTAMP: "timestamp",
    Kind.TIMESTAMPTZ: "timestamptz",
}


def pushes_down(where: RowFilter) -> bool:
    return all(f.kind in _CASTS for f in where.columns)


def where_condition(where: RowFilter) -> sql.Composable:
    def column(f: ColumnFilter) -> str:
        ident = sql.Identifier(f.column).as_string(None)
        return f'{ident} COLLATE "C"' if f.kind is Kind.TEXT else ident

    def literal(value: Any, kind: Kind) -> str:
        text = sql.Literal(literal_text(value)).as_string(None)
        cast = f"CAST({text} AS {_CASTS[kind]})"
        return f'{cast} COLLATE "C"' if kind is Kind.TEXT else cast

    return sql.SQL(render_sql(where, column, literal))
