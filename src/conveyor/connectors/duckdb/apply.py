"""Applying change batches to a DuckDB warehouse, set-based over Arrow.

Per table: one ``DELETE ... USING`` of the deleted and replaced keys, one
``INSERT ... SELECT`` of the final rows and one ``UPDATE ... FROM`` per group of
partial updates, each reading a registered Arrow batch; the task's checkpoint
is written in the same transaction, and so are the changes the runner took
out because DuckDB would refuse them (``screen_changes``: the checks of the
full load, ``screen.py``), in ``awsdms_apply_exceptions``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import duckdb
import pyarrow as pa

from conveyor.connectors.arrow_rows import printable
from conveyor.connectors.base import EndpointConfig, RefusedRow, RejectedValue
from conveyor.connectors.duckdb.conflict_counts import forget_counts, read_counts, write_counts
from conveyor.connectors.duckdb.connection import connect, memory_limit, out_of_memory
from conveyor.connectors.duckdb.exceptions import create_exceptions_table, insert_rejections
from conveyor.connectors.duckdb.memory import memory_limit_of
from conveyor.connectors.duckdb.names import IDENTIFIER_RULE, fold_identifier, qualified, quote
from conveyor.connectors.duckdb.screen import REFUSALS, BatchScreen, Probe, private_database
from conveyor.connectors.duckdb.target import create_table_sql, table_sql
from conveyor.connectors.duckdb.types import to_ddl
from conveyor.core.batch import ChangeBatch, Checkpoint, KeyChecks
from conveyor.core.errors import ConfigError, DataError
from conveyor.core.schema import TableRef, TableSchema

CHECKPOINTS = "main.conveyor_checkpoints"


def _key_match(table: TableSchema, left: str, right: str) -> str:
    return " AND ".join(f"{left}.{quote(k)} = {right}.{quote(k)}" for k in table.primary_key)


class DuckDBApplier:
    identifier_rule = IDENTIFIER_RULE

    def fold_identifier(self, name: str) -> str:
        return fold_identifier(name)

    def __init__(self, config: EndpointConfig) -> None:
        if not config.path:
            raise ConfigError(f"endpoint {config.name!r}: a duckdb endpoint needs a path")
        self.config = config
        self._conn: duckdb.DuckDBPyConnection | None = None
        self._checker: duckdb.DuckDBPyConnection | None = None
        self._screens: dict[tuple[TableSchema, tuple[str, ...]], BatchScreen] = {}
        self._probes: dict[TableSchema, Probe] = {}

    def _connection(self) -> duckdb.DuckDBPyConnection:
        if self._conn is None:
            self._conn = connect(self.config)
            self._conn.execute(
                f"CREATE TABLE IF NOT EXISTS {CHECKPOINTS} (task_name VARCHAR PRIMARY KEY, "
                "position JSON NOT NULL, updated_at TIMESTAMPTZ NOT NULL)"
            )
            create_exceptions_table(self._conn, self.config)
        return self._conn

    def screen_changes(self, changes: ChangeBatch, thorough: bool) -> tuple[ChangeBatch, list[RejectedValue]]:
        """Upserts and partial updates without the rows DuckDB would refuse
        (deletes carry only keys the table has). ``thorough`` also tries the
        whole rows on an empty copy of the table. Rows capture could not hold
        exactly (``unrepresentable``, already out of the Arrow batches) are
        refused with them."""
        # Rows of a group share its key: no row is unique by it.
        table = replace(changes.table, primary_key=()) if changes.key_is_group else changes.table
        rejected = [replace(r, reason=f"table {table.ref}: {r.reason}") for r in changes.unrepresentable]
        upserts = changes.upserts
        if upserts.num_rows:
            upserts, refused = self._screen_rows(table, upserts, thorough)
            rejected += refused
        partial: dict[frozenset[str], pa.RecordBatch] = {}
        for unchanged, rows in changes.partial.items():
            kept, refused = self._screen_rows(table, rows, False)
            rejected += refused
            if kept.num_rows:
                partial[unchanged] = kept
        if not rejected:
            return changes, []
        return replace(changes, upserts=upserts, partial=partial, unrepresentable=()), rejected

    def _screen_rows(
        self, table: TableSchema, batch: pa.RecordBatch, thorough: bool
    ) -> tuple[pa.RecordBatch, list[RejectedValue]]:
        refused = self._screen(table, batch.schema.names).refusals(batch)
        if thorough:
            out = {r.row for r in refused}
            kept = [i for i in range(batch.num_rows) if i not in out]
            found = self._probe(table).refusals(batch.take(kept)) if kept else []
            refused += [RefusedRow(kept[r.row], r.column, r.reason) for r in found]
        if not refused:
            return batch, []
        out = {r.row for r in refused}
        rejected = [
            RejectedValue(
                table=table.ref,
                key={k: _cell(batch, k, r.row) for k in table.primary_key},
                column=r.column,
                value=_cell(batch, r.column, r.row) if r.column else None,
                reason=f"table {table.ref}: {r.reason}",
            )
            for r in refused
        ]
        return batch.filter(pa.array([i not in out for i in range(batch.num_rows)])), rejected

    def _screen(self, table: TableSchema, columns: list[str]) -> BatchScreen:
        key = (table, tuple(columns))
        screen = self._screens.get(key)
        if screen is None:
            part = TableSchema(
                table.ref,
                tuple(table.column(c) for c in columns),
                tuple(k for k in table.primary_key if k in columns),
            )
            screen = self._screens[key] = BatchScreen(part, part, self._private())
        return screen

    def _probe(self, table: TableSchema) -> Probe:
        probe = self._probes.get(table)
        if probe is None:
            create = [*table_sql(self._connection(), table.ref), create_table_sql(table)]
            probe = self._probes[table] = Probe(self._private(), table.ref, create, table.column_names)
        return probe

    def _private(self) -> duckdb.DuckDBPyConnection:
        if self._checker is None:
            self._checker = private_database()
        return self._checker

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

    def apply_changes(self, task: str, changes: Sequence[ChangeBatch], checkpoint: Checkpoint) -> None:
        conn = self._connection()
        # The whole memory_limit, even while a table's reload streams its rows.
        with memory_limit_of(self.config.path or ":memory:", memory_limit(self.config)).busy(conn):
            self._apply_changes(conn, task, changes, checkpoint)

    def _apply_changes(
        self,
        conn: duckdb.DuckDBPyConnection,
        task: str,
        changes: Sequence[ChangeBatch],
        checkpoint: Checkpoint,
    ) -> None:
        conn.execute("BEGIN TRANSACTION")
        try:
            for table_changes in changes:
                self._apply_table(conn, table_changes)
                insert_rejections(conn, self.config, task, table_changes.rejected)
            write_counts(conn, task, changes)
            conn.execute(
                f"INSERT OR REPLACE INTO {CHECKPOINTS} VALUES (?, ?, now())",
                [task, json.dumps({"engine": checkpoint.engine, "position": checkpoint.position})],
            )
            conn.execute("COMMIT")
        except REFUSALS as exc:
            conn.execute("ROLLBACK")
            raise DataError(f"applying changes: {exc}") from None
        except duckdb.OutOfMemoryException as exc:
            with contextlib.suppress(duckdb.Error):
                conn.execute("ROLLBACK")
            raise out_of_memory(memory_limit(self.config), exc) from None
        except BaseException:
            with contextlib.suppress(duckdb.Error):
                conn.execute("ROLLBACK")
            raise

    def find_conflicts(self, changes: Sequence[ChangeBatch]) -> dict[TableRef, list[int]]:
        """The batch's keys the target contradicts (``FindsConflicts``): one
        query per table over the registered keys."""
        conn = self._connection()
        found: dict[TableRef, list[int]] = {}
        for table_changes in changes:
            checks, table = table_changes.checks, table_changes.table
            if checks is None:
                continue
            row, present = quote(KeyChecks.ROW), quote(KeyChecks.PRESENT)
            with _registered(conn, "conveyor_checks", checks.staged()):
                rows = conn.execute(
                    f"SELECT k.{row} FROM conveyor_checks AS k WHERE EXISTS (SELECT 1 FROM "
                    f"{qualified(table.ref)} AS t WHERE {_key_match(table, 't', 'k')}) <> k.{present} "
                    "ORDER BY 1"
                ).fetchall()
            if rows:
                found[table.ref] = [int(r[0]) for r in rows]
        return found

    def conflict_counts(self, task: str) -> dict[TableRef, int]:
        return read_counts(self._connection(), task)

    def forget_conflicts(self, task: str, table: TableRef | None = None) -> None:
        forget_counts(self._connection(), task, table)

    def _apply_table(self, conn: duckdb.DuckDBPyConnection, changes: ChangeBatch) -> None:
        table = changes.table
        changes.refuse_unrepresentable()  # screened out before, unless called unscreened
        target = qualified(table.ref)
        if changes.truncate:
            conn.execute(f"DELETE FROM {target}")
        keys = [changes.deletes]
        if table.primary_key:
            keys.append(changes.upserts.select(list(table.primary_key)))
        if any(k.num_rows for k in keys):
            with _registered(conn, "conveyor_keys", pa.Table.from_batches(keys)):
                conn.execute(
                    f"DELETE FROM {target} AS t USING conveyor_keys AS k WHERE {_key_match(table, 't', 'k')}"
                )
        if changes.upserts.num_rows:
            with _registered(conn, "conveyor_rows", changes.upserts):
                cols = ", ".join(quote(c) for c in table.column_names)
                conn.execute(f"INSERT INTO {target} ({cols}) SELECT {cols} FROM conveyor_rows")
        for rows in changes.partial.values():
            updates = [c for c in rows.schema.names if c not in table.primary_key]
            if not updates:
                continue
            with _registered(conn, "conveyor_partial", rows):
                assignments = ", ".join(f"{quote(c)} = p.{quote(c)}" for c in updates)
                conn.execute(
                    f"UPDATE {target} AS t SET {assignments} FROM conveyor_partial AS p "
                    f"WHERE {_key_match(table, 't', 'p')}"
                )

    def add_columns(self, table: TableSchema, columns: Sequence[str]) -> None:
        self._forget_shapes()
        conn = self._connection()
        for name in columns:
            ddl = to_ddl(table.column(name).type)
            conn.execute(f"ALTER TABLE {qualified(table.ref)} ADD COLUMN IF NOT EXISTS {quote(name)} {ddl}")

    def drop_columns(self, table: TableSchema, columns: Sequence[str]) -> None:
        self._forget_shapes()
        conn = self._connection()
        for name in columns:
            conn.execute(f"ALTER TABLE {qualified(table.ref)} DROP COLUMN IF EXISTS {quote(name)}")

    def _forget_shapes(self) -> None:
        """Tables change shape: screens and probes are made again."""
        self._screens.clear()
        self._probes.clear()

    def rename_column(self, table: TableSchema, old: str, new: str) -> None:
        self._forget_shapes()
        conn = self._connection()
        conn.execute(f"ALTER TABLE {qualified(table.ref)} RENAME COLUMN {quote(old)} TO {quote(new)}")

    def drop_table(self, table: TableSchema) -> None:
        self._forget_shapes()
        self._connection().execute(f"DROP TABLE IF EXISTS {qualified(table.ref)}")

    def forget_shapes(self) -> None:
        self._forget_shapes()

    def close(self) -> None:
        self._forget_shapes()
        if self._checker is not None:
            self._checker.close()
            self._checker = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None


@contextlib.contextmanager
def _registered(conn: duckdb.DuckDBPyConnection, name: str, batch: pa.RecordBatch | pa.Table) -> Any:
    conn.register(name, batch)
    try:
        yield
    finally:
        with contextlib.suppress(duckdb.Error):
            conn.unregister(name)


def _cell(batch: pa.RecordBatch, column: str, row: int) -> str | None:
    """A value of ``batch`` as the apply-exceptions table shows it."""
    scalar = batch.column(column)[row]
    try:
        return printable(scalar.as_py())
    except (ValueError, OverflowError):  # past Python's range (an infinite timestamp's sentinel)
        return printable(getattr(scalar, "value", None))  # the raw days or microseconds
