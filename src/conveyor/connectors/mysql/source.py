"""MySQL and MariaDB as a source: information_schema catalog, one consistent
snapshot, rows streamed (unbuffered) into Arrow batches."""

from __future__ import annotations

import re
import threading
from collections.abc import Generator, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pymysql
from pymysql.converters import decoders as text_converters

from conveyor.connectors.base import EndpointConfig, RejectedValue
from conveyor.connectors.mysql import connection, filters
from conveyor.connectors.mysql.connection import quote, text
from conveyor.connectors.mysql.snapshot_connection import (
    RowStream,
    SnapshotConnection,
    open_snapshot_connection,
)
from conveyor.connectors.mysql.text_columns import TextCast, text_cast
from conveyor.connectors.mysql.types import NativeColumn, from_native, order_expression, select_expression
from conveyor.core.batch import rejected_row
from conveyor.core.errors import ConnectionFailed, DataError, TerminalError
from conveyor.core.read_ahead import read_ahead
from conveyor.core.row_filter import RowFilter
from conveyor.core.schema import Column, TableRef, TableSchema

if TYPE_CHECKING:
    from typing import TypeAlias

    Connection: TypeAlias = pymysql.connections.Connection[pymysql.cursors.Cursor]

from conveyor.connectors.mysql.read_values import (
    Converter,
    base_type,
    column_converter,
    decoded_rows,
    text_decoders,
    texts_to_arrays,
    values_to_arrays,
)

_TABLES_SQL = """
SELECT TABLE_NAME, TABLE_ROWS FROM information_schema.TABLES
WHERE TABLE_SCHEMA = %s AND TABLE_TYPE = 'BASE TABLE'
ORDER BY TABLE_NAME
"""

_COLUMNS_SQL = """
SELECT TABLE_NAME, COLUMN_NAME, IS_NULLABLE, DATA_TYPE, COLUMN_TYPE,
       CHARACTER_MAXIMUM_LENGTH, NUMERIC_PRECISION, NUMERIC_SCALE
FROM information_schema.COLUMNS
WHERE TABLE_SCHEMA = %s
ORDER BY TABLE_NAME, ORDINAL_POSITION
"""

_KEYS_SQL = """
SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.STATISTICS
WHERE TABLE_SCHEMA = %s AND INDEX_NAME = 'PRIMARY'
ORDER BY TABLE_NAME, SEQ_IN_INDEX
"""

# MariaDB only (MySQL's CHECK_CONSTRAINTS has no TABLE_NAME, and MySQL's json
# is a type of its own): MariaDB's json is longtext CHECK (json_valid(col)).
_CHECKS_SQL = """
SELECT TABLE_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS
WHERE CONSTRAINT_SCHEMA = %s
"""

ENGINE = "mysql"
_SPACE = re.compile(r"\s+")
# Batches parsed ahead of the consumer (each batch_rows rows).
_READ_AHEAD = 2


def qualified(ref: TableRef) -> str:
    return f"{quote(ref.schema)}.{quote(ref.name)}"


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _json_columns(conn: Connection, database: str) -> set[tuple[str, str]]:
    """(table, column) pairs whose values a CHECK (json_valid(column)) constrains."""
    try:
        with conn.cursor() as cur:
            cur.execute(_CHECKS_SQL, (database,))
            rows = cur.fetchall()
    except (pymysql.err.OperationalError, pymysql.err.ProgrammingError, pymysql.err.InternalError):
        return set()
    found: set[tuple[str, str]] = set()
    for table, clause in rows:
        m = re.fullmatch(r"json_valid\(`((?:[^`]|``)+)`\)", _SPACE.sub("", text(clause)), re.IGNORECASE)
        if m:
            found.add((text(table), m.group(1).replace("``", "`")))
    return found


def read_tables(conn: Connection, database: str) -> list[TableSchema]:
    """Every base table of ``database``, columns in order, with its primary key."""
    with conn.cursor() as cur:
        cur.execute(_TABLES_SQL, (database,))
        table_rows = cur.fetchall()
        cur.execute(_COLUMNS_SQL, (database,))
        column_rows = cur.fetchall()
        cur.execute(_KEYS_SQL, (database,))
        key_rows = cur.fetchall()
    json_columns = _json_columns(conn, database) if column_rows else set()
    columns: dict[str, list[Column]] = {}
    for raw_table, raw_name, nullable, data_type, column_type, length, precision, scale in column_rows:
        table, name = text(raw_table), text(raw_name)
        native = NativeColumn(
            data_type=text(data_type),
            column_type=text(column_type),
            char_length=_int(length),
            precision=_int(precision),
            scale=_int(scale),
            # Column names compare without regard to case in MySQL.
            is_json=any(t == table and c.lower() == name.lower() for t, c in json_columns),
        )
        columns.setdefault(table, []).append(
            Column(name=name, type=from_native(native), nullable=text(nullable) == "YES")
        )
    keys: dict[str, list[str]] = {}
    for table, name in key_rows:
        keys.setdefault(text(table), []).append(text(name))
    tables = []
    for table, estimate in table_rows:
        name = text(table)
        tables.append(
            TableSchema(
                TableRef(database, name),
                tuple(columns.get(name, [])),
                tuple(keys.get(name, ())),
                _int(estimate),
                native_engine=ENGINE,
            )
        )
    return tables


class MySQLSource:
    engine = ENGINE

    def __init__(self, config: EndpointConfig) -> None:
        self.config = config
        self.database = connection.params(config).database

    def check(self) -> str:
        conn = connection.connect(self.config)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT VERSION()")
                row = cur.fetchone()
            assert row is not None
            return text(row[0])
        finally:
            conn.close()

    def tables(self) -> list[TableSchema]:
        conn = connection.connect(self.config)
        try:
            return read_tables(conn, self.database)
        finally:
            conn.close()

    def snapshot(self) -> MySQLSnapshot:
        return MySQLSnapshot(self.config)

    def close(self) -> None:
        pass


def begin_snapshot(conn: SnapshotConnection) -> None:
    """Start the read-only REPEATABLE READ transaction the snapshot reads in."""
    conn.query("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    conn.query("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")


class MySQLSnapshot:
    """One REPEATABLE READ transaction started WITH CONSISTENT SNAPSHOT.

    MySQL cannot attach a second connection to a transaction's snapshot, so
    every read and count runs on this one connection. Reads from several
    threads therefore serialize: a read holds the connection (a lock) from its
    query until its last row has been streamed, or until the consumer closes
    the generator; then the next waiting read starts. A consumer that stops
    early makes the server's remaining rows be drained (that is how the
    MySQL protocol ends an unbuffered result), so the snapshot stays usable.
    """

    def __init__(self, config: EndpointConfig, conn: SnapshotConnection | None = None) -> None:
        """``conn``: adopt a connection (``open_snapshot_connection``) whose
        REPEATABLE READ transaction WITH CONSISTENT SNAPSHOT is already open,
        e.g. the one change capture read the matching binlog position on; the
        snapshot then owns and closes it."""
        self.config = config
        self._lock = threading.Lock()
        self._owner: int | None = None
        self._reading: TableRef | None = None
        self._lost: str | None = None
        self._rejected: dict[TableRef, list[RejectedValue]] = {}
        if conn is None:
            conn = open_snapshot_connection(config)
            try:
                begin_snapshot(conn)
            except Exception as exc:
                failed = conn.failure(exc)
                conn.close()
                if failed is None:
                    raise
                raise ConnectionFailed(
                    f"endpoint {config.name!r}: cannot open a consistent snapshot: {failed[1]}"
                ) from None
        self._driver = conn  # kept after a close, to read its errors
        self._conn: SnapshotConnection | None = conn

    @property
    def driver(self) -> str:
        """The driver the snapshot reads through (``snapshot_connection``)."""
        return self._driver.driver

    @contextmanager
    def _exclusive(self, ref: TableRef) -> Iterator[SnapshotConnection]:
        """The snapshot's connection, for one statement and its whole result."""
        if self._owner == threading.get_ident():
            raise TerminalError(
                f"endpoint {self.config.name!r}: cannot read {ref} while the read of {self._reading} "
                "is still open in the same thread (a MySQL snapshot serves one read at a time: "
                "consume or close that read first)"
            )
        with self._lock:
            if self._conn is None:
                raise ConnectionFailed(
                    f"endpoint {self.config.name!r}: the snapshot is "
                    + (f"lost ({self._lost})" if self._lost else "closed")
                )
            self._owner, self._reading = threading.get_ident(), ref
            try:
                yield self._conn
            finally:
                self._owner = self._reading = None

    @contextmanager
    def _driver_errors(self, ref: TableRef) -> Iterator[None]:
        """The driver's errors as ConnectionFailed (the connection is lost) or TerminalError."""
        try:
            yield
        except Exception as exc:
            failed = self._driver.failure(exc)
            if failed is None:
                raise
            raise self._failure(ref, *failed) from None

    def _failure(self, ref: TableRef, lost: bool, reason: str) -> Exception:
        if lost:
            self._drop(reason)
            return ConnectionFailed(
                f"endpoint {self.config.name!r}: lost the connection while reading {ref}: {reason}"
            )
        return TerminalError(f"endpoint {self.config.name!r}: reading {ref} failed: {reason}")

    def _drop(self, reason: str | None) -> None:
        """Close the connection; ``reason`` says why the snapshot is lost (None: closed)."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        self._lost = reason
        conn.close()

    def pushes_down(self, table: TableSchema, where: RowFilter) -> bool:
        return filters.pushes_down(where)

    def read_where(
        self, table: TableSchema, batch_rows: int, where: RowFilter, order_by_key: bool = False
    ) -> Generator[pa.RecordBatch, None, None]:
        return self.read(table, batch_rows, order_by_key, where)

    def read(
        self, table: TableSchema, batch_rows: int, order_by_key: bool = False, where: RowFilter | None = None
    ) -> Generator[pa.RecordBatch, None, None]:
        cols = ", ".join(select_expression(c.name, c.type) for c in table.columns)
        query = f"SELECT {cols} FROM {qualified(table.ref)}"
        order = ""
        if order_by_key and table.primary_key:
            # In the order validation merges in (code point order for strings).
            order = " ORDER BY " + ", ".join(
                order_expression(k, table.column(k).type) for k in table.primary_key
            )
        schema = table.arrow_schema()
        casts = [text_cast(c, base_type(c.type.native)) for c in table.columns]
        with self._exclusive(table.ref) as conn:
            if where is not None:  # literals quoted as this connection's sql_mode needs
                query += " WHERE " + filters.where_condition(where, conn.escape)
            with self._driver_errors(table.ref):
                # Values arrive as the server's text (Arrow casts whole columns, text_columns).
                cursor = conn.stream(query + order)
            try:
                with self._driver_errors(table.ref):
                    decode = text_decoders(cursor.description, text_converters)
                    if where is None:
                        self._rejected[table.ref] = []
                    # The next batch is parsed while the consumer writes this one.
                    batches = self._batches(table, cursor, batch_rows, schema, casts, decode)
                    try:
                        yield from read_ahead(
                            batches,
                            depth=_READ_AHEAD,
                            name=f"read {table.ref}",
                            # Its fetch is stalled: the cursor cannot be drained under it.
                            on_stuck=lambda: self._drop(f"the read of {table.ref} did not stop"),
                        )
                    except Exception:
                        if self._conn is conn:
                            raise
                        # The snapshot was closed under the reading thread (whose
                        # error then says nothing useful): said below.
                    if self._conn is not conn:
                        # Closed (or lost) while this read was suspended: the rows
                        # stopped coming, which must not pass for the end of the table.
                        raise ConnectionFailed(
                            f"endpoint {self.config.name!r}: the snapshot was "
                            + (f"lost ({self._lost})" if self._lost else "closed")
                            + f" before the read of {table.ref} finished"
                        )
            finally:
                # Ends the unbuffered result (draining unread rows) so the next
                # statement on the connection can run, also when the consumer
                # closed this generator early. If that fails the connection is
                # in an unknown state, and the snapshot is lost.
                try:
                    cursor.close()
                except Exception as exc:
                    self._drop(" ".join(str(exc).split()) or type(exc).__name__)

    def _batches(
        self,
        table: TableSchema,
        cursor: RowStream,
        batch_rows: int,
        schema: pa.Schema,
        casts: Sequence[TextCast | None],
        decode: Sequence[Converter | None],
    ) -> Iterator[pa.RecordBatch]:
        converters = [column_converter(table, c) for c in table.columns]
        while rows := cursor.fetchmany(batch_rows):
            try:
                arrays = texts_to_arrays(table, converters, casts, decode, rows)
            except DataError:
                # Row by row, from the values PyMySQL's converters make.
                carried = self._keep_carried(table, converters, decoded_rows(decode, rows))
                if not carried:
                    continue
                arrays = values_to_arrays(table, converters, carried)
            yield pa.RecordBatch.from_arrays(arrays, schema=schema)

    def _keep_carried(
        self, table: TableSchema, converters: Sequence[Converter | None], rows: Sequence[tuple[Any, ...]]
    ) -> list[tuple[Any, ...]]:
        """The rows every value of which converts; the others are kept for
        ``rejections`` (the full load logs them per DataErrorPolicy)."""
        kept = []
        for row in rows:
            try:
                values_to_arrays(table, converters, [row])
            except DataError as exc:
                self._rejected.setdefault(table.ref, []).append(rejected_row(table, row, exc))
                continue
            kept.append(row)
        return kept

    def rejections(self, ref: TableRef) -> list[RejectedValue]:
        """The rows of table ``ref`` its last read left out: a value no batch
        carries exactly (a zero date, a time beyond a day), for the exceptions table."""
        return list(self._rejected.get(ref, []))

    def forget_rejections(self, ref: TableRef) -> None:
        self._rejected.pop(ref, None)

    def read_text(self, table: TableSchema, batch_rows: int) -> Iterator[list[tuple[str | None, ...]]]:
        """Rows as the server's own text in key order, canonically spelled (validation)."""
        return self._read_text(table, batch_rows, None)

    def read_text_keys(
        self, table: TableSchema, keys: Sequence[tuple[str | None, ...]], batch_rows: int
    ) -> Iterator[list[tuple[str | None, ...]]]:
        """The rows of ``keys`` (integer keys only) as ``read_text`` reads them
        (validation during capture)."""
        from conveyor.connectors.mysql import validation

        return self._read_text(table, batch_rows, validation.key_filter(table, keys))

    def _read_text(
        self, table: TableSchema, batch_rows: int, where: str | None
    ) -> Iterator[list[tuple[str | None, ...]]]:
        from conveyor.connectors.mysql import validation

        with self._exclusive(table.ref) as conn:
            with self._driver_errors(table.ref):
                cursor = conn.stream(validation.query(table, qualified(table.ref), where))
            try:
                with self._driver_errors(table.ref):
                    yield from validation.rows_of(cursor, table, batch_rows)
                if self._conn is not conn:
                    raise ConnectionFailed(
                        f"endpoint {self.config.name!r}: the snapshot was closed before the read of "
                        f"{table.ref} finished"
                    )
            finally:
                try:
                    cursor.close()
                except Exception as exc:
                    self._drop(" ".join(str(exc).split()) or type(exc).__name__)

    def partition_names(self, table: TableSchema) -> list[str]:
        """The leaf partitions of a partitioned table (its sub-partitions where
        it has them), from information_schema; none for a plain table."""
        query = (
            "SELECT COALESCE(SUBPARTITION_NAME, PARTITION_NAME) FROM information_schema.PARTITIONS"
            " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s AND PARTITION_NAME IS NOT NULL"
            " ORDER BY PARTITION_ORDINAL_POSITION, SUBPARTITION_ORDINAL_POSITION"
        )
        with self._exclusive(table.ref) as conn, self._driver_errors(table.ref):
            rows = conn.query(query, (table.ref.schema, table.ref.name))
        return [text(name) for (name,) in rows]

    def count(self, table: TableRef) -> int:
        with self._exclusive(table) as conn, self._driver_errors(table):
            [(count,)] = conn.query(f"SELECT COUNT(*) FROM {qualified(table)}")
        return int(count)

    def close(self) -> None:
        # Wait a while for a read in another thread to finish; closing the
        # connection ends (rolls back) the read-only transaction either way.
        acquired = self._owner != threading.get_ident() and self._lock.acquire(timeout=30)
        try:
            self._drop(None)
        finally:
            if acquired:
                self._lock.release()
