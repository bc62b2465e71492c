"""Applying change batches to a PostgreSQL target, set-based.

Per table: the keys of deleted rows are copied into a temporary table and
deleted with one ``DELETE ... USING``; final rows are copied into a temporary
table and upserted with one ``INSERT ... ON CONFLICT`` (or, without a unique
index on the key, deleted by key and inserted); partial updates (unchanged
TOASTed values) go through a temporary table and one ``UPDATE ... FROM``. The
task's checkpoint is written in the same transaction, so the target either has
a batch and its position or neither.

Rows a PostgreSQL stream encoded as COPY text lines (copy_lines.py) are copied
as they are, for tables whose columns have exactly the source's types.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any, TypeVar

import psycopg
import pyarrow as pa
from psycopg import sql

from conveyor.connectors.base import EndpointConfig, RejectedValue
from conveyor.connectors.postgres import connection
from conveyor.connectors.postgres.apply_refusals import refused_rows
from conveyor.connectors.postgres.conflict_counts import forget_counts, read_counts, write_counts
from conveyor.connectors.postgres.copy_lines import encoded_format
from conveyor.connectors.postgres.copy_text import encode_batch
from conveyor.connectors.postgres.names import qualified
from conveyor.connectors.postgres.target import (
    ENGINE,
    column_ddl,
    create_native_type,
    describe_table,
    insert_rejections,
    long_name,
    refused_at,
)
from conveyor.core.batch import ChangeBatch, Checkpoint, KeyChecks
from conveyor.core.errors import DataError, TransientError
from conveyor.core.schema import Column, TableRef, TableSchema

# Types whose text means something else on another server (money follows
# lc_monetary; the reg* types name catalog objects): never passed through.
UNPORTABLE_TEXT = frozenset(
    {
        "money",
        "regclass",
        "regcollation",
        "regconfig",
        "regdictionary",
        "regnamespace",
        "regoper",
        "regoperator",
        "regproc",
        "regprocedure",
        "regrole",
        "regtype",
    }
)
_T = TypeVar("_T")
CONTROL_SCHEMA = "public"
CHECKPOINTS = "conveyor_checkpoints"


def _joined(names: Sequence[str]) -> sql.Composed:
    return sql.SQL(", ").join(map(sql.Identifier, names))


def _key_match(table: TableSchema, left: str, right: str) -> sql.Composed:
    return sql.SQL(" AND ").join(
        sql.SQL("{}.{} = {}.{}").format(
            sql.Identifier(left), sql.Identifier(k), sql.Identifier(right), sql.Identifier(k)
        )
        for k in table.primary_key
    )


class PostgresApplier:
    """Holds one connection for the task's change batches."""

    def __init__(self, config: EndpointConfig) -> None:
        self.config = config
        self._conn: psycopg.Connection[Any] | None = None
        self._unique_key: dict[tuple[TableRef, tuple[str, ...]], bool] = {}
        # Staging tables of this connection's session, kept from batch to batch
        # (creating and dropping them per batch costs time and bloats the catalog).
        self._staging: dict[tuple[TableRef, str, tuple[str, ...]], sql.Identifier] = {}
        self._staging_serial = 0

    def refused_name(self, kind: str, name: str) -> str | None:
        return long_name(kind, name)

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._staging.clear()
            self._conn = connection.connect(self.config)
            self._ensure_control_table(self._conn)
        return self._conn

    def _ensure_control_table(self, conn: psycopg.Connection[Any]) -> None:
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {}.{} (task_name text PRIMARY KEY, position jsonb NOT NULL, "
                "updated_at timestamptz NOT NULL DEFAULT now())"
            ).format(sql.Identifier(CONTROL_SCHEMA), sql.Identifier(CHECKPOINTS))
        )
        conn.commit()

    def read_checkpoint(self, task: str) -> Checkpoint | None:
        conn = self._connection()
        row = conn.execute(
            sql.SQL("SELECT position FROM {}.{} WHERE task_name = %s").format(
                sql.Identifier(CONTROL_SCHEMA), sql.Identifier(CHECKPOINTS)
            ),
            (task,),
        ).fetchone()
        conn.commit()
        if row is None:
            return None
        document = row[0]
        return Checkpoint(document["engine"], document["position"])

    def accepts_encoded(self, table: TableSchema, encoded_format_: str) -> bool:
        """Lines of pgoutput's text go in as they are when the target table has
        every column of ``table`` with the very same type (as a table this
        engine created from the same source has) and the connection's encoding
        is the lines' encoding."""
        if table.native_engine != ENGINE:
            return False
        try:
            conn = self._connection()
            if encoded_format_ != encoded_format(conn.info.encoding):
                return False
            existing = describe_table(conn, table.ref)
            conn.commit()
        except psycopg.OperationalError as exc:
            self.close()
            raise TransientError(connection.describe_failure(self.config, exc)) from None
        except psycopg.Error:
            self._rollback(conn)
            return False  # the values path reports what is wrong, if anything
        if existing is None:
            return False
        have = {c.name: c.type.native for c in existing.columns}
        return all(
            c.type.native is not None
            and c.type.native not in UNPORTABLE_TEXT
            and have.get(c.name) == c.type.native
            for c in table.columns
        )

    def computed_columns(self, table: TableSchema) -> frozenset[str]:
        """The target table's generated columns (GENERATED ALWAYS AS ... STORED),
        which a change must not write; none when the table does not exist."""
        conn = self._connection()
        try:
            existing = describe_table(conn, table.ref)
            conn.commit()
        except psycopg.OperationalError as exc:
            self.close()
            raise TransientError(connection.describe_failure(self.config, exc)) from None
        if existing is None:
            return frozenset()
        return frozenset(c.name for c in existing.columns if c.generated is not None)

    def apply_changes(self, task: str, changes: Sequence[ChangeBatch], checkpoint: Checkpoint) -> None:
        conn = self._connection()
        try:
            for table_changes in changes:
                self._apply_table(conn, table_changes)
                insert_rejections(conn, self.config, task, table_changes.rejected, create=True)
            write_counts(conn, task, changes)
            conn.execute(
                sql.SQL(
                    "INSERT INTO {}.{} (task_name, position, updated_at) VALUES (%s, %s, now()) "
                    "ON CONFLICT (task_name) DO UPDATE SET position = EXCLUDED.position, updated_at = now()"
                ).format(sql.Identifier(CONTROL_SCHEMA), sql.Identifier(CHECKPOINTS)),
                (task, json.dumps({"engine": checkpoint.engine, "position": checkpoint.position})),
            )
            conn.commit()
        except psycopg.OperationalError as exc:
            self.close()
            raise TransientError(connection.describe_failure(self.config, exc)) from None
        except (psycopg.DataError, psycopg.IntegrityError) as exc:
            self._rollback(conn)
            raise DataError(f"applying changes: {_refusal(exc)}") from None
        except BaseException:
            if not conn.closed:
                self._rollback(conn)
            raise

    def screen_changes(self, changes: ChangeBatch, thorough: bool) -> tuple[ChangeBatch, list[RejectedValue]]:
        """(``ScreensChanges``) ``changes`` without the rows capture could not
        hold exactly (``unrepresentable``) and, when ``thorough`` (the target
        refused the batch), without the rows the target refuses, found by
        trying them in a transaction rolled back (apply_refusals.py); those
        rows. A table whose key names a group of rows is not probed (half a
        group would replace the whole group): its refusal suspends it."""
        ref = changes.table.ref
        rejected = [replace(r, reason=f"table {ref}: {r.reason}") for r in changes.unrepresentable]
        if rejected:
            changes = replace(changes, unrepresentable=())
        if thorough and not changes.key_is_group and (changes.num_rows or changes.truncate):
            conn = self._connection()
            try:
                changes, refused = refused_rows(
                    conn, changes, functools.partial(self._attempt, conn), conn.info.encoding
                )
            except psycopg.OperationalError as exc:
                self.close()
                raise TransientError(connection.describe_failure(self.config, exc)) from None
            finally:
                if not conn.closed:
                    self._rollback(conn)
            rejected += refused
        return changes, rejected

    def _attempt(self, conn: psycopg.Connection[Any], changes: ChangeBatch) -> psycopg.Error | None:
        """Apply ``changes`` under a savepoint (``apply_refusals.Attempt``); the
        staging tables are emptied after it, for the next attempt."""
        staged = set(self._staging)
        conn.execute("SAVEPOINT conveyor_probe")
        try:
            self._apply_table(conn, changes)
        except (psycopg.DataError, psycopg.IntegrityError) as exc:
            conn.execute("ROLLBACK TO SAVEPOINT conveyor_probe")
            for key in set(self._staging) - staged:  # created under the savepoint: gone
                del self._staging[key]
            return exc
        conn.execute("RELEASE SAVEPOINT conveyor_probe")
        for key, name in self._staging.items():
            if key[0] == changes.table.ref:
                conn.execute(sql.SQL("DELETE FROM {}").format(name))
        return None

    def find_conflicts(self, changes: Sequence[ChangeBatch]) -> dict[TableRef, list[int]]:
        """The batch's keys the target contradicts (``FindsConflicts``): per
        table, one COPY of the keys and one query, in a transaction of its own."""

        def find(conn: psycopg.Connection[Any]) -> dict[TableRef, list[int]]:
            found: dict[TableRef, list[int]] = {}
            for table_changes in changes:
                checks = table_changes.checks
                if checks is None:
                    continue
                rows = self._conflicting(conn, table_changes.table, checks)
                if rows:
                    found[table_changes.table.ref] = rows
            return found

        return self._control(find)

    def conflict_counts(self, task: str) -> dict[TableRef, int]:
        return self._control(lambda conn: read_counts(conn, task))

    def forget_conflicts(self, task: str, table: TableRef | None = None) -> None:
        self._control(lambda conn: forget_counts(conn, task, table))

    def _control(self, action: Callable[[psycopg.Connection[Any]], _T]) -> _T:
        """``action`` in a transaction of its own (a lost connection: transient)."""
        conn = self._connection()
        try:
            result = action(conn)
            conn.commit()
        except psycopg.OperationalError as exc:
            self.close()
            raise TransientError(connection.describe_failure(self.config, exc)) from None
        except BaseException:
            if not conn.closed:
                self._rollback(conn)
            raise
        return result

    def _conflicting(self, conn: psycopg.Connection[Any], table: TableSchema, checks: KeyChecks) -> list[int]:
        key = (table.ref, "checks", table.primary_key)
        staged = self._staging.get(key)
        if staged is None:
            self._staging_serial += 1
            staged = sql.Identifier(f"conveyor_checks_{self._staging_serial}")
            conn.execute(
                sql.SQL(
                    "CREATE TEMP TABLE {} ON COMMIT DELETE ROWS AS SELECT {}, 0 AS {}, true AS {} FROM {} "
                    "WITH NO DATA"
                ).format(
                    staged,
                    _joined(table.primary_key),
                    sql.Identifier(KeyChecks.ROW),
                    sql.Identifier(KeyChecks.PRESENT),
                    qualified(table.ref),
                )
            )
            self._staging[key] = staged
        _copy_rows(conn, staged, checks.staged())
        found = conn.execute(
            sql.SQL(
                "SELECT k.{} FROM {} AS k WHERE EXISTS (SELECT 1 FROM {} AS t WHERE {}) <> k.{} ORDER BY 1"
            ).format(
                sql.Identifier(KeyChecks.ROW),
                staged,
                qualified(table.ref),
                _key_match(table, "t", "k"),
                sql.Identifier(KeyChecks.PRESENT),
            )
        ).fetchall()
        return [int(row[0]) for row in found]

    def _rollback(self, conn: psycopg.Connection[Any]) -> None:
        conn.rollback()
        self._staging.clear()  # those created in the transaction are gone

    def _staging_table(
        self, conn: psycopg.Connection[Any], table: TableSchema, columns: Sequence[str], role: str
    ) -> sql.Identifier:
        """A temporary table with ``columns`` of ``table``'s types, emptied at
        every commit, created once per session."""
        key = (table.ref, role, tuple(columns))
        name = self._staging.get(key)
        if name is None:
            self._staging_serial += 1
            name = sql.Identifier(f"conveyor_{role}_{self._staging_serial}")
            conn.execute(
                sql.SQL(
                    "CREATE TEMP TABLE {} ON COMMIT DELETE ROWS AS SELECT {} FROM {} WITH NO DATA"
                ).format(name, _joined(columns), qualified(table.ref))
            )
            self._staging[key] = name
        return name

    def _forget_staging(self, conn: psycopg.Connection[Any]) -> None:
        """The target's tables changed shape: new staging tables from now on."""
        self._unique_key.clear()
        for name in self._staging.values():
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(name))
        self._staging.clear()

    def _apply_table(self, conn: psycopg.Connection[Any], changes: ChangeBatch) -> None:
        table = changes.table
        changes.refuse_unrepresentable()
        target = qualified(table.ref)
        if changes.truncate:
            conn.execute(sql.SQL("DELETE FROM {}").format(target))
        if changes.deletes.num_rows:
            keys = self._staging_table(conn, table, table.primary_key, "keys")
            _copy_rows(conn, keys, changes.deletes)
            conn.execute(
                sql.SQL("DELETE FROM {} AS t USING {} AS k WHERE {}").format(
                    target, keys, _key_match(table, "t", "k")
                )
            )
        if changes.upserts.num_rows or len(changes.encoded):
            self._put_rows(conn, changes, target)
        for rows in changes.partial.values():
            present = rows.schema.names
            staged = self._staging_table(conn, table, present, "partial")
            _copy_rows(conn, staged, rows)
            updates = [c for c in present if c not in table.primary_key]
            if updates:
                assignments = sql.SQL(", ").join(
                    sql.SQL("{} = p.{}").format(sql.Identifier(c), sql.Identifier(c)) for c in updates
                )
                conn.execute(
                    sql.SQL("UPDATE {} AS t SET {} FROM {} AS p WHERE {}").format(
                        target, assignments, staged, _key_match(table, "t", "p")
                    )
                )

    def _put_rows(self, conn: psycopg.Connection[Any], changes: ChangeBatch, target: sql.Composable) -> None:
        """Insert or replace the batch's final rows."""
        table = changes.table
        if not table.primary_key:  # append-only
            _copy_rows(conn, target, changes.upserts, changes.encoded_data())
            return
        staged = self._staging_table(conn, table, table.column_names, "rows")
        _copy_rows(conn, staged, changes.upserts, changes.encoded_data())
        if self._has_unique_key(conn, table):
            # One row per key (the batch is reduced): INSERT ... ON CONFLICT updates
            # in place, cheaper for the server than a delete and a re-insert.
            conn.execute(_upsert_sql(table, target, staged))
            return
        conn.execute(
            sql.SQL("DELETE FROM {} AS t USING {} AS s WHERE {}").format(
                target, staged, _key_match(table, "t", "s")
            )
        )
        columns = _joined(table.column_names)
        conn.execute(
            sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {}").format(target, columns, columns, staged)
        )

    def _has_unique_key(self, conn: psycopg.Connection[Any], table: TableSchema) -> bool:
        """Whether the target table has a unique index on exactly the primary key
        (ON CONFLICT needs one; a table created by Conveyor has it)."""
        if not table.primary_key:
            return False
        known = self._unique_key.get((table.ref, table.primary_key))
        if known is None:
            row = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = %s::regclass AND i.indisunique"
                " AND i.indpred IS NULL AND i.indexprs IS NULL AND (SELECT array_agg(a.attname::text"
                " ORDER BY a.attname) FROM pg_attribute a WHERE a.attrelid = i.indrelid"
                " AND a.attnum = ANY(i.indkey)) = %s)",
                (qualified(table.ref).as_string(conn), sorted(table.primary_key)),
            ).fetchone()
            known = bool(row and row[0])
            self._unique_key[(table.ref, table.primary_key)] = known
        return known

    def _ddl(self, alter: Callable[[psycopg.Connection[Any]], None]) -> None:
        """Target DDL in one transaction; a refusal leaves the connection usable."""

        def altered(conn: psycopg.Connection[Any]) -> None:
            self._forget_staging(conn)
            alter(conn)

        self._control(altered)

    def forget_shapes(self) -> None:
        self._ddl(lambda conn: None)

    def add_columns(self, table: TableSchema, columns: Sequence[str]) -> None:
        same_engine = table.native_engine == "postgres"

        def alter(conn: psycopg.Connection[Any]) -> None:
            if same_engine:
                for native in table.native_types:  # a composite or domain new since the load
                    create_native_type(conn, native)
            for name in columns:
                # Rows already there have no value for it: the column takes NULLs.
                added = Column(name, table.column(name).type, nullable=True)
                conn.execute(
                    sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {}").format(
                        qualified(table.ref), column_ddl(table, added, same_engine)
                    )
                )

        self._ddl(alter)

    def drop_columns(self, table: TableSchema, columns: Sequence[str]) -> None:
        def alter(conn: psycopg.Connection[Any]) -> None:
            for name in columns:
                conn.execute(
                    sql.SQL("ALTER TABLE {} DROP COLUMN IF EXISTS {}").format(
                        qualified(table.ref), sql.Identifier(name)
                    )
                )

        self._ddl(alter)

    def rename_column(self, table: TableSchema, old: str, new: str) -> None:
        self._ddl_statement(
            sql.SQL("ALTER TABLE {} RENAME COLUMN {} TO {}").format(
                qualified(table.ref), sql.Identifier(old), sql.Identifier(new)
            )
        )

    def drop_table(self, table: TableSchema) -> None:
        self._ddl_statement(sql.SQL("DROP TABLE IF EXISTS {}").format(qualified(table.ref)))

    def _ddl_statement(self, statement: sql.Composed) -> None:
        def alter(conn: psycopg.Connection[Any]) -> None:
            conn.execute(statement)

        self._ddl(alter)

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None


def _refusal(exc: psycopg.Error) -> str:
    """What the target refused, and in which column, without the row's values
    (a suspended table's reason is kept and shown; the row may hold secrets)."""
    message, _, column = refused_at(exc)
    return f"{message} (column {column})" if column else message


def _upsert_sql(table: TableSchema, target: sql.Composable, staged: sql.Composable) -> sql.Composed:
    columns = _joined(table.column_names)
    updates = [c for c in table.column_names if c not in table.primary_key]
    action = (
        sql.SQL("DO UPDATE SET {}").format(
            sql.SQL(", ").join(
                sql.SQL("{} = EXCLUDED.{}").format(sql.Identifier(c), sql.Identifier(c)) for c in updates
            )
        )
        if updates
        else sql.SQL("DO NOTHING")
    )
    return sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {} ON CONFLICT ({}) {}").format(
        target, columns, columns, staged, _joined(table.primary_key), action
    )


def _copy_rows(
    conn: psycopg.Connection[Any], into: sql.Composable, rows: pa.RecordBatch, lines: bytes | memoryview = b""
) -> None:
    """COPY ``rows`` (as COPY text, as the full load writes Arrow) and ``lines``
    (COPY text lines of the same columns, one after another) into ``into``."""
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(into, _joined(rows.schema.names))
    with conn.cursor() as cur, cur.copy(statement) as copy:
        if rows.num_rows:
            copy.write(encode_batch(rows))
        if len(lines):
            copy.write(lines)
