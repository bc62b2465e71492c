"""A table's name in PostgreSQL SQL: what every module that writes a statement shares."""

from __future__ import annotations

from psycopg import sql

from conveyor.core.schema import TableRef

DDL_CAPTURE_SCHEMA = "conveyor_ddl"
"""Conveyor's own schema in a source database (the DDL capture's tables): never a user table."""


def qualified(ref: TableRef) -> sql.Composed:
    """``"schema"."name"``, each part quoted as an identifier."""
    return sql.SQL("{}.{}").format(sql.Identifier(ref.schema), sql.Identifier(ref.name))
