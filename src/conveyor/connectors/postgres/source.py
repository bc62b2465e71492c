"""PostgreSQL as a source: catalog, consistent snapshots, Arrow and raw COPY reads."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import psycopg
import pyarrow as pa
from psycopg import pq, sql

from conveyor.connectors.base import EndpointConfig, RejectedValue
from conveyor.connectors.postgres import connection, filters
from conveyor.connectors.postgres._arrow import Refusal, checks, conform, interval_guard
from conveyor.connectors.postgres.adbc_stream import query_batches
from conveyor.connectors.postgres.names import DDL_CAPTURE_SCHEMA, qualified
from conveyor.connectors.postgres.types import NativeColumn, array_dims, from_native, needs_text_cast
from conveyor.connectors.postgres.user_types import columns_over, native_types, xml_columns
from conveyor.connectors.postgres.validation import read_text_rows
from conveyor.core.errors import DataError, TerminalError
from conveyor.core.read_ahead import read_ahead
from conveyor.core.row_filter import RowFilter
from conveyor.core.schema import Column, TableRef, TableSchema
from conveyor.core.types import Kind

_TABLES_SQL = """
SELECT n.nspname, c.relname, c.oid, greatest(c.reltuples, 0)::bigint
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%%'
  AND n.nspname <> %(own)s
  AND (%(schema)s::text IS NULL OR (n.nspname = %(schema)s AND c.relname = %(name)s))
ORDER BY n.nspname, c.relname
"""

# A domain's values are its base type's (a domain over a domain: the innermost
# base), with the typmod the domain chain declares (``numeric(12,2)``), so a
# column of a domain gets the base's conveyor type; its own spelling is kept as
# the native type (PostgreSQL to PostgreSQL creates the domain first). A NOT
# NULL anywhere on the chain makes the column NOT NULL (``not_null``).
DOMAIN_BASES_SQL = """
WITH RECURSIVE chain(domain, base, typmod, not_null, depth) AS (
    SELECT oid, typbasetype, typtypmod, typnotnull, 1 FROM pg_type WHERE typtype = 'd'
    UNION ALL
    SELECT c.domain, t.typbasetype, CASE WHEN c.typmod = -1 THEN t.typtypmod ELSE c.typmod END,
           c.not_null OR t.typnotnull, c.depth + 1
    FROM chain c JOIN pg_type t ON t.oid = c.base AND t.typtype = 'd'
    WHERE c.depth < 32
), domain_bases AS (
    SELECT DISTINCT ON (domain) domain, base, typmod, not_null FROM chain ORDER BY domain, depth DESC
)
"""

# The column's type through its domains (``ty``), its element through theirs
# (``et``), the typmod that applies and the declared dimensions (a domain over
# an array declares them in typndims).
RESOLVED_TYPE_SQL = """
LEFT JOIN domain_bases db ON db.domain = {oid}
JOIN pg_type ty ON ty.oid = coalesce(db.base, {oid})
LEFT JOIN domain_bases eb ON ty.typcategory = 'A' AND eb.domain = ty.typelem
LEFT JOIN pg_type et ON ty.typcategory = 'A' AND et.oid = coalesce(eb.base, ty.typelem)
"""

_COLUMNS_SQL = (
    DOMAIN_BASES_SQL
    + """
SELECT a.attrelid, a.attname, a.attnotnull OR coalesce(db.not_null, false),
       coalesce(nullif(db.typmod, -1), nullif(eb.typmod, -1), a.atttypmod),
       format_type(a.atttypid, a.atttypmod),
       coalesce(et.typname, ty.typname),
       ty.typcategory = 'A',
       coalesce(et.typtype, ty.typtype) = 'e',
       coalesce(et.oid, ty.oid),
       CASE WHEN a.attgenerated <> '' THEN pg_get_expr(d.adbin, d.adrelid) END,
       CASE WHEN a.attndims = 0 THEN dt.typndims ELSE a.attndims END,
       a.atttypid
FROM pg_attribute a
JOIN pg_type dt ON dt.oid = a.atttypid
"""
    + RESOLVED_TYPE_SQL.format(oid="a.atttypid")
    + """
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = ANY(%s) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attrelid, a.attnum
"""
)

# Generated columns are part of a table's schema (Column.generated): a full load
# reads their values; pgoutput does not send them (before PostgreSQL 18), so
# change capture looks them up by key where the target does not compute them
# (postgres/lookups.py, replication/cdc/lookups.py).
_KEYS_SQL = """
SELECT i.indrelid, a.attname
FROM pg_index i
CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indisprimary AND i.indrelid = ANY(%s)
ORDER BY i.indrelid, k.ord
"""

COPY_BLOCK_BYTES = 1 << 20
_READ_AHEAD = 2  # batches fetched ahead of the target (each up to CommitRate rows)
_ENUMS_SQL = (
    "SELECT enumtypid, enumlabel FROM pg_enum WHERE enumtypid = ANY(%s) ORDER BY enumtypid, enumsortorder"
)


def select_list(table: TableSchema, columns: Sequence[str] | None = None) -> sql.Composed:
    """The columns to read, cast to text where that is how they travel."""
    parts: list[sql.Composable] = []
    # inet's text cast always adds the netmask (a host gets /32), as does each
    # element's of inet[]::text[]; its output form (abbrev(), an array's own
    # text) does not, and is what change capture receives.
    inets = set(columns_over(table, ["inet"]))
    for name in columns or table.column_names:
        ident = sql.Identifier(name)
        ctype = table.column(name).type
        if ctype.kind is Kind.INTERVAL:
            parts.append(interval_guard(name))
        elif name in inets and ctype.kind is not Kind.ARRAY:
            parts.append(sql.SQL("abbrev({}) AS {}").format(ident, ident))
        elif name in inets and array_dims(ctype) == 1:
            parts.append(sql.SQL("{}::text::text[] AS {}").format(ident, ident))
        elif needs_text_cast(ctype):
            cast = "text[]" if array_dims(ctype) == 1 else "text"
            parts.append(sql.SQL("{}::" + cast + " AS {}").format(ident, ident))
        else:
            parts.append(ident)
    return sql.SQL(", ").join(parts)


def read_tables(conn: psycopg.Connection[Any], only: TableRef | None = None) -> list[TableSchema]:
    """Every user table of the database the connection is on (or just ``only``)."""
    params = {
        "schema": only.schema if only else None,
        "name": only.name if only else None,
        "own": DDL_CAPTURE_SCHEMA,
    }
    rows = conn.execute(_TABLES_SQL, params).fetchall()
    oids = [r[2] for r in rows]
    columns: dict[int, list[Any]] = {}
    enum_oids: set[int] = set()
    for row in conn.execute(_COLUMNS_SQL, (oids,)).fetchall():
        columns.setdefault(row[0], []).append(row)
        if row[7]:
            enum_oids.add(row[8])
    labels: dict[int, list[str]] = {}
    for enum_oid, label in conn.execute(_ENUMS_SQL, (list(enum_oids),)).fetchall():
        labels.setdefault(enum_oid, []).append(label)
    keys: dict[int, list[str]] = {}
    for relid, name in conn.execute(_KEYS_SQL, (oids,)).fetchall():
        keys.setdefault(relid, []).append(name)
    types = native_types(conn, {oid: [c[11] for c in cols] for oid, cols in columns.items()})
    tables = []
    for schema, name, oid, estimate in rows:
        cols = tuple(
            Column(
                name=c[1],
                type=from_native(
                    NativeColumn(
                        type_name=c[5],
                        formatted=c[4],
                        typmod=c[3],
                        is_array=c[6],
                        is_enum=c[7],
                        enum_labels=tuple(labels.get(c[8], ())),
                        dims=c[10],
                    )
                ),
                nullable=not c[2],
                generated=c[9],
            )
            for c in columns.get(oid, [])
        )
        tables.append(
            TableSchema(
                TableRef(schema, name),
                cols,
                tuple(keys.get(oid, ())),
                estimate,
                "postgres",
                types.get(oid, ()),
            )
        )
    return tables


def generated_column_warnings(tables: Sequence[TableSchema]) -> list[str]:
    """A warning per table with generated columns that change capture cannot
    look up: pgoutput does not send them, and without a primary key there is
    no row to look their values up by (postgres/lookups.py)."""
    warnings = []
    for table in tables:
        names = [c.name for c in table.columns if c.generated is not None]
        if names and not table.primary_key:
            warnings.append(
                f"table {table.ref}: generated column(s) {', '.join(names)}: pgoutput does not send "
                "them and the table has no primary key to look them up by: a target table that "
                "computes them stays right (a PostgreSQL table Conveyor creates declares them "
                "GENERATED ALWAYS AS ... STORED); elsewhere (DuckDB, the lake, a plain target column) "
                "captured inserts leave them NULL. Add a primary key to make them exact"
            )
    return warnings


def xml_column_warnings(tables: Sequence[TableSchema]) -> list[str]:
    """A warning per table with xml columns change capture cannot look up:
    pgoutput sends xml's output form, which leaves out an XML declaration, and
    without a primary key there is no row to look the value up by."""
    warnings = []
    for table in tables:
        names = xml_columns(table)
        if names and not table.primary_key:
            warnings.append(
                f"table {table.ref}: xml column(s) {', '.join(names)}: pgoutput leaves out a "
                'document\'s XML declaration (<?xml version="1.0" ...?>) and the table has no '
                "primary key to look the value up by: captured changes lose it (the full load keeps "
                "it). Add a primary key to make them exact"
            )
    return warnings


class PostgresSource:
    engine = "postgres"
    raw_format = "postgres-binary"

    def __init__(self, config: EndpointConfig) -> None:
        self.config = config

    def check(self) -> str:
        with connection.connect(self.config, autocommit=True) as conn:
            return str(conn.execute("SELECT version()").fetchone()[0])  # type: ignore[index]

    def tables(self) -> list[TableSchema]:
        with connection.connect(self.config, autocommit=True) as conn:
            return read_tables(conn)

    def snapshot(self) -> PostgresSnapshot:
        return PostgresSnapshot(self.config)

    def attach_snapshot(self, snapshot_id: str) -> PostgresSnapshot:
        """Reads inside a snapshot another process exported (and holds open)."""
        return PostgresSnapshot(self.config, snapshot_id=snapshot_id)

    def close(self) -> None:
        pass


class PostgresSnapshot:
    """A REPEATABLE READ transaction whose snapshot is exported, so that every
    reader (one connection per table, in parallel) sees the same instant."""

    raw_format = "postgres-binary"
    concurrent_reads = True  # every read opens its own connection attached to the snapshot

    def __init__(self, config: EndpointConfig, snapshot_id: str | None = None) -> None:
        self.config = config
        self._holder: psycopg.Connection[Any] | None = None
        if snapshot_id is None:
            self._holder = connection.connect(config)
            self._holder.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            row = self._holder.execute("SELECT pg_export_snapshot()").fetchone()
            assert row is not None
            snapshot_id = str(row[0])
        self.snapshot_id = snapshot_id
        self._lock = threading.Lock()
        self._rejected: dict[TableRef, list[RejectedValue]] = {}

    def _begin(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(self.snapshot_id)))

    def read(
        self, table: TableSchema, batch_rows: int, order_by_key: bool = False
    ) -> Iterator[pa.RecordBatch]:
        return self._read(table, batch_rows, order_by_key, None)

    def _read(
        self, table: TableSchema, batch_rows: int, order_by_key: bool, where: sql.Composable | None
    ) -> Iterator[pa.RecordBatch]:
        """The table's rows in the snapshot; those holding a value no batch can
        carry exactly are kept for ``rejections``. A whole-table read starts the
        table's list afresh; reads of segments (``where``), which may run at
        once, add to it."""
        setup = [
            "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ",
            f"SET TRANSACTION SNAPSHOT '{self.snapshot_id}'",
        ]
        if where is None:
            with self._lock:
                self._rejected[table.ref] = []

        def reject(rows: list[RejectedValue]) -> None:
            with self._lock:
                self._rejected.setdefault(table.ref, []).extend(rows)

        batches = read_arrow(self.config, table, batch_rows, order_by_key, setup, reject=reject, where=where)
        if where is not None:
            return batches  # a segment's read: already a thread of its own (replication.segments)
        # The next batch is fetched and conformed while the target writes this one
        # (the driver's fetch, Arrow's casts and the targets' writers release the GIL).
        return read_ahead(batches, depth=_READ_AHEAD, name=f"read {table.ref}")

    def rejections(self, ref: TableRef) -> list[RejectedValue]:
        """The rows of table ``ref`` its last read left out: values no batch can
        carry exactly (see ``_arrow``), for the target's exceptions table."""
        with self._lock:
            return list(self._rejected.get(ref, []))

    def forget_rejections(self, ref: TableRef) -> None:
        with self._lock:
            self._rejected.pop(ref, None)

    def pushes_down(self, table: TableSchema, where: RowFilter) -> bool:
        return filters.pushes_down(where)

    def read_where(
        self, table: TableSchema, batch_rows: int, where: RowFilter, order_by_key: bool = False
    ) -> Iterator[pa.RecordBatch]:
        return self._read(table, batch_rows, order_by_key, filters.where_condition(where))

    def copy_out(
        self, table: TableSchema, columns: Sequence[str], where: RowFilter | None = None
    ) -> Iterator[bytes]:
        """The table's rows as PostgreSQL binary COPY data, in blocks of about
        1 MiB. The server sends one message per row; draining them with libpq
        directly (psycopg's documented ``pq`` layer) and joining them costs half
        the CPU of iterating psycopg's Copy object row by row."""
        # xml's binary output drops a document's declaration; text's keeps it,
        # and xml's binary input reads it back (targets take raw copies only of
        # tables without xml arrays: see target.has_xml_arrays).
        xml = set(xml_columns(table))
        condition = (
            sql.SQL("") if where is None else sql.SQL(" WHERE {}").format(filters.where_condition(where))
        )
        query = sql.SQL("COPY (SELECT {} FROM {}{}) TO STDOUT (FORMAT binary)").format(
            sql.SQL(", ").join(
                sql.SQL("{}::text").format(sql.Identifier(c)) if c in xml else sql.Identifier(c)
                for c in columns
            ),
            qualified(table.ref),
            condition,
        )
        with connection.connect(self.config) as conn:
            self._begin(conn)
            pgconn = conn.pgconn
            pgconn.send_query(query.as_bytes(conn))
            started = pgconn.get_result()
            if started is None or started.status != pq.ExecStatus.COPY_OUT:
                message = started.error_message.decode(errors="replace") if started else "no result"
                raise TerminalError(f"table {table.ref}: COPY failed: {' '.join(message.split())}")
            pending: list[bytes] = []
            size = 0
            while True:
                count, data = pgconn.get_copy_data(0)
                if count < 0:
                    break
                pending.append(bytes(data))
                size += count
                if size >= COPY_BLOCK_BYTES:
                    yield b"".join(pending)
                    pending, size = [], 0
            if pending:
                yield b"".join(pending)
            finished = pgconn.get_result()
            while pgconn.get_result() is not None:
                pass
            if count == -2 or finished is None or finished.status != pq.ExecStatus.COMMAND_OK:
                message = pgconn.error_message.decode(errors="replace")
                raise TerminalError(f"table {table.ref}: COPY failed: {' '.join(message.split())}")
            conn.rollback()

    def read_text(self, table: TableSchema, batch_rows: int) -> Iterator[list[tuple[str | None, ...]]]:
        """Rows as output text in key order, in this snapshot (validation)."""

        return read_text_rows(self.config, table, batch_rows, self.snapshot_id)

    def read_text_keys(
        self, table: TableSchema, keys: Sequence[tuple[str | None, ...]], batch_rows: int
    ) -> Iterator[list[tuple[str | None, ...]]]:
        """The rows of ``keys`` (key texts) as output text, in this snapshot (validation during capture)."""

        return read_text_rows(self.config, table, batch_rows, self.snapshot_id, keys)

    def key_range(self, table: TableSchema, column: str) -> tuple[Any, Any] | None:
        """min and max of ``column`` in the snapshot (an index makes both cheap)."""
        query = sql.SQL("SELECT min({c}), max({c}) FROM {t}").format(
            c=sql.Identifier(column), t=qualified(table.ref)
        )
        with connection.connect(self.config) as conn:
            self._begin(conn)
            row = conn.execute(query).fetchone()
            conn.rollback()
        if row is None or row[0] is None:
            return None
        return row[0], row[1]

    def partitions(self, table: TableSchema) -> list[TableRef]:
        """The leaf partitions of a partitioned table (none for a plain one)."""
        query = (
            "SELECT n.nspname, c.relname FROM pg_partition_tree(%s::regclass) p"
            " JOIN pg_class c ON c.oid = p.relid JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE p.isleaf AND p.level > 0 ORDER BY n.nspname, c.relname"
        )
        with connection.connect(self.config) as conn:
            self._begin(conn)
            rows = conn.execute(query, (qualified(table.ref).as_string(conn),)).fetchall()
            conn.rollback()
        return [TableRef(str(schema), str(name)) for schema, name in rows]

    def count(self, table: TableRef) -> int:
        with connection.connect(self.config) as conn:
            self._begin(conn)
            row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(qualified(table))).fetchone()
            conn.rollback()
            assert row is not None
            count: int = row[0]
            return count

    def close(self) -> None:
        if self._holder is not None:
            self._holder.rollback()
            self._holder.close()
            self._holder = None


def select_query(
    table: TableSchema, order_by_key: bool = False, where: sql.Composable | None = None
) -> sql.Composed:
    """SELECT of every column in its in-flight form, then the columns of
    ``_arrow.checks`` (of the rows ``where`` passes); ordered by the primary key
    in code point order (COLLATE "C"), the order validation merges in."""
    items: list[sql.Composable] = [select_list(table)]
    items += checks(table, table.column_names)[0]
    query = sql.SQL("SELECT {} FROM {}").format(sql.SQL(", ").join(items), qualified(table.ref))
    if where is not None:
        query += sql.SQL(" WHERE {}").format(where)
    if order_by_key and table.primary_key:
        keys = []
        for name in table.primary_key:
            key: sql.Composable = sql.Identifier(name)
            kind = table.column(name).type.kind
            if kind is Kind.ENUM:  # by label, as validation compares, not by declaration order
                key = sql.SQL('{}::text COLLATE "C"').format(key)
            elif kind is Kind.TEXT:
                key = sql.SQL('{} COLLATE "C"').format(key)
            keys.append(key)
        query += sql.SQL(" ORDER BY {}").format(sql.SQL(", ").join(keys))
    return query


def read_arrow(
    config: EndpointConfig,
    table: TableSchema,
    batch_rows: int,
    order_by_key: bool = False,
    setup: Sequence[str] = (),
    schema: pa.Schema | None = None,
    reject: Callable[[list[RejectedValue]], None] | None = None,
    where: sql.Composable | None = None,
) -> Iterator[pa.RecordBatch]:
    """Stream a table through ADBC as batches of at most ``batch_rows`` rows with
    the table's Arrow schema (or ``schema``, a compatible one it is cast to), of
    the rows ``where`` passes. ``setup`` runs first in the same transaction. A
    row holding a value the batch cannot carry exactly is left out and handed to
    ``reject``; without ``reject`` it is a DataError."""
    text = select_query(table, order_by_key, where).as_string(None)
    checked = checks(table, table.column_names)[1]
    schema = schema or table.arrow_schema()
    with query_batches(config, text, setup) as reader:
        pending: list[pa.RecordBatch] = []
        pending_rows = 0
        for raw in reader:
            batch, refused = conform(raw, schema, table, checked)
            if refused:
                rejected = [_rejected(table, raw, r) for r in refused]
                if reject is None:
                    raise DataError(rejected[0].reason, column=rejected[0].column)
                reject(rejected)
            pending.append(batch)
            pending_rows += raw.num_rows
            if pending_rows >= batch_rows:
                yield from _rebatch(pending, schema, batch_rows)
                pending, pending_rows = [], 0
        if pending:
            yield from _rebatch(pending, schema, batch_rows)


def _rejected(table: TableSchema, raw: pa.RecordBatch, refusal: Refusal) -> RejectedValue:
    """The apply-exceptions entry of a refused row: its key as read."""
    key: dict[str, str | None] = {}
    for name in table.primary_key:
        scalar = raw.column(table.column_names.index(name))[refusal.row]
        try:
            value = scalar.as_py()
        except (ValueError, OverflowError):  # a date or timestamp Python cannot hold
            value = scalar.cast(pa.string()).as_py()
        key[name] = None if value is None else str(value)
    reason = f"table {table.ref} column {refusal.column!r}: {refusal.reason}"
    return RejectedValue(table.ref, key, refusal.column, refusal.value, reason)


def _rebatch(batches: list[pa.RecordBatch], schema: pa.Schema, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """Batches of at most ``batch_rows`` rows (the task's CommitRate)."""
    table = pa.Table.from_batches(batches, schema=schema)
    yield from table.to_batches(max_chunksize=batch_rows)
