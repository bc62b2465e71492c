"""A DuckDB target that runs out of memory names the endpoint option
``memory_limit`` and the value in effect (a tiny one set in the stack file):
the full load fails the table with that reason, CDC fails the task."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.orchestration.bus import event_sink
from conveyor.replication.task_runner import run_task
from conveyor.stack.loader import load_stack
from conveyor.store.store import Store
from support.task_thread import RunningTask

pytestmark = pytest.mark.integration

TASK = "sync"
ROWS = [(i, "x" * 200) for i in range(20_000)]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(home=tmp_path / "home")
    yield opened
    opened.close()


def _stack(tmp_path: Path, migration: str, rows: list[tuple[int, str]], limit: str) -> Path:
    source = tmp_path / "app.sqlite"
    with sqlite3.connect(source) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE wide (id INTEGER PRIMARY KEY, s TEXT)")
        conn.executemany("INSERT INTO wide VALUES (?, ?)", rows)
    conn.close()
    document = {
        "endpoints": {
            "app": {"engine": "sqlite", "path": str(source)},
            "dw": {
                "engine": "duckdb",
                "path": str(tmp_path / "dw.duckdb"),
                "settings": {"memory_limit": limit},
            },
        },
        "tasks": {
            TASK: {
                "source": "app",
                "target": "dw",
                "migration_type": migration,
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
            }
        },
    }
    path = tmp_path / "conveyor.yaml"
    path.write_text(json.dumps(document))
    return path


def _named(reason: str, limit: str) -> None:
    assert f"memory_limit ({limit} in effect)" in reason, reason
    assert "internal error" not in reason and "Traceback" not in reason, reason


def test_full_load_fails_the_table_naming_memory_limit(tmp_path: Path, store: Store) -> None:
    stack = load_stack(_stack(tmp_path, "full-load", ROWS, "1MB"))
    run_task(store, stack, TASK, events=event_sink(store), stop=threading.Event())
    run = store.task_status(TASK)["current_run"]
    stats = {s["TableName"]: s for s in store.table_stats(TASK, run)}
    assert stats["wide"]["TableState"] == "Table error", stats
    _named(str(stats["wide"]["Error"]), "1MB")


def test_cdc_fails_the_task_naming_memory_limit(tmp_path: Path, store: Store) -> None:
    path = _stack(tmp_path, "full-load-and-cdc", [], "6MB")
    with RunningTask(store, path, TASK) as running:
        deadline = time.monotonic() + 30
        while store.task_progress(TASK) is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert store.task_progress(TASK) is not None, store.task_status(TASK)
        with sqlite3.connect(tmp_path / "app.sqlite") as conn:
            conn.executemany("INSERT INTO wide VALUES (?, ?)", [(i, "y" * 1000) for i in range(20_000)])
        conn.close()
        deadline = time.monotonic() + 60
        while running.status is None and time.monotonic() < deadline:
            time.sleep(0.2)
    status = store.task_status(TASK)
    assert status["status"] == "failed", status
    assert status["stop_reason"] == "FATAL_ERROR" or "FATAL" in str(status["stop_reason"]), status
    _named(str(status["last_error"]), "6MB")
