"""SQLite changes a column's type by rebuilding the table (create a new one, copy,
drop the old one, rename): the capture triggers go with the old table, and the
table is suspended ("resync required") while the other tables flow. It stays so
across stop, resume and a SIGKILL of the worker, never "Table completed" with
rows missing, until ``tasks reload --table`` captures and loads it again, after
which it equals the source. Through a stack file and the CLI."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from integration.test_cdc_ddl import _active, _duckdb, _items_suspended, _sqlite_execute, _sqlite_stack
from integration.test_cdc_tasks import _described
from support.cli import conveyor
from support.tasks import described as read_task
from support.tasks import kill_worker, wait_until

pytestmark = pytest.mark.integration

ITEMS = "SELECT id, name, qty FROM {}items ORDER BY id"


def _rebuild(path: Path) -> None:
    """SQLite's way to change a column's type (qty INTEGER to TEXT), in one transaction."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        for statement in (
            "BEGIN",
            "CREATE TABLE items_new (id INTEGER PRIMARY KEY, name TEXT, qty TEXT)",
            "INSERT INTO items_new SELECT id, name, CAST(qty AS TEXT) || ' pcs' FROM items",
            "DROP TABLE items",
            "ALTER TABLE items_new RENAME TO items",
            "COMMIT",
        ):
            conn.execute(statement)
    finally:
        conn.close()


def _source(path: Path, query: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute(query).fetchall()
    conn.close()
    return rows


def _table(home: Path, name: str) -> dict[str, Any]:
    return next((t for t in _described(home).get("tables", []) if t["TableName"] == name), {})


def _items_state(home: Path) -> dict[str, Any]:
    return _table(home, "items")


def _other_updated(home: Path, count: int) -> None:
    """The other table flows: its changes of this run are applied (the DuckDB
    target is the running worker's alone, so read what the task reports)."""
    wait_until(
        lambda: _table(home, "other").get("Updates") == count,
        f"{count} change(s) of the other table",
        debug=lambda: _table(home, "other"),
    )


def _suspended_for_the_rebuild(home: Path) -> None:
    reason = _items_suspended(home)
    assert reason is not None and "resync required" in reason, _described(home)
    assert "conveyor_sync_items_" in reason and "tasks reload" in reason
    items = _items_state(home)
    assert items["TableState"] == "Table error" and "resync required" in items["SuspendedReason"], items


def _wait_suspended(home: Path) -> None:
    wait_until(lambda: _items_suspended(home) is not None, "the suspension", debug=lambda: _described(home))


def _stopped(home: Path) -> None:
    assert conveyor(home, "tasks", "stop", "sync").returncode == 0
    wait_until(lambda: read_task(home, "sync")["status"] == "stopped", "the stop")


def test_a_rebuilt_table_stays_suspended_across_stop_resume_and_sigkill_until_reloaded(
    tmp_path: Path,
) -> None:
    stack, source, target = _sqlite_stack(tmp_path)
    home = tmp_path / "home"
    assert conveyor(home, "apply", str(stack)).returncode == 0

    try:
        assert conveyor(home, "tasks", "start", "sync").returncode == 0
        wait_until(lambda: _active(home), "capture to begin", seconds=60)
        _rebuild(source)
        _sqlite_execute(source, "UPDATE items SET name = 'after the rebuild' WHERE id = 1")
        _sqlite_execute(source, "UPDATE other SET v = 'after the rebuild' WHERE id = 1")
        _other_updated(home, 1)
        _wait_suspended(home)
        _suspended_for_the_rebuild(home)
        assert read_task(home, "sync")["status"] == "running"

        # Stopped, changed meanwhile, resumed: still suspended; the other table flows.
        _stopped(home)
        _sqlite_execute(source, "UPDATE items SET name = 'while stopped' WHERE id = 2")
        _sqlite_execute(source, "UPDATE other SET v = 'while stopped' WHERE id = 2")
        assert conveyor(home, "tasks", "resume", "sync").returncode == 0
        _other_updated(home, 1)
        _suspended_for_the_rebuild(home)

        # Killed and resumed: still suspended.
        kill_worker(home, "sync")
        wait_until(lambda: read_task(home, "sync")["status"] == "failed", "the dead worker to be noticed")
        _sqlite_execute(source, "UPDATE items SET name = 'after the kill' WHERE id = 3")
        assert conveyor(home, "tasks", "resume", "sync").returncode == 0
        _sqlite_execute(source, "UPDATE other SET v = 'after the kill' WHERE id = 3")
        _other_updated(home, 1)
        _suspended_for_the_rebuild(home)
        _stopped(home)
        assert _duckdb(target, "SELECT name, qty FROM main.items WHERE id IN (1, 2, 3) ORDER BY id") == [
            ("item 1", 1),
            ("item 2", 2),
            ("item 3", 3),
        ]
        assert _duckdb(target, "SELECT v FROM main.other WHERE id <= 3 ORDER BY id") == [
            ("after the rebuild",),
            ("while stopped",),
            ("after the kill",),
        ]
        assert conveyor(home, "tasks", "resume", "sync").returncode == 0

        # Reloading just that table captures it again and makes it equal the source.
        reload = conveyor(home, "tasks", "reload", "sync", "--table", "main.items")
        assert reload.returncode == 0, reload.stderr
        _sqlite_execute(source, "UPDATE items SET qty = 'during' WHERE id = 4")  # during or after it
        wait_until(lambda: not read_task(home, "sync").get("suspended_tables"), "the reload", seconds=60)
        _sqlite_execute(source, "UPDATE items SET qty = 'after' WHERE id = 5")
        _sqlite_execute(source, "DELETE FROM items WHERE id = 6")
        wait_until(lambda: _items_state(home).get("Deletes") == 1, "the changes after the reload")
        items = _items_state(home)
        assert items["TableState"] == "Table completed" and items["SuspendedReason"] is None, items
        _stopped(home)
        assert _duckdb(target, ITEMS.format("main.")) == _source(source, ITEMS.format(""))
        first = _duckdb(target, "SELECT name, qty FROM main.items WHERE id = 1")
        assert first == [("after the rebuild", "1 pcs")]
    finally:
        kill_worker(home, "sync")


def test_a_table_rebuilt_while_the_task_is_stopped_is_suspended_then_reloaded(tmp_path: Path) -> None:
    """The loss is found when the stream opens (the stop and SIGKILL path above
    find it in the store): the resumed task suspends the table, a reload
    requested while stopped resumes the task and captures it again."""
    stack, source, target = _sqlite_stack(tmp_path)
    home = tmp_path / "home"
    assert conveyor(home, "apply", str(stack)).returncode == 0
    try:
        assert conveyor(home, "tasks", "start", "sync").returncode == 0
        wait_until(lambda: _active(home), "capture to begin", seconds=60)
        _stopped(home)
        _rebuild(source)
        _sqlite_execute(source, "UPDATE other SET v = 'while stopped' WHERE id = 1")
        assert conveyor(home, "tasks", "resume", "sync").returncode == 0
        _wait_suspended(home)
        _suspended_for_the_rebuild(home)
        _other_updated(home, 1)
        _stopped(home)
        assert _duckdb(target, "SELECT v FROM main.other WHERE id = 1") == [("while stopped",)]
        _sqlite_execute(source, "UPDATE items SET name = 'while stopped' WHERE id = 7")
        result = conveyor(home, "tasks", "reload", "sync", "--table", "main.items")
        assert result.returncode == 0 and "resuming to reload main.items" in result.stdout, result.stderr
        wait_until(
            lambda: _active(home) and not read_task(home, "sync").get("suspended_tables"), "the reload", 60
        )
        _sqlite_execute(source, "UPDATE items SET qty = 'later' WHERE id = 8")
        wait_until(lambda: _items_state(home).get("Updates") == 1, "a later change")
        assert _items_state(home)["TableState"] == "Table completed"
        _stopped(home)
        assert _duckdb(target, ITEMS.format("main.")) == _source(source, ITEMS.format(""))
    finally:
        kill_worker(home, "sync")
