"""The capture's own objects in the SQLite database: the change table
``conveyor_changes``, the task registry ``conveyor_capture`` and three triggers per
captured table (``conveyor_<task>_<table>_ins``, ``_upd``, ``_del``), each one plain
INSERT of the operation and the row's key into the change table. Creating, dropping
and checking them; every function runs inside the caller's transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from conveyor.connectors.sqlite.source import CHANGES_TABLE, REGISTRY_TABLE, describe, quote
from conveyor.core.batch import Op
from conveyor.core.errors import ConfigError, TerminalError
from conveyor.core.schema import TableSchema

CHANGES = CHANGES_TABLE
REGISTRY = REGISTRY_TABLE
_SUFFIXES = {"ins": "INSERT", "upd": "UPDATE", "del": "DELETE"}
_NOW = "strftime('%Y-%m-%d %H:%M:%f', 'now')"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def trigger_name(task: str, table: str, suffix: str) -> str:
    return f"conveyor_{task}_{table}_{suffix}"


def resync_required(message: str) -> TerminalError:
    return TerminalError(f"{message}: resync required (reload the tables and begin capture again)")


def exists(conn: sqlite3.Connection, name: str, kind: str = "table") -> bool:
    row = conn.execute("SELECT 1 FROM sqlite_schema WHERE type = ? AND name = ?", (kind, name)).fetchone()
    return row is not None


def last_seq(conn: sqlite3.Connection) -> int:
    row = conn.execute(
        f"SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = '{CHANGES}'), "
        f"(SELECT max(seq) FROM {CHANGES}), 0)"
    ).fetchone()
    return int(row[0])


def table_problems(conn: sqlite3.Connection, tables: Sequence[TableSchema]) -> list[str]:
    problems: list[str] = []
    for table in tables:
        actual = describe(conn, table.ref.name)
        if not actual.columns:
            problems.append(f"table {table.ref.name!r} does not exist")
        elif not actual.primary_key:
            problems.append(
                f"table {table.ref.name!r} has no primary key: SQLite capture identifies changed rows by "
                "primary key; add one or leave the table out of the CDC task"
            )
        elif actual.primary_key != table.primary_key:
            problems.append(
                f"table {table.ref.name!r} has primary key {actual.primary_key}, "
                f"not {table.primary_key} as listed; list the tables again"
            )
    return problems


def create_change_tables(conn: sqlite3.Connection, width: int) -> None:
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {CHANGES} (seq INTEGER PRIMARY KEY AUTOINCREMENT, task TEXT NOT NULL, "
        "table_name TEXT NOT NULL, op TEXT NOT NULL, changed_at TEXT NOT NULL, old_1, new_1)"
    )
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {REGISTRY} (task TEXT PRIMARY KEY, acked_seq INTEGER NOT NULL, "
        "tables TEXT NOT NULL)"
    )
    have = {r[0] for r in conn.execute("SELECT name FROM pragma_table_info(?)", (CHANGES,))}
    for i in range(2, width + 1):
        for col in (f"old_{i}", f"new_{i}"):
            if col not in have:
                # No declared type: key values are stored exactly as the table holds them.
                conn.execute(f"ALTER TABLE {CHANGES} ADD COLUMN {col}")


def _trigger_table(conn: sqlite3.Connection, name: str) -> str | None:
    row = conn.execute(
        "SELECT tbl_name FROM sqlite_schema WHERE type = 'trigger' AND name = ?", (name,)
    ).fetchone()
    return None if row is None else str(row[0])


def drop_triggers(conn: sqlite3.Connection, task: str, table: str) -> None:
    for suffix in _SUFFIXES:
        name = trigger_name(task, table, suffix)
        if _trigger_table(conn, name) == table:
            conn.execute(f"DROP TRIGGER {quote(name)}")


def create_triggers(conn: sqlite3.Connection, task: str, table: TableSchema) -> None:
    key = table.primary_key
    n = len(key)
    head = f"INSERT INTO {CHANGES} (task, table_name, op, changed_at"
    fixed = f"{_literal(task)}, {_literal(table.ref.name)}"
    olds = ", ".join(f"old_{i}" for i in range(1, n + 1))
    news = ", ".join(f"new_{i}" for i in range(1, n + 1))
    old_values = ", ".join(f"OLD.{quote(k)}" for k in key)
    new_values = ", ".join(f"NEW.{quote(k)}" for k in key)
    bodies = {
        "ins": f"{head}, {news}) VALUES ({fixed}, '{Op.INSERT.value}', {_NOW}, {new_values});",
        "upd": (
            f"{head}, {olds}, {news}) VALUES ({fixed}, '{Op.UPDATE.value}', {_NOW}, "
            f"{old_values}, {new_values});"
        ),
        "del": f"{head}, {olds}) VALUES ({fixed}, '{Op.DELETE.value}', {_NOW}, {old_values});",
    }
    for suffix, event in _SUFFIXES.items():
        name = trigger_name(task, table.ref.name, suffix)
        owner = _trigger_table(conn, name)
        if owner is not None and owner != table.ref.name:
            raise ConfigError(
                f"task {task!r}: trigger {name!r} already exists on table {owner!r}; choose another task name"
            )
        if owner is not None:
            conn.execute(f"DROP TRIGGER {quote(name)}")
        conn.execute(
            f"CREATE TRIGGER {quote(name)} AFTER {event} ON {quote(table.ref.name)} FOR EACH ROW "
            f"BEGIN {bodies[suffix]} END"
        )


def missing_trigger(conn: sqlite3.Connection, task: str, table: str) -> str | None:
    """The first of ``table``'s capture triggers that is not on it, if any."""
    for suffix in _SUFFIXES:
        name = trigger_name(task, table, suffix)
        if _trigger_table(conn, name) != table:
            return name
    return None


def lost_reason(trigger: str, table: str) -> str:
    return (
        f"capture trigger {trigger!r} on table {table!r} is missing (a table rebuild, as SQLite "
        "changes a column's type, drops them with the old table): its changes are no longer "
        "captured; resync required"
    )
