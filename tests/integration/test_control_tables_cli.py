"""ControlTablesSettings through a stack file and the CLI: the status, suspended
tables and history tables on a PostgreSQL and a DuckDB target (the status row
through start and stop, a suspended table's row appearing and going with its
reload, history rows with counters), ControlSchema holding every control table,
and a lake target refusing them."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import psycopg
import pytest

from integration.test_cdc_ddl import (
    _active,
    _duckdb,
    _items_suspended,
    _pg,
    _pg_execute,
    _pg_stack,
    _sqlite_execute,
)
from integration.test_cdc_ddl import _sqlite_stack as sqlite_stack
from support import stacks
from support.cli import conveyor
from support.servers import PostgresServer
from support.tasks import described as read_task
from support.tasks import kill_worker, wait_until

pytestmark = pytest.mark.integration

CONTROL = {
    "ControlTablesSettings": {
        "StatusTableEnabled": True,
        "SuspendedTablesTableEnabled": True,
        "HistoryTableEnabled": True,
        "HistoryTimeslotInMinutes": 1,
    }
}


def _history(rows: list[tuple[Any, ...]]) -> dict[str, int]:
    """Records per timeslot type, summed over the rows (a test may span a slot's end)."""
    totals: dict[str, int] = {}
    for kind, records in rows:
        totals[kind] = totals.get(kind, 0) + records
    return totals


@pytest.fixture
def pg_pair(pg_server: PostgresServer) -> tuple[str, str]:
    source, target = (pg_server.url(pg_server.new_database(p)) for p in ("ctlsrc", "ctldst"))
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id bigint PRIMARY KEY, name text, counter integer NOT NULL)")
        conn.execute("INSERT INTO items SELECT g, 'item ' || g, g FROM generate_series(1, 200) g")
        conn.execute("CREATE TABLE other (id bigint PRIMARY KEY, v text)")
        conn.execute("INSERT INTO other SELECT g, 'v' || g FROM generate_series(1, 20) g")
    return source, target


def _status(target: str) -> list[tuple[Any, ...]]:
    return _pg(target, "SELECT task_name, task_status FROM public.awsdms_status")


def _suspended(target: str) -> list[tuple[Any, ...]]:
    return _pg(
        target,
        "SELECT task_name, table_owner, table_name, suspend_reason, suspend_timestamp"
        " FROM public.awsdms_suspended_tables",
    )


def test_postgres_status_history_and_suspended_tables(pg_pair: tuple[str, str], tmp_path: Path) -> None:
    source, target = pg_pair
    home = tmp_path / "home"
    applied = conveyor(home, "apply", str(_pg_stack(tmp_path, source, target, CONTROL)))
    assert applied.returncode == 0, applied.stderr
    try:
        assert conveyor(home, "tasks", "start", "sync").returncode == 0
        wait_until(lambda: _active(home), "capture to begin", seconds=60)
        wait_until(lambda: _status(target) == [("sync", "CHANGE PROCESSING")], "the status row")
        assert _suspended(target) == []
        _pg_execute(source, "UPDATE other SET v = 'changed' WHERE id <= 5")
        wait_until(lambda: _pg(target, "SELECT count(*) FROM other WHERE v = 'changed'") == [(5,)], "changes")

        # A change of type the target refuses to follow: the table is suspended, and listed.
        _pg_execute(source, "ALTER TABLE items ALTER COLUMN counter TYPE bigint")
        _pg_execute(source, "UPDATE items SET counter = 5000000000 WHERE id = 1")
        wait_until(lambda: _items_suspended(home) is not None, "the table to be suspended")
        wait_until(lambda: len(_suspended(target)) == 1, "the suspended table's row")
        [(task, owner, name, reason, since)] = _suspended(target)
        assert (task, owner, name) == ("sync", "public", "items") and "changed type" in reason

        assert conveyor(home, "tasks", "stop", "sync").returncode == 0
        wait_until(lambda: read_task(home, "sync")["status"] == "stopped", "the stop")
        assert _status(target) == [("sync", "NOT RUNNING")]
        history = _pg(target, "SELECT timeslot_type, timeslot_records FROM public.awsdms_history")
        totals = _history(history)
        assert totals["FULL LOAD"] == 220 and totals["CHANGE PROCESSING"] >= 5, history
        [(duration, server)] = _pg(
            target, "SELECT DISTINCT timeslot_duration, server_name <> '' FROM public.awsdms_history"
        )
        assert duration == 1 and server

        # Resumed: still suspended, since the same time; reloaded: the row goes.
        assert conveyor(home, "tasks", "resume", "sync").returncode == 0
        wait_until(lambda: _status(target) == [("sync", "CHANGE PROCESSING")], "the status row again")
        assert [(*row[:3], row[4]) for row in _suspended(target)] == [("sync", "public", "items", since)]
        assert conveyor(home, "tasks", "reload", "sync", "--table", "public.items").returncode == 0
        events = json.loads(conveyor(home, "events", "list", "--json").stdout)["Events"]
        requested = [e["detail"] for e in events if e["detail"]["eventId"] == "DMS-EVENT-0081"]
        assert [(d["eventType"], d["detailMessage"]) for d in requested] == [
            (
                "REPLICATION_TASK_RELOAD_REQUESTED",
                "A reload of table details has been requested. Tables: public.items.",
            )
        ]
        wait_until(lambda: not read_task(home, "sync").get("suspended_tables"), "the reload", seconds=60)
        wait_until(lambda: _suspended(target) == [], "the suspended table's row to go")
        assert conveyor(home, "tasks", "stop", "sync").returncode == 0
        wait_until(lambda: read_task(home, "sync")["status"] == "stopped", "the stop")
        assert _status(target) == [("sync", "NOT RUNNING")]
    finally:
        kill_worker(home, "sync")


def test_postgres_control_schema_holds_every_control_table(pg_server: PostgresServer, tmp_path: Path) -> None:
    """A full-load task whose refused values go to awsdms_apply_exceptions and
    whose validation records failures: every control table in ControlSchema."""
    source, target = (pg_server.url(pg_server.new_database(p)) for p in ("schsrc", "schdst"))
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("CREATE TABLE orders (id integer PRIMARY KEY, amount numeric(12,2))")
        conn.execute("INSERT INTO orders SELECT g, g * 100.25 FROM generate_series(1, 20) g")
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute("CREATE TABLE orders (id integer PRIMARY KEY, amount numeric(5,2))")
    settings = {
        "FullLoadSettings": {"TargetTablePrepMode": "DO_NOTHING"},
        "ErrorBehavior": {"DataErrorPolicy": "LOG_ERROR"},
        "ValidationSettings": {"EnableValidation": True},
        "ControlTablesSettings": {
            "ControlSchema": "dms_control",
            "StatusTableEnabled": True,
            "HistoryTableEnabled": True,
        },
    }
    path = stacks.one_task(
        tmp_path / "s.yaml",
        {"engine": "postgres", "url": source},
        {"engine": "postgres", "url": target},
        task="load",
        migration_type="full-load",
        schema="public",
        settings=settings,
    )
    home = tmp_path / "home"
    assert conveyor(home, "apply", str(path)).returncode == 0
    started = conveyor(home, "tasks", "start", "load", "--wait", "--json")
    assert started.returncode == 0, started.stdout + started.stderr
    tables = _pg(
        target,
        "SELECT table_schema, table_name FROM information_schema.tables"
        " WHERE table_name LIKE 'awsdms%' ORDER BY 2",
    )
    assert tables == [
        ("dms_control", "awsdms_apply_exceptions"),
        ("dms_control", "awsdms_history"),
        ("dms_control", "awsdms_status"),
        ("dms_control", "awsdms_validation_failures_v1"),
    ]
    # amount = id * 100.25 fits numeric(5,2) for ids 1..9 only
    assert _pg(target, "SELECT count(*) FROM dms_control.awsdms_apply_exceptions") == [(11,)]
    assert _pg(target, "SELECT count(*) > 0 FROM dms_control.awsdms_validation_failures_v1") == [(True,)]
    assert _pg(target, "SELECT task_name, task_status FROM dms_control.awsdms_status") == [
        ("load", "NOT RUNNING")
    ]
    assert _pg(target, "SELECT timeslot_type, timeslot_records FROM dms_control.awsdms_history") == [
        ("FULL LOAD", 9)
    ]


def test_duckdb_status_history_and_suspended_tables(tmp_path: Path) -> None:
    stack, source, target = sqlite_stack(tmp_path, CONTROL)
    home = tmp_path / "home"
    assert conveyor(home, "apply", str(stack)).returncode == 0
    suspended = "SELECT task_name, table_owner, table_name, suspend_reason FROM main.awsdms_suspended_tables"
    try:
        assert conveyor(home, "tasks", "start", "sync").returncode == 0
        wait_until(lambda: _active(home), "capture to begin", seconds=60)
        _sqlite_execute(source, "UPDATE other SET v = 'changed' WHERE id <= 3")
        # A type change DuckDB cannot follow in place: the table is suspended.
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
        # The DuckDB file is readable once the worker has let it go.
        assert _duckdb(target, "SELECT task_name, task_status FROM main.awsdms_status") == [
            ("sync", "NOT RUNNING")
        ]
        [(task, owner, name, reason)] = _duckdb(target, suspended) or [()]
        assert (task, owner, name) == ("sync", "main", "items") and reason
        history = _duckdb(target, "SELECT timeslot_type, timeslot_records FROM main.awsdms_history") or []
        totals = _history(history)
        assert totals["FULL LOAD"] == 60 and totals["CHANGE PROCESSING"] >= 3, history

        result = conveyor(home, "tasks", "reload", "sync", "--table", "main.items")
        assert result.returncode == 0, result.stderr
        wait_until(
            lambda: _active(home) and not read_task(home, "sync").get("suspended_tables"), "the reload", 60
        )
        assert conveyor(home, "tasks", "stop", "sync").returncode == 0
        wait_until(lambda: read_task(home, "sync")["status"] == "stopped", "the stop")
        assert _duckdb(target, suspended) == []
        assert _duckdb(target, "SELECT task_status FROM main.awsdms_status") == [("NOT RUNNING",)]
        runs = _duckdb(target, "SELECT count(DISTINCT timeslot) FROM main.awsdms_history") or [(0,)]
        assert runs[0][0] >= 2  # a part-slot row at each run's end
    finally:
        kill_worker(home, "sync")
    with sqlite3.connect(source) as conn:
        expected = conn.execute("SELECT id, name, qty FROM items ORDER BY id").fetchall()
    conn.close()
    assert _duckdb(target, "SELECT id, name, qty FROM main.items ORDER BY id") == expected


def test_a_lake_target_refuses_control_tables_naming_key_and_engine(tmp_path: Path) -> None:
    stack, _, _ = sqlite_stack(tmp_path, {"ControlTablesSettings": {"StatusTableEnabled": True}})
    document = json.loads(stack.read_text())
    document["endpoints"]["dw"] = {"engine": "lake", "path": str(tmp_path / "lake")}
    stack.write_text(json.dumps(document))
    result = conveyor(tmp_path / "home", "apply", str(stack))
    assert result.returncode != 0
    assert (
        "tasks.sync.settings.ControlTablesSettings.StatusTableEnabled: Conveyor cannot honour true"
        in result.stderr
    )
    assert "a lake target keeps no control tables" in result.stderr


def test_duckdb_control_schema_holds_every_control_table(tmp_path: Path) -> None:
    source, target = tmp_path / "shop.sqlite", tmp_path / "dw.duckdb"
    with sqlite3.connect(source) as conn:
        conn.execute("CREATE TABLE sales (id INTEGER PRIMARY KEY, amt DECIMAL(10,2))")
        conn.executemany("INSERT INTO sales VALUES (?, ?)", [(1, "1.50"), (2, "2.50"), (3, "not a number")])
    conn.close()
    control = {"ControlSchema": "ctl", "StatusTableEnabled": True, "HistoryTableEnabled": True}
    path = stacks.one_task(
        tmp_path / "s.yaml",
        {"engine": "sqlite", "path": str(source)},
        {"engine": "duckdb", "path": str(target)},
        task="load",
        migration_type="full-load",
        schema="main",
        settings={"ControlTablesSettings": control},
        names=("shop", "dw"),
    )
    home = tmp_path / "home"
    assert conveyor(home, "apply", str(path)).returncode == 0
    started = conveyor(home, "tasks", "start", "load", "--wait", "--json")
    assert started.returncode == 0, started.stdout + started.stderr
    tables = (
        "SELECT table_schema, table_name FROM information_schema.tables"
        " WHERE table_name LIKE 'awsdms%' ORDER BY 2"
    )
    assert _duckdb(target, tables) == [
        ("ctl", "awsdms_apply_exceptions"),
        ("ctl", "awsdms_history"),
        ("ctl", "awsdms_status"),
    ]
    assert _duckdb(target, "SELECT table_name, column_name FROM ctl.awsdms_apply_exceptions") == [
        ("sales", "amt")
    ]
    assert _duckdb(target, "SELECT task_name, task_status FROM ctl.awsdms_status") == [
        ("load", "NOT RUNNING")
    ]
    assert _duckdb(target, "SELECT timeslot_type, timeslot_records FROM ctl.awsdms_history") == [
        ("FULL LOAD", 2)
    ]
