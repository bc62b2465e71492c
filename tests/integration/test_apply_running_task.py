"""`conveyor apply` on a running task refuses to change its source, target,
migration type or mappings under it (the worker would go on with the old ones),
unless the task is stopped or the user passes --force. Other changes apply."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from support import tasks as support_tasks
from support.cli import conveyor

pytestmark = pytest.mark.e2e


def stack(tmp_path: Path, target: str, settings: dict[str, Any] | None = None) -> Path:
    document = {
        "endpoints": {
            "shop": {"engine": "sqlite", "path": str(tmp_path / "shop.sqlite")},
            "dw": {"engine": "duckdb", "path": str(tmp_path / "dw.duckdb")},
            "dw2": {"engine": "duckdb", "path": str(tmp_path / "dw2.duckdb")},
        },
        "tasks": {
            "sync": {
                "source": "shop",
                "target": target,
                "migration_type": "full-load-and-cdc",
                "settings": settings or {},
            }
        },
    }
    path = tmp_path / "conveyor.yaml"
    path.write_text(json.dumps(document))
    return path


def describe(home: Path) -> dict[str, Any]:
    """`conveyor tasks describe sync --json`, read in this process (it is polled)."""
    return support_tasks.described(home, "sync")


def wait_status(home: Path, wanted: str) -> None:
    deadline = time.monotonic() + 60
    while describe(home)["status"] != wanted:
        assert time.monotonic() < deadline, f"the task never became {wanted}: {describe(home)}"
        time.sleep(0.3)


def test_a_running_tasks_target_changes_only_when_stopped_or_forced(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "shop.sqlite") as conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO items VALUES (1, 'a')")
    conn.close()
    home = tmp_path / "home"
    assert conveyor(home, "apply", str(stack(tmp_path, "dw"))).returncode == 0
    assert conveyor(home, "tasks", "start", "sync").returncode == 0
    try:
        wait_status(home, "running")
        refused = conveyor(home, "apply", str(stack(tmp_path, "dw2")))
        assert refused.returncode == 2
        assert "tasks.sync: the task is running and the file changes its target" in refused.stderr
        assert "--force" in refused.stderr
        assert json.loads(conveyor(home, "tasks", "list", "--json").stdout)[0]["target"] == "dw"

        # A change to anything else applies while the task runs.
        settings = {"FullLoadSettings": {"CommitRate": 500}}
        assert conveyor(home, "apply", str(stack(tmp_path, "dw", settings))).returncode == 0

        forced = conveyor(home, "apply", str(stack(tmp_path, "dw2")), "--force")
        assert forced.returncode == 0, forced.stderr
        assert json.loads(conveyor(home, "tasks", "list", "--json").stdout)[0]["target"] == "dw2"
    finally:
        conveyor(home, "tasks", "stop", "sync")
    wait_status(home, "stopped")
    assert conveyor(home, "apply", str(stack(tmp_path, "dw"))).returncode == 0  # stopped: applies
