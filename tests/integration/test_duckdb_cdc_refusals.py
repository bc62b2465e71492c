"""Changes a DuckDB target refuses go to awsdms_apply_exceptions (or suspend
their table, per DataErrorPolicy) instead of failing the batch; target names
that collide after the mappings are refused before capture starts."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest

from conveyor.store.store import Store
from support.task_thread import RunningTask

pytestmark = pytest.mark.integration

DEADLINE_S = 30.0


def wait_until(check: Callable[[], bool], what: str, debug: Callable[[], Any] = lambda: "") -> None:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {DEADLINE_S} s waiting for {what}: {debug()}")


def _stack(tmp_path: Path, settings: dict[str, Any], transformations: list[dict[str, Any]] = ()) -> Path:  # type: ignore[assignment]
    source = tmp_path / "app.sqlite"
    with sqlite3.connect(source) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE docs (id INTEGER PRIMARY KEY, body JSON, note TEXT)")
        conn.execute("CREATE TABLE plain (id INTEGER PRIMARY KEY, note TEXT)")
        conn.executemany(
            "INSERT INTO docs VALUES (?, ?, ?)", [(i, f'{{"n": {i}}}', "x") for i in range(1, 6)]
        )
        conn.executemany("INSERT INTO plain VALUES (?, ?)", [(i, "p") for i in range(1, 4)])
    conn.close()
    rules: list[dict[str, Any]] = [
        {
            "rule-type": "selection",
            "rule-id": "1",
            "rule-name": "all",
            "object-locator": {"schema-name": "main", "table-name": "%"},
            "rule-action": "include",
        },
        *transformations,
    ]
    stack = {
        "endpoints": {
            "app": {"engine": "sqlite", "path": str(source)},
            "dw": {"engine": "duckdb", "path": str(tmp_path / "dw.duckdb")},
        },
        "tasks": {
            "sync": {
                "source": "app",
                "target": "dw",
                "migration_type": "full-load-and-cdc",
                "table_mappings": {"rules": rules},
                "settings": settings,
            }
        },
    }
    path = tmp_path / "conveyor.yaml"
    path.write_text(json.dumps(stack))
    return path


def _query(path: Path, sql: str) -> list[tuple[Any, ...]]:
    try:
        with duckdb.connect(str(path), read_only=True) as conn:
            return conn.execute(sql).fetchall()
    except duckdb.Error:
        return []  # not created yet, or the writer holds it


def _tables(store: Store) -> dict[str, dict[str, Any]]:
    run = store.task_status("sync")["current_run"]
    return {t["TableName"]: t for t in (store.table_stats("sync", run) if run is not None else [])}


def _counts(store: Store, table: str) -> tuple[int, int]:
    stats = _tables(store).get(table, {})
    return stats.get("Inserts", 0), stats.get("Updates", 0)


def _change(source: Path, *statements: str) -> None:
    with sqlite3.connect(source) as conn:
        for statement in statements:
            conn.execute(statement)
    conn.close()


def test_a_refused_change_goes_to_apply_exceptions_and_the_rest_applies(tmp_path: Path, store: Store) -> None:
    stack = _stack(tmp_path, {"ErrorBehavior": {"DataErrorPolicy": "LOG_ERROR"}})
    source, target = tmp_path / "app.sqlite", tmp_path / "dw.duckdb"
    with RunningTask(store, stack, "sync"):
        wait_until(lambda: store.task_progress("sync") is not None, "capture to begin")
        _change(
            source,
            "INSERT INTO docs VALUES (10, 'not json', 'refused')",
            "INSERT INTO docs VALUES (11, '[1]', 'fine')",
            "UPDATE docs SET body = '{broken' WHERE id = 1",
            "UPDATE docs SET note = 'changed' WHERE id = 2",
        )
        wait_until(lambda: _counts(store, "docs") == (2, 2), "the changes", lambda: _tables(store))
    rows = _query(target, "SELECT id, body, note FROM main.docs ORDER BY id")
    assert rows == [
        (1, '{"n": 1}', "x"),  # the refused update left the row as it was
        (2, '{"n": 2}', "changed"),
        (3, '{"n": 3}', "x"),
        (4, '{"n": 4}', "x"),
        (5, '{"n": 5}', "x"),
        (11, "[1]", "fine"),
    ]
    logged = _query(
        target,
        "SELECT task_name, table_name, key, column_name, value, error FROM main.awsdms_apply_exceptions "
        "ORDER BY key",
    )
    assert {row[:5] for row in logged} == {
        ("sync", "docs", '{"id": "1"}', "body", "{broken"),
        ("sync", "docs", '{"id": "10"}', "body", "not json"),
    }
    assert len(logged) == 2
    assert all("cannot read the value as JSON" in row[5] for row in logged)
    assert _tables(store)["docs"].get("SuspendedReason") is None


def test_suspend_table_policy_suspends_only_that_table(tmp_path: Path, store: Store) -> None:
    stack = _stack(tmp_path, {"ErrorBehavior": {"DataErrorPolicy": "SUSPEND_TABLE"}})
    source, target = tmp_path / "app.sqlite", tmp_path / "dw.duckdb"
    with RunningTask(store, stack, "sync"):
        wait_until(lambda: store.task_progress("sync") is not None, "capture to begin")
        _change(source, "INSERT INTO docs VALUES (10, 'not json', 'refused')")
        wait_until(
            lambda: _tables(store).get("docs", {}).get("TableState") == "Table error", "the suspension"
        )
        _change(source, "INSERT INTO plain VALUES (9, 'after')")
        wait_until(lambda: _counts(store, "plain") == (1, 0), "plain goes on", lambda: _tables(store))
    assert _query(target, "SELECT id FROM main.plain WHERE id = 9") == [(9,)]
    docs = _tables(store)["docs"]
    assert "DataErrorPolicy SUSPEND_TABLE" in docs["Error"] and "'body'" in docs["Error"]
    assert _query(target, "SELECT count(*) FROM main.awsdms_apply_exceptions") == [(0,)]


def test_a_refusal_no_screen_foresees_is_found_by_the_probe(tmp_path: Path, store: Store) -> None:
    """A CHECK constraint on a table the user created: DuckDB refuses the
    screened batch, the thorough screen finds the row."""
    target = tmp_path / "dw.duckdb"
    with duckdb.connect(str(target)) as conn:
        conn.execute(
            "CREATE TABLE main.plain (id BIGINT PRIMARY KEY, note VARCHAR CHECK (note <> 'forbidden'))"
        )
    settings = {"FullLoadSettings": {"TargetTablePrepMode": "DO_NOTHING"}}
    stack = _stack(tmp_path, settings)
    with RunningTask(store, stack, "sync"):
        wait_until(lambda: store.task_progress("sync") is not None, "capture to begin")
        _change(
            tmp_path / "app.sqlite",
            "INSERT INTO plain VALUES (20, 'forbidden')",
            "INSERT INTO plain VALUES (21, 'allowed')",
        )
        wait_until(lambda: _counts(store, "plain") == (2, 0), "the inserts", lambda: _tables(store))
    assert _query(target, "SELECT id FROM main.plain ORDER BY id") == [(1,), (2,), (3,), (21,)]
    logged = _query(target, "SELECT key, error FROM main.awsdms_apply_exceptions")
    assert len(logged) == 1 and logged[0][0] == '{"id": "20"}' and "CHECK constraint" in logged[0][1]


def test_tables_renamed_into_one_name_are_refused_and_the_rest_replicates(
    tmp_path: Path, store: Store
) -> None:
    def rename(rid: int, table: str, value: str) -> dict[str, Any]:
        return {
            "rule-type": "transformation",
            "rule-id": str(rid),
            "rule-name": f"r{rid}",
            "rule-target": "table",
            "object-locator": {"schema-name": "main", "table-name": table},
            "rule-action": "rename",
            "value": value,
        }

    stack = _stack(tmp_path, {}, [rename(2, "docs", "Mixed"), rename(3, "plain", "MIXED")])
    with sqlite3.connect(tmp_path / "app.sqlite") as conn:
        conn.execute("CREATE TABLE other (id INTEGER PRIMARY KEY)")
        conn.execute("INSERT INTO other VALUES (1)")
    conn.close()
    target = tmp_path / "dw.duckdb"
    with RunningTask(store, stack, "sync"):
        wait_until(lambda: store.task_progress("sync") is not None, "capture to begin")
        _change(tmp_path / "app.sqlite", "INSERT INTO other VALUES (2)")
        wait_until(lambda: _counts(store, "other") == (1, 0), "other replicates", lambda: _tables(store))
    assert _query(target, "SELECT count(*) FROM main.other") == [(2,)]
    tables = _tables(store)
    for name, other in (("Mixed", "MIXED"), ("MIXED", "Mixed")):
        assert tables[name]["TableState"] == "Table error"
        assert f"collides with main.{other}" in tables[name]["Error"]
        assert "without regard to case" in tables[name]["Error"]
    assert "main.docs" in tables["Mixed"]["Error"] and "main.plain" in tables["Mixed"]["Error"]
    assert _query(target, "SELECT count(*) FROM duckdb_tables() WHERE lower(table_name) = 'mixed'") == [(0,)]
