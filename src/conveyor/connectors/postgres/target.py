"""PostgreSQL as a target: tables created with keys and exact types, rows
written by COPY inside one transaction per table load."""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
import pyarrow as pa
from psycopg import sql

from conveyor.connectors.base import (
    EndpointConfig,
    PrepMode,
    RejectedValue,
    ValidationFailure,
    control_schema,
)
from conveyor.connectors.postgres import connection
from conveyor.connectors.postgres.copy_text import encode_batch
from conveyor.connectors.postgres.names import qualified
from conveyor.connectors.postgres.source import read_arrow, read_tables
from conveyor.connectors.postgres.types import to_ddl
from conveyor.connectors.postgres.user_types import xml_array_columns
from conveyor.core.errors import DataError, NotFoundError, SchemaMismatch, TerminalError
from conveyor.core.schema import Column, NativeType, TableRef, TableSchema
from conveyor.core.types import ColumnType, Kind

ENGINE = "postgres"
RAW_FORMAT = "postgres-binary"
EXCEPTIONS_TABLE = "awsdms_apply_exceptions"
EXCEPTIONS_SCHEMA = "public"


def exceptions_table(config: EndpointConfig) -> sql.Composed:
    """The apply-exceptions table, in the task's ControlSchema (default ``public``)."""
    schema = control_schema(config, EXCEPTIONS_SCHEMA)
    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(EXCEPTIONS_TABLE))


def create_exceptions_table(conn: psycopg.Connection[Any], config: EndpointConfig) -> None:
    """The apply-exceptions table (and its schema), when missing."""
    schema = control_schema(config, EXCEPTIONS_SCHEMA)
    if schema != EXCEPTIONS_SCHEMA:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    conn.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (task_name varchar(128), table_owner varchar(128), "
            "table_name varchar(128), error_time timestamptz, key jsonb, column_name text, "
            "value text, error text)"
        ).format(exceptions_table(config))
    )


def insert_rejections(
    conn: psycopg.Connection[Any],
    config: EndpointConfig,
    task: str,
    rejected: Sequence[RejectedValue],
    create: bool = False,
) -> None:
    """Rows of the apply-exceptions table, in ``conn``'s transaction (``create``:
    the table created first if need be)."""
    if not rejected:
        return
    if create:
        create_exceptions_table(conn, config)
    now = datetime.now(UTC)
    with conn.cursor() as cur:
        cur.executemany(
            sql.SQL("INSERT INTO {} VALUES (%s, %s, %s, %s, %s, %s, %s, %s)").format(
                exceptions_table(config)
            ),
            [r.exceptions_row(task, now) for r in rejected],
        )


MAX_NAME_BYTES = 63
COPY_WRITE_BYTES = 1 << 20
_COPY_CONTEXT = re.compile(r"COPY [^,]+, line (\d+)(?:, column ([^:]+))?")

# Kinds a value can be written from into a column of another kind, by COPY's
# text input: the server parses it and refuses (per row) what does not fit.
_FAMILIES: list[set[Kind]] = [
    {Kind.INT16, Kind.INT32, Kind.INT64, Kind.DECIMAL, Kind.NUMERIC, Kind.FLOAT32, Kind.FLOAT64},
    {Kind.TEXT, Kind.ENUM, Kind.UUID, Kind.JSON},
    {Kind.TIMESTAMP, Kind.TIMESTAMPTZ, Kind.DATE},
]


class PostgresTarget:
    engine = ENGINE

    def __init__(self, config: EndpointConfig) -> None:
        self.config = config
        # Schemas, enum types and the exceptions table are created once, outside
        # table loads: concurrent CREATEs of one catalog object conflict.
        self._catalog_lock = threading.Lock()

    def check(self) -> str:
        with connection.connect(self.config, autocommit=True) as conn:
            return str(conn.execute("SELECT version()").fetchone()[0])  # type: ignore[index]

    def refused_name(self, kind: str, name: str) -> str | None:
        return long_name(kind, name)

    def describe(self, ref: TableRef) -> TableSchema | None:
        with connection.connect(self.config, autocommit=True) as conn:
            return describe_table(conn, ref)

    def begin_load_key_after(self, table: TableSchema, mode: PrepMode) -> PostgresTableLoad:
        """CreatePkAfterFullLoad: a table created here gets its primary key after the rows."""
        return self.begin_load(table, mode, key_after_load=True)

    def begin_load(
        self, table: TableSchema, mode: PrepMode, key_after_load: bool = False
    ) -> PostgresTableLoad:
        check_names(table)
        same_engine = table.native_engine == ENGINE
        try:
            with self._catalog_lock, connection.connect(self.config, autocommit=True) as conn:
                conn.execute(
                    sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(table.ref.schema))
                )
                for column in table.columns:
                    _create_enum(conn, table, column, same_engine)
                if same_engine:
                    for native in table.native_types:
                        create_native_type(conn, native)
        except psycopg.Error as exc:
            raise connection.failure(f"table {table.ref}", exc) from None
        conn = connection.connect(self.config)
        try:
            existing = describe_table(conn, table.ref)
            add_key = False
            if mode is PrepMode.DROP_AND_CREATE or existing is None:
                if same_engine:
                    _check_types_exist(conn, table)
                conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(qualified(table.ref)))
                add_key = key_after_load and bool(table.primary_key)
                conn.execute(create_table_sql(table, same_engine, with_key=not add_key))
                exact = same_engine
                computed = {c.name for c in table.columns if same_engine and c.generated is not None}
            else:
                _check_shape(table, existing)
                exact = same_engine and all(
                    existing.column(c.name).type.native == c.type.native for c in table.columns
                )
                computed = {c.name for c in existing.columns if c.generated is not None}
                if mode is PrepMode.TRUNCATE_BEFORE_LOAD:
                    conn.execute(sql.SQL("TRUNCATE {}").format(qualified(table.ref)))
        except psycopg.Error as exc:
            conn.close()
            raise connection.failure(f"table {table.ref}", exc) from None
        except BaseException:
            conn.rollback()
            conn.close()
            raise
        return PostgresTableLoad(
            self, conn, table, raw=exact and not has_xml_arrays(table), computed=computed, add_key=add_key
        )

    def drop_staging(self, ref: TableRef) -> None:
        """Drop a segment's staging table (a load given up); gone already is fine."""
        with connection.connect(self.config, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(qualified(ref)))

    def ensure_exceptions_table(self) -> None:
        with self._catalog_lock, connection.connect(self.config, autocommit=True) as conn:
            create_exceptions_table(conn, self.config)

    def read(
        self, table: TableSchema, batch_rows: int, order_by_key: bool = False
    ) -> Iterator[pa.RecordBatch]:
        """Read back with the casts the target's own column types need, as the
        Arrow types of ``table`` (the load's view of it)."""
        existing = self.describe(table.ref)
        if existing is None:
            raise NotFoundError(f"target table {table.ref} does not exist")
        actual = TableSchema(
            table.ref, tuple(existing.column(n) for n in table.column_names), table.primary_key
        )
        return read_arrow(self.config, actual, batch_rows, order_by_key, schema=table.arrow_schema())

    def read_text(self, table: TableSchema, batch_rows: int) -> Iterator[list[tuple[str | None, ...]]]:
        """Rows as output text in key order (validation)."""
        from conveyor.connectors.postgres import validation

        if not validation.table_exists(self.config, table.ref):
            raise NotFoundError(f"target table {table.ref} does not exist")
        return validation.read_text_rows(self.config, table, batch_rows)

    def read_text_keys(
        self, table: TableSchema, keys: Sequence[tuple[str | None, ...]], batch_rows: int
    ) -> Iterator[list[tuple[str | None, ...]]]:
        """The rows of ``keys`` (key texts) as output text (validation during capture)."""
        from conveyor.connectors.postgres import validation

        if not validation.table_exists(self.config, table.ref):
            raise NotFoundError(f"target table {table.ref} does not exist")
        return validation.read_text_rows(self.config, table, batch_rows, keys=keys)

    def record_validation_failures(
        self, task: str, table: TableRef, failures: Sequence[ValidationFailure], when: datetime
    ) -> None:
        from conveyor.connectors.postgres import validation

        validation.record_failures(self.config, task, table, failures, when)

    def count(self, ref: TableRef) -> int:
        with connection.connect(self.config, autocommit=True) as conn:
            row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(qualified(ref))).fetchone()
            assert row is not None
            return int(row[0])

    def close(self) -> None:
        pass


def describe_table(conn: psycopg.Connection[Any], ref: TableRef) -> TableSchema | None:
    tables = read_tables(conn, only=ref)
    return tables[0] if tables else None


def has_xml_arrays(table: TableSchema) -> bool:
    """Whether a table has arrays of xml. xml's binary (and text) output leaves
    out a document's XML declaration (``<?xml version="1.0" ...?>``): a raw copy
    reads scalar xml columns as ``xml::text`` (whose binary form xml's binary
    input takes, declaration and all), but an array of them cannot be recast so,
    so such a table is not copied raw (the Arrow path reads them as text)."""
    return bool(xml_array_columns(table))


def column_ddl(table: TableSchema, column: Column, same_engine: bool) -> sql.Composable:
    ctype = column.type
    scalar = ctype.element if ctype.kind is Kind.ARRAY else ctype
    assert scalar is not None
    if scalar.kind is Kind.ENUM:
        spelled: sql.Composable = sql.SQL("{}.{}").format(
            sql.Identifier(table.ref.schema), sql.Identifier(enum_type_name(table, column, same_engine))
        )
        if ctype.kind is Kind.ARRAY:
            spelled = sql.SQL("{}[]").format(spelled)
    else:
        spelled = sql.SQL(to_ddl(ctype, same_engine))
    if same_engine and column.generated is not None:
        # The target computes it, as the source does.
        spelled = sql.SQL("{} GENERATED ALWAYS AS ({}) STORED").format(spelled, sql.SQL(column.generated))
    return sql.SQL("{} {}{}").format(
        sql.Identifier(column.name), spelled, sql.SQL("" if column.nullable else " NOT NULL")
    )


def create_table_sql(table: TableSchema, same_engine: bool, with_key: bool = True) -> sql.Composed:
    parts = [column_ddl(table, c, same_engine) for c in table.columns]
    if table.primary_key and with_key:
        parts.append(primary_key_sql(table))
    return sql.SQL("CREATE TABLE {} ({})").format(qualified(table.ref), sql.SQL(", ").join(parts))


def primary_key_sql(table: TableSchema) -> sql.Composed:
    return sql.SQL("PRIMARY KEY ({})").format(sql.SQL(", ").join(map(sql.Identifier, table.primary_key)))


def long_name(kind: str, name: str) -> str | None:
    """Why PostgreSQL cannot hold ``name`` as it is, or None."""
    size = len(name.encode())
    if size <= MAX_NAME_BYTES:
        return None
    return (
        f"PostgreSQL names are at most {MAX_NAME_BYTES} bytes (this {kind} name has {size}; "
        "PostgreSQL would cut it); rename with a table-mapping transformation rule"
    )


def check_names(table: TableSchema) -> None:
    """PostgreSQL cuts names longer than 63 bytes without a word; refuse them."""
    names = [("schema", table.ref.schema), ("table", table.ref.name)]
    names += [("column", c.name) for c in table.columns]
    long = [
        f"{kind} {name!r} ({len(name.encode())} bytes)"
        for kind, name in names
        if len(name.encode()) > MAX_NAME_BYTES
    ]
    if long:
        raise SchemaMismatch(
            f"table {table.ref}: PostgreSQL names are at most {MAX_NAME_BYTES} bytes: {', '.join(long)}; "
            "rename with a table-mapping transformation rule"
        )


def enum_type_name(table: TableSchema, column: Column, same_engine: bool) -> str:
    """The enum type a column gets: the source's own type name when it is
    PostgreSQL, otherwise one named after the table and column (shortened with a
    digest when that name would pass PostgreSQL's 63 bytes)."""
    ctype = column.type.element if column.type.kind is Kind.ARRAY else column.type
    assert ctype is not None
    if same_engine and ctype.native:
        return ctype.native.removesuffix("[]").split(".")[-1].strip('"')
    name = f"{table.ref.name}_{column.name}_enum"
    if len(name.encode()) <= MAX_NAME_BYTES:
        return name
    digest = hashlib.blake2b(name.encode(), digest_size=4).hexdigest()
    prefix = name.encode()[: MAX_NAME_BYTES - len(digest) - 6].decode(errors="ignore")
    return f"{prefix}_{digest}_enum"


def _create_enum(
    conn: psycopg.Connection[Any], table: TableSchema, column: Column, same_engine: bool
) -> None:
    ctype: ColumnType | None = column.type.element if column.type.kind is Kind.ARRAY else column.type
    if ctype is None or ctype.kind is not Kind.ENUM:
        return
    name = enum_type_name(table, column, same_engine)
    if same_engine and any(n.base is not None and n.name == name for n in table.native_types):
        return  # a domain over an enum: created (with its enum) from native_types
    exists = conn.execute(
        "SELECT 1 FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
        "WHERE n.nspname = %s AND t.typname = %s",
        (table.ref.schema, name),
    ).fetchone()
    if exists is None:
        labels = sql.SQL(", ").join(map(sql.Literal, ctype.labels))
        conn.execute(
            sql.SQL("CREATE TYPE {}.{} AS ENUM ({})").format(
                sql.Identifier(table.ref.schema), sql.Identifier(name), labels
            )
        )


def create_native_type(conn: psycopg.Connection[Any], native: NativeType) -> None:
    """Create a source's user-defined type (composite, domain, enum) in its own
    schema, unless a type of that name is there already."""
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(native.schema)))
    exists = conn.execute(
        "SELECT 1 FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
        "WHERE n.nspname = %s AND t.typname = %s",
        (native.schema, native.name),
    ).fetchone()
    if exists is None:
        conn.execute(native.definition.encode())


def _check_types_exist(conn: psycopg.Connection[Any], table: TableSchema) -> None:
    """Refuse, by column, source types the target database does not have (a
    user-defined range or base type, an extension's type, another table's row
    type), rather than fail on CREATE TABLE without saying which column."""
    natives = [
        (c.name, c.type.native)
        for c in table.columns
        if c.type.native and Kind.ENUM not in {c.type.kind, c.type.element.kind if c.type.element else None}
    ]
    found = conn.execute(
        "SELECT n, to_regtype(n) IS NOT NULL FROM unnest(%s::text[]) AS n", ([n for _, n in natives],)
    ).fetchall()
    have = dict(found)
    missing = [
        f"column {name!r} is of type {native}" for name, native in natives if not have.get(native, True)
    ]
    if missing:
        raise SchemaMismatch(
            f"table {table.ref}: the target database has no such type: {'; '.join(missing)}; create "
            "the type there first (CREATE EXTENSION or CREATE TYPE), or create the target table yourself "
            "and load with TargetTablePrepMode DO_NOTHING or TRUNCATE_BEFORE_LOAD, or leave the column out "
            "with a remove-column transformation rule"
        )


def _family(kind: Kind) -> int:
    for index, family in enumerate(_FAMILIES):
        if kind in family:
            return index
    return -1 - list(Kind).index(kind)


def _check_shape(table: TableSchema, existing: TableSchema) -> None:
    """Under DO_NOTHING or TRUNCATE_BEFORE_LOAD the target table must have every
    column the load writes, of a type COPY can write it as. Values that do not
    fit the existing type (a narrower numeric, a shorter varchar) are refused
    row by row, not here."""
    problems = []
    for col in table.columns:
        try:
            have = existing.column(col.name)
        except KeyError:
            problems.append(f"column {col.name!r} is missing")
            continue
        if _family(have.type.kind) != _family(col.type.kind) or (
            (have.type.kind is Kind.ARRAY) != (col.type.kind is Kind.ARRAY)
        ):
            problems.append(
                f"column {col.name!r} is {have.type.native or have.type.describe()}, "
                f"the load writes {col.type.describe()}"
            )
    if problems:
        raise SchemaMismatch(f"target table {table.ref} exists with another shape: " + "; ".join(problems))


def refused_at(exc: psycopg.Error) -> tuple[str, int | None, str | None]:
    """The server's one-line message for a refused statement, and the COPY line
    (1-based) and column it names, when it names them."""
    diag = exc.diag
    message = " ".join((diag.message_primary or str(exc)).split())
    match = _COPY_CONTEXT.search(diag.context or "")
    line = int(match.group(1)) if match else None
    column = (match.group(2) if match else None) or diag.column_name
    return message, line, column


_NUL = "0x00"  # in the server's message for a text holding the NUL character, which it cannot store


def nul_column(values: Mapping[str, Any]) -> str | None:
    """The first column of a row whose text holds the NUL character: PostgreSQL
    refuses it ("invalid byte sequence ... 0x00") without naming the column."""
    return next((name for name, value in values.items() if isinstance(value, str) and "\x00" in value), None)


def _data_error(table: TableRef, exc: psycopg.Error, rows: int) -> DataError:
    """A refused COPY as a DataError naming the row (index in the batch) and column."""
    message, line, column = refused_at(exc)
    row = line - 1 if line is not None and 0 < line <= rows else None
    diag = exc.diag
    if row is None and diag.sqlstate and diag.sqlstate.startswith("23") and diag.message_detail:
        message += f" ({diag.message_detail})"
    return DataError(f"table {table}: {message}", row=row, column=column, load_usable=True)


class PostgresTableLoad:
    def __init__(
        self,
        target: PostgresTarget,
        conn: psycopg.Connection[Any],
        table: TableSchema,
        raw: bool,
        computed: set[str] | frozenset[str] = frozenset(),
        add_key: bool = False,
    ) -> None:
        self._target = target
        self._conn = conn
        self.table = table
        self._add_key = add_key  # CreatePkAfterFullLoad: the key is added at commit
        # Raw binary COPY from a PostgreSQL source only when every column has
        # exactly the source's type: binary data is not parsed, just laid out.
        self.raw_format = RAW_FORMAT if raw else None
        # Generated columns of the target table: it computes them, none is written.
        self.computed = frozenset(computed)
        self._written = [name for name in table.column_names if name not in self.computed]
        self._copy = sql.SQL("COPY {} ({}) FROM STDIN").format(
            qualified(table.ref), sql.SQL(", ").join(map(sql.Identifier, self._written))
        )

    def write(self, records: pa.RecordBatch) -> None:
        data = encode_batch(records.select(self._written) if self.computed else records)
        try:
            with self._conn.transaction(), self._conn.cursor() as cur, cur.copy(self._copy) as copy:
                for start in range(0, len(data), COPY_WRITE_BYTES):
                    copy.write(data[start : start + COPY_WRITE_BYTES])
        except (psycopg.DataError, psycopg.IntegrityError) as exc:
            error = _data_error(self.table.ref, exc, records.num_rows)
            error.column = error.column or constraint_columns(self._conn, self.table.ref, exc)
            if error.column is None and error.row is not None and _NUL in (exc.diag.message_primary or ""):
                row = records.slice(error.row, 1).to_pylist()[0]
                error.column = nul_column(row)
            raise error from None
        except psycopg.Error as exc:
            raise connection.failure(f"table {self.table.ref}", exc) from None

    def copy_in(self, chunks: Iterator[bytes], columns: Sequence[str]) -> int:
        """Write PostgreSQL binary COPY data (from a PostgreSQL source) as it comes.

        A row the server refuses (a CHECK, a unique key already in the table)
        raises a DataError without a row: binary COPY names no line the load
        could take out, so the copy is rolled back to a savepoint and the load
        stays usable for another path that can (``write``)."""
        statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT binary)").format(
            qualified(self.table.ref), sql.SQL(", ").join(map(sql.Identifier, columns))
        )
        from_source: list[BaseException] = []

        def read() -> Iterator[bytes]:
            try:
                yield from chunks
            except BaseException as exc:  # the source's error, not the target's
                from_source.append(exc)
                raise

        try:
            with self._conn.transaction(), self._conn.cursor() as cur:
                with cur.copy(statement) as copy:
                    pending: list[bytes] = []
                    size = 0
                    for chunk in read():
                        pending.append(chunk)
                        size += len(chunk)
                        if size >= COPY_WRITE_BYTES:
                            copy.write(b"".join(pending))
                            pending, size = [], 0
                    if pending:
                        copy.write(b"".join(pending))
                return cur.rowcount
        except (psycopg.DataError, psycopg.IntegrityError, psycopg.errors.DatatypeMismatch) as exc:
            # DatatypeMismatch: binary data the target's types do not read
            # (COPY text, which the server parses, may still take it).
            message, _line, column = refused_at(exc)
            column = column or constraint_columns(self._conn, self.table.ref, exc)
            raise DataError(f"table {self.table.ref}: {message}", column=column, load_usable=True) from None
        except psycopg.Error as exc:
            if exc in from_source:
                raise
            raise connection.failure(f"table {self.table.ref}", exc) from None

    def insert_from(self, staging: Sequence[TableRef]) -> int:
        """The rows of segment staging tables (same columns), then the staging
        tables dropped, all in this load's transaction."""
        columns = sql.SQL(", ").join(map(sql.Identifier, self._written))
        rows = 0
        try:
            with self._conn.transaction():
                for ref in staging:
                    cur = self._conn.execute(
                        sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {}").format(
                            qualified(self.table.ref), columns, columns, qualified(ref)
                        )
                    )
                    rows += cur.rowcount
                    self._conn.execute(sql.SQL("DROP TABLE {}").format(qualified(ref)))
        except (psycopg.DataError, psycopg.IntegrityError) as exc:
            raise DataError(f"table {self.table.ref}: {' '.join(str(exc).split())}") from None
        except psycopg.Error as exc:
            raise connection.failure(f"table {self.table.ref}", exc) from None
        return rows

    def record_rejections(self, task: str, rejected: Sequence[RejectedValue]) -> None:
        if not rejected:
            return
        self._target.ensure_exceptions_table()
        insert_rejections(self._conn, self._target.config, task, rejected)

    def commit(self) -> None:
        try:
            if self._add_key:
                try:
                    self._conn.execute(
                        sql.SQL("ALTER TABLE {} ADD {}").format(
                            qualified(self.table.ref), primary_key_sql(self.table)
                        )
                    )
                except psycopg.Error as exc:
                    self._conn.rollback()
                    reason = " ".join(str(exc).split())
                    raise TerminalError(
                        f"table {self.table.ref}: primary key after the load: {reason}"
                    ) from None
            self._conn.commit()
        except psycopg.Error as exc:
            raise connection.failure(f"table {self.table.ref}: commit", exc) from None
        finally:
            self._conn.close()

    def abort(self) -> None:
        if self._conn.closed:
            return
        try:
            self._conn.rollback()
        finally:
            self._conn.close()


def constraint_columns(conn: psycopg.Connection[Any], ref: TableRef, exc: psycopg.Error) -> str | None:
    """The column(s) of the table constraint a row broke (a CHECK, a unique
    key), comma-separated; None when the error names no such constraint.
    PostgreSQL's error names the constraint, never a CHECK's column."""
    name = exc.diag.constraint_name
    if not name:
        return None
    row = conn.execute(
        "SELECT string_agg(a.attname, ', ' ORDER BY k.ord) FROM pg_constraint c"
        " CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord)"
        " JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum"
        " WHERE c.conrelid = %s::regclass AND c.conname = %s",
        (qualified(ref).as_string(conn), name),
    ).fetchone()
    return str(row[0]) if row and row[0] else None
