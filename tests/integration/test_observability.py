"""Observability end to end: `/metrics` on a real `conveyor serve` checked against
`conveyor tasks describe --json` after a full load and during and after change
capture; JSON logs from the CLI, serve and the worker; `conveyor tasks logs`
(and `--follow`, which ends with the run) and `GET /tasks/NAME/logs`."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from support import tasks as support_tasks
from support.cli import conveyor, environment
from support.serve import Serve, wait_for
from support.servers import PostgresServer, free_port

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

TOKEN = "observability-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
JSON_LOGS = {"CONVEYOR_LOG_FORMAT": "json"}
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

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(server: Serve) -> Samples:
    answer = httpx.get(f"{server.url}/metrics", headers=AUTH, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(answer.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def described(home: Path, task: str) -> dict[str, Any]:
    """`conveyor tasks describe TASK --json`, read in this process (it is polled)."""
    return support_tasks.described(home, task)


def rest_task(server: Serve, name: str) -> dict[str, Any]:
    """The task as `GET /tasks/NAME` has it (cheaper to poll than the CLI)."""
    answer = httpx.get(f"{server.url}/tasks/{name}", headers=AUTH, timeout=10)
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of ``text`` as a JSON object (fails on a line that is not one)."""
    records = [json.loads(line) for line in text.splitlines() if line.strip()]
    for record in records:
        assert {"ts", "level", "logger", "message"} <= record.keys(), record
    return records


@pytest.fixture
def serve_json(tmp_path: Path) -> Iterator[tuple[Path, Serve]]:
    home = tmp_path / "home"
    home.mkdir()
    server = Serve(home, free_port(), {"CONVEYOR_API_TOKEN": TOKEN} | JSON_LOGS)
    try:
        server.ready()
        yield home, server
    finally:
        server.kill()


def test_metrics_after_a_full_load_with_json_logs(tmp_path: Path, serve_json: tuple[Path, Serve]) -> None:
    home, server = serve_json
    source = tmp_path / "shop.sqlite"
    with sqlite3.connect(source) as conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
        conn.executemany("INSERT INTO items VALUES (?, ?)", [(i, f"item {i}") for i in range(1, 251)])
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, item INTEGER)")
        conn.executemany("INSERT INTO orders VALUES (?, ?)", [(i, i % 7) for i in range(1, 41)])
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
        "state_machines": {
            "echo": {"definition": {"StartAt": "E", "States": {"E": {"Type": "Pass", "End": True}}}}
        },
    }
    (tmp_path / "conveyor.yaml").write_text(json.dumps(stack))
    assert conveyor(home, "apply", str(tmp_path / "conveyor.yaml")).returncode == 0

    # The global option: the worker this command spawns inherits it.
    started = conveyor(home, "--log-format", "json", "tasks", "start", "load")
    assert started.returncode == 0, started.stderr
    wait_for(lambda: rest_task(server, "load")["status"] == "stopped", 60, "the load to finish")
    task = described(home, "load")

    assert httpx.get(f"{server.url}/metrics", timeout=5).status_code == 401
    samples = scrape(server)
    assert value(samples, "conveyor_task_status", task="load", status="stopped") == 1
    assert value(samples, "conveyor_task_status", task="load", status="running") == 0
    assert value(samples, "conveyor_task_run", task="load") == task["current_run"]
    assert len(task["tables"]) == 2
    for table in task["tables"]:
        key = {"task": "load", "schema": table["SchemaName"], "table": table["TableName"]}
        assert value(samples, "conveyor_table_full_load_rows", **key) == table["FullLoadRows"]
        assert value(samples, "conveyor_table_state", **key, state=table["TableState"]) == 1
        assert value(samples, "conveyor_table_state", **key, state="Table error") == 0
    assert sorted(t["FullLoadRows"] for t in task["tables"]) == [40, 250]

    # Executions and statements, counted from the store.
    started_execution = httpx.post(
        f"{server.url}/state-machines/echo/executions", json={"input": {}}, headers=AUTH, timeout=10
    )
    assert started_execution.status_code == 200, started_execution.text
    statement = httpx.post(
        f"{server.url}/statements",
        json={"ClusterIdentifier": "dw", "Sql": "select 42"},
        headers=AUTH,
        timeout=10,
    ).json()["Id"]

    def statement_done() -> dict[str, Any] | None:
        found = httpx.get(f"{server.url}/statements/{statement}", headers=AUTH, timeout=5).json()
        return found if found["Status"] == "FINISHED" else None

    finished = wait_for(statement_done, 30, "the statement")
    executions = wait_for(
        lambda: [
            e
            for e in httpx.get(f"{server.url}/executions", headers=AUTH, timeout=5).json()
            if e["status"] == "SUCCEEDED"
        ],
        30,
        "the execution",
    )
    samples = scrape(server)
    assert (
        value(samples, "conveyor_executions", state_machine="echo", status="SUCCEEDED")
        == len(executions)
        == 1
    )
    assert value(samples, "conveyor_executions", state_machine="echo", status="FAILED") == 0
    assert value(samples, "conveyor_statements", endpoint="dw", status="FINISHED") == 1
    histogram = {"endpoint": "dw", "status": "FINISHED"}
    assert value(samples, "conveyor_statement_duration_seconds_count", **histogram) == 1
    assert value(samples, "conveyor_statement_duration_seconds_bucket", **histogram, le="+Inf") == 1
    assert value(samples, "conveyor_statement_duration_seconds_sum", **histogram) == pytest.approx(
        finished["Duration"] / 1e9
    )

    # The worker's log: JSON lines, each with the task and its run.
    logs = conveyor(home, "tasks", "logs", "load")
    assert logs.returncode == 0, logs.stderr
    records = json_lines(logs.stdout)
    assert {(r.get("task"), r.get("run_id")) for r in records} == {("load", task["current_run"])}
    messages = [r["message"] for r in records]
    assert "table main.items: Table completed, 250 rows" in "\n".join(messages)
    assert messages[-1] == "task load: stopped"
    assert (home / "logs" / "load" / f"{task['current_run']}.log").exists()

    def complete_log() -> dict[str, Any] | None:
        """The run's log once the worker is gone (it may still be exiting after
        writing its last line; ``running`` stays true for that, at most EXIT_GRACE)."""
        found: dict[str, Any] = httpx.get(f"{server.url}/tasks/load/logs", headers=AUTH, timeout=5).json()
        return None if found["running"] else found

    routed = wait_for(complete_log, 15, "the worker to exit")
    assert routed["run"] == task["current_run"]
    assert [r["message"] for r in json_lines(routed["text"])] == messages
    assert httpx.get(f"{server.url}/tasks/nope/logs", headers=AUTH, timeout=5).status_code == 404
    assert conveyor(home, "tasks", "logs", "load", "--run", "99").returncode != 0

    # serve's own log is JSON lines too (uvicorn's records included).
    assert server.terminate() == 0
    serve_records = json_lines(server.log_path.read_text())
    assert any(r["logger"] == "uvicorn.access" and "/metrics" in r["message"] for r in serve_records)

    # A run in the foreground: its progress as JSON records on stderr, no log file.
    waited = conveyor(home, "--log-format", "json", "tasks", "start", "load", "--wait", "--json")
    assert waited.returncode == 0, waited.stderr
    progress = [r for r in json_lines(waited.stderr) if r["logger"] == "conveyor.progress"]
    assert ("main.items", 250) in {(r["table"], r["rows"]) for r in progress}
    assert {(r["task"], r["run_id"]) for r in progress} == {("load", task["current_run"] + 1)}
    assert json_lines(conveyor(home, "tasks", "logs", "load").stdout)[-1]["run_id"] == task["current_run"]


def test_metrics_during_and_after_change_capture_and_following_the_log(
    pg_server: PostgresServer, tmp_path: Path, serve_json: tuple[Path, Serve]
) -> None:
    home, server = serve_json
    source, target = (pg_server.url(pg_server.new_database(p)) for p in ("obssrc", "obsdst"))
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id bigint PRIMARY KEY, name text)")
        conn.execute("INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 300) g")
    stack = {
        "endpoints": {
            "src": {"engine": "postgres", "url": source},
            "dst": {"engine": "postgres", "url": target},
        },
        "tasks": {
            "sync": {
                "source": "src",
                "target": "dst",
                "migration_type": "full-load-and-cdc",
                "table_mappings": {
                    "rules": [
                        SELECT_ALL["rules"][0]
                        | {"object-locator": {"schema-name": "public", "table-name": "%"}}
                    ]
                },
            }
        },
    }
    (tmp_path / "conveyor.yaml").write_text(json.dumps(stack))
    assert conveyor(home, "apply", str(tmp_path / "conveyor.yaml")).returncode == 0
    started = conveyor(home, "tasks", "start", "sync", env=JSON_LOGS)
    assert started.returncode == 0, started.stderr
    follower: subprocess.Popen[str] | None = None
    try:
        wait_for(
            lambda: any("Inserts" in t for t in rest_task(server, "sync")["tables"]),
            60,
            "the capture to begin",
        )
        follower = subprocess.Popen(
            [sys.executable, "-m", "conveyor", "tasks", "logs", "sync", "--follow"],
            env=environment(home),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        with psycopg.connect(source, autocommit=True) as conn:
            conn.execute("INSERT INTO items SELECT g, 'new ' || g FROM generate_series(1001, 1005) g")
            conn.execute("UPDATE items SET name = 'changed' WHERE id IN (1, 2, 3)")
            conn.execute("DELETE FROM items WHERE id IN (10, 11)")

        def changed() -> bool:
            (table,) = rest_task(server, "sync")["tables"]
            return (table.get("Inserts"), table.get("Updates"), table.get("Deletes")) == (5, 3, 2)

        wait_for(changed, 60, "the changes to be applied")
        samples, task = _steady(home, server)
        assert value(samples, "conveyor_task_status", task="sync", status="running") == 1
        _check_against(samples, task)
        capture = task["capture"]
        assert (
            value(samples, "conveyor_task_cdc_latency_source_seconds", task="sync")
            == capture["CDCLatencySource"]
        )
        assert (
            value(samples, "conveyor_task_cdc_latency_target_seconds", task="sync")
            == capture["CDCLatencyTarget"]
        )
        assert value(samples, "conveyor_task_retained_wal_bytes", task="sync") == capture["RetainedWalBytes"]
        assert capture["RetainedWalBytes"] >= 0
        assert (
            value(samples, "conveyor_task_cdc_applied_changes_total", task="sync")
            == capture["AppliedChanges"]
        )

        assert conveyor(home, "tasks", "stop", "sync").returncode == 0
        out, err = follower.communicate(timeout=60)  # --follow ends with the run
        assert follower.returncode == 0, err
        wait_for(lambda: rest_task(server, "sync")["status"] == "stopped", 30, "the task to stop")
    finally:
        if follower is not None and follower.poll() is None:
            follower.kill()
            follower.wait(timeout=10)
        _kill_worker(home)
    records = json_lines(out)
    run = described(home, "sync")["current_run"]
    assert {(r.get("task"), r.get("run_id")) for r in records} == {("sync", run)}
    messages = [r["message"] for r in records]
    assert messages[0].startswith("task sync: worker pid") and messages[-1] == "task sync: stopped"

    samples = scrape(server)
    task = described(home, "sync")
    assert value(samples, "conveyor_task_status", task="sync", status="stopped") == 1
    _check_against(samples, task)


def _steady(home: Path, server: Serve) -> tuple[Samples, dict[str, Any]]:
    """A scrape and a describe with nothing reported in between (the worker
    reports the capture's latency as it goes)."""
    for _ in range(50):
        before = described(home, "sync")
        samples = scrape(server)
        after = described(home, "sync")
        if (before["tables"], before.get("capture")) == (after["tables"], after.get("capture")):
            return samples, after
    raise AssertionError("the task's statistics never held still for one scrape")


def _check_against(samples: Samples, task: dict[str, Any]) -> None:
    (table,) = task["tables"]
    key = {"task": "sync", "schema": table["SchemaName"], "table": table["TableName"]}
    assert value(samples, "conveyor_table_full_load_rows", **key) == table["FullLoadRows"] == 300
    assert value(samples, "conveyor_table_state", **key, state=table["TableState"]) == 1
    for stat, operation in (
        ("Inserts", "insert"),
        ("Updates", "update"),
        ("Deletes", "delete"),
        ("Ddls", "ddl"),
    ):
        name = "conveyor_table_changes_applied_total"
        assert value(samples, name, **key, operation=operation) == table[stat], stat
    assert (table["Inserts"], table["Updates"], table["Deletes"]) == (5, 3, 2)


def _kill_worker(home: Path) -> None:
    """A failed test must not leave a worker behind (it would hold the slot)."""
    pid = described(home, "sync").get("pid")
    if pid and described(home, "sync")["status"] != "stopped":
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
