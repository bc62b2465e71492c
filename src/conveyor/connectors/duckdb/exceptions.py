"""The apply-exceptions table (``awsdms_apply_exceptions``) on a DuckDB target: where
the rows the target or the source refused are recorded, with column and reason."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import UTC, datetime

import duckdb
import pyarrow as pa

from conveyor.connectors.base import EndpointConfig, RejectedValue, control_schema
from conveyor.connectors.duckdb.names import quote

EXCEPTIONS_TABLE = "awsdms_apply_exceptions"


def exceptions_table(config: EndpointConfig) -> str:
    """The apply-exceptions table, in the task's ControlSchema (default ``main``)."""
    return f"{quote(control_schema(config, 'main'))}.{EXCEPTIONS_TABLE}"


def create_exceptions_table(cursor: duckdb.DuckDBPyConnection, config: EndpointConfig) -> None:
    """The apply-exceptions table (``awsdms_apply_exceptions``) and its schema, when missing."""
    cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(control_schema(config, 'main'))}")
    cursor.execute(
        f"CREATE TABLE IF NOT EXISTS {exceptions_table(config)} (task_name VARCHAR, table_owner VARCHAR, "
        "table_name VARCHAR, error_time TIMESTAMPTZ, key JSON, column_name VARCHAR, value VARCHAR, "
        "error VARCHAR)"
    )


_EXCEPTIONS_SCHEMA = pa.schema(
    [
        ("task_name", pa.string()),
        ("table_owner", pa.string()),
        ("table_name", pa.string()),
        ("error_time", pa.timestamp("us", tz="UTC")),
        ("key", pa.string()),
        ("column_name", pa.string()),
        ("value", pa.string()),
        ("error", pa.string()),
    ]
)


def insert_rejections(
    cursor: duckdb.DuckDBPyConnection, config: EndpointConfig, task: str, rejected: Sequence[RejectedValue]
) -> None:
    """Append to the apply-exceptions table, as one Arrow batch (a table may
    refuse many rows; DuckDB's executemany goes row by row)."""
    if not rejected:
        return
    now = datetime.now(UTC)
    rows = [r.exceptions_row(task, now) for r in rejected]
    columns = [pa.array([row[i] for row in rows], f.type) for i, f in enumerate(_EXCEPTIONS_SCHEMA)]
    cursor.register("conveyor_rejections", pa.Table.from_arrays(columns, schema=_EXCEPTIONS_SCHEMA))
    try:
        cursor.execute(f"INSERT INTO {exceptions_table(config)} SELECT * FROM conveyor_rejections")
    finally:
        with contextlib.suppress(duckdb.Error):
            cursor.unregister("conveyor_rejections")
