"""Replication raises a task's lifecycle events to the sink it is handed, and
stores none itself: the caller decides where they go (orchestration's bus)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import duckdb
import pytest

from conveyor.replication.task_runner import run_task
from conveyor.stack.loader import load_stack
from conveyor.store.store import Store

pytestmark = pytest.mark.integration


def stack_file(tmp_path: Path, source_path: str) -> Path:
    stack = {
        "endpoints": {
            "shop": {"engine": "sqlite", "path": source_path},
            "dw": {"engine": "duckdb", "path": str(tmp_path / "dw.duckdb")},
        },
        "tasks": {"load": {"source": "shop", "target": "dw"}},
    }
    path = tmp_path / "conveyor.yaml"
    path.write_text(json.dumps(stack))
    return path


def test_a_finished_load_raises_started_then_stopped_to_its_sink(store: Store, tmp_path: Path) -> None:
    source = tmp_path / "shop.sqlite"
    with sqlite3.connect(source) as conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
        conn.executemany("INSERT INTO items VALUES (?, ?)", [(i, f"item {i}") for i in range(1, 6)])
    conn.close()
    received: list[dict[str, Any]] = []

    status = run_task(store, load_stack(stack_file(tmp_path, str(source))), "load", events=received.append)

    assert status == "stopped"
    assert [e["detail"]["eventId"] for e in received] == ["DMS-EVENT-0069", "DMS-EVENT-0079"]
    assert received[-1]["detail"]["detailMessage"] == "Stop Reason FULL_LOAD_ONLY_FINISHED"
    assert received[-1]["resources"] == ["arn:aws:dms:local:000000000000:task:load"]
    assert store.list_events() == []  # storing them is the sink's business
    with duckdb.connect(str(tmp_path / "dw.duckdb"), read_only=True) as target:
        assert target.execute("SELECT count(*) FROM main.items").fetchone() == (5,)


def test_a_failed_load_raises_failed_with_the_reason(store: Store, tmp_path: Path) -> None:
    received: list[dict[str, Any]] = []
    missing = str(tmp_path / "absent" / "shop.sqlite")

    status = run_task(store, load_stack(stack_file(tmp_path, missing)), "load", events=received.append)

    assert status == "failed"
    (failed,) = received
    assert failed["detail"]["eventId"] == "DMS-EVENT-0078"
    assert failed["detail"]["detailMessage"].startswith("Replication task has failed.")
    assert store.task_status("load")["last_error"] in failed["detail"]["detailMessage"]
    assert store.list_events() == []
