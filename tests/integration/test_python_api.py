"""The Python API (`from conveyor import Conveyor`) end to end through a real stack
file (SQLite source, embedded DuckDB target), its answers equal to the CLI's
`--json`, and the runnable example in examples/python as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conveyor import Conveyor
from conveyor.service.models import TaskDescription, TaskProcess, to_json
from support.cli import conveyor, environment

ROOT = Path(__file__).parents[2]
QUICKSTART = ROOT / "examples" / "quickstart"
EXAMPLE = ROOT / "examples" / "python" / "full_load.py"


@pytest.fixture
def stack(tmp_path: Path) -> Path:
    for name in ("conveyor.yaml", "mappings.json", "task-settings.json"):
        (tmp_path / name).write_text((QUICKSTART / name).read_text())
    subprocess.run(
        [sys.executable, str(QUICKSTART / "make_source.py"), str(tmp_path / "data" / "shop.sqlite")],
        check=True,
    )
    return tmp_path / "conveyor.yaml"


def test_full_load_through_the_python_api(
    stack: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    # The home is given to the API only: a worker process must be told where it is.
    monkeypatch.delenv("CONVEYOR_HOME", raising=False)
    monkeypatch.delenv("CONVEYOR_STORE_URL", raising=False)
    with Conveyor(home=home) as api:
        applied = api.apply(stack)
        assert "created: tasks.shop-full-load" in applied.changes
        assert applied.summary.tasks["shop-full-load"]["migration_type"] == "full-load"
        assert api.apply(stack, dry_run=True).changes == []

        finished = api.start_task("shop-full-load", wait=True)
        assert isinstance(finished, TaskDescription)
        assert (finished.status, finished.stop_reason) == ("stopped", "FULL_LOAD_ONLY_FINISHED")
        described = api.describe_task("shop-full-load")
        tables = {t.TableName: t for t in described.tables}
        assert tables["customer"].FullLoadRows == 3 and tables["fact_sales_stg"].FullLoadRows == 6
        assert {t.TableState for t in described.tables} == {"Table completed"}
        assert [t.status for t in api.list_tasks().root if t.name == "shop-full-load"] == ["stopped"]

        events = [e for e in api.events(limit=10).Events[::-1] if e["detail"]["category"] == "StateChange"]
        assert [e["detail"]["eventId"] for e in events] == ["DMS-EVENT-0069", "DMS-EVENT-0079"]
        assert api.validate("shop-full-load").validated
        ran = api.execute_statement(
            "warehouse", "SELECT count(*) AS n FROM dbo.fact_sales_stg", wait=True, timeout=60
        )
        assert to_json(ran)["Result"]["Records"] == [[{"longValue": 6}]]

        # The CLI prints the very same model.
        cli = conveyor(home, "tasks", "describe", "shop-full-load", "--json")
        assert cli.returncode == 0, cli.stderr
        assert json.loads(cli.stdout) == to_json(api.describe_task("shop-full-load"))

        # In the background: the worker process finds the store this API names.
        started = api.start_task("shop-full-load")
        assert isinstance(started, TaskProcess) and started.pid is not None
        deadline = time.monotonic() + 60
        while api.describe_task("shop-full-load").status in ("starting", "running", "stopping"):
            assert time.monotonic() < deadline, "the worker did not finish in 60 s"
            time.sleep(0.2)
        again = api.describe_task("shop-full-load")
        assert again.status == "stopped", again.last_error
        assert len(again.runs) == 2


def test_cli_json_errors_are_json_on_stderr(stack: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    conveyor(home, "apply", str(stack))
    missing = conveyor(home, "tasks", "describe", "nope", "--json")
    assert missing.returncode == 2 and missing.stdout == ""
    assert "no task named 'nope'" in json.loads(missing.stderr)["error"]
    text = conveyor(home, "tasks", "describe", "nope")
    assert text.stderr.startswith("error: no task named 'nope'")


def test_the_example_runs_as_a_user_runs_it(stack: Path, tmp_path: Path) -> None:
    home = tmp_path / "example-home"
    ran = subprocess.run(
        [sys.executable, str(EXAMPLE), str(stack), "shop-full-load", "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=180,
        env=environment(tmp_path / "unused-home"),
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    lines = ran.stdout.splitlines()
    assert "task shop-full-load: stopped (stop reason FULL_LOAD_ONLY_FINISHED)" in lines
    assert "dbo.customer: Table completed, 3 rows" in lines
    assert "dbo.fact_sales_stg: Table completed, 6 rows" in lines
    assert (home / "conveyor.db").exists() and not (tmp_path / "unused-home").exists()
