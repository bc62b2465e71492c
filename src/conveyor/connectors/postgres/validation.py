"""PostgreSQL's side of validation: rows as the server's own output text, in key
order, and the validation-failures table.

Rows are read with ``COPY (SELECT ... ORDER BY key) TO STDOUT``: every value is
its type's output function text (nothing is converted on the way), under fixed
session settings so both sides of a comparison print alike. Text keys are
ordered by code point (``COLLATE "C"``), the order validation merges in.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from conveyor.connectors.base import EndpointConfig, ValidationFailure, control_schema
from conveyor.connectors.postgres import connection
from conveyor.connectors.postgres.names import qualified
from conveyor.core.schema import TableRef, TableSchema
from conveyor.core.types import Kind

SESSION_SETTINGS = (
    "SET DateStyle = 'ISO, YMD'",
    "SET TimeZone = 'UTC'",
    "SET IntervalStyle = 'postgres'",
    "SET extra_float_digits = 1",
    "SET bytea_output = 'hex'",
)
FAILURES_TABLE = "awsdms_validation_failures_v1"
FAILURES_SCHEMA = "public"
_CREATE_LOCK = threading.Lock()  # parallel tables: one CREATE TABLE IF NOT EXISTS at a time
_PLAIN_TEXT = {"text", "character varying", "character", "varchar", "bpchar"}


def order_by(table: TableSchema) -> sql.Composable:
    keys: list[sql.Composable] = []
    for name in table.primary_key:
        ctype = table.column(name).type
        key: sql.Composable = sql.Identifier(name)
        native = (ctype.native or "text").split("(")[0]
        if ctype.kind is Kind.ENUM or (ctype.kind is Kind.TEXT and native not in _PLAIN_TEXT):
            key = sql.SQL('{}::text COLLATE "C"').format(key)
        elif ctype.kind is Kind.TEXT:
            key = sql.SQL('{} COLLATE "C"').format(key)
        keys.append(key)
    return sql.SQL(", ").join(keys)


def read_text_rows(
    config: EndpointConfig,
    table: TableSchema,
    batch_rows: int,
    snapshot_id: str | None = None,
    keys: Sequence[tuple[str | None, ...]] | None = None,
) -> Iterator[list[tuple[str | None, ...]]]:
    """The table's rows (``table``'s columns, in order) as output text, ordered by
    its primary key (if it has one), in lists of at most ``batch_rows``. Inside ``snapshot_id``
    (an exported snapshot) when given. With ``keys`` (primary-key values as their
    output text), only the rows of those keys."""
    query = sql.SQL("SELECT {} FROM {}").format(
        sql.SQL(", ").join(map(sql.Identifier, table.column_names)), qualified(table.ref)
    )
    if keys is not None:
        query += sql.SQL(" WHERE {}").format(key_filter(table, keys))
    if table.primary_key:
        query += sql.SQL(" ORDER BY {}").format(order_by(table))
    query = sql.SQL("COPY ({}) TO STDOUT").format(query)
    with connection.connect(config, autocommit=True) as conn:
        for statement in SESSION_SETTINGS:
            conn.execute(statement)
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        if snapshot_id is not None:
            conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(snapshot_id)))
        try:
            with conn.cursor() as cur, cur.copy(query) as copy:
                batch: list[tuple[str | None, ...]] = []
                for row in copy.rows():
                    batch.append(row)
                    if len(batch) >= batch_rows:
                        yield batch
                        batch = []
                if batch:
                    yield batch
        finally:
            conn.execute("ROLLBACK")


def key_filter(table: TableSchema, keys: Sequence[tuple[str | None, ...]]) -> sql.Composable:
    """``(k1, k2) IN (('..', '..'), ...)``: each key text an untyped literal, which
    the server reads with the key column's own input function (the output text
    reads back as the same value), so the primary key's index serves the lookup."""
    if not keys:
        return sql.SQL("false")
    columns = [sql.Identifier(k) for k in table.primary_key]
    tuples = [sql.SQL("({})").format(sql.SQL(", ").join(map(sql.Literal, key))) for key in keys]
    return sql.SQL("({}) IN ({})").format(sql.SQL(", ").join(columns), sql.SQL(", ").join(tuples))


def table_exists(config: EndpointConfig, ref: TableRef) -> bool:
    with connection.connect(config, autocommit=True) as conn:
        row = conn.execute("SELECT to_regclass(%s)", [qualified(ref).as_string(conn)]).fetchone()
        return row is not None and row[0] is not None


def _recorded(conn: psycopg.Connection[Any], table: sql.Composed, task: str, ref: TableRef) -> bool:
    """Whether the failures table holds rows of ``task``'s table ``ref``."""
    query = sql.SQL("SELECT 1 FROM {} WHERE task_name = %s AND table_owner = %s AND table_name = %s LIMIT 1")
    return conn.execute(query.format(table), [task, ref.schema, ref.name]).fetchone() is not None


def record_failures(
    config: EndpointConfig, task: str, ref: TableRef, failures: Sequence[ValidationFailure], when: datetime
) -> None:
    """Replace the table's rows of ``task`` in the failures table with
    ``failures``, in one transaction; the table is created for the first failure."""
    schema = control_schema(config, FAILURES_SCHEMA)  # ControlSchema
    table = sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(FAILURES_TABLE))
    with connection.connect(config) as conn:
        exists = conn.execute("SELECT to_regclass(%s)", [table.as_string(conn)]).fetchone()
        created = exists is not None and exists[0] is not None
        if not failures and (not created or not _recorded(conn, table, task, ref)):
            return  # nothing to record, nothing recorded before: no write
        if not created:
            with _CREATE_LOCK:  # threads of one validation creating it at once would collide
                conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
                conn.execute(
                    sql.SQL(
                        "CREATE TABLE IF NOT EXISTS {} (task_name varchar(128) NOT NULL, "
                        "table_owner varchar(128) NOT NULL, table_name varchar(128) NOT NULL, "
                        "failure_time timestamp(3) NOT NULL, key_type varchar(128) NOT NULL, "
                        "key text NOT NULL, failure_type varchar(128) NOT NULL, "
                        "details varchar(8000) NOT NULL)"
                    ).format(table)
                )
                conn.commit()
        conn.execute(
            sql.SQL("DELETE FROM {} WHERE task_name = %s AND table_owner = %s AND table_name = %s").format(
                table
            ),
            [task, ref.schema, ref.name],
        )
        rows: list[tuple[Any, ...]] = [f.row(task, ref, when) for f in failures]
        with conn.cursor() as cur:
            cur.executemany(
                sql.SQL("INSERT INTO {} VALUES (%s, %s, %s, %s, %s, %s, %s, %s)").format(table), rows
            )
        conn.commit()
