"""The source's shape honoured during change capture: a renamed column is
renamed on the target with its values kept; a dropped table follows
HandleSourceTableDropped; on every source engine."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest

from conveyor.store.store import Store
from integration.test_cdc_resilience import _mariadb_execute, _mariadb_items, _mariadb_stack, _pg_rows
from integration.test_cdc_tasks import RunningTask, wait_until
from integration.test_cdc_tasks import _stats as task_stats
from support.servers import MariaDBServer, PostgresServer

pytestmark = pytest.mark.integration


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(home=tmp_path / "home")
    yield opened
    opened.close()


@pytest.fixture
def mariadb_items(mariadb_server: MariaDBServer) -> str:
    return _mariadb_items(mariadb_server)


def _duckdb(path: Path, query: str) -> list[tuple[Any, ...]] | None:
    try:
        with duckdb.connect(str(path), read_only=True) as conn:
            return conn.execute(query).fetchall()
    except duckdb.Error:
        return None  # not there yet, or the writer holds it


def _sqlite_stack(tmp_path: Path, settings: dict[str, Any] | None = None) -> tuple[Path, Path, Path]:
    source, target = tmp_path / "shop.sqlite", tmp_path / "dw.duckdb"
    with sqlite3.connect(source) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, qty INTEGER)")
        conn.execute("CREATE TABLE other (id INTEGER PRIMARY KEY, v TEXT)")
        conn.executemany("INSERT INTO items VALUES (?, ?, ?)", [(i, f"item {i}", i) for i in range(1, 51)])
        conn.executemany("INSERT INTO other VALUES (?, ?)", [(i, f"v{i}") for i in range(1, 11)])
    conn.close()
    rule = {
        "rule-type": "selection",
        "rule-id": "1",
        "rule-name": "all",
        "object-locator": {"schema-name": "main", "table-name": "%"},
        "rule-action": "include",
    }
    stack = {
        "endpoints": {
            "shop": {"engine": "sqlite", "path": str(source)},
            "dw": {"engine": "duckdb", "path": str(target)},
        },
        "tasks": {
            "sync": {
                "source": "shop",
                "target": "dw",
                "migration_type": "full-load-and-cdc",
                "table_mappings": {"rules": [rule]},
                "settings": settings or {},
            }
        },
    }
    path = tmp_path / "conveyor.yaml"
    path.write_text(json.dumps(stack))
    return path, source, target


def _sqlite_execute(path: Path, *statements: str) -> None:
    with sqlite3.connect(path) as conn:
        for statement in statements:
            conn.execute(statement)
    conn.close()


def _table_stats(store: Store, name: str) -> dict[str, Any]:
    run = store.task_status("sync")["current_run"]
    return next((t for t in store.table_stats("sync", run) if t["TableName"] == name), {})


def test_sqlite_rename_column_keeps_its_values(tmp_path: Path, store: Store) -> None:
    stack, source, target = _sqlite_stack(tmp_path)
    with RunningTask(store, stack, "sync"):
        wait_until(lambda: store.task_progress("sync") is not None, "capture to begin")
        _sqlite_execute(source, "ALTER TABLE items RENAME COLUMN qty TO quantity")
        _sqlite_execute(source, "UPDATE items SET quantity = 500 WHERE id = 5")
        wait_until(
            lambda: _table_stats(store, "items").get("Updates") == 1,
            "the renamed column's change",
            debug=lambda: _table_stats(store, "items"),
        )
    rows = _duckdb(target, "SELECT id, quantity FROM main.items ORDER BY id")
    assert rows == [(i, 500 if i == 5 else i) for i in range(1, 51)]
    stats = _table_stats(store, "items")
    assert stats["Ddls"] == 1 and stats.get("SuspendedReason") is None


@pytest.mark.parametrize("drop", [True, False])
def test_sqlite_drop_table_follows_handle_source_table_dropped(
    tmp_path: Path, store: Store, drop: bool
) -> None:
    settings = {"ChangeProcessingDdlHandlingPolicy": {"HandleSourceTableDropped": drop}}
    stack, source, target = _sqlite_stack(tmp_path, settings)
    with RunningTask(store, stack, "sync"):
        wait_until(lambda: store.task_progress("sync") is not None, "capture to begin")
        _sqlite_execute(source, "UPDATE other SET v = 'last' WHERE id = 1", "DROP TABLE other")
        _sqlite_execute(source, "UPDATE items SET name = 'after' WHERE id = 1")
        wait_until(lambda: _table_stats(store, "items").get("Updates") == 1, "later changes of items")
        wait_until(lambda: _table_stats(store, "other").get("TableState") == "Table dropped", "the drop")
    assert _duckdb(target, "SELECT name FROM main.items WHERE id = 1") == [("after",)]
    left = _duckdb(target, "SELECT count(*) FROM main.other")
    assert left is None if drop else left == [(10,)]
    assert "dropped" in _table_stats(store, "other")["Error"]
    events = [e["detail"] for e in store.list_events() if e["detail"]["eventId"] == "CONVEYOR-EVENT-0002"]
    assert len(events) == 1 and "main.other" in events[0]["detailMessage"]


def test_mariadb_rename_and_change_column_keep_their_values(
    mariadb_items: str, pg_server: PostgresServer, store: Store, tmp_path: Path
) -> None:
    target = pg_server.url(pg_server.new_database("cdcdst"))
    stack = _mariadb_stack(tmp_path, mariadb_items, target)
    schema = mariadb_items.rsplit("/", 1)[1]
    execute = _mariadb_execute(mariadb_items)
    with RunningTask(store, stack, "sync"):
        wait_until(lambda: store.task_progress("sync") is not None, "capture to begin")
        execute([("ALTER TABLE items RENAME COLUMN note TO remark", ())])
        wait_until(lambda: task_stats(store).get("Ddls") == 1, "the first rename")
        execute([("ALTER TABLE items CHANGE COLUMN name title varchar(100), ADD COLUMN extra int", ())])
        execute([("UPDATE items SET remark = 'changed', title = 't', extra = 7 WHERE id = 3", ())])
        wait_until(
            lambda: _pg_rows(target, schema, "id, title, remark, extra")[2:3] == [(3, "t", "changed", 7)],
            "the renamed columns' change on the target",
            debug=lambda: (task_stats(store), store.task_status("sync")),
        )
    rows = _pg_rows(target, schema, "id, title, remark")
    assert len(rows) == 1000 and rows[0][1:] == ("item 1", "n")
    assert task_stats(store)["Ddls"] == 2


def test_mariadb_drop_table_drops_the_target_table(
    mariadb_items: str, pg_server: PostgresServer, store: Store, tmp_path: Path
) -> None:
    target = pg_server.url(pg_server.new_database("cdcdst"))
    stack = _mariadb_stack(tmp_path, mariadb_items, target)
    schema = mariadb_items.rsplit("/", 1)[1]
    execute = _mariadb_execute(mariadb_items)
    with RunningTask(store, stack, "sync"):
        wait_until(lambda: store.task_progress("sync") is not None, "capture to begin")
        execute([("DROP TABLE items", ())])
        wait_until(lambda: task_stats(store).get("TableState") == "Table dropped", "the drop")
    with psycopg.connect(target) as conn:
        found = conn.execute("SELECT to_regclass(%s)", (f'"{schema}".items',)).fetchone()
    assert found == (None,)
