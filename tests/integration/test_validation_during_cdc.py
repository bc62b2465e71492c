"""Validation during change capture (EnableValidation on a full-load-and-cdc
task): changed rows are compared once they settle and `tasks describe` shows
each table's ValidationState; a value changed on the target behind Conveyor's
back after a change is a Mismatched record, written to the failures table."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest

from conveyor.connectors.duckdb.connection import DEFAULT_MEMORY_LIMIT
from conveyor.core.faults import ENV as FAULT_ENV
from conveyor.store.store import Store
from support.cli import conveyor
from support.servers import PostgresServer
from support.task_thread import RunningTask
from support.tasks import described as read_task
from support.tasks import kill_worker, wait_until

pytestmark = pytest.mark.integration

SETTLE_S = 3
SETTINGS = {"ValidationSettings": {"EnableValidation": True, "ValidationQueryCdcDelaySeconds": SETTLE_S}}


def _source(pg_server: PostgresServer) -> str:
    url = pg_server.url(pg_server.new_database("valsrc"))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id bigint PRIMARY KEY, name text, ts timestamp, doc jsonb)")
        conn.execute(
            "INSERT INTO items SELECT g, 'item ' || g, "
            "timestamp '2020-01-01 10:00:00.5' + g * interval '1 h', "
            """('{"n": ' || g || '}')::jsonb FROM generate_series(1, 50) g"""
        )
        conn.execute("CREATE TABLE quiet (id integer PRIMARY KEY, v text)")
        conn.execute("INSERT INTO quiet VALUES (1, 'a')")
    return url


def _stack(path: Path, source: str, target: dict[str, Any]) -> Path:
    rule = {
        "rule-type": "selection",
        "rule-id": "1",
        "rule-name": "all",
        "object-locator": {"schema-name": "public", "table-name": "%"},
        "rule-action": "include",
    }
    document = {
        "endpoints": {"src": {"engine": "postgres", "url": source}, "dst": target},
        "tasks": {
            "sync": {
                "source": "src",
                "target": "dst",
                "migration_type": "full-load-and-cdc",
                "table_mappings": {"rules": [rule]},
                "settings": SETTINGS,
            }
        },
    }
    path.write_text(json.dumps(document))
    return path


def _source_sql(url: str, statement: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(statement)


def _state(table: dict[str, Any]) -> tuple[Any, ...]:
    return (
        table.get("ValidationState"),
        table.get("ValidationPendingRecords"),
        table.get("ValidationFailedRecords"),
    )


def _scenario(
    source: str,
    tables: Callable[[], dict[str, dict[str, Any]]],
    target_sql: Callable[[str], list[tuple[Any, ...]]],
) -> None:
    """Validated after the load; pending then Validated after a change; a value
    changed behind Conveyor's back on the target: Mismatched records."""
    wait_until(lambda: _state(tables().get("items", {})) == ("Validated", 0, 0), "Validated", 60, tables)
    assert tables()["quiet"]["ValidationState"] == "Validated"
    _source_sql(source, "UPDATE items SET name = 'changed', doc = '{\"n\": 0.5}' WHERE id IN (1, 2, 3)")
    wait_until(
        lambda: _state(tables()["items"]) == ("Pending records", 3, 0), "3 pending records", debug=tables
    )
    wait_until(lambda: tables()["items"]["ValidationState"] == "Validated", "Validated again", debug=tables)
    assert tables()["items"]["ValidationPendingRecords"] == 0
    assert tables()["items"]["ValidationFailedRecords"] == 0

    _source_sql(source, "UPDATE items SET ts = ts + interval '1 minute' WHERE id = 7")
    wait_until(
        lambda: (
            target_sql("SELECT count(*) FROM items WHERE ts = timestamp '2020-01-01 17:01:00.5'") == [(1,)]
        ),
        "the change on the target",
    )
    target_sql("UPDATE items SET ts = ts + interval '1 microsecond' WHERE id = 7")  # behind Conveyor's back
    wait_until(
        lambda: tables()["items"]["ValidationState"] == "Mismatched records",
        "Mismatched records",
        debug=tables,
    )
    assert tables()["items"]["ValidationFailedRecords"] == 1
    assert tables()["quiet"]["ValidationState"] == "Validated"
    failures = target_sql(
        "SELECT task_name, table_name, key, failure_type, details FROM awsdms_validation_failures_v1"
    )
    assert [f[:4] for f in failures] == [("sync", "items", '{"key": ["7"]}', "RECORD_DIFF")]
    assert json.loads(failures[0][4])["columns"] == ["ts"]


def test_postgres_to_postgres_through_the_cli(pg_server: PostgresServer, tmp_path: Path) -> None:
    source = _source(pg_server)
    target = pg_server.url(pg_server.new_database("valdst"))
    home = tmp_path / "home"
    assert (
        conveyor(
            home, "apply", str(_stack(tmp_path / "s.yaml", source, {"engine": "postgres", "url": target}))
        ).returncode
        == 0
    )

    def tables() -> dict[str, dict[str, Any]]:
        result = conveyor(home, "tasks", "describe", "sync", "--json")
        assert result.returncode == 0, result.stderr
        return {t["TableName"]: t for t in json.loads(result.stdout)["tables"]}

    def target_sql(statement: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(target, autocommit=True) as conn:
            cur = conn.execute(statement)
            return cur.fetchall() if cur.description else []

    def stop() -> None:
        conveyor(home, "tasks", "stop", "sync")
        wait_until(lambda: read_task(home, "sync")["status"] == "stopped", "the task to stop")

    def failed_keys() -> list[str]:
        return [k for (k,) in target_sql("SELECT key FROM awsdms_validation_failures_v1 ORDER BY key")]

    assert conveyor(home, "tasks", "start", "sync").returncode == 0
    try:
        _scenario(source, tables, target_sql)
        # The differing key is kept in the store: a resumed task compares it (not
        # every table) and confirms the difference again (its failure row stays meanwhile).
        stop()
        assert conveyor(home, "tasks", "resume", "sync").returncode == 0
        wait_until(lambda: read_task(home, "sync")["status"] == "running", "the task to run")
        wait_until(
            lambda: _state(tables()["items"]) == ("Mismatched records", 0, 1), "Mismatched again", 60, tables
        )
        assert _state(tables()["quiet"]) == ("Validated", 0, 0)
        assert failed_keys() == ['{"key": ["7"]}']

        # Fixed behind Conveyor's back, no change on the source: compared again
        # after the confirmation delay, Validated, its failure row gone.
        target_sql("UPDATE items SET ts = ts - interval '1 microsecond' WHERE id = 7")
        wait_until(
            lambda: _state(tables().get("items", {})) == ("Validated", 0, 0),
            "Validated after the fix",
            60,
            tables,
        )
        wait_until(lambda: failed_keys() == [], "the failure row gone", debug=failed_keys)

        # A worker killed just after a batch committed on the target (before the
        # validation thread heard of it): its keys were stored as the batch was
        # handed over, so the resumed task compares them. Row 40, changed on the
        # target and never since on the source, is not compared: after a table's
        # first comparison only changed keys are (`conveyor validate` compares all).
        stop()
        target_sql("UPDATE items SET name = 'behind the back' WHERE id = 40")
        _source_sql(source, "UPDATE items SET name = 'while stopped' WHERE id = 20")
        died = conveyor(home, "tasks", "resume", "sync", env={FAULT_ENV: "capture-after-apply"})
        assert died.returncode == 0, died.stderr
        wait_until(lambda: read_task(home, "sync")["status"] == "failed", "the worker to die after the apply")
        assert target_sql("SELECT name FROM items WHERE id = 20") == [("while stopped",)]
        target_sql("UPDATE items SET doc = '{\"n\": -1}' WHERE id = 20")  # behind Conveyor's back
        assert conveyor(home, "tasks", "resume", "sync").returncode == 0
        wait_until(
            lambda: _state(tables().get("items", {})) == ("Mismatched records", 0, 1),
            "key 20 Mismatched",
            60,
            tables,
        )
        wait_until(lambda: failed_keys() == ['{"key": ["20"]}'], "key 20's failure row", debug=failed_keys)
    finally:
        try:
            stop()
        finally:
            kill_worker(home, "sync")


def test_postgres_to_duckdb(pg_server: PostgresServer, store: Store, tmp_path: Path) -> None:
    source = _source(pg_server)
    path = tmp_path / "dw.duckdb"
    stack = _stack(tmp_path / "s.yaml", source, {"engine": "duckdb", "path": str(path)})

    def tables() -> dict[str, dict[str, Any]]:
        return {t["TableName"]: t for t in store.table_stats("sync")}

    def target_sql(statement: str) -> list[tuple[Any, ...]]:
        # In this process, with the task's own settings: the same database instance.
        with duckdb.connect(str(path), config={"memory_limit": DEFAULT_MEMORY_LIMIT}) as conn:
            conn.execute("SET search_path = 'public,main'")
            try:
                return conn.execute(
                    statement.replace("interval '1 microsecond'", "INTERVAL 1 MICROSECOND")
                ).fetchall()
            except duckdb.InvalidInputException:
                return []

    with RunningTask(store, stack, "sync"):
        _scenario(source, tables, target_sql)
    # Resumed: the differing key comes from the store and is confirmed again; row 40,
    # changed on the target while the task was stopped and untouched since, is not
    # compared (by key only after the first comparison); a fix is Validated again.
    target_sql("UPDATE items SET name = 'behind the back' WHERE id = 40")
    with RunningTask(store, stack, "sync", mode="resume"):
        wait_until(
            lambda: _state(tables().get("items", {})) == ("Mismatched records", 0, 1),
            "Mismatched again",
            60,
            tables,
        )
        assert [k for (k,) in target_sql("SELECT key FROM awsdms_validation_failures_v1")] == [
            '{"key": ["7"]}'
        ]
        target_sql("UPDATE items SET ts = ts - interval '1 microsecond' WHERE id = 7")
        wait_until(
            lambda: _state(tables().get("items", {})) == ("Validated", 0, 0),
            "Validated after the fix",
            60,
            tables,
        )
        wait_until(
            lambda: target_sql("SELECT key FROM awsdms_validation_failures_v1") == [], "the failure row gone"
        )
