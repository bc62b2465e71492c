"""A full load into the lake killed with SIGKILL mid-write, then started again:
no partial file is ever visible, and the curated table equals the source."""

from __future__ import annotations

import json
import signal
import sqlite3
from pathlib import Path

import pytest

from support.cli import conveyor

pytestmark = pytest.mark.e2e

ROWS = 30_000


def _stack(tmp_path: Path) -> Path:
    source = tmp_path / "src.sqlite"
    with sqlite3.connect(source) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, region TEXT NOT NULL, amount REAL)")
        conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
            "INSERT INTO orders SELECT i, 'r' || (i % 4), i * 0.25 FROM n",
            (ROWS,),
        )
    conn.close()
    stack = tmp_path / "conveyor.yaml"
    stack.write_text(
        json.dumps(
            {
                "endpoints": {
                    "src": {"engine": "sqlite", "path": "./src.sqlite"},
                    "lake": {"engine": "lake", "path": "./lake", "settings": {"MaxFileSize": 64}},
                },
                "tasks": {
                    "load": {
                        "source": "src",
                        "target": "lake",
                        "settings": {"FullLoadSettings": {"CommitRate": 2000}},
                    }
                },
                "lake_tables": {"main.orders": {"primary_key": "id", "partition_key": "region"}},
            }
        )
    )
    return stack


def _visible_load_files(tmp_path: Path) -> list[Path]:
    return sorted(p for p in (tmp_path / "lake").rglob("LOAD*") if not p.name.startswith("."))


def test_a_killed_raw_write_leaves_no_partial_file_and_a_rerun_curates_the_source(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert conveyor(home, "apply", str(_stack(tmp_path))).returncode == 0
    killed = conveyor(
        home, "tasks", "start", "load", "--wait", env={"CONVEYOR_FAULT_POINT": "full-load-batch:6"}
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert _visible_load_files(tmp_path) == []  # only temporaries of the dead load, if any

    rerun = conveyor(home, "tasks", "start", "load", "--wait", "--json")
    assert rerun.returncode == 0, rerun.stderr
    files = _visible_load_files(tmp_path)
    assert len(files) > 1 and all(f.name.startswith("LOAD0000000") for f in files)
    assert sum(len(f.read_text().splitlines()) for f in files) == ROWS

    processed = conveyor(home, "lake", "process", "--json")
    assert processed.returncode == 0, processed.stdout + processed.stderr
    counted = conveyor(home, "query", "SELECT count(*) AS n, sum(amount) AS total FROM main.orders", "--json")
    assert counted.returncode == 0, counted.stderr
    [row] = json.loads(counted.stdout)
    assert row["n"] == ROWS and row["total"] == pytest.approx(sum(i * 0.25 for i in range(1, ROWS + 1)))
