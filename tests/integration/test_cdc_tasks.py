"""Change-capture tasks end to end, in process: full load, hand-over, changes
arriving, stop, resume."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from conveyor.replication.task_runner import STOP_REASON_NORMAL, StartMode, run_task
from conveyor.stack.loader import load_stack
from conveyor.store.store import Store

pytestmark = pytest.mark.integration

DEADLINE_S = 30.0


def wait_until(
    check: Callable[[], bool], what: str, seconds: float = DEADLINE_S, debug: Callable[[], Any] | None = None
) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}: {debug() if debug else ''}")


class RunningTask:
    """A task running in a thread of this process, stopped on exit."""

    def __init__(self, store: Store, stack_path: Path, name: str, mode: StartMode = "start") -> None:
        self.stop = threading.Event()
        self.status: str | None = None
        stack = load_stack(stack_path)
        self._thread = threading.Thread(
            target=lambda: setattr(self, "status", run_task(store, stack, name, stop=self.stop, mode=mode)),
            daemon=True,
        )

    def __enter__(self) -> RunningTask:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self._thread.join(timeout=DEADLINE_S)
        assert not self._thread.is_alive(), "the task did not stop"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(home=tmp_path / "home")
    yield opened
    opened.close()


@pytest.fixture
def sqlite_stack(tmp_path: Path) -> Path:
    source = tmp_path / "shop.sqlite"
    with sqlite3.connect(source) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price DECIMAL(10,2))")
        conn.executemany(
            "INSERT INTO items VALUES (?, ?, ?)", [(i, f"item {i}", f"{i}.50") for i in range(1, 101)]
        )
    conn.close()
    stack = {
        "endpoints": {
            "shop": {"engine": "sqlite", "path": str(source)},
            "dw": {"engine": "duckdb", "path": str(tmp_path / "dw.duckdb")},
        },
        "tasks": {
            "sync": {
                "source": "shop",
                "target": "dw",
                "migration_type": "full-load-and-cdc",
                "table_mappings": {
                    "rules": [
                        {
                            "rule-type": "selection",
                            "rule-id": "1",
                            "rule-name": "all",
                            "object-locator": {"schema-name": "main", "table-name": "%"},
                            "rule-action": "include",
                        }
                    ]
                },
                "settings": {"ValidationSettings": {"EnableValidation": True}},
            }
        },
    }
    path = tmp_path / "conveyor.yaml"
    path.write_text(json.dumps(stack))
    return path


def source_rows(path: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT id, name, CASE WHEN price IS NOT NULL THEN printf('%.2f', price) END "
            "FROM items ORDER BY id"
        ).fetchall()
    conn.close()
    return rows


def target_rows(path: Path) -> list[tuple[Any, ...]]:
    try:
        with duckdb.connect(str(path), read_only=True) as conn:
            return conn.execute(
                "SELECT id, name, CAST(price AS VARCHAR) FROM main.items ORDER BY id"
            ).fetchall()
    except duckdb.Error:
        return []  # not created yet, or the writer holds it


def test_sqlite_to_duckdb_full_load_then_changes(sqlite_stack: Path, store: Store, tmp_path: Path) -> None:
    source, target = tmp_path / "shop.sqlite", tmp_path / "dw.duckdb"
    with RunningTask(store, sqlite_stack, "sync"):
        wait_until(lambda: store.task_progress("sync") is not None, "capture to begin")
        with sqlite3.connect(source) as conn:
            conn.execute("INSERT INTO items VALUES (1000, 'new', '9.99')")
            conn.execute("UPDATE items SET name = 'renamed' WHERE id = 5")
            conn.execute("DELETE FROM items WHERE id = 7")
        conn.close()
        wait_until(lambda: _stats(store).get("Inserts") == 1 and _stats(store).get("Deletes") == 1, "changes")
    assert target_rows(target) == source_rows(source)
    stats = _stats(store)
    assert (stats["FullLoadRows"], stats["Inserts"], stats["Updates"], stats["Deletes"]) == (100, 1, 1, 1)
    assert stats["ValidationState"] == "Validated"
    status = store.task_status("sync")
    assert (status["status"], status["stop_reason"]) == ("stopped", STOP_REASON_NORMAL)

    # Changes made while the task is stopped arrive after a resume, once.
    with sqlite3.connect(source) as conn:
        conn.execute("UPDATE items SET price = '1.25' WHERE id = 1")
        conn.execute("INSERT INTO items VALUES (2000, 'while stopped', NULL)")
    conn.close()
    first_run = store.task_status("sync")["current_run"]
    with RunningTask(store, sqlite_stack, "sync", mode="resume"):
        wait_until(lambda: store.task_status("sync")["current_run"] != first_run, "the resumed run")
        wait_until(
            lambda: _stats(store).get("Inserts") == 1 and _stats(store).get("Updates") == 1,
            "resumed",
            debug=lambda: (_stats(store), store.task_status("sync"), store.task_progress("sync")),
        )
    assert target_rows(target) == source_rows(source)


def _stats(store: Store) -> dict[str, Any]:
    """The table's statistics in the task's current run."""
    run = store.task_status("sync")["current_run"]
    tables = store.table_stats("sync", run) if run is not None else []
    return tables[0] if tables else {}
