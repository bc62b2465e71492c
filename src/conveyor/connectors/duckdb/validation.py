"""DuckDB's side of validation: rows by key, and the validation-failures table."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from datetime import datetime

import duckdb
import pyarrow as pa

from conveyor.connectors.base import KeyLookupUnsupported, ValidationFailure
from conveyor.connectors.duckdb.names import qualified, quote
from conveyor.core.schema import TableRef, TableSchema
from conveyor.core.types import Kind

FAILURES_TABLE = "awsdms_validation_failures_v1"
_LOCK = threading.Lock()  # parallel tables write one at a time (DuckDB catalog conflicts)


_LOOKUP_KINDS = {Kind.INT16, Kind.INT32, Kind.INT64, Kind.TEXT, Kind.UUID}
"""Key kinds whose canonical text Arrow reads back as the same value (others,
timestamps with their zones, binary as hex, are compared whole)."""


def read_keys(
    cur: duckdb.DuckDBPyConnection,
    table: TableSchema,
    keys: Sequence[tuple[str | None, ...]],
    batch_rows: int,
) -> Iterator[pa.RecordBatch]:
    """The rows of ``keys`` (canonical texts), as Arrow batches of ``table``'s
    types: the keys, converted to the key columns' types in Arrow, joined to the table."""
    columns = [table.column(k) for k in table.primary_key]
    if not columns or any(c.type.kind not in _LOOKUP_KINDS for c in columns):
        raise KeyLookupUnsupported(f"keys of {table.ref} cannot be looked up on DuckDB")
    schema = table.arrow_schema()
    arrays = [
        pa.array([key[i] for key in keys], pa.string()).cast(schema.field(c.name).type)
        for i, c in enumerate(columns)
    ]
    lookup = pa.table(arrays, names=[f"k{i}" for i in range(len(columns))])
    on = " AND ".join(f"t.{quote(c.name)} = k.k{i}" for i, c in enumerate(columns))
    cols = ", ".join(f"t.{quote(c)}" for c in table.column_names)
    cur.register("conveyor_validation_keys", lookup)
    try:
        query = f"SELECT {cols} FROM {qualified(table.ref)} t SEMI JOIN conveyor_validation_keys k ON {on}"
        reader = cur.sql(query).to_arrow_reader(batch_rows)
        for batch in reader:
            yield pa.RecordBatch.from_arrays(
                [batch.column(i).cast(schema.field(i).type) for i in range(len(schema))], schema=schema
            )
    finally:
        cur.unregister("conveyor_validation_keys")


def record_failures(
    cur: duckdb.DuckDBPyConnection,
    task: str,
    ref: TableRef,
    failures: Sequence[ValidationFailure],
    when: datetime,
    schema: str = "main",
) -> None:
    """Replace the table's rows of ``task`` with ``failures``, in one transaction;
    the table (in ``schema``, the task's ControlSchema) is created for the first failure."""
    table = '"' + schema.replace('"', '""') + '".' + FAILURES_TABLE
    with _LOCK:
        try:
            exists = cur.execute(
                "SELECT 1 FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
                [schema, FAILURES_TABLE],
            ).fetchone()
            if not failures and (exists is None or not _recorded(cur, table, task, ref)):
                return  # nothing to record, nothing recorded before: no write (and no commit)
            if exists is None:
                cur.execute('CREATE SCHEMA IF NOT EXISTS "' + schema.replace('"', '""') + '"')
                cur.execute(
                    f"CREATE TABLE IF NOT EXISTS {table} (TASK_NAME VARCHAR NOT NULL, "
                    "TABLE_OWNER VARCHAR NOT NULL, TABLE_NAME VARCHAR NOT NULL, "
                    "FAILURE_TIME TIMESTAMP NOT NULL, KEY_TYPE VARCHAR NOT NULL, KEY VARCHAR NOT NULL, "
                    "FAILURE_TYPE VARCHAR NOT NULL, DETAILS VARCHAR NOT NULL)"
                )
            cur.execute("BEGIN TRANSACTION")
            cur.execute(
                f"DELETE FROM {table} WHERE TASK_NAME = ? AND TABLE_OWNER = ? AND TABLE_NAME = ?",
                [task, ref.schema, ref.name],
            )
            if failures:
                cur.executemany(
                    f"INSERT INTO {table} VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [f.row(task, ref, when) for f in failures],
                )
            cur.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(duckdb.Error):  # no transaction open: nothing to undo
                cur.execute("ROLLBACK")
            raise
        finally:
            cur.close()


def _recorded(cur: duckdb.DuckDBPyConnection, table: str, task: str, ref: TableRef) -> bool:
    """Whether the failures table holds rows of ``task``'s table ``ref``."""
    found = cur.execute(
        f"SELECT 1 FROM {table} WHERE TASK_NAME = ? AND TABLE_OWNER = ? AND TABLE_NAME = ? LIMIT 1",
        [task, ref.schema, ref.name],
    ).fetchone()
    return found is not None
