"""Apply-conflict counts per table over a task's life (ErrorBehavior's
ApplyErrorEscalationCount), in ``main.conveyor_apply_conflicts`` beside the
task's checkpoint. Written in the batch's transaction with the checkpoint, so
a count covers exactly the batches the target holds: a crash (SIGKILL
included) loses neither a count nor counts a batch twice, since the changes
replayed from the checkpoint are those the counts do not cover yet."""

from __future__ import annotations

from collections.abc import Sequence

import duckdb

from conveyor.core.batch import ChangeBatch
from conveyor.core.schema import TableRef

COUNTS = "main.conveyor_apply_conflicts"


def write_counts(conn: duckdb.DuckDBPyConnection, task: str, changes: Sequence[ChangeBatch]) -> None:
    """The counts the batch's tables carry (``ChangeBatch.conflicts``), in
    ``conn``'s transaction (the table created first if need be)."""
    counted = [(task, c.table.ref.schema, c.table.ref.name, c.conflicts) for c in changes if c.conflicts]
    if not counted:
        return
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {COUNTS} (task_name VARCHAR, table_schema VARCHAR, "
        "table_name VARCHAR, conflicts BIGINT NOT NULL, updated_at TIMESTAMPTZ NOT NULL, "
        "PRIMARY KEY (task_name, table_schema, table_name))"
    )
    conn.executemany(f"INSERT OR REPLACE INTO {COUNTS} VALUES (?, ?, ?, ?, now())", counted)


def read_counts(conn: duckdb.DuckDBPyConnection, task: str) -> dict[TableRef, int]:
    """The task's counts (none when the table does not exist yet)."""
    if not _exists(conn):
        return {}
    rows = conn.execute(
        f"SELECT table_schema, table_name, conflicts FROM {COUNTS} WHERE task_name = ?", [task]
    ).fetchall()
    return {TableRef(schema, name): int(count) for schema, name, count in rows}


def forget_counts(conn: duckdb.DuckDBPyConnection, task: str, table: TableRef | None = None) -> None:
    """The task's counts gone (a new start counts afresh), or ``table``'s
    alone (a reloaded table counts afresh)."""
    if not _exists(conn):
        return
    if table is None:
        conn.execute(f"DELETE FROM {COUNTS} WHERE task_name = ?", [task])
    else:
        conn.execute(
            f"DELETE FROM {COUNTS} WHERE task_name = ? AND table_schema = ? AND table_name = ?",
            [task, table.schema, table.name],
        )


def _exists(conn: duckdb.DuckDBPyConnection) -> bool:
    rows = conn.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = 'main' AND table_name = 'conveyor_apply_conflicts'"
    ).fetchall()  # fetched to the end: DuckDB refuses other work on an unfinished result
    return bool(rows[0][0])
