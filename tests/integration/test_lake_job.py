"""The lake curation job as a state machine's ``glue:startJobRun`` Task (what a
schedule rule starts, as a Glue trigger starts the seed's job): the curated
table appears; a failing run fails its execution with the reason."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from support.cli import conveyor

pytestmark = pytest.mark.e2e

ROWS = 50


def _task(resource: str, arguments: dict[str, str]) -> dict[str, Any]:
    return {
        "StartAt": "Curate",
        "States": {
            "Curate": {
                "Type": "Task",
                "Resource": resource,
                "Parameters": {"JobName": "dmscdc-lake", "Arguments": arguments},
                "End": True,
            }
        },
    }


def _stack(tmp_path: Path) -> Path:
    with sqlite3.connect(tmp_path / "src.sqlite") as conn:
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, region TEXT NOT NULL, qty INTEGER)")
        conn.executemany(
            "INSERT INTO orders VALUES (?, ?, ?)", [(i, ("eu", "us")[i % 2], i) for i in range(1, ROWS + 1)]
        )
    conn.close()
    sync = "arn:aws:states:::glue:startJobRun.sync"
    stack = tmp_path / "conveyor.yaml"
    stack.write_text(
        json.dumps(
            {
                "endpoints": {
                    "src": {"engine": "sqlite", "path": "./src.sqlite"},
                    "lake": {"engine": "lake", "path": "./lake", "settings": {"AddColumnName": True}},
                },
                "tasks": {"load": {"source": "src", "target": "lake"}},
                "lake_tables": {"main.orders": {"primary_key": "id", "partition_key": "region"}},
                "state_machines": {
                    "curate": {"definition": _task(sync, {"--table": "main.orders"})},
                    "curate-missing": {"definition": _task(sync, {"--table": "main.nope"})},
                    "curate-bad-argument": {"definition": _task(sync, {"--tabel": "main.orders"})},
                    "curate-async": {"definition": _task("arn:aws:states:::glue:startJobRun", {})},
                },
            }
        )
    )
    return stack


def _start(home: Path, machine: str) -> tuple[int, dict[str, Any]]:
    started = conveyor(home, "state-machines", "start", machine, "--wait", "--json")
    return started.returncode, json.loads(started.stdout)


def test_a_state_machine_runs_the_curation_job(tmp_path: Path) -> None:
    home = tmp_path / "home"
    applied = conveyor(home, "apply", str(_stack(tmp_path)))
    assert applied.returncode == 0, applied.stderr
    loaded = conveyor(home, "tasks", "start", "load", "--wait")
    assert loaded.returncode == 0, loaded.stderr

    code, described = _start(home, "curate")
    assert code == 0, described
    assert described["status"] == "SUCCEEDED"
    run = json.loads(described["output"])  # JSON text, as DescribeExecution gives it
    assert run["JobName"] == "dmscdc-lake" and run["JobRunState"] == "SUCCEEDED"
    assert run["Id"].startswith("jr_")
    [table] = run["Tables"]
    assert table["table"] == "main.orders" and table["status"] == "processed"
    counted = conveyor(home, "query", "SELECT count(*) AS n, sum(qty) AS total FROM main.orders", "--json")
    assert counted.returncode == 0, counted.stderr
    assert json.loads(counted.stdout) == [{"n": ROWS, "total": ROWS * (ROWS + 1) // 2}]

    code, described = _start(home, "curate-async")  # started, not waited for: answers its run id
    assert code == 0, described
    assert set(json.loads(described["output"])) == {"JobRunId"}

    code, described = _start(home, "curate-missing")
    assert code == 1 and described["status"] == "FAILED"
    assert described["error"] == "States.TaskFailed"
    assert "no lake table named 'main.nope'" in described["cause"]

    code, described = _start(home, "curate-bad-argument")
    assert code == 1 and described["status"] == "FAILED"
    assert described["error"] == "Glue.InvalidInputException"
    assert "--tabel" in described["cause"]
