"""SQLite as a source: declared types to conveyor types, rows to Arrow batches."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import pyarrow as pa

from conveyor.connectors.base import EndpointConfig, RejectedValue
from conveyor.core import types as t
from conveyor.core.batch import rejected_row
from conveyor.core.errors import ConfigError, ConnectionFailed, DataError
from conveyor.core.row_filter import ColumnFilter, RowFilter, render_sql
from conveyor.core.schema import Column, TableRef, TableSchema
from conveyor.core.types import ColumnType, Kind

SCHEMA = "main"
# Change capture's own tables (connectors.sqlite.capture): never user tables.
CHANGES_TABLE = "conveyor_changes"
REGISTRY_TABLE = "conveyor_capture"
CONTROL_TABLES = frozenset({CHANGES_TABLE, REGISTRY_TABLE})
_SIZED = re.compile(r"^\s*([A-Za-z ]+?)\s*\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\)\s*$")

# Declared type names SQLite users write, to conveyor kinds. Anything else
# follows SQLite's own affinity rules (https://sqlite.org/datatype3.html).
_NAMED: dict[str, Kind] = {
    "SMALLINT": Kind.INT16,
    "INT2": Kind.INT16,
    "BOOLEAN": Kind.BOOLEAN,
    "BOOL": Kind.BOOLEAN,
    "DATE": Kind.DATE,
    "TIME": Kind.TIME,
    "DATETIME": Kind.TIMESTAMP,
    "TIMESTAMP": Kind.TIMESTAMP,
    "TIMESTAMPTZ": Kind.TIMESTAMPTZ,
    "JSON": Kind.JSON,
    "UUID": Kind.UUID,
    "NUMERIC": Kind.NUMERIC,
    "DECIMAL": Kind.NUMERIC,
}


def from_declared(declared: str) -> ColumnType:
    """The conveyor type of a column declared as ``declared`` in SQLite."""
    name = declared.strip().upper()
    sized = _SIZED.match(name)
    if sized:
        base, first, second = sized.group(1).strip(), int(sized.group(2)), sized.group(3)
        if base in {"DECIMAL", "NUMERIC"} and first <= t.MAX_DECIMAL_PRECISION:
            return t.decimal(first, int(second or 0), native=declared)
        if "CHAR" in base:
            return t.varchar(first, native=declared)
        name = base
    if name in _NAMED:
        return t.simple(_NAMED[name], native=declared)
    if "INT" in name:
        return t.simple(Kind.INT64, native=declared)
    if any(word in name for word in ("CHAR", "CLOB", "TEXT")):
        return t.simple(Kind.TEXT, native=declared)
    if name == "" or "BLOB" in name:
        return t.simple(Kind.BYTES, native=declared)
    if any(word in name for word in ("REAL", "FLOA", "DOUB")):
        return t.simple(Kind.FLOAT64, native=declared)
    return t.simple(Kind.NUMERIC, native=declared)


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class SQLiteSource:
    engine = "sqlite"

    def __init__(self, config: EndpointConfig) -> None:
        if not config.path:
            raise ConfigError(f"endpoint {config.name!r}: a sqlite endpoint needs a path")
        self.config = config
        self.path = Path(config.path)

    def _connect(self) -> sqlite3.Connection:
        if not self.path.is_file():
            raise ConnectionFailed(f"endpoint {self.config.name!r}: no SQLite database at {self.path}")
        try:
            conn = sqlite3.connect(
                f"{self.path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False
            )
            conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()
        except sqlite3.DatabaseError as exc:
            raise ConnectionFailed(
                f"endpoint {self.config.name!r}: {self.path} is not an SQLite database: {exc}"
            ) from None
        return conn

    def check(self) -> str:
        with closing(self._connect()) as conn:
            return "SQLite " + str(conn.execute("SELECT sqlite_version()").fetchone()[0])

    def tables(self) -> list[TableSchema]:
        with closing(self._connect()) as conn:
            return [self._describe(conn, name) for name in table_names(conn)]

    def _describe(self, conn: sqlite3.Connection, name: str) -> TableSchema:
        return describe(conn, name)

    def snapshot(self) -> SQLiteSnapshot:
        return SQLiteSnapshot(self._connect())

    def close(self) -> None:
        pass


_PUSHED = frozenset({Kind.INT16, Kind.INT32, Kind.INT64, Kind.FLOAT64, Kind.TEXT})


class SQLiteSnapshot:
    """One read transaction: SQLite gives every statement in it the same view."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._conn.execute("BEGIN")
        self._rejected: dict[TableRef, list[RejectedValue]] = {}

    def pushes_down(self, table: TableSchema, where: RowFilter) -> bool:
        """Integer, double and text columns compare in SQL as in Python (text
        with the BINARY collation); others are filtered after reading."""
        return all(f.kind in _PUSHED for f in where.columns)

    def read_where(
        self, table: TableSchema, batch_rows: int, where: RowFilter, order_by_key: bool = False
    ) -> Iterator[pa.RecordBatch]:
        return self.read(table, batch_rows, order_by_key, where)

    def read(
        self, table: TableSchema, batch_rows: int, order_by_key: bool = False, where: RowFilter | None = None
    ) -> Iterator[pa.RecordBatch]:
        cols = ", ".join(quote(c) for c in table.column_names)
        query = f"SELECT {cols} FROM {quote(table.ref.name)}"
        params: list[Any] = []
        if where is not None:

            def literal(value: Any, kind: Kind) -> str:
                params.append(value)
                return "?"

            def column(f: ColumnFilter) -> str:
                return f"{quote(f.column)} COLLATE BINARY" if f.kind is Kind.TEXT else quote(f.column)

            query += " WHERE " + render_sql(where, column, literal)
        if order_by_key and table.primary_key:
            query += " ORDER BY " + ", ".join(quote(k) for k in table.primary_key)
        schema = table.arrow_schema()
        cursor = self._conn.execute(query, params)
        if where is None:
            self._rejected[table.ref] = []
        try:
            while rows := cursor.fetchmany(batch_rows):
                try:
                    arrays = _arrays(table, rows)
                except DataError:
                    carried = self._keep_carried(table, rows)
                    if not carried:
                        continue
                    arrays = _arrays(table, carried)
                yield pa.RecordBatch.from_arrays(arrays, schema=schema)
        finally:
            cursor.close()

    def _keep_carried(self, table: TableSchema, rows: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """The rows every value of which converts; the others are kept for
        ``rejections`` (the full load logs them per DataErrorPolicy)."""
        kept = []
        for row in rows:
            try:
                _arrays(table, [row])
            except DataError as exc:
                self._rejected.setdefault(table.ref, []).append(rejected_row(table, row, exc, repr))
                continue
            kept.append(row)
        return kept

    def rejections(self, ref: TableRef) -> list[RejectedValue]:
        """The rows of table ``ref`` its last read left out: a value its column's
        type cannot hold (SQLite's dynamic typing), for the exceptions table."""
        return list(self._rejected.get(ref, []))

    def forget_rejections(self, ref: TableRef) -> None:
        self._rejected.pop(ref, None)

    def count(self, table: TableRef) -> int:
        row = self._conn.execute(f"SELECT count(*) FROM {quote(table.name)}").fetchone()
        return int(row[0])

    def close(self) -> None:
        self._conn.rollback()
        self._conn.close()


def table_names(conn: sqlite3.Connection) -> list[str]:
    """The user tables of the database, by name (not SQLite's nor capture's own)."""
    return [
        r[0]
        for r in conn.execute(
            "SELECT name FROM sqlite_schema WHERE type = 'table' "
            "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name"
        )
        if r[0] not in CONTROL_TABLES
    ]


def describe(conn: sqlite3.Connection, name: str) -> TableSchema:
    """The schema of table ``name`` as ``SQLiteSource.tables`` lists it."""
    info = conn.execute('SELECT name, type, "notnull", pk FROM pragma_table_info(?)', (name,)).fetchall()
    columns = tuple(Column(c[0], from_declared(c[1]), nullable=not c[2] and not c[3]) for c in info)
    key = tuple(c[0] for c in sorted((c for c in info if c[3]), key=lambda c: c[3]))
    return TableSchema(TableRef(SCHEMA, name), columns, key)


def to_python(table: TableSchema, column: Column, values: Sequence[Any]) -> list[Any]:
    """One column's raw SQLite values as conveyor's in-flight Python values,
    converted exactly as the full load converts them (raises the same DataError)."""
    return list(_to_arrow(table, column, values).to_pylist())


def _arrays(table: TableSchema, rows: Sequence[tuple[Any, ...]]) -> list[pa.Array]:
    columns = list(zip(*rows, strict=True))
    return [_to_arrow(table, col, values) for col, values in zip(table.columns, columns, strict=True)]


def _to_arrow(table: TableSchema, column: Column, values: Sequence[Any]) -> pa.Array:
    kind = column.type.kind
    target = column.type.arrow()
    try:
        if kind is Kind.DECIMAL:
            return pa.array([None if v is None else _decimal(v) for v in values], type=target)
        if kind is Kind.NUMERIC:
            return pa.array([None if v is None else str(_decimal(v)) for v in values], type=target)
        if kind in {Kind.DATE, Kind.TIME, Kind.TIMESTAMP, Kind.TIMESTAMPTZ}:
            return pa.array(values, type=pa.string()).cast(target)
        if kind is Kind.BOOLEAN:
            # SQLite stores booleans as 0 and 1; any other value is not a boolean.
            return pa.array([None if v is None else _boolean(v) for v in values], type=target)
        if kind is Kind.BYTES:
            return pa.array([v.encode() if isinstance(v, str) else v for v in values], type=target)
        if kind in _INTEGERS and any(type(v) is float for v in values):
            # A REAL in an INTEGER column (SQLite keeps 1.5 as 1.5): Arrow would truncate it.
            raise pa.ArrowInvalid(
                f"{next(v for v in values if type(v) is float)!r} is a real, not an integer"
            )
        return pa.array(values, type=target)
    except (pa.ArrowInvalid, pa.ArrowTypeError, InvalidOperation, OverflowError) as exc:
        raise DataError(
            f"table {table.ref}: column {column.name!r} ({column.type.native}) holds a value that is not "
            f"{column.type.describe()}: {exc}",
            column=column.name,
        ) from None


_INTEGERS = frozenset({Kind.INT16, Kind.INT32, Kind.INT64})


def _boolean(value: Any) -> bool:
    if value in (0, 1) and not isinstance(value, float | str):
        return bool(value)
    raise pa.ArrowInvalid(f"{value!r} is not 0 or 1")


def _decimal(value: Any) -> Decimal:
    return Decimal(str(value)) if isinstance(value, float) else Decimal(value)
