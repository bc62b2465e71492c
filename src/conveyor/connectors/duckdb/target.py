"""DuckDB as a target: the embedded warehouse."""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import ParamSpec, TypeVar

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from conveyor.connectors.base import (
    EndpointConfig,
    PrepMode,
    RefusedRow,
    RejectedValue,
    ValidationFailure,
    control_schema,
)
from conveyor.connectors.duckdb.connection import DEFAULT_MEMORY_LIMIT, connect, memory_limit, out_of_memory
from conveyor.connectors.duckdb.exceptions import create_exceptions_table, insert_rejections
from conveyor.connectors.duckdb.key_order import AscendingKey
from conveyor.connectors.duckdb.memory import MemoryLimit, memory_limit_of
from conveyor.connectors.duckdb.names import IDENTIFIER_RULE, fold_identifier, qualified, quote
from conveyor.connectors.duckdb.screen import REFUSALS, BatchScreen, Probe
from conveyor.connectors.duckdb.types import from_duckdb, to_ddl
from conveyor.core.errors import ConfigError, DataError, SchemaMismatch, TerminalError
from conveyor.core.schema import Column, TableRef, TableSchema
from conveyor.core.types import Kind


def resolve(cursor: duckdb.DuckDBPyConnection, ref: TableRef) -> TableRef | None:
    """The table as DuckDB stores the name ``ref`` resolves to, or None."""
    rows = cursor.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() "
        "WHERE lower(schema_name) = lower(?) AND lower(table_name) = lower(?)",
        [ref.schema, ref.name],
    ).fetchall()
    want = (fold_identifier(ref.schema), fold_identifier(ref.name))
    for schema, name in rows:
        if (fold_identifier(schema), fold_identifier(name)) == want:
            return TableRef(schema, name)
    return None


def table_sql(cursor: duckdb.DuckDBPyConnection, ref: TableRef) -> list[str]:
    """DuckDB's own CREATE statement of the table ``ref`` resolves to (none when
    it does not exist)."""
    stored = resolve(cursor, ref)
    if stored is None:
        return []
    rows = cursor.execute(
        "SELECT sql FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?",
        [stored.schema, stored.name],
    ).fetchall()
    return [row[0] for row in rows if row[0]]


def create_table_sql(table: TableSchema, with_key: bool = True) -> str:
    """The table's CREATE statement; ``with_key=False`` leaves the primary key
    out (its columns stay NOT NULL), for a load that adds it after its rows."""
    keys = set(table.primary_key)
    cols = [
        f"{quote(c.name)} {to_ddl(c.type)}" + ("" if c.nullable and c.name not in keys else " NOT NULL")
        for c in table.columns
    ]
    if table.primary_key and with_key:
        cols.append(primary_key_sql(table.primary_key))
    return f"CREATE TABLE {qualified(table.ref)} ({', '.join(cols)})"


def primary_key_sql(keys: Sequence[str]) -> str:
    return "PRIMARY KEY (" + ", ".join(quote(k) for k in keys) + ")"


DUPLICATE_CHECK_MEMORY = "64MB"

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")


def _memory_named(method: Callable[P, R]) -> Callable[P, R]:
    """A load step whose OutOfMemoryException becomes ``out_of_memory``'s error."""

    @functools.wraps(method)
    def step(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except duckdb.OutOfMemoryException as exc:
            load = args[0]
            assert isinstance(load, DuckDBTableLoad)
            raise out_of_memory(load.memory.limit, exc, load.memory.note()) from None

    return step


class DuckDBTarget:
    """One database file. DuckDB allows one writing process: every table load of
    a task runs on a cursor of this one connection, each in its own transaction."""

    engine = "duckdb"
    identifier_rule = IDENTIFIER_RULE

    def fold_identifier(self, name: str) -> str:
        return fold_identifier(name)

    def __init__(self, config: EndpointConfig) -> None:
        if not config.path:
            raise ConfigError(f"endpoint {config.name!r}: a duckdb endpoint needs a path")
        self.config = config
        self.path = config.path
        self._lock = threading.Lock()
        self._conn: duckdb.DuckDBPyConnection | None = None
        self._exceptions_ready = False

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
        """The table DuckDB resolves ``ref`` to (names match without regard to
        case: an existing ``mixed`` is the table ``Mixed`` names), or None."""
        cur = self._connection().cursor()
        stored = resolve(cur, ref)
        if stored is None:
            return None
        rows = cur.execute(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
            "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
            [stored.schema, stored.name],
        ).fetchall()
        if not rows:
            return None
        keys = cur.execute(
            "SELECT constraint_column_names FROM duckdb_constraints() "
            "WHERE schema_name = ? AND table_name = ? AND constraint_type = 'PRIMARY KEY'",
            [stored.schema, stored.name],
        ).fetchall()
        columns = tuple(
            Column(name, from_duckdb(dtype), nullable=nullable == "YES") for name, dtype, nullable in rows
        )
        return TableSchema(ref, columns, tuple(keys[0][0]) if keys else ())

    def begin_load(self, table: TableSchema, mode: PrepMode) -> DuckDBTableLoad:
        cur = self._connection().cursor()
        memory = memory_limit_of(self.path, memory_limit(self.config))
        memory.enter_busy(cur)  # until the load ends, but for its streamed insert
        try:
            return self._begin_load(cur, memory, table, mode)
        except BaseException:
            memory.leave_busy(cur)
            cur.close()
            raise

    def _begin_load(
        self, cur: duckdb.DuckDBPyConnection, memory: MemoryLimit, table: TableSchema, mode: PrepMode
    ) -> DuckDBTableLoad:
        # Concurrent transactions creating the same schema conflict in DuckDB's
        # catalog, so schemas are created first, one at a time, outside the load;
        # so is the apply-exceptions table, which a load sees only if it existed
        # when the load's transaction began.
        with self._lock:
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(table.ref.schema)}")
            if not self._exceptions_ready:
                create_exceptions_table(cur, self.config)
                self._exceptions_ready = True
        cur.execute("BEGIN TRANSACTION")
        try:
            existing = self.describe(table.ref)
            created = mode is PrepMode.DROP_AND_CREATE or existing is None
            if mode is PrepMode.DROP_AND_CREATE or existing is None:
                # The key is added once the rows are in (``DuckDBTableLoad.add_key``):
                # building its index in one pass is about twice as fast as
                # checking every inserted row against it.
                cur.execute(f"DROP TABLE IF EXISTS {qualified(table.ref)}")
                cur.execute(create_table_sql(table, with_key=False))
                existing = table
                ddl = []  # the table's DDL is Conveyor's (create_table_sql), key included
            else:
                _check_shape(table, existing)
                if mode is PrepMode.TRUNCATE_BEFORE_LOAD:
                    cur.execute(f"DELETE FROM {qualified(table.ref)}")
                ddl = table_sql(cur, table.ref)
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        create_sql = [*ddl, create_table_sql(existing)]
        return DuckDBTableLoad(
            cur,
            table,
            existing,
            create_sql,
            self.config,
            memory,
            deferred_key=created,
        )

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

    def read_keys(
        self, table: TableSchema, keys: Sequence[tuple[str | None, ...]], batch_rows: int
    ) -> Iterator[pa.RecordBatch]:
        """The rows of ``keys`` (validation during capture; ``duckdb.validation.read_keys``)."""
        from conveyor.connectors.duckdb.validation import read_keys

        cur = self._connection().cursor()
        try:
            yield from read_keys(cur, table, keys, batch_rows)
        finally:
            cur.close()

    def record_validation_failures(
        self, task: str, table: TableRef, failures: Sequence[ValidationFailure], when: datetime
    ) -> None:
        from conveyor.connectors.duckdb.validation import record_failures

        record_failures(
            self._connection().cursor(), task, table, failures, when, control_schema(self.config, "main")
        )

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
    column the load writes (a column name resolves as DuckDB resolves it)."""
    have_columns = {fold_identifier(c.name): c for c in existing.columns}
    problems = []
    for col in table.columns:
        have = have_columns.get(fold_identifier(col.name))
        if have is None:
            problems.append(f"column {col.name!r} is missing")
            continue
        if to_ddl(have.type) != to_ddl(col.type):
            problems.append(f"column {col.name!r} is {to_ddl(have.type)}, the load writes {to_ddl(col.type)}")
    if problems:
        raise SchemaMismatch(f"target table {table.ref} exists with another shape: " + "; ".join(problems))


class DuckDBTableLoad:
    """One table's load in one transaction. ``shape`` is the target table as
    it is (its NOT NULL columns and key), ``table`` what the load writes."""

    def __init__(
        self,
        cursor: duckdb.DuckDBPyConnection,
        table: TableSchema,
        shape: TableSchema,
        create_sql: Sequence[str] = (),
        config: EndpointConfig | None = None,
        memory: MemoryLimit | None = None,
        deferred_key: bool = False,
    ) -> None:
        self._cur = cursor
        # The table was created without its primary key, added by ``add_key``.
        self._deferred_key = tuple(shape.primary_key) if deferred_key else ()
        self._config = config
        # The file's memory_limit, which this load holds busy until it ends
        # (``MemoryLimit.enter_busy``); a load made without one holds nothing.
        self.memory = memory or MemoryLimit(DEFAULT_MEMORY_LIMIT)
        self._holds_memory = memory is not None
        self.table = table
        self.shape = shape
        self._create_sql = [*create_sql, create_table_sql(shape)]
        self._screen = BatchScreen(table, shape)
        self._probe: Probe | None = None
        self._insert = (
            f"INSERT INTO {qualified(table.ref)} ({', '.join(quote(c) for c in table.column_names)}) "
            "SELECT * FROM batch"
        )

    @_memory_named
    def write_stream(self, batches: Iterator[pa.RecordBatch], schema: pa.Schema) -> None:
        """The whole table in one INSERT reading an Arrow stream: DuckDB pulls the
        batches as it goes, so only a few are in memory at once. The rows of a
        load have no order to keep: without it (for this load's session only)
        DuckDB inserts with less work and memory. A refused value aborts the
        load's transaction (DataError): see ``SupportsCheckedWrite``."""
        ascending = AscendingKey.of(self.table, self._deferred_key)
        if ascending is not None:
            batches = ascending.watch(batches)
        reader = pa.RecordBatchReader.from_batches(schema, batches)
        self._cur.register("batch_stream", reader)
        try:
            self._cur.execute("SET SESSION preserve_insertion_order = false")
            self._stream_insert()
            self.add_key(unique=ascending is not None and ascending.holds)
        except REFUSALS as exc:
            raise DataError(f"table {self.table.ref}: {exc}") from None
        finally:
            with contextlib.suppress(duckdb.Error):
                self._cur.execute("RESET SESSION preserve_insertion_order")
            with contextlib.suppress(duckdb.Error):
                self._cur.unregister("batch_stream")

    def _stream_insert(self) -> None:
        """The INSERT of the stream, under the file's lowered memory limit when
        nothing else runs on it (``MemoryLimit.streaming``)."""
        insert = self._insert.replace("FROM batch", "FROM batch_stream")
        if not self._holds_memory:
            self._cur.execute(insert)
            return
        with self.memory.streaming(self._cur):
            try:
                self._cur.execute(insert)
            except duckdb.OutOfMemoryException as exc:  # named with the limit in effect now
                raise out_of_memory(self.memory.limit, exc, self.memory.note()) from None

    def screen(self, records: pa.RecordBatch) -> tuple[pa.RecordBatch, list[RefusedRow]]:
        refused = self._screen.refusals(records)
        return (_without(records, refused), refused) if refused else (records, refused)

    @_memory_named
    def write_checked(self, records: pa.RecordBatch) -> list[RefusedRow]:
        """Write the rows DuckDB takes; return those it would refuse: screened,
        then keys the table already has (rows of this load or from before it),
        then a probe on an empty copy of the table for anything else."""
        self.add_key()  # rows are checked against it as they are written
        refused = self._screen.refusals(records)
        for stage in (self._existing_keys, self._probed):
            kept = _kept_rows(records.num_rows, refused)
            part = records.take(kept) if refused else records
            found = stage(part)
            refused += [RefusedRow(kept[r.row].as_py(), r.column, r.reason) for r in found]
        refused.sort(key=lambda r: r.row)
        rows = _without(records, refused) if refused else records
        if rows.num_rows:
            try:
                self.write(rows)
            except DataError as exc:  # the transaction is lost: the table fails, saying why
                raise DataError(f"{exc} (DuckDB refused rows that passed every check)") from None
        return refused

    def _existing_keys(self, records: pa.RecordBatch) -> list[RefusedRow]:
        """Rows whose primary key the target table already holds, in this transaction."""
        written = {fold_identifier(name): i for i, name in enumerate(self.table.column_names)}
        keys = self.shape.primary_key
        if not keys or not records.num_rows or any(fold_identifier(k) not in written for k in keys):
            return []
        columns = {k: records.column(written[fold_identifier(k)]) for k in keys}
        probe = pa.table(columns | {"conveyor_row": pa.array(range(records.num_rows), pa.int64())})
        match = " AND ".join(f"t.{quote(k)} = k.{quote(k)}" for k in keys)
        self._cur.register("conveyor_keys", probe)
        try:
            rows = self._cur.execute(
                f"SELECT k.conveyor_row FROM conveyor_keys AS k WHERE EXISTS "
                f"(SELECT 1 FROM {qualified(self.table.ref)} AS t WHERE {match}) ORDER BY 1"
            ).fetchall()
        finally:
            with contextlib.suppress(duckdb.Error):
                self._cur.unregister("conveyor_keys")
        reason = f"duplicate primary key ({', '.join(keys)}): the target table already has a row with it"
        return [RefusedRow(int(row[0]), None, reason) for row in rows]

    def _probed(self, records: pa.RecordBatch) -> list[RefusedRow]:
        if self._probe is None:
            checker = self._screen.checker()
            self._probe = Probe(checker, self.table.ref, self._create_sql, self.table.column_names)
        return self._probe.refusals(records)

    @_memory_named
    def write(self, records: pa.RecordBatch) -> None:
        # DuckDB has no savepoints: a failing INSERT aborts the whole transaction,
        # so after a DataError here the load can only be aborted.
        self.add_key()
        self._cur.register("batch", records)
        try:
            self._cur.execute(self._insert)
        except REFUSALS as exc:
            raise DataError(f"table {self.table.ref}: {exc}") from None
        finally:
            with contextlib.suppress(duckdb.Error):  # fails once the transaction is aborted
                self._cur.unregister("batch")

    def record_rejections(self, task: str, rejected: Sequence[RejectedValue]) -> None:
        assert self._config is not None, "a load that records rejections knows its endpoint"
        insert_rejections(self._cur, self._config, task, rejected)

    def add_key(self, unique: bool = False) -> None:
        """Add the primary key the table was created without. DuckDB checks a
        key added in a transaction only at its COMMIT, so the rows are checked
        here first, unless they are known ``unique`` (``AscendingKey``): a
        duplicate is a DataError, as it is for an INSERT into a keyed table."""
        keys = self._deferred_key
        if not keys:
            return
        duplicate = None if unique else self._duplicate_key()
        if duplicate is not None:
            shown = ", ".join(f"{k}: {v!r}" for k, v in zip(keys, duplicate, strict=True))
            raise DataError(f"table {self.table.ref}: duplicate primary key ({shown})")
        self._cur.execute(f"ALTER TABLE {qualified(self.table.ref)} ADD {primary_key_sql(keys)}")
        self._deferred_key = ()

    def _duplicate_key(self) -> tuple[object, ...] | None:
        """A key the table holds twice, or None. The GROUP BY's hash table is
        capped (``DUPLICATE_CHECK_MEMORY``): beyond it, it spills to disk, which
        at 5M keys was faster than DuckDB's unbounded one and half its memory."""
        columns = ", ".join(quote(k) for k in self._deferred_key)
        self._cur.execute(f"SET SESSION operator_memory_limit = '{DUPLICATE_CHECK_MEMORY}'")
        try:
            return self._cur.execute(
                f"SELECT {columns} FROM {qualified(self.table.ref)} GROUP BY ALL HAVING count(*) > 1 LIMIT 1"
            ).fetchone()
        finally:
            with contextlib.suppress(duckdb.Error):
                self._cur.execute("RESET SESSION operator_memory_limit")

    @_memory_named
    def commit(self) -> None:
        self.add_key()
        self._screen.close()
        try:
            self._cur.execute("COMMIT")
        except duckdb.TransactionException as exc:  # a catalog conflict with another load
            raise TerminalError(f"table {self.table.ref}: DuckDB could not commit the load: {exc}") from None
        self._release()

    def abort(self) -> None:
        self._screen.close()
        try:
            with contextlib.suppress(duckdb.Error):  # a failed COMMIT has already ended it
                self._cur.execute("ROLLBACK")
        finally:
            self._release()

    def _release(self) -> None:
        if self._holds_memory:
            self._holds_memory = False
            self.memory.leave_busy(self._cur)
        self._cur.close()


def _kept_rows(rows: int, refused: list[RefusedRow]) -> pa.Array:
    """Indices of the rows not refused."""
    if not refused:
        return pa.array(range(rows), pa.int64())
    return pc.indices_nonzero(_keep_mask(rows, refused))


def _keep_mask(rows: int, refused: list[RefusedRow]) -> pa.Array:
    out = pa.array([r.row for r in refused], pa.int64())
    return pc.invert(pc.is_in(pa.array(range(rows), pa.int64()), value_set=out))


def _without(records: pa.RecordBatch, refused: list[RefusedRow]) -> pa.RecordBatch:
    return records.filter(_keep_mask(records.num_rows, refused))
