"""The control tables' connection to a PostgreSQL target (``replication.control_tables``
writes the rows): one autocommit connection, each group of statements in one
transaction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from conveyor.connectors.base import EndpointConfig
from conveyor.connectors.postgres import connection

DEFAULT_SCHEMA = "public"


class PostgresControlTables:
    default_schema = DEFAULT_SCHEMA

    def __init__(self, config: EndpointConfig) -> None:
        self.config = config
        self._conn: psycopg.Connection[Any] | None = None

    def run(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> None:
        """Run ``statements`` (``?`` placeholders) in one transaction."""
        try:
            if self._conn is None or self._conn.closed:
                self._conn = connection.connect(self.config, autocommit=True)
            with self._conn.transaction():
                for statement, params in statements:
                    self._conn.execute(statement.replace("?", "%s"), list(params))
        except psycopg.Error as exc:
            if self._conn is not None and self._conn.broken:
                self._conn = None
            raise connection.failure("control tables", exc) from None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
