"""The quickstart journey through the CLI: apply, start, describe, events, validate."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from support.cli import conveyor

QUICKSTART = Path(__file__).parents[2] / "examples" / "quickstart"

pytestmark = pytest.mark.e2e


@pytest.fixture
def stack(tmp_path: Path) -> Path:
    for name in ("conveyor.yaml", "mappings.json", "task-settings.json"):
        (tmp_path / name).write_text((QUICKSTART / name).read_text())
    subprocess.run(
        [sys.executable, str(QUICKSTART / "make_source.py"), str(tmp_path / "data" / "shop.sqlite")],
        check=True,
    )
    return tmp_path / "conveyor.yaml"


def test_full_load_journey(stack: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    applied = conveyor(home, "apply", str(stack))
    assert applied.returncode == 0, applied.stderr
    assert "created: tasks.shop-full-load" in applied.stdout
    again = conveyor(home, "apply", str(stack))
    assert "unchanged: tasks.shop-full-load" in again.stdout

    started = conveyor(home, "tasks", "start", "shop-full-load", "--wait", "--json")
    assert started.returncode == 0, started.stderr
    described = json.loads(started.stdout)
    assert described["status"] == "stopped"
    assert described["stop_reason"] == "FULL_LOAD_ONLY_FINISHED"
    rows = {t["TableName"]: t for t in described["tables"]}
    assert rows["customer"]["FullLoadRows"] == 3 and rows["fact_sales_stg"]["FullLoadRows"] == 6
    assert {t["TableState"] for t in rows.values()} == {"Table completed"}
    assert {t["ValidationState"] for t in rows.values()} == {"Validated"}

    events = json.loads(conveyor(home, "events", "list", "--json").stdout)["Events"][::-1]
    # apply created the stack's two tasks; then this one started and stopped.
    assert [e["detail"]["eventId"] for e in events] == [
        "DMS-EVENT-0074",
        "DMS-EVENT-0074",
        "DMS-EVENT-0069",
        "DMS-EVENT-0079",
    ]
    stopped = events[-1]
    assert stopped["source"] == "aws.dms"
    assert stopped["detail"]["detailMessage"] == "Stop Reason FULL_LOAD_ONLY_FINISHED"
    assert stopped["detail"]["eventType"] == "REPLICATION_TASK_STOPPED"
    assert stopped["detail"]["category"] == "StateChange"

    listed = json.loads(conveyor(home, "tasks", "list", "--json").stdout)
    assert listed[0]["status"] == "stopped"
    tested = json.loads(conveyor(home, "endpoints", "test", "shop-db", "--json").stdout)
    assert tested["status"] == "successful"

    validated = conveyor(home, "validate", "shop-full-load", "--json")
    assert validated.returncode == 0, validated.stderr
    assert {c["ValidationState"] for c in json.loads(validated.stdout)["Tables"]} == {"Validated"}


def test_validation_detects_a_row_changed_behind_conveyors_back(stack: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    conveyor(home, "apply", str(stack))
    assert conveyor(home, "tasks", "start", "shop-full-load", "--wait").returncode == 0
    con = duckdb.connect(str(tmp_path / "data" / "warehouse.duckdb"))
    con.execute("UPDATE dbo.fact_sales_stg SET order_amt = 999 WHERE order_number = '103'")
    con.execute("DELETE FROM dbo.customer WHERE cust_id = '100'")
    con.close()
    validated = conveyor(home, "validate", "shop-full-load", "--json")
    assert validated.returncode == 1
    checks = {c["Table"]: c for c in json.loads(validated.stdout)["Tables"]}
    assert checks["dbo.fact_sales_stg"]["ValidationState"] == "Mismatched records"
    assert checks["dbo.fact_sales_stg"]["Different"] == 1
    assert checks["dbo.fact_sales_stg"]["SampleKeys"] == [["103"]]
    assert checks["dbo.customer"]["MissingOnTarget"] == 1


def test_unreachable_source_fails_the_task_with_a_reason(stack: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    (tmp_path / "data" / "shop.sqlite").unlink()
    conveyor(home, "apply", str(stack))
    tested = conveyor(home, "endpoints", "test", "shop-db")
    assert tested.returncode == 1 and "no SQLite database at" in tested.stdout
    started = conveyor(home, "tasks", "start", "shop-full-load", "--wait", "--json")
    assert started.returncode == 1
    assert "no SQLite database at" in json.loads(started.stdout)["last_error"]
    events = json.loads(conveyor(home, "events", "list", "--json").stdout)["Events"]
    assert events[0]["detail"]["eventId"] == "DMS-EVENT-0078"  # newest first


def test_commands_before_apply_say_what_to_do(tmp_path: Path) -> None:
    result = conveyor(tmp_path / "home", "tasks", "list")
    assert result.returncode == 1
    assert "conveyor apply" in result.stderr
