"""The service operations the web console and /metrics read through
(``observations``, ``task_samples``, ``execution_states``), over a real stack:
a SQLite source loaded into an embedded DuckDB target, and a state machine
that ends in a Fail state."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from conveyor import Conveyor
from conveyor.core.errors import NotFoundError

SELECT_ALL = {
    "rules": [
        {
            "rule-type": "selection",
            "rule-id": "1",
            "rule-name": "all",
            "object-locator": {"schema-name": "%", "table-name": "%"},
            "rule-action": "include",
        }
    ]
}
FAILING = {
    "StartAt": "Shape",
    "States": {
        "Shape": {"Type": "Pass", "Result": {"n": 1}, "Next": "Refuse"},
        "Refuse": {"Type": "Fail", "Error": "Refused", "Cause": "on purpose"},
    },
}


def _stack(tmp_path: Path) -> Path:
    source = tmp_path / "shop.sqlite"
    conn = sqlite3.connect(source)
    with conn:
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, qty INTEGER)")
        conn.executemany("INSERT INTO orders VALUES (?, ?)", [(i, i % 5) for i in range(1, 31)])
    conn.close()
    stack = {
        "endpoints": {
            "shop": {"engine": "sqlite", "path": str(source)},
            "dw": {"engine": "duckdb", "path": str(tmp_path / "dw.duckdb")},
        },
        "tasks": {
            "load": {
                "source": "shop",
                "target": "dw",
                "migration_type": "full-load",
                "table_mappings": SELECT_ALL,
            }
        },
        "state_machines": {"refuse": {"definition": FAILING}},
    }
    path = tmp_path / "conveyor.yaml"
    path.write_text(json.dumps(stack))
    return path


def test_observations_samples_and_execution_states(tmp_path: Path) -> None:
    with Conveyor(home=tmp_path / "home") as api:
        assert api.observations().tasks == []  # nothing applied yet
        api.apply(_stack(tmp_path))
        api.start_task("load", wait=True)

        observed = api.observations()
        (task,) = observed.tasks
        assert (task.name, task.status, task.migration_type) == ("load", "stopped", "full-load")
        assert [(t["TableName"], t["FullLoadRows"]) for t in task.tables] == [("orders", 30)]
        assert observed.state_machines == ["refuse"]

        # Samples chart a change capture (test_console); a full load records none.
        assert api.task_samples("load").root == []
        with pytest.raises(NotFoundError):
            api.task_samples("no-such-task")

        ran = api.start_execution("refuse", {"order": 7}, wait=True)
        assert ran.status == "FAILED"
        states = api.execution_states(ran.executionArn)
        assert states.path == ["Shape", "Refuse"]
        assert states.definition == FAILING
        shape, refuse = states.states
        assert (shape.input, shape.output, shape.exited) == ({"order": 7}, {"n": 1}, True)
        assert (refuse.name, refuse.entered, refuse.exited) == ("Refuse", 1, False)
        # A Fail state's error is the execution's (DescribeExecution), not a state's own.
        assert (ran.model_extra or {}).get("error") == "Refused"
        counted = api.observations().executions
        assert counted[("refuse", "FAILED")] == 1
