"""Applying change batches to a DuckDB warehouse, set-based over Arrow.

Per table: one ``DELETE ... USING`` of the deleted and replaced keys, one
``INSERT ... SELECT`` of the final rows and one ``UPDATE ... FROM`` per group of
partial updates, each reading a registered Arrow batch; the task's checkpoint
is written in the same transaction.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from typing import Any

import duckdb
import pyarrow as pa

from conveyor.connectors.arrow_rows import rows_to_batch
from conveyor.connectors.base import EndpointConfig
from conveyor.connectors.changes import TableChanges
from conveyor.connectors.duckdb.target import connect, qualified, quote, to_ddl
from conveyor.core.batch import Checkpoint
from conveyor.core.errors import ConfigError, DataError
from conveyor.core.schema import TableSchema

CHECKPOINTS = "main.conveyor_checkpoints"


def _key_match(table: TableSchema, left: str, right: str) -> str:
    return " AND ".join(f"{left}.{quote(k)} = {right}.{quote(k)}" for k in table.primary_key)


class DuckDBApplier:
    def __init__(self, config: EndpointConfig) -> None:
        if not config.path:
            raise ConfigError(f"endpoint {config.name!r}: a duckdb endpoint needs a path")
        self.config = config
        self._conn: duckdb.DuckDBPyConnection | None = None

    def _connection(self) -> duckdb.DuckDBPyConnection:
        if self._conn is None:
            self._conn = connect(self.config)
            self._conn.execute(
                f"CREATE TABLE IF NOT EXISTS {CHECKPOINTS} (task_name VARCHAR PRIMARY KEY, "
                "position JSON NOT NULL, updated_at TIMESTAMPTZ NOT NULL)"
            )
        return self._conn

    def read_checkpoint(self, task: str) -> Checkpoint | None:
        row = (
            self._connection()
            .execute(f"SELECT position FROM {CHECKPOINTS} WHERE task_name = ?", [task])
            .fetchone()
        )
        if row is None:
            return None
        document = json.loads(row[0])
        return Checkpoint(document["engine"], document["position"])

    def apply_changes(self, task: str, changes: Sequence[TableChanges], checkpoint: Checkpoint) -> None:
        conn = self._connection()
        conn.execute("BEGIN TRANSACTION")
        try:
            for table_changes in changes:
                self._apply_table(conn, table_changes)
            conn.execute(
                f"INSERT OR REPLACE INTO {CHECKPOINTS} VALUES (?, ?, now())",
                [task, json.dumps({"engine": checkpoint.engine, "position": checkpoint.position})],
            )
            conn.execute("COMMIT")
        except (duckdb.ConstraintException, duckdb.ConversionException) as exc:
            conn.execute("ROLLBACK")
            raise DataError(f"applying changes: {exc}") from None
        except BaseException:
            with contextlib.suppress(duckdb.Error):
                conn.execute("ROLLBACK")
            raise

    def _apply_table(self, conn: duckdb.DuckDBPyConnection, changes: TableChanges) -> None:
        table = changes.table
        target = qualified(table.ref)
        if changes.truncate:
            conn.execute(f"DELETE FROM {target}")
        keyed = [*changes.deletes, *(changes.upserts if table.primary_key else ())]
        if keyed:
            with _registered(conn, "conveyor_keys", rows_to_batch(table, keyed, table.primary_key)):
                conn.execute(
                    f"DELETE FROM {target} AS t USING conveyor_keys AS k WHERE {_key_match(table, 't', 'k')}"
                )
        if changes.upserts:
            batch = rows_to_batch(table, changes.upserts, table.column_names)
            with _registered(conn, "conveyor_rows", batch):
                cols = ", ".join(quote(c) for c in table.column_names)
                conn.execute(f"INSERT INTO {target} ({cols}) SELECT {cols} FROM conveyor_rows")
        for unchanged, rows in changes.partial.items():
            present = [c for c in table.column_names if c not in unchanged]
            updates = [c for c in present if c not in table.primary_key]
            if not updates:
                continue
            with _registered(conn, "conveyor_partial", rows_to_batch(table, rows, present)):
                assignments = ", ".join(f"{quote(c)} = p.{quote(c)}" for c in updates)
                conn.execute(
                    f"UPDATE {target} AS t SET {assignments} FROM conveyor_partial AS p "
                    f"WHERE {_key_match(table, 't', 'p')}"
                )

    def add_columns(self, table: TableSchema, columns: Sequence[str]) -> None:
        conn = self._connection()
        for name in columns:
            ddl = to_ddl(table.column(name).type)
            conn.execute(f"ALTER TABLE {qualified(table.ref)} ADD COLUMN IF NOT EXISTS {quote(name)} {ddl}")

    def drop_columns(self, table: TableSchema, columns: Sequence[str]) -> None:
        conn = self._connection()
        for name in columns:
            conn.execute(f"ALTER TABLE {qualified(table.ref)} DROP COLUMN IF EXISTS {quote(name)}")

    def rename_column(self, table: TableSchema, old: str, new: str) -> None:
        conn = self._connection()
        conn.execute(f"ALTER TABLE {qualified(table.ref)} RENAME COLUMN {quote(old)} TO {quote(new)}")

    def drop_table(self, table: TableSchema) -> None:
        self._connection().execute(f"DROP TABLE IF EXISTS {qualified(table.ref)}")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


@contextlib.contextmanager
def _registered(conn: duckdb.DuckDBPyConnection, name: str, batch: pa.RecordBatch) -> Any:
    conn.register(name, batch)
    try:
        yield
    finally:
        with contextlib.suppress(duckdb.Error):
            conn.unregister(name)
