"""The control tables' connection to a DuckDB target (``replication.control_tables``
writes the rows): its own connection to the file (the process's one database
instance, as every connection of Conveyor's), each group of statements in one
transaction."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import duckdb

from conveyor.connectors.base import EndpointConfig
from conveyor.connectors.duckdb.connection import connect
from conveyor.core.errors import TerminalError

DEFAULT_SCHEMA = "main"


class DuckDBControlTables:
    default_schema = DEFAULT_SCHEMA

    def __init__(self, config: EndpointConfig) -> None:
        self.config = config
        self._conn: duckdb.DuckDBPyConnection | None = None

    def run(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> None:
        """Run ``statements`` (``?`` placeholders) in one transaction."""
        if self._conn is None:
            self._conn = connect(self.config)
        cursor = self._conn.cursor()
        try:
            cursor.begin()
            for statement, params in statements:
                cursor.execute(statement, list(params))
            cursor.commit()
        except duckdb.Error as exc:
            with contextlib.suppress(duckdb.Error):
                cursor.rollback()
            raise TerminalError(f"control tables: {exc}") from None
        finally:
            cursor.close()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
