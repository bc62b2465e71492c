"""The source's shape honoured during change capture: a renamed column is
renamed on the target with its values kept; a dropped table follows
HandleSourceTableDropped; on every source engine."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest

from conveyor.connectors.base import EndpointConfig
from conveyor.connectors.changes import TableDefinition
from conveyor.connectors.postgres.capture import PostgresChangeSource
from conveyor.store.store import Store
from integration.test_cdc_resilience import _mariadb_execute, _mariadb_items, _mariadb_stack, _pg_rows
from integration.test_cdc_tasks import _described
from integration.test_cdc_tasks import _stats as task_stats
from integration.test_postgres_capture import _collect
from support import stacks
from support.cli import conveyor
from support.mariadb import mariadb_connect
from support.servers import MariaDBServer, PostgresServer
from support.task_thread import RunningTask
from support.tasks import described as read_task
from support.tasks import kill_worker, wait_until

pytestmark = pytest.mark.integration


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
    path = stacks.one_task(
        tmp_path / "conveyor.yaml",
        {"engine": "sqlite", "path": str(source)},
        {"engine": "duckdb", "path": str(target)},
        schema="main",
        settings=settings or {},
        names=("shop", "dw"),
    )
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


def test_sqlite_alter_with_handle_source_table_altered_false_suspends_the_table(
    tmp_path: Path, store: Store
) -> None:
    settings = {"ChangeProcessingDdlHandlingPolicy": {"HandleSourceTableAltered": False}}
    stack, source, target = _sqlite_stack(tmp_path, settings)
    with RunningTask(store, stack, "sync"):
        wait_until(lambda: store.task_progress("sync") is not None, "capture to begin")
        _sqlite_execute(source, "ALTER TABLE items RENAME COLUMN qty TO quantity")
        _sqlite_execute(source, "UPDATE items SET quantity = 500 WHERE id = 5", "UPDATE other SET v = 'x'")
        wait_until(lambda: _table_stats(store, "other").get("Updates") == 10, "the other table's changes")
        wait_until(lambda: _table_stats(store, "items").get("SuspendedReason") is not None, "the suspension")
    reason = _table_stats(store, "items")["SuspendedReason"]
    assert "column 'qty' renamed to 'quantity'" in reason and "HandleSourceTableAltered is false" in reason
    assert _duckdb(target, "SELECT qty FROM main.items WHERE id = 5") == [(5,)]
    assert [r["table_name"] for r in store.suspensions("sync")] == ["items"]


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
    events = [e["detail"] for e in store.list_events() if e["detail"]["eventId"] == "CONVEYOR-EVENT-0003"]
    assert len(events) == 1 and "main.other" in events[0]["detailMessage"]


def test_sqlite_table_created_during_cdc_is_loaded_then_captured(tmp_path: Path, store: Store) -> None:
    stack, source, target = _sqlite_stack(tmp_path)
    with RunningTask(store, stack, "sync"):
        wait_until(lambda: store.task_progress("sync") is not None, "capture to begin")
        with sqlite3.connect(source) as conn:  # rows in the creating transaction too
            conn.execute("CREATE TABLE fresh (id INTEGER PRIMARY KEY, v TEXT)")
            conn.executemany("INSERT INTO fresh VALUES (?, ?)", [(i, f"v{i}") for i in range(1, 101)])
        conn.close()
        # Rows written while the table is picked up (before and after its
        # triggers exist): each arrives once, none is lost.
        for i in range(101, 301):
            _sqlite_execute(source, f"INSERT INTO fresh VALUES ({i}, 'w{i}')")
            time.sleep(0.002)
        _sqlite_execute(source, "CREATE TABLE keyless (v TEXT)", "UPDATE fresh SET v = 'u' WHERE id = 150")
        wait_until(
            lambda: _table_stats(store, "fresh").get("TableState") == "Table completed",
            "the load",
            debug=lambda: _table_stats(store, "fresh"),
        )
        _sqlite_execute(
            source,
            "UPDATE fresh SET v = 'changed' WHERE id = 1",
            "DELETE FROM fresh WHERE id = 2",
            "INSERT INTO fresh VALUES (1000, 'late')",
        )
        wait_until(lambda: _table_stats(store, "fresh").get("Deletes") == 1, "changes after the load")
        wait_until(lambda: _table_stats(store, "keyless").get("SuspendedReason") is not None, "keyless")
    assert "no primary key" in _table_stats(store, "keyless")["SuspendedReason"]
    # Captured in the next run too (it joined the task's triggers and registry).
    # (A keyless table selected by the task stops an SQLite task from starting.)
    _sqlite_execute(source, "INSERT INTO fresh VALUES (1001, 'while stopped')", "DROP TABLE keyless")
    with RunningTask(store, stack, "sync", mode="resume"):
        wait_until(
            lambda: _table_stats(store, "fresh").get("Inserts") == 1,
            "the change made while stopped",
            debug=lambda: store.task_status("sync"),
        )
    with sqlite3.connect(source) as conn:
        expected = conn.execute("SELECT id, v FROM fresh ORDER BY id").fetchall()
    conn.close()
    assert len(expected) == 301 and _duckdb(target, "SELECT id, v FROM main.fresh ORDER BY id") == expected
    assert [r["table_name"] for r in store.suspensions("sync")] == ["keyless"]


def _mariadb_query(url: str, query: str) -> list[tuple[Any, ...]]:
    conn = mariadb_connect(url, autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(query)
            return list(cur.fetchall())
    finally:
        conn.close()


def test_mariadb_table_created_during_cdc_is_loaded_then_captured(
    mariadb_items: str, pg_server: PostgresServer, store: Store, tmp_path: Path
) -> None:
    target = pg_server.url(pg_server.new_database("cdcdst"))
    stack = _mariadb_stack(tmp_path, mariadb_items, target)
    schema = mariadb_items.rsplit("/", 1)[1]
    execute = _mariadb_execute(mariadb_items)
    query = f'SELECT id, v FROM "{schema}".fresh ORDER BY id'
    with RunningTask(store, stack, "sync"):
        wait_until(lambda: store.task_progress("sync") is not None, "capture to begin")
        execute([("CREATE TABLE fresh (id int PRIMARY KEY, v varchar(20))", ())])
        # Rows written while the table is picked up: each arrives once, none is lost.
        for i in range(1, 201):
            execute([("INSERT INTO fresh VALUES (%s, %s)", (i, f"v{i}"))])
        execute([("CREATE TABLE keyless (v text)", ()), ("UPDATE fresh SET v = 'u' WHERE id = 150", ())])
        wait_until(
            lambda: _table_stats(store, "fresh").get("TableState") == "Table completed",
            "the load",
            debug=lambda: _table_stats(store, "fresh"),
        )
        execute(
            [
                ("UPDATE fresh SET v = 'changed' WHERE id = 1", ()),
                ("DELETE FROM fresh WHERE id = 2", ()),
                ("INSERT INTO fresh VALUES (1000, 'late')", ()),
            ]
        )
        expected = _mariadb_query(mariadb_items, "SELECT id, v FROM fresh ORDER BY id")
        wait_until(lambda: _pg(target, query) == expected, "the target to equal the source")
        wait_until(lambda: _table_stats(store, "keyless").get("SuspendedReason") is not None, "keyless")
    assert len(expected) == 200 and expected[0] == (1, "changed")
    assert "no primary key" in _table_stats(store, "keyless")["SuspendedReason"]
    assert _table_stats(store, "items").get("SuspendedReason") is None


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


def test_mariadb_rename_table_follows_the_selection(
    mariadb_items: str, pg_server: PostgresServer, store: Store, tmp_path: Path
) -> None:
    """RENAME TABLE of a captured table: the old name leaves the capture as if
    dropped (HandleSourceTableDropped: its target table dropped); the new name,
    selected, is loaded then captured, and no change is lost."""
    target = pg_server.url(pg_server.new_database("cdcdst"))
    stack = _mariadb_stack(tmp_path, mariadb_items, target)
    schema = mariadb_items.rsplit("/", 1)[1]
    execute = _mariadb_execute(mariadb_items)
    with RunningTask(store, stack, "sync"):
        wait_until(lambda: store.task_progress("sync") is not None, "capture to begin")
        execute([("UPDATE items SET name = 'before' WHERE id = 1", ())])
        execute([("RENAME TABLE items TO goods", ())])
        for i in range(1001, 1051):  # written while the new name is picked up
            execute([("INSERT INTO goods VALUES (%s, %s, 0, 'n')", (i, f"item {i}"))])
        wait_until(
            lambda: _table_stats(store, "goods").get("TableState") == "Table completed",
            "the load of the new name",
            debug=lambda: _table_stats(store, "goods"),
        )
        execute(
            [("UPDATE goods SET name = 'after' WHERE id = 2", ()), ("DELETE FROM goods WHERE id = 3", ())]
        )
        expected = _mariadb_query(mariadb_items, "SELECT id, name FROM goods ORDER BY id")
        query = f'SELECT id, name FROM "{schema}".goods ORDER BY id'
        wait_until(lambda: _pg(target, query) == expected, "the target to equal the source")
    assert len(expected) == 1049 and expected[:2] == [(1, "before"), (2, "after")]
    with psycopg.connect(target) as conn:
        found = conn.execute("SELECT to_regclass(%s)", (f'"{schema}".items',)).fetchone()
    assert found == (None,)  # the old name was dropped
    assert _table_stats(store, "items").get("TableState") == "Table dropped"


def test_mariadb_rename_table_out_of_the_selection_is_a_drop(
    mariadb_items: str, mariadb_server: MariaDBServer, pg_server: PostgresServer, store: Store, tmp_path: Path
) -> None:
    target = pg_server.url(pg_server.new_database("cdcdst"))
    stack = _mariadb_stack(tmp_path, mariadb_items, target)
    schema = mariadb_items.rsplit("/", 1)[1]
    elsewhere = mariadb_server.new_database("elsewhere")
    execute = _mariadb_execute(mariadb_items)
    with RunningTask(store, stack, "sync"):
        wait_until(lambda: store.task_progress("sync") is not None, "capture to begin")
        execute([(f"RENAME TABLE items TO `{elsewhere}`.items", ())])
        wait_until(lambda: _table_stats(store, "items").get("TableState") == "Table dropped", "the drop")
    with psycopg.connect(target) as conn:
        found = conn.execute("SELECT to_regclass(%s)", (f'"{schema}".items',)).fetchone()
        assert found == (None,)
        assert conn.execute("SELECT to_regnamespace(%s)", (elsewhere,)).fetchone() == (None,)


# -- PostgreSQL ------------------------------------------------------------------


@pytest.fixture
def pg_source_target(pg_server: PostgresServer) -> tuple[str, str]:
    source, target = (pg_server.url(pg_server.new_database(p)) for p in ("ddlsrc", "ddldst"))
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id bigint PRIMARY KEY, name text, counter integer NOT NULL)")
        conn.execute("INSERT INTO items SELECT g, 'item ' || g, g FROM generate_series(1, 200) g")
        conn.execute("CREATE TABLE other (id bigint PRIMARY KEY, v text)")
        conn.execute("INSERT INTO other SELECT g, 'v' || g FROM generate_series(1, 20) g")
    return source, target


def _pg_stack(tmp_path: Path, source: str, target: str, settings: dict[str, Any] | None = None) -> Path:
    document = {
        "endpoints": {
            "src": {"engine": "postgres", "url": source},
            "dst": {"engine": "postgres", "url": target},
        },
        "tasks": {
            "sync": {
                "source": "src",
                "target": "dst",
                "migration_type": "full-load-and-cdc",
                "table_mappings": {
                    "rules": [
                        {
                            "rule-type": "selection",
                            "rule-id": "1",
                            "rule-name": "all",
                            "object-locator": {"schema-name": "public", "table-name": "%"},
                            "rule-action": "include",
                        }
                    ]
                },
                "settings": settings or {},
            }
        },
    }
    path = tmp_path / "s.yaml"
    path.write_text(json.dumps(document))
    return path


def _pg(url: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(query).fetchall()


def _pg_execute(url: str, *statements: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def test_postgres_rename_column_keeps_its_values(
    pg_source_target: tuple[str, str], store: Store, tmp_path: Path
) -> None:
    source, target = pg_source_target
    with RunningTask(store, _pg_stack(tmp_path, source, target), "sync"):
        wait_until(lambda: store.task_progress("sync") is not None, "capture to begin")
        _pg_execute(source, "ALTER TABLE items RENAME COLUMN name TO title")
        _pg_execute(source, "UPDATE items SET title = 'renamed', counter = -1 WHERE id = 7")
        wait_until(
            lambda: _table_stats(store, "items").get("Updates") == 1,
            "the change after the rename",
            debug=lambda: _table_stats(store, "items"),
        )
        # A DROP plus an ADD of the same type stays a drop and an add.
        _pg_execute(
            source, "ALTER TABLE items DROP COLUMN counter", "ALTER TABLE items ADD COLUMN counter integer"
        )
        _pg_execute(source, "UPDATE items SET counter = 1 WHERE id = 8")
        wait_until(lambda: _table_stats(store, "items").get("Updates") == 2, "the change after drop and add")
    assert _pg(target, "SELECT id, title, counter FROM items WHERE id IN (1, 7, 8) ORDER BY id") == [
        (1, "item 1", None),
        (7, "renamed", None),
        (8, "item 8", 1),
    ]
    assert _pg(target, "SELECT count(*) FROM items WHERE title = 'item ' || id") == [(199,)]
    stats = _table_stats(store, "items")
    assert stats["Ddls"] == 3 and stats.get("SuspendedReason") is None


def test_postgres_ddl_the_target_refuses_suspends_the_table_and_the_others_flow(
    pg_source_target: tuple[str, str], store: Store, tmp_path: Path
) -> None:
    source, target = pg_source_target
    with RunningTask(store, _pg_stack(tmp_path, source, target), "sync"):
        wait_until(lambda: store.task_progress("sync") is not None, "capture to begin")
        _pg_execute(target, "CREATE VIEW names AS SELECT name FROM items")
        _pg_execute(source, "ALTER TABLE items DROP COLUMN name", "UPDATE items SET counter = 0 WHERE id = 1")
        wait_until(lambda: _table_stats(store, "items").get("SuspendedReason") is not None, "the suspension")
        _pg_execute(source, "UPDATE other SET v = 'flows' WHERE id = 1")
        wait_until(lambda: _table_stats(store, "other").get("Updates") == 1, "the other table's change")
    reason = _table_stats(store, "items")["SuspendedReason"]
    assert "could not be applied to the target" in reason and "depend" in reason
    assert _pg(target, "SELECT v FROM other WHERE id = 1") == [("flows",)]
    assert _pg(target, "SELECT counter FROM items WHERE id = 1") == [(1,)]


def test_postgres_drop_table_drops_the_target_table_and_leaves_the_capture(
    pg_source_target: tuple[str, str], store: Store, tmp_path: Path
) -> None:
    source, target = pg_source_target
    with RunningTask(store, _pg_stack(tmp_path, source, target), "sync"):
        wait_until(lambda: store.task_progress("sync") is not None, "capture to begin")
        _pg_execute(source, "UPDATE other SET v = 'last' WHERE id = 1", "DROP TABLE other")
        _pg_execute(source, "UPDATE items SET name = 'after' WHERE id = 1")
        wait_until(lambda: _table_stats(store, "other").get("TableState") == "Table dropped", "the drop")
        wait_until(lambda: _table_stats(store, "items").get("Updates") == 1, "later changes of items")
    assert _pg(target, "SELECT to_regclass('public.other')") == [(None,)]
    assert _pg(target, "SELECT name FROM items WHERE id = 1") == [("after",)]


def test_postgres_drop_table_leaves_the_target_table_when_the_policy_says_so(
    pg_source_target: tuple[str, str], store: Store, tmp_path: Path
) -> None:
    source, target = pg_source_target
    settings = {"ChangeProcessingDdlHandlingPolicy": {"HandleSourceTableDropped": False}}
    with RunningTask(store, _pg_stack(tmp_path, source, target, settings), "sync"):
        wait_until(lambda: store.task_progress("sync") is not None, "capture to begin")
        _pg_execute(source, "UPDATE other SET v = 'last' WHERE id = 1", "DROP TABLE other")
        wait_until(lambda: _table_stats(store, "other").get("TableState") == "Table dropped", "the drop")
    # Every change before the drop is on the target, which keeps the table.
    assert _pg(target, "SELECT v FROM other WHERE id = 1") == [("last",)]
    assert _pg(target, "SELECT count(*) FROM other") == [(20,)]


def test_postgres_table_created_during_cdc_is_loaded_then_captured(
    pg_source_target: tuple[str, str], store: Store, tmp_path: Path
) -> None:
    source, target = pg_source_target
    with RunningTask(store, _pg_stack(tmp_path, source, target), "sync"):
        wait_until(lambda: store.task_progress("sync") is not None, "capture to begin")
        with psycopg.connect(source) as conn:  # rows in the creating transaction too
            conn.execute("CREATE TABLE fresh (id bigint PRIMARY KEY, v text)")
            conn.execute("INSERT INTO fresh SELECT g, 'v' || g FROM generate_series(1, 100) g")
        _pg_execute(source, "CREATE TABLE keyless (v text)", "INSERT INTO fresh VALUES (101, 'after')")
        wait_until(lambda: _table_stats(store, "fresh").get("TableState") == "Table completed", "the load")
        _pg_execute(source, "UPDATE fresh SET v = 'changed' WHERE id = 1", "DELETE FROM fresh WHERE id = 2")
        wait_until(lambda: _table_stats(store, "fresh").get("Deletes") == 1, "changes after the load")
        wait_until(lambda: _table_stats(store, "keyless").get("SuspendedReason") is not None, "keyless")
    query = "SELECT id, v FROM fresh ORDER BY id"
    assert _pg(target, query) == _pg(source, query)
    assert len(_pg(target, query)) == 100
    assert "no primary key" in _table_stats(store, "keyless")["SuspendedReason"]
    assert [r["table_name"] for r in store.suspensions("sync")] == ["keyless"]


def test_ddl_triggers_come_with_the_capture_and_go_with_the_last_one(pg_db: str) -> None:
    _pg_execute(pg_db, "CREATE TABLE t (id int PRIMARY KEY, a text)")
    source = PostgresChangeSource(EndpointConfig("src", "postgres", url=pg_db))
    triggers = "SELECT count(*) FROM pg_event_trigger WHERE evtname LIKE 'conveyor_ddl_%'"
    try:
        tables = [t for t in source.tables() if t.ref.name == "t"]
        for task in ("one", "two"):
            assert source.begin_capture(task, tables, export_snapshot=False).warnings == []
        assert _pg(pg_db, triggers) == [(2,)]
        source.end_capture("one")
        assert _pg(pg_db, triggers) == [(2,)]  # still used by task two
        source.end_capture("two")
        assert _pg(pg_db, triggers) == [(0,)]
        assert _pg(pg_db, "SELECT to_regnamespace('conveyor_ddl')") == [(None,)]
    finally:
        source.close()


def test_without_a_superuser_the_stream_never_guesses_a_rename(pg_db: str) -> None:
    role = "ddl_plain"
    _pg_execute(
        pg_db,
        f"CREATE ROLE {role} LOGIN REPLICATION PASSWORD 'pw-ddl-1'",
        "CREATE TABLE t (id int PRIMARY KEY, a text)",
        f"ALTER TABLE t OWNER TO {role}",
        f"GRANT CREATE ON DATABASE {pg_db.rsplit('/', 1)[1]} TO {role}",
    )
    url = pg_db.replace("postgres@", f"{role}@")
    source = PostgresChangeSource(EndpointConfig("src", "postgres", url=url, password="pw-ddl-1"))
    try:
        tables = [t for t in source.tables() if t.ref.name == "t"]
        start = source.begin_capture("plain", tables, export_snapshot=False)
        assert any("not a superuser" in w for w in start.warnings)
        stream = source.open_stream("plain", tables, start.position)
        try:
            _pg_execute(pg_db, "ALTER TABLE t RENAME COLUMN a TO b", "INSERT INTO t VALUES (1, 'x')")
            events = _collect(stream, 1)
        finally:
            stream.close()
        definitions = [e for e in events if isinstance(e, TableDefinition)]
        assert len(definitions) == 1 and definitions[0].renamed is None
        assert definitions[0].schema.column_names == ["id", "b"]
        source.end_capture("plain")
    finally:
        source.close()
        _pg_execute(pg_db, f"DROP OWNED BY {role}", f"DROP ROLE {role}")


# -- a suspended table stays suspended until it is reloaded --------------------------


def _items_suspended(home: Path) -> str | None:
    rows = [r for r in _described(home).get("suspended_tables", []) if r["table_name"] == "items"]
    return rows[0]["reason"] if rows and rows[0]["state"] == "suspended" else None


def _active(home: Path) -> bool:
    task = read_task(home, "sync")
    return task["status"] == "running" and "capture" in task


def test_a_suspended_table_stays_suspended_across_stop_resume_and_sigkill_until_reloaded(
    pg_source_target: tuple[str, str], tmp_path: Path
) -> None:
    source, target = pg_source_target
    home = tmp_path / "home"
    assert conveyor(home, "apply", str(_pg_stack(tmp_path, source, target))).returncode == 0
    try:
        assert conveyor(home, "tasks", "start", "sync").returncode == 0
        wait_until(lambda: _active(home), "capture to begin", seconds=60)
        _pg_execute(source, "ALTER TABLE items ALTER COLUMN counter TYPE bigint")
        _pg_execute(source, "UPDATE items SET counter = 5000000000 WHERE id = 1")
        wait_until(lambda: _items_suspended(home) is not None, "the table to be suspended")
        assert "column 'counter' changed type" in str(_items_suspended(home))

        # Stopped, changed meanwhile, resumed: still suspended; the other table flows.
        assert conveyor(home, "tasks", "stop", "sync").returncode == 0
        wait_until(lambda: read_task(home, "sync")["status"] == "stopped", "the stop")
        _pg_execute(source, "UPDATE items SET name = 'while stopped' WHERE id = 2")
        _pg_execute(source, "UPDATE other SET v = 'while stopped' WHERE id = 1")
        assert conveyor(home, "tasks", "resume", "sync").returncode == 0
        wait_until(lambda: _pg(target, "SELECT v FROM other WHERE id = 1") == [("while stopped",)], "other")
        described = _described(home)
        items = next(t for t in described["tables"] if t["TableName"] == "items")
        assert items["TableState"] == "Table error" and "changed type" in items["SuspendedReason"]
        assert _items_suspended(home) is not None

        # Killed and resumed: still suspended.
        kill_worker(home, "sync")
        wait_until(lambda: read_task(home, "sync")["status"] == "failed", "the dead worker to be noticed")
        assert conveyor(home, "tasks", "resume", "sync").returncode == 0
        _pg_execute(source, "UPDATE other SET v = 'after kill' WHERE id = 2")
        wait_until(lambda: _pg(target, "SELECT v FROM other WHERE id = 2") == [("after kill",)], "other")
        assert _items_suspended(home) is not None
        assert _pg(target, "SELECT name, counter FROM items WHERE id IN (1, 2) ORDER BY id") == [
            ("item 1", 1),
            ("item 2", 2),
        ]

        # Reloading just that table (the task runs on) makes it equal the source.
        bad = conveyor(home, "tasks", "reload", "sync", "--table", "public.nope")
        assert bad.returncode != 0 and "captures no table public.nope" in bad.stderr
        reload = conveyor(home, "tasks", "reload", "sync", "--table", "public.items")
        assert reload.returncode == 0, reload.stderr
        _pg_execute(source, "UPDATE items SET counter = 6000000000 WHERE id = 4")  # during or after it
        wait_until(lambda: not read_task(home, "sync").get("suspended_tables"), "the reload", seconds=60)
        _pg_execute(source, "UPDATE items SET counter = 7000000000 WHERE id = 3")
        wait_until(
            lambda: _pg(target, "SELECT counter FROM items WHERE id = 3") == [(7000000000,)],
            "a change after it",
        )
        query = "SELECT id, name, counter FROM items ORDER BY id"
        assert _pg(target, query) == _pg(source, query)
        assert _pg(target, "SELECT counter FROM items WHERE id = 1") == [(5000000000,)]
        described = _described(home)
        items = next(t for t in described["tables"] if t["TableName"] == "items")
        assert items["TableState"] == "Table completed" and items["FullLoadRows"] == 200
        assert conveyor(home, "tasks", "stop", "sync").returncode == 0
        wait_until(lambda: read_task(home, "sync")["status"] == "stopped", "the stop")
    finally:
        kill_worker(home, "sync")


def test_reload_of_one_table_of_a_stopped_task_resumes_it(tmp_path: Path) -> None:
    stack, source, target = _sqlite_stack(tmp_path)
    home = tmp_path / "home"
    assert conveyor(home, "apply", str(stack)).returncode == 0
    try:
        assert conveyor(home, "tasks", "start", "sync").returncode == 0
        wait_until(lambda: _active(home), "capture to begin", seconds=60)
        # A type change SQLite cannot apply in place: the table is suspended.
        _sqlite_execute(
            source,
            "ALTER TABLE items ADD COLUMN qty2 TEXT",
            "UPDATE items SET qty2 = CAST(qty AS TEXT) || ' pcs'",
            "ALTER TABLE items DROP COLUMN qty",
            "ALTER TABLE items RENAME COLUMN qty2 TO qty",
        )
        wait_until(lambda: _items_suspended(home) is not None, "the suspension")
        assert conveyor(home, "tasks", "stop", "sync").returncode == 0
        wait_until(lambda: read_task(home, "sync")["status"] == "stopped", "the stop")
        _sqlite_execute(source, "UPDATE items SET name = 'while stopped' WHERE id = 1")
        result = conveyor(home, "tasks", "reload", "sync", "--table", "main.items")
        assert result.returncode == 0 and "resuming to reload main.items" in result.stdout, result.stderr
        wait_until(
            lambda: _active(home) and not read_task(home, "sync").get("suspended_tables"), "the reload", 60
        )
        assert conveyor(home, "tasks", "stop", "sync").returncode == 0
        wait_until(lambda: read_task(home, "sync")["status"] == "stopped", "the stop")
    finally:
        kill_worker(home, "sync")
    rows = _duckdb(target, "SELECT id, name, qty FROM main.items ORDER BY id")
    with sqlite3.connect(source) as conn:
        expected = conn.execute("SELECT id, name, qty FROM items ORDER BY id").fetchall()
    conn.close()
    assert rows == expected and rows[0] == (1, "while stopped", "1 pcs")
