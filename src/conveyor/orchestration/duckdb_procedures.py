"""Stored procedures on a DuckDB warehouse, which has none of its own.

A procedure whose body is a list of SQL statements (what Redshift ELT
procedures mostly are) is kept in ``main.conveyor_procedures`` of the DuckDB
file, its statements already translated; ``CALL`` runs them in one transaction,
so a failing statement leaves the warehouse as it was, as Redshift's CALL does.
A ``COMMIT`` inside the body commits what came before it, and a new transaction
begins.
"""

from __future__ import annotations

import json
from typing import Any

from conveyor.core.errors import ConfigError, NotFoundError
from conveyor.orchestration.redshift_sql import CallProcedure, CreateProcedure

TABLE = "main.conveyor_procedures"


def _ensure(conn: Any) -> None:
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {TABLE} (schema_name VARCHAR, name VARCHAR, statements VARCHAR, "
        "created_at TIMESTAMP DEFAULT (CURRENT_TIMESTAMP AT TIME ZONE 'UTC'), "
        "PRIMARY KEY (schema_name, name))"
    )


def create(conn: Any, procedure: CreateProcedure) -> None:
    """Keep ``procedure`` (``OR REPLACE`` replaces it; otherwise an existing one is an error)."""
    _ensure(conn)
    key = (procedure.schema, procedure.name)
    exists = conn.execute(f"SELECT 1 FROM {TABLE} WHERE schema_name = ? AND name = ?", key).fetchone()
    if exists and not procedure.replace:
        raise ConfigError(f"procedure {procedure.schema}.{procedure.name} already exists")
    conn.execute(f"DELETE FROM {TABLE} WHERE schema_name = ? AND name = ?", key)
    conn.execute(
        f"INSERT INTO {TABLE} (schema_name, name, statements) VALUES (?, ?, ?)",
        (*key, json.dumps(list(procedure.statements))),
    )


def call(conn: Any, procedure: CallProcedure) -> None:
    """Run the procedure's statements in one transaction (rolled back on error)."""
    _ensure(conn)
    row = conn.execute(
        f"SELECT statements FROM {TABLE} WHERE schema_name = ? AND name = ?",
        (procedure.schema, procedure.name),
    ).fetchone()
    if row is None:
        raise NotFoundError(f"procedure {procedure.schema}.{procedure.name}() does not exist")
    conn.execute("BEGIN TRANSACTION")
    try:
        for sql in json.loads(row[0]):
            if sql.strip().upper() in {"COMMIT", "COMMIT TRANSACTION", "END", "END TRANSACTION"}:
                conn.execute("COMMIT")
                conn.execute("BEGIN TRANSACTION")
                continue
            conn.execute(sql)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
