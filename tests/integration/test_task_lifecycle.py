"""A task's life through the CLI: detached start, stop, a worker killed mid-load
and started again, and what the user sees meanwhile."""

from __future__ import annotations

import json
import os
import pty
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from support import tasks as support_tasks
from support.cli import conveyor, environment

QUICKSTART = Path(__file__).parents[2] / "examples" / "quickstart"
BIG_ROWS = 3_000_000  # about five seconds of loading here: long enough to stop or kill it halfway

pytestmark = pytest.mark.integration


def describe(home: Path, task: str) -> dict[str, Any]:
    """`conveyor tasks describe TASK --json`, read in this process (it is polled)."""
    return support_tasks.described(home, task)


def wait_for(
    home: Path, task: str, until: Callable[[dict[str, Any]], bool], seconds: float = 60
) -> dict[str, Any]:
    """Poll `tasks describe` until ``until`` holds; at most ``seconds`` and 600 polls."""
    deadline = time.monotonic() + seconds
    for _ in range(600):
        described = describe(home, task)
        if until(described):
            return described
        assert time.monotonic() < deadline, f"gave up waiting; last description: {described}"
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting; last description: {described}")


def loading(described: dict[str, Any]) -> bool:
    return any(t["FullLoadRows"] > 0 for t in described["tables"]) and described["status"] == "running"


def stopped(described: dict[str, Any]) -> bool:
    return described["status"] in {"stopped", "failed"}


def pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    proc = Path(f"/proc/{pid}")
    try:
        text = (proc / "stat").read_text()
        threads = len(os.listdir(proc / "task"))
    except OSError:
        return True
    # A zombie (nobody reaps here) whose threads have all ended has let go of its files.
    return text[text.rindex(")") + 2 :].startswith(("Z", "X")) and threads <= 1


def wait_gone(pid: int, seconds: float = 30) -> None:
    """Until process ``pid`` has exited (and so let go of the warehouse file)."""
    deadline = time.monotonic() + seconds
    for _ in range(3000):
        if pid_gone(pid):
            return
        assert time.monotonic() < deadline, f"process {pid} still there after {seconds} s"
        time.sleep(0.01)
    raise AssertionError(f"process {pid} still there")


@pytest.fixture
def workers() -> Iterator[list[int]]:
    """Pids of detached workers a test started: killed at the end whatever happened."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if not pid_gone(pid):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def big_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One narrow table of BIG_ROWS rows, shared (read-only) by the tests."""
    path = tmp_path_factory.mktemp("big") / "big.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE big (id INTEGER PRIMARY KEY, v INTEGER NOT NULL, s TEXT)")
        conn.execute(
            "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < ?) "
            "INSERT INTO big SELECT i, (i * 7919) % 1000003, 'x' || (i % 97) FROM r",
            (BIG_ROWS,),
        )
    conn.close()
    return path


def big_stack(tmp_path: Path, source: Path) -> Path:
    mappings = {
        "rules": [
            {
                "rule-type": "selection",
                "rule-id": "1",
                "rule-name": "all",
                "object-locator": {"schema-name": "main", "table-name": "%"},
                "rule-action": "include",
            }
        ]
    }
    settings = {"FullLoadSettings": {"TargetTablePrepMode": "DROP_AND_CREATE", "CommitRate": 20000}}
    (tmp_path / "mappings.json").write_text(json.dumps(mappings))
    (tmp_path / "settings.json").write_text(json.dumps(settings))
    stack = tmp_path / "conveyor.yaml"
    stack.write_text(
        "endpoints:\n"
        f"  src: {{engine: sqlite, path: '{source}'}}\n"
        "  dw: {engine: duckdb, path: ./dw.duckdb}\n"
        "tasks:\n"
        "  big-load:\n"
        "    source: src\n"
        "    target: dw\n"
        "    table_mappings: file://mappings.json\n"
        "    settings: file://settings.json\n"
    )
    return stack


def checksum_sql() -> str:
    return "SELECT count(*), sum(id), sum(v), sum(id * v % 1000), sum(length(s)) FROM {table}"


def source_checksum(path: Path) -> tuple[Any, ...]:
    with sqlite3.connect(path) as conn:
        row = tuple(conn.execute(checksum_sql().format(table="big")).fetchone())
    conn.close()
    return row


def target_tables(path: Path) -> dict[str, tuple[Any, ...]]:
    """Every table of the warehouse with its checksum (not the control table
    awsdms_apply_exceptions, which DuckDB targets always have); only when no
    worker holds it."""
    if not path.exists():
        return {}
    con = duckdb.connect(str(path), read_only=True)
    try:
        names = [
            f"{schema}.{name}"
            for schema, name in con.execute(
                "SELECT schema_name, table_name FROM duckdb_tables() "
                "WHERE table_name <> 'awsdms_apply_exceptions' ORDER BY 1, 2"
            ).fetchall()
        ]
        sums = {}
        for name in names:
            row = con.execute(checksum_sql().format(table=name)).fetchone()
            sums[name] = tuple(int(v) if v is not None else None for v in row)
        return sums
    finally:
        con.close()


def applied(tmp_path: Path, stack: Path) -> Path:
    home = tmp_path / "home"
    result = conveyor(home, "apply", str(stack))
    assert result.returncode == 0, result.stderr
    return home


def start_detached(home: Path, task: str, workers: list[int]) -> int:
    began = time.monotonic()
    result = conveyor(home, "tasks", "start", task, "--json")
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - began < 10, "a detached start returns at once"
    started = json.loads(result.stdout)
    assert started["task"] == task and started["status"] == "starting"
    workers.append(started["pid"])
    return int(started["pid"])


@pytest.fixture
def quickstart(tmp_path: Path) -> Path:
    for name in ("conveyor.yaml", "mappings.json", "task-settings.json"):
        (tmp_path / name).write_text((QUICKSTART / name).read_text())
    subprocess.run(
        [sys.executable, str(QUICKSTART / "make_source.py"), str(tmp_path / "data" / "shop.sqlite")],
        check=True,
    )
    return tmp_path / "conveyor.yaml"


def test_detached_start_returns_at_once_and_the_task_finishes(
    quickstart: Path, tmp_path: Path, workers: list[int]
) -> None:
    home = applied(tmp_path, quickstart)
    assert describe(home, "shop-full-load")["status"] == "ready"
    pid = start_detached(home, "shop-full-load", workers)
    described = wait_for(home, "shop-full-load", stopped)
    assert (described["status"], described["stop_reason"]) == ("stopped", "FULL_LOAD_ONLY_FINISHED")
    assert described["pid"] == pid
    rows = {t["TableName"]: t["FullLoadRows"] for t in described["tables"]}
    assert rows == {"customer": 3, "fact_sales_stg": 6}
    log = (home / "logs" / "shop-full-load" / f"{described['current_run']}.log").read_text()
    assert "table dbo.customer: Table completed, 3 rows" in log
    # the worker process hands its lifecycle events to the bus, which stores them
    listed = conveyor(home, "events", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    events = [e["detail"] for e in json.loads(listed.stdout)["Events"][::-1]]
    events = [e for e in events if e["category"] == "StateChange"]  # not apply's "created"
    assert [(e["eventId"], e["detailMessage"]) for e in events] == [
        ("DMS-EVENT-0069", "Replication task has started."),
        ("DMS-EVENT-0079", "Stop Reason FULL_LOAD_ONLY_FINISHED"),
    ]

    text = conveyor(home, "tasks", "start", "shop-full-load")
    assert text.returncode == 0, text.stderr
    workers.append(int(text.stdout.split("(pid ")[1].split(")")[0]))
    assert "follow with `conveyor tasks describe shop-full-load`" in text.stdout
    wait_for(home, "shop-full-load", stopped)


def test_plain_progress_lines_on_stderr_when_not_a_terminal(quickstart: Path, tmp_path: Path) -> None:
    home = applied(tmp_path, quickstart)
    result = conveyor(home, "tasks", "start", "shop-full-load", "--wait")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert "table dbo.customer: Table is being loaded, 0 rows" in lines
    assert any(line.startswith("table dbo.customer: Table completed, 3 rows, ") for line in lines), lines
    assert any(line.startswith("table dbo.fact_sales_stg: Table completed, 6 rows") for line in lines)
    assert "task shop-full-load: stopped" in result.stdout

    as_json = conveyor(home, "tasks", "start", "shop-full-load", "--wait", "--json")
    assert json.loads(as_json.stdout)["status"] == "stopped"
    assert "table dbo.customer: Table completed, 3 rows" in as_json.stderr


def test_live_progress_on_a_terminal(quickstart: Path, tmp_path: Path) -> None:
    home = applied(tmp_path, quickstart)
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "conveyor", "tasks", "start", "shop-full-load", "--wait"],
        stdout=follower,
        stderr=subprocess.PIPE,
        env=environment(home) | {"TERM": "xterm"},
    )
    os.close(follower)
    output = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal's other end closed: the command ended
            break
        if not chunk:
            break
        output += chunk
    os.close(leader)
    assert process.wait(timeout=60) == 0
    assert process.stderr is not None
    stderr = process.stderr.read().decode()
    process.stderr.close()
    text = output.decode(errors="replace")
    assert "dbo.fact_sales_stg" in text and "rows/s" in text
    assert "Table completed" in text
    assert "task shop-full-load: stopped" in text
    assert "table dbo.customer:" not in stderr  # the plain lines are for pipes only


def test_stop_a_running_task_rolls_back_and_says_normal(
    big_source: Path, tmp_path: Path, workers: list[int]
) -> None:
    home = applied(tmp_path, big_stack(tmp_path, big_source))
    pid = start_detached(home, "big-load", workers)

    again = conveyor(home, "tasks", "start", "big-load")
    assert again.returncode == 1
    assert f"task big-load is already running (pid {pid})" in again.stderr

    wait_for(home, "big-load", loading, seconds=30)
    stopping = conveyor(home, "tasks", "stop", "big-load", "--json")
    assert stopping.returncode == 0, stopping.stderr
    assert json.loads(stopping.stdout) == {"task": "big-load", "status": "stopping", "pid": pid}

    described = wait_for(home, "big-load", stopped, seconds=30)
    assert (described["status"], described["stop_reason"]) == ("stopped", "NORMAL")
    assert described["tables"][0]["FullLoadRows"] == 0
    assert described["tables"][0]["TableState"] == "Before load"
    events = json.loads(conveyor(home, "events", "list", "--json").stdout)["Events"][::-1]
    events = [e for e in events if e["detail"]["category"] == "StateChange"]  # not apply's "created"
    assert [e["detail"]["eventId"] for e in events] == ["DMS-EVENT-0069", "DMS-EVENT-0079"]
    assert events[-1]["detail"]["detailMessage"] == "Stop Reason NORMAL"
    wait_gone(pid)  # the worker exits right after recording the stop
    assert target_tables(tmp_path / "dw.duckdb") == {}  # the one load transaction rolled back

    not_running = conveyor(home, "tasks", "stop", "big-load")
    assert not_running.returncode == 1
    assert "task big-load is not running (status stopped)" in not_running.stderr


def test_stop_a_task_that_never_ran(quickstart: Path, tmp_path: Path) -> None:
    home = applied(tmp_path, quickstart)
    result = conveyor(home, "tasks", "stop", "shop-full-load")
    assert result.returncode == 1
    assert "task shop-full-load is not running (status ready)" in result.stderr
    as_json = conveyor(home, "tasks", "stop", "nope")
    assert as_json.returncode == 2 and "no task named 'nope'" in as_json.stderr


def test_a_killed_worker_is_taken_over_and_the_load_redone_exactly(
    big_source: Path, tmp_path: Path, workers: list[int]
) -> None:
    home = applied(tmp_path, big_stack(tmp_path, big_source))
    pid = start_detached(home, "big-load", workers)
    wait_for(home, "big-load", loading, seconds=30)
    os.kill(pid, signal.SIGKILL)
    wait_gone(pid)
    assert target_tables(tmp_path / "dw.duckdb") == {}  # killed mid-transaction: nothing landed

    result = conveyor(home, "tasks", "start", "big-load", "--wait", "--json", timeout=120)
    assert result.returncode == 0, result.stderr
    described = json.loads(result.stdout)
    assert (described["status"], described["stop_reason"]) == ("stopped", "FULL_LOAD_ONLY_FINISHED")
    assert described["tables"][0]["FullLoadRows"] == BIG_ROWS
    assert target_tables(tmp_path / "dw.duckdb") == {"main.big": source_checksum(big_source)}

    new_run, old_run = described["runs"][:2]
    assert (new_run["status"], new_run["pid"]) == ("stopped", described["pid"])
    assert (old_run["status"], old_run["pid"]) == ("failed", pid)
    assert old_run["error"] == f"worker process {pid} died"
    assert old_run["stop_reason"] == "RECOVERABLE_ERROR"  # resumed from its checkpoint
    events = json.loads(conveyor(home, "events", "list", "--json").stdout)["Events"][::-1]
    events = [e for e in events if e["detail"]["eventType"] != "REPLICATION_TASK_CREATED"]
    assert [e["detail"]["eventId"] for e in events] == [
        "DMS-EVENT-0069",
        "DMS-EVENT-0078",
        "DMS-EVENT-0069",
        "DMS-EVENT-0079",
    ]
    assert events[1]["detail"]["detailMessage"].endswith(f"worker process {pid} died")
