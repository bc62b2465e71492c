"""DuckDB as a target: the embedded warehouse."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from conveyor.connectors.base import EndpointConfig, PrepMode, RejectedValue
from conveyor.connectors.duckdb.types import from_duckdb
from conveyor.core.errors import ConfigError, ConnectionFailed, DataError, SchemaMismatch
from conveyor.core.schema import Column, TableRef, TableSchema
from conveyor.core.types import ColumnType, Kind

EXCEPTIONS_TABLE = "awsdms_apply_exceptions"

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


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def qualified(ref: TableRef) -> str:
    return f"{quote(ref.schema)}.{quote(ref.name)}"


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


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


def create_table_sql(table: TableSchema) -> str:
    cols = [f"{quote(c.name)} {to_ddl(c.type)}" + ("" if c.nullable else " NOT NULL") for c in table.columns]
    if table.primary_key:
        cols.append("PRIMARY KEY (" + ", ".join(quote(k) for k in table.primary_key) + ")")
    return f"CREATE TABLE {qualified(table.ref)} ({', '.join(cols)})"


DEFAULT_MEMORY_LIMIT = "128MB"

log = logging.getLogger(__name__)


def connect(config: EndpointConfig) -> duckdb.DuckDBPyConnection:
    """Conveyor's connection to a DuckDB file. Its memory is capped (endpoint
    option ``memory_limit``, default 128MB): DuckDB spills beyond it, so a load's
    memory does not grow with the table. Every connection of one process to a
    file must use the same settings, hence this one function."""
    assert config.path is not None
    if config.path != ":memory:":
        Path(config.path).parent.mkdir(parents=True, exist_ok=True)
    memory_limit = str(config.options.get("memory_limit", DEFAULT_MEMORY_LIMIT))
    try:
        conn = duckdb.connect(config.path, config={"memory_limit": memory_limit})
    except duckdb.Error as exc:
        raise ConnectionFailed(f"endpoint {config.name!r}: cannot open {config.path}: {exc}") from None
    row = conn.execute("SELECT current_setting('memory_limit')").fetchone()
    log.info("endpoint %s: DuckDB memory_limit %s", config.name, row[0] if row else "?")
    return conn


class DuckDBTarget:
    """One database file. DuckDB allows one writing process: every table load of
    a task runs on a cursor of this one connection, each in its own transaction."""

    engine = "duckdb"

    def __init__(self, config: EndpointConfig) -> None:
        if not config.path:
            raise ConfigError(f"endpoint {config.name!r}: a duckdb endpoint needs a path")
        self.config = config
        self.path = config.path
        self._lock = threading.Lock()
        self._conn: duckdb.DuckDBPyConnection | None = None

    def _connection(self) -> duckdb.DuckDBPyConnection:
        with self._lock:
            if self._conn is None:
                self._conn = connect(self.config)
            return self._conn

    def check(self) -> str:
        row = self._connection().cursor().execute("SELECT version()").fetchone()
        assert row is not None
        return f"DuckDB {row[0]}"

    def describe(self, ref: TableRef) -> TableSchema | None:
        cur = self._connection().cursor()
        rows = cur.execute(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
            "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
            [ref.schema, ref.name],
        ).fetchall()
        if not rows:
            return None
        keys = cur.execute(
            "SELECT constraint_column_names FROM duckdb_constraints() "
            "WHERE schema_name = ? AND table_name = ? AND constraint_type = 'PRIMARY KEY'",
            [ref.schema, ref.name],
        ).fetchone()
        columns = tuple(
            Column(name, from_duckdb(dtype), nullable=nullable == "YES") for name, dtype, nullable in rows
        )
        return TableSchema(ref, columns, tuple(keys[0]) if keys else ())

    def begin_load(self, table: TableSchema, mode: PrepMode) -> DuckDBTableLoad:
        cur = self._connection().cursor()
        # Concurrent transactions creating the same schema conflict in DuckDB's
        # catalog, so schemas are created first, one at a time, outside the load.
        with self._lock:
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(table.ref.schema)}")
        cur.execute("BEGIN TRANSACTION")
        try:
            existing = self.describe(table.ref)
            if mode is PrepMode.DROP_AND_CREATE or existing is None:
                cur.execute(f"DROP TABLE IF EXISTS {qualified(table.ref)}")
                cur.execute(create_table_sql(table))
            else:
                _check_shape(table, existing)
                if mode is PrepMode.TRUNCATE_BEFORE_LOAD:
                    cur.execute(f"DELETE FROM {qualified(table.ref)}")
        except BaseException:
            cur.execute("ROLLBACK")
            cur.close()
            raise
        return DuckDBTableLoad(cur, table)

    def read(
        self, table: TableSchema, batch_rows: int, order_by_key: bool = False
    ) -> Iterator[pa.RecordBatch]:
        cols = ", ".join(quote(c) for c in table.column_names)
        query = f"SELECT {cols} FROM {qualified(table.ref)}"
        if order_by_key and table.primary_key:
            keys = [
                quote(k) + ("::VARCHAR" if table.column(k).type.kind is Kind.ENUM else "")
                for k in table.primary_key
            ]  # enums by label, as validation compares, not by declaration order
            query += " ORDER BY " + ", ".join(keys)
        cur = self._connection().cursor()
        try:
            reader = cur.sql(query).to_arrow_reader(batch_rows)
            assert reader is not None
            schema = table.arrow_schema()
            for batch in reader:
                yield pa.RecordBatch.from_arrays(
                    [batch.column(i).cast(schema.field(i).type) for i in range(len(schema))], schema=schema
                )
        finally:
            cur.close()

    def count(self, ref: TableRef) -> int:
        row = self._connection().cursor().execute(f"SELECT count(*) FROM {qualified(ref)}").fetchone()
        assert row is not None
        return int(row[0])

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def _check_shape(table: TableSchema, existing: TableSchema) -> None:
    """Under DO_NOTHING or TRUNCATE_BEFORE_LOAD the target table must take every
    column the load writes."""
    problems = []
    for col in table.columns:
        try:
            have = existing.column(col.name)
        except KeyError:
            problems.append(f"column {col.name!r} is missing")
            continue
        if to_ddl(have.type) != to_ddl(col.type):
            problems.append(f"column {col.name!r} is {to_ddl(have.type)}, the load writes {to_ddl(col.type)}")
    if problems:
        raise SchemaMismatch(f"target table {table.ref} exists with another shape: " + "; ".join(problems))


class DuckDBTableLoad:
    def __init__(self, cursor: duckdb.DuckDBPyConnection, table: TableSchema) -> None:
        self._cur = cursor
        self.table = table
        self._insert = (
            f"INSERT INTO {qualified(table.ref)} ({', '.join(quote(c) for c in table.column_names)}) "
            "SELECT * FROM batch"
        )

    def write_stream(self, batches: Iterator[pa.RecordBatch], schema: pa.Schema) -> None:
        """The whole table in one INSERT reading an Arrow stream: DuckDB pulls the
        batches as it goes, so only a few are in memory at once. The rows of a
        load have no order to keep: without it (for this load's session only)
        DuckDB inserts with less work and memory."""
        reader = pa.RecordBatchReader.from_batches(schema, batches)
        self._cur.register("batch_stream", reader)
        try:
            self._cur.execute("SET SESSION preserve_insertion_order = false")
            self._cur.execute(self._insert.replace("FROM batch", "FROM batch_stream"))
        except (duckdb.ConstraintException, duckdb.ConversionException) as exc:
            raise DataError(f"table {self.table.ref}: {exc}") from None
        finally:
            with contextlib.suppress(duckdb.Error):
                self._cur.execute("RESET SESSION preserve_insertion_order")
            with contextlib.suppress(duckdb.Error):
                self._cur.unregister("batch_stream")

    def write(self, records: pa.RecordBatch) -> None:
        # DuckDB has no savepoints: a failing INSERT aborts the whole transaction,
        # so after a DataError here the load can only be aborted.
        self._cur.register("batch", records)
        try:
            self._cur.execute(self._insert)
        except (duckdb.ConstraintException, duckdb.ConversionException) as exc:
            raise DataError(f"table {self.table.ref}: {exc}") from None
        finally:
            with contextlib.suppress(duckdb.Error):  # fails once the transaction is aborted
                self._cur.unregister("batch")

    def record_rejections(self, task: str, rejected: Sequence[RejectedValue]) -> None:
        if not rejected:
            return
        self._cur.execute(
            f"CREATE TABLE IF NOT EXISTS main.{EXCEPTIONS_TABLE} (task_name VARCHAR, table_owner VARCHAR, "
            "table_name VARCHAR, error_time TIMESTAMPTZ, key JSON, column_name VARCHAR, value VARCHAR, "
            "error VARCHAR)"
        )
        now = datetime.now(UTC)
        self._cur.executemany(
            f"INSERT INTO main.{EXCEPTIONS_TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [r.exceptions_row(task, now) for r in rejected],
        )

    def commit(self) -> None:
        self._cur.execute("COMMIT")
        self._cur.close()

    def abort(self) -> None:
        try:
            self._cur.execute("ROLLBACK")
        finally:
            self._cur.close()
