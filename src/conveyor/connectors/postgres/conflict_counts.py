"""Apply-conflict counts per table over a task's life (ErrorBehavior's
ApplyErrorEscalationCount), in ``public.conveyor_apply_conflicts`` beside the
task's checkpoint. Written in the batch's transaction with the checkpoint, so
a count covers exactly the batches the target holds: a crash (SIGKILL
included) loses neither a count nor counts a batch twice, since the changes
replayed from the checkpoint are those the counts do not cover yet."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from conveyor.core.batch import ChangeBatch
from conveyor.core.schema import TableRef

COUNTS = sql.Identifier("public", "conveyor_apply_conflicts")


def write_counts(conn: psycopg.Connection[Any], task: str, changes: Sequence[ChangeBatch]) -> None:
    """The counts the batch's tables carry (``ChangeBatch.conflicts``), in
    ``conn``'s transaction (the table created first if need be)."""
    counted = [(task, c.table.ref.schema, c.table.ref.name, c.conflicts) for c in changes if c.conflicts]
    if not counted:
        return
    conn.execute(
        sql.SQL(
            "CREATE TABLE IF NOT EXISTS {} (task_name text, table_schema text, table_name text, "
            "conflicts bigint NOT NULL, updated_at timestamptz NOT NULL DEFAULT now(), "
            "PRIMARY KEY (task_name, table_schema, table_name))"
        ).format(COUNTS)
    )
    with conn.cursor() as cur:
        cur.executemany(
            sql.SQL(
                "INSERT INTO {} VALUES (%s, %s, %s, %s, now()) ON CONFLICT (task_name, table_schema, "
                "table_name) DO UPDATE SET conflicts = EXCLUDED.conflicts, updated_at = now()"
            ).format(COUNTS),
            counted,
        )


def read_counts(conn: psycopg.Connection[Any], task: str) -> dict[TableRef, int]:
    """The task's counts (none when the table does not exist yet)."""
    if not _exists(conn):
        return {}
    rows = conn.execute(
        sql.SQL("SELECT table_schema, table_name, conflicts FROM {} WHERE task_name = %s").format(COUNTS),
        (task,),
    ).fetchall()
    return {TableRef(schema, name): int(count) for schema, name, count in rows}


def forget_counts(conn: psycopg.Connection[Any], task: str, table: TableRef | None = None) -> None:
    """The task's counts gone (a new start counts afresh), or ``table``'s
    alone (a reloaded table counts afresh)."""
    if not _exists(conn):
        return
    if table is None:
        conn.execute(sql.SQL("DELETE FROM {} WHERE task_name = %s").format(COUNTS), (task,))
    else:
        conn.execute(
            sql.SQL("DELETE FROM {} WHERE task_name = %s AND table_schema = %s AND table_name = %s").format(
                COUNTS
            ),
            (task, table.schema, table.name),
        )


def _exists(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute("SELECT to_regclass('public.conveyor_apply_conflicts') IS NOT NULL").fetchone()
    return bool(row and row[0])
