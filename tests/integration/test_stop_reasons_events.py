"""Stop reasons and lifecycle events as the migration service has them, through
the CLI: created and modified by `apply`, full load completed inside
full-load-and-cdc, a table error, and a failed task's stop reason in
`tasks describe` (FATAL_ERROR, RECOVERABLE_ERROR)."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest

from support import tasks as support_tasks
from support.cli import conveyor

pytestmark = pytest.mark.e2e

DEADLINE_S = 60


def _source(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
        conn.executemany("INSERT INTO items VALUES (?, ?)", [(i, f"item {i}") for i in range(1, 21)])
    conn.close()


def _stack(
    tmp_path: Path, migration_type: str, settings: dict[str, Any], source: str = "shop.sqlite"
) -> Path:
    document = {
        "endpoints": {
            "shop": {"engine": "sqlite", "path": str(tmp_path / source)},
            "dw": {"engine": "duckdb", "path": str(tmp_path / "dw.duckdb")},
        },
        "tasks": {
            "sync": {"source": "shop", "target": "dw", "migration_type": migration_type, "settings": settings}
        },
    }
    path = tmp_path / "conveyor.yaml"
    path.write_text(json.dumps(document))
    return path


def _events(home: Path) -> list[dict[str, Any]]:
    """The task's events, oldest first, as (eventId, eventType, category, message)."""
    listed = conveyor(home, "events", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    return [e["detail"] for e in json.loads(listed.stdout)["Events"][::-1]]


def _describe(home: Path) -> dict[str, Any]:
    """`conveyor tasks describe sync --json`, read in this process (it is polled)."""
    return support_tasks.described(home, "sync")


def _wait(home: Path, wanted: set[str]) -> dict[str, Any]:
    deadline = time.monotonic() + DEADLINE_S
    while (described := _describe(home))["status"] not in wanted:
        assert time.monotonic() < deadline, f"the task never became {wanted}: {described}"
        time.sleep(0.3)
    return described


def test_created_modified_and_full_load_completed_inside_full_load_and_cdc(tmp_path: Path) -> None:
    _source(tmp_path / "shop.sqlite")
    home = tmp_path / "home"
    assert conveyor(home, "apply", str(_stack(tmp_path, "full-load-and-cdc", {}))).returncode == 0
    assert (
        conveyor(home, "apply", str(_stack(tmp_path, "full-load-and-cdc", {}))).returncode == 0
    )  # unchanged
    settings = {"FullLoadSettings": {"CommitRate": 500}}
    assert conveyor(home, "apply", str(_stack(tmp_path, "full-load-and-cdc", settings))).returncode == 0
    assert conveyor(home, "tasks", "start", "sync").returncode == 0
    try:
        deadline = time.monotonic() + DEADLINE_S
        while "CONVEYOR-EVENT-0004" not in [e["eventId"] for e in _events(home)]:
            assert time.monotonic() < deadline, _events(home)
            time.sleep(0.3)
    finally:
        conveyor(home, "tasks", "stop", "sync")
    stopped = _wait(home, {"stopped", "failed"})
    assert (stopped["status"], stopped["stop_reason"]) == ("stopped", "NORMAL")
    events = _events(home)
    assert [(e["eventId"], e["eventType"], e["category"]) for e in events] == [
        ("DMS-EVENT-0074", "REPLICATION_TASK_CREATED", "Creation"),
        ("DMS-EVENT-0080", "REPLICATION_TASK_MODIFIED", "Configuration change"),
        ("DMS-EVENT-0069", "REPLICATION_TASK_STARTED", "StateChange"),
        ("CONVEYOR-EVENT-0004", "REPLICATION_TASK_FULL_LOAD_COMPLETED", "StateChange"),
        ("DMS-EVENT-0079", "REPLICATION_TASK_STOPPED", "StateChange"),
    ]
    assert events[3]["detailMessage"] == "Full load completed; change capture goes on. 1 tables loaded"
    assert events[-1]["detailMessage"] == "Stop Reason NORMAL"


def test_a_table_error_fails_the_task_with_fatal_error(tmp_path: Path) -> None:
    _source(tmp_path / "shop.sqlite")
    with duckdb.connect(str(tmp_path / "dw.duckdb")) as conn:  # a table the load cannot write into
        conn.execute("CREATE TABLE main.items (id INTEGER PRIMARY KEY, other DATE NOT NULL)")
    home = tmp_path / "home"
    settings = {"FullLoadSettings": {"TargetTablePrepMode": "DO_NOTHING"}}
    assert conveyor(home, "apply", str(_stack(tmp_path, "full-load", settings))).returncode == 0
    conveyor(home, "tasks", "start", "sync")
    failed = _wait(home, {"failed", "stopped"})
    assert (failed["status"], failed["stop_reason"]) == ("failed", "FATAL_ERROR")
    shown = conveyor(home, "tasks", "describe", "sync").stdout
    assert "task sync: failed (stop reason FATAL_ERROR)" in shown
    events = _events(home)
    kinds = [e["eventType"] for e in events]
    assert kinds[-2:] == ["REPLICATION_TASK_TABLE_ERROR", "REPLICATION_TASK_FAILED"], kinds
    assert events[-2]["detailMessage"].startswith("Table error. main.items: ")
    assert events[-2]["category"] == "Failure" and events[-1]["category"] == "Failure"


def test_an_unreachable_source_fails_the_task_with_recoverable_error(tmp_path: Path) -> None:
    home = tmp_path / "home"
    stack = _stack(tmp_path, "full-load", {}, source="missing.sqlite")
    assert conveyor(home, "apply", str(stack)).returncode == 0
    conveyor(home, "tasks", "start", "sync")
    failed = _wait(home, {"failed", "stopped"})
    assert (failed["status"], failed["stop_reason"]) == ("failed", "RECOVERABLE_ERROR"), failed
    assert "no SQLite database" in failed["last_error"]
    assert _events(home)[-1]["eventType"] == "REPLICATION_TASK_FAILED"
