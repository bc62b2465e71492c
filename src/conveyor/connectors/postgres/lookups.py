"""Looking values up from a PostgreSQL source by primary key, for the columns
pgoutput does not carry exactly (``LooksUpValues``): generated columns, which
it does not send (before PostgreSQL 18), and xml, whose output form drops a
document's XML declaration.

One statement per table per apply batch (in chunks of ``CHUNK_KEYS`` keys),
on an ordinary connection of the applier's thread. Values are read in text
form and converted by the stream's own converters, so a looked-up value is
the in-flight value the stream would have given: xml as ``xml::text``
(``text[]`` for an array), which keeps the declaration, everything else as
its output text, which is what pgoutput sends.

pgoutput (protocol v1) sends a transaction only once it committed, and the
lookup runs after its changes were read, so a key not found is a row the
source deleted (or re-keyed) since: the change that did it follows in the stream.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import psycopg
import psycopg.errors
from psycopg import sql

from conveyor.connectors.base import EndpointConfig
from conveyor.connectors.postgres import connection
from conveyor.connectors.postgres.names import qualified
from conveyor.connectors.postgres.text_values import converter
from conveyor.connectors.postgres.types import array_dims
from conveyor.connectors.postgres.user_types import xml_columns
from conveyor.core.errors import ConnectionFailed, DataError
from conveyor.core.schema import TableSchema

CHUNK_KEYS = 1000

_TYPES_SQL = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod)
FROM pg_attribute a
WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
"""


def lookup_columns(table: TableSchema) -> tuple[str, ...]:
    """The columns of a captured table pgoutput does not carry exactly:
    generated ones (those the capture's shape holds) and xml ones. None
    without a primary key to look them up by."""
    if not table.primary_key:
        return ()
    xml = set(xml_columns(table))
    return tuple(c.name for c in table.columns if c.generated is not None or c.name in xml)


class SourceLookups:
    """The lookups of one change stream: a connection opened on first use
    (reopened once when the source restarted) and each table's statement."""

    def __init__(self, config: EndpointConfig) -> None:
        self.config = config
        self._conn: psycopg.Connection[Any] | None = None
        self._lock = threading.Lock()
        self._key_types: dict[tuple[Any, ...], list[str]] = {}

    def look_up(
        self, table: TableSchema, columns: Sequence[str], keys: Sequence[tuple[Any, ...]]
    ) -> dict[tuple[Any, ...], dict[str, Any]]:
        if not keys or not columns:
            return {}
        with self._lock:
            try:
                return self._look_up(table, columns, keys)
            except psycopg.errors.UndefinedTable:
                # Dropped since: every row is gone (the drop follows in the stream).
                self.close()
                return {}
            except psycopg.errors.UndefinedColumn as exc:
                self.close()
                raise DataError(
                    f"table {table.ref}: the values of {', '.join(columns)} are looked up from the "
                    f"source by key, which failed: {' '.join(str(exc).split())} (a column dropped or "
                    "renamed on the source since); reload the table"
                ) from None
            except psycopg.OperationalError:
                self.close()  # the source restarted: once more on a new connection
                try:
                    return self._look_up(table, columns, keys)
                except psycopg.OperationalError as exc:
                    raise ConnectionFailed(
                        f"looking up values of {table.ref} on {self.config.name!r}: {exc}"
                    ) from None

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = connection.connect(self.config, autocommit=True)
        return self._conn

    def _look_up(
        self, table: TableSchema, columns: Sequence[str], keys: Sequence[tuple[Any, ...]]
    ) -> dict[tuple[Any, ...], dict[str, Any]]:
        conn = self._connection()
        key_names = table.primary_key
        key_types = self._types(conn, table)
        xml = set(xml_columns(table))
        selected: list[sql.Composable] = [sql.Identifier(k) for k in key_names]
        for name in columns:
            if name in xml:
                cast = "text[]" if array_dims(table.column(name).type) else "text"
                selected.append(sql.SQL("{}::" + cast).format(sql.Identifier(name)))
            else:
                selected.append(sql.Identifier(name))
        read_key = [converter(table.column(k).type) for k in key_names]
        read_value = [converter(table.column(c).type) for c in columns]
        encoding = conn.info.encoding
        one_key = sql.SQL("({})").format(sql.SQL(", ").join(sql.SQL("%s::" + t) for t in key_types))
        found: dict[tuple[Any, ...], dict[str, Any]] = {}
        for start in range(0, len(keys), CHUNK_KEYS):
            chunk = keys[start : start + CHUNK_KEYS]
            query = sql.SQL("SELECT {} FROM {} WHERE ({}) IN (VALUES {})").format(
                sql.SQL(", ").join(selected),
                qualified(table.ref),
                sql.SQL(", ").join(sql.Identifier(k) for k in key_names),
                sql.SQL(", ").join([one_key] * len(chunk)),
            )
            cur = conn.cursor()
            cur.execute(query, [v for key in chunk for v in key])
            result = cur.pgresult
            assert result is not None
            width = len(key_names)
            for row in range(result.ntuples):
                raw = [result.get_value(row, i) for i in range(result.nfields)]
                key = tuple(
                    None if v is None else read(v.decode(encoding))
                    for read, v in zip(read_key, raw[:width], strict=True)
                )
                found[key] = {
                    name: None if v is None else read(v.decode(encoding))
                    for name, read, v in zip(columns, read_value, raw[width:], strict=True)
                }
            cur.close()
        return found

    def _types(self, conn: psycopg.Connection[Any], table: TableSchema) -> list[str]:
        """The key columns' types as the catalog spells them (the keys' casts)."""
        cache_key = (table.ref, table.primary_key)
        types = self._key_types.get(cache_key)
        if types is None:
            rows = dict(conn.execute(_TYPES_SQL, (qualified(table.ref).as_string(conn),)).fetchall())
            types = self._key_types[cache_key] = [str(rows[k]) for k in table.primary_key]
        return types

    def close(self) -> None:
        if self._conn is not None and not self._conn.closed:
            self._conn.close()
        self._conn = None
