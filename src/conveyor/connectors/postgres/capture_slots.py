"""Replication slot and publication management for change capture: names,
the tables a publication holds, tables without a replica identity, dropping a slot."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from conveyor.connectors.postgres.names import qualified
from conveyor.core.errors import ConfigError, TransientError
from conveyor.core.schema import TableRef, TableSchema

MAX_NAME = 63


def capture_name(task: str) -> str:
    """``conveyor_<task>`` as a slot/publication name: [a-z0-9_], at most 63 characters."""
    name = "conveyor_" + re.sub(r"[^a-z0-9_]", "_", task.lower())
    if len(name) > MAX_NAME:
        digest = hashlib.sha1(task.encode()).hexdigest()[:8]
        name = f"{name[: MAX_NAME - 9]}_{digest}"
    return name


def identity_warning(ref: TableRef) -> str:
    return (
        f"updates and deletes of {ref} cannot be captured: no primary key; "
        "set REPLICA IDENTITY FULL or add a key"
    )


def without_identity(conn: psycopg.Connection[Any], tables: Sequence[TableSchema]) -> list[TableRef]:
    """Tables whose updates and deletes carry no key: REPLICA IDENTITY DEFAULT
    without a primary key, or NOTHING."""
    if not tables:
        return []
    rows = conn.execute(
        """
        SELECT n.nspname, c.relname
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN unnest(%s::text[], %s::text[]) AS w(s, r) ON w.s = n.nspname AND w.r = c.relname
        WHERE c.relreplident = 'n' OR (c.relreplident = 'd' AND NOT EXISTS (
            SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary))
        ORDER BY 1, 2
        """,
        ([s.ref.schema for s in tables], [s.ref.name for s in tables]),
    ).fetchall()
    return [TableRef(schema, name) for schema, name in rows]


def set_publication(
    conn: psycopg.Connection[Any], name: str, refs: Sequence[TableRef], publish: str | None
) -> None:
    """Make publication ``name`` hold exactly ``refs`` (it always exists: the
    stream names it, and pgoutput fails on a missing publication)."""
    ident = sql.Identifier(name)
    exists = conn.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (name,)).fetchone()
    if not exists:
        query = sql.SQL("CREATE PUBLICATION {}").format(ident)
        if refs:
            query += sql.SQL(" FOR TABLE {}").format(sql.SQL(", ").join(qualified(ref) for ref in refs))
        # Changes of a partition arrive as changes of the partitioned table (PostgreSQL 13+).
        options: list[sql.Composable] = (
            [sql.SQL("publish_via_partition_root = true")] if conn.info.server_version >= 130000 else []
        )
        if publish:
            options.append(sql.SQL("publish = {}").format(sql.Literal(publish)))
        if options:
            query += sql.SQL(" WITH ({})").format(sql.SQL(", ").join(options))
        conn.execute(query)
    elif refs:
        table_list = sql.SQL(", ").join(qualified(ref) for ref in refs)
        conn.execute(sql.SQL("ALTER PUBLICATION {} SET TABLE {}").format(ident, table_list))
    else:
        current = conn.execute(
            "SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = %s", (name,)
        ).fetchall()
        if current:
            table_list = sql.SQL(", ").join(qualified(TableRef(s, n)) for s, n in current)
            conn.execute(sql.SQL("ALTER PUBLICATION {} DROP TABLE {}").format(ident, table_list))


def publication_gaps(conn: psycopg.Connection[Any], name: str, tables: Sequence[TableSchema]) -> list[str]:
    row = conn.execute("SELECT puballtables FROM pg_publication WHERE pubname = %s", (name,)).fetchone()
    if row is None:
        raise ConfigError(f"publication {name!r} does not exist")
    if row[0]:
        return []
    published = {
        TableRef(s, n)
        for s, n in conn.execute(
            "SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = %s", (name,)
        ).fetchall()
    }
    return [
        f"table {s.ref} is not in publication {name!r}: its changes will not be captured"
        for s in tables
        if s.ref not in published
    ]


def drop_slot(conn: psycopg.Connection[Any], slot: str) -> None:
    deadline = time.monotonic() + 10
    while True:
        row = conn.execute(
            "SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s", (slot,)
        ).fetchone()
        if row is None:
            return
        if row[0] is None:
            try:
                conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
                return
            except psycopg.errors.ObjectInUse:
                pass  # a walsender took it again in between
            except psycopg.errors.UndefinedObject:
                return
        else:
            conn.execute("SELECT pg_terminate_backend(%s)", (row[0],))
        if time.monotonic() > deadline:
            raise TransientError(f"replication slot {slot!r} stays active; cannot drop it")
        time.sleep(0.1)
