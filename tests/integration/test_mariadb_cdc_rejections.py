"""A MariaDB value capture cannot carry (a zero date) meets DataErrorPolicy in
CDC as in the full load, on a target that does not screen changes
(PostgreSQL): the row goes to awsdms_apply_exceptions and its table goes on
(LOG_ERROR), is dropped (IGNORE_RECORD), suspends its table (SUSPEND_TABLE) or
stops the task (STOP_TASK). Through a stack file."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from conveyor.store.store import Store
from support import stacks
from support.mariadb import mariadb_connect
from support.servers import PostgresServer
from support.task_thread import RunningTask

pytestmark = pytest.mark.integration

TASK = "sync"
DEADLINE_S = 60.0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(home=tmp_path / "home")
    yield opened
    opened.close()


def _wait(check: Callable[[], bool], what: str, debug: Callable[[], Any] = lambda: "") -> None:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}: {debug()}")


def _run(url: str, *statements: str) -> None:
    conn = mariadb_connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION sql_mode = ''")
            for statement in statements:
                cur.execute(statement)
    finally:
        conn.close()


def _stack(tmp_path: Path, source: str, target: str, policy: str) -> Path:
    return stacks.one_task(
        tmp_path / "conveyor.yaml",
        {"engine": "mysql", "url": source},
        {"engine": "postgres", "url": target},
        task=TASK,
        settings={"ErrorBehavior": {"DataErrorPolicy": policy}},
    )


def _tables(store: Store) -> dict[str, dict[str, Any]]:
    run = store.task_status(TASK)["current_run"]
    return {t["TableName"]: t for t in (store.table_stats(TASK, run) if run is not None else [])}


def _inserts(store: Store, table: str) -> int:
    return int(_tables(store).get(table, {}).get("Inserts", 0))


def _applied(store: Store) -> int:
    return int((store.task_progress(TASK) or {}).get("AppliedChanges") or 0)


def _rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()


@pytest.mark.parametrize("policy", ["LOG_ERROR", "IGNORE_RECORD", "SUSPEND_TABLE", "STOP_TASK"])
def test_a_zero_date_captured_meets_the_data_error_policy(
    policy: str, mariadb_db: str, pg_server: PostgresServer, store: Store, tmp_path: Path
) -> None:
    _run(
        mariadb_db,
        "CREATE TABLE days (id int PRIMARY KEY, d date)",
        "CREATE TABLE other (id int PRIMARY KEY)",
    )
    target = pg_server.url(pg_server.new_database("rej_dst"))
    schema = mariadb_db.rsplit("/", 1)[1]
    with RunningTask(store, _stack(tmp_path, mariadb_db, target, policy), TASK) as running:
        _wait(lambda: store.task_progress(TASK) is not None, "capture to begin")
        _run(
            mariadb_db,
            "INSERT INTO days VALUES (1, '2024-01-02')",
            "INSERT INTO days VALUES (2, '0000-00-00')",
            "INSERT INTO days VALUES (3, '2024-03-04')",
        )
        if policy == "STOP_TASK":
            _wait(lambda: running.status is not None, "the task to stop", lambda: store.task_status(TASK))
            status = store.task_status(TASK)
            assert "DataErrorPolicy STOP_TASK" in str(status["last_error"]), status
            assert "'0000-00-00'" in str(status["last_error"]) or "0000-00-00" in str(status["last_error"])
            return
        if policy == "SUSPEND_TABLE":
            _wait(lambda: _tables(store).get("days", {}).get("SuspendedReason") is not None, "the suspension")
            _run(mariadb_db, "INSERT INTO other VALUES (9)")
            _wait(lambda: _inserts(store, "other") == 1, "other goes on", lambda: _tables(store))
            reason = _tables(store)["days"]["SuspendedReason"]
            assert "DataErrorPolicy SUSPEND_TABLE" in reason and "0000-00-00" in reason, reason
            assert _rows(target, "SELECT to_regclass('public.awsdms_apply_exceptions')") == [(None,)]
            return
        # the counts are of captured changes: the refused row's among them
        _wait(lambda: _inserts(store, "days") == 3, "the changes", lambda: _tables(store))
    assert _tables(store)["days"].get("SuspendedReason") is None
    assert _rows(target, f'SELECT id, d::text FROM "{schema}".days ORDER BY id') == [
        (1, "2024-01-02"),
        (3, "2024-03-04"),
    ]
    if policy == "IGNORE_RECORD":
        assert _rows(target, "SELECT to_regclass('public.awsdms_apply_exceptions')") == [(None,)]
        return
    logged = _rows(
        target, "SELECT table_name, key, column_name, value, error FROM public.awsdms_apply_exceptions"
    )
    assert len(logged) == 1, logged
    table, key, column, value, error = logged[0]
    assert (table, key, column, value) == ("days", {"id": "2"}, "d", "0000-00-00")
    assert "no calendar day" in error and "days" in error


def test_a_zero_date_captured_into_the_lake_is_logged_not_dropped(
    mariadb_db: str, store: Store, tmp_path: Path
) -> None:
    """A lake target writes the refused value to its exceptions file (as the full
    load does), in the batch that leaves the row out of the change file."""
    _run(mariadb_db, "CREATE TABLE days (id int PRIMARY KEY, d date)")
    stack = _stack(tmp_path, mariadb_db, "", "LOG_ERROR")
    document = json.loads(stack.read_text())
    lake = tmp_path / "lake"
    document["endpoints"]["dst"] = {
        "engine": "lake",
        "path": str(lake),
        "settings": {"CdcMaxBatchInterval": 1, "AddColumnName": True},
    }
    stack.write_text(json.dumps(document))
    exceptions = lake / ".conveyor" / "exceptions"
    with RunningTask(store, stack, TASK):
        _wait(lambda: store.task_progress(TASK) is not None, "capture to begin")
        _run(
            mariadb_db,
            "INSERT INTO days VALUES (1, '2024-01-02')",
            "INSERT INTO days VALUES (2, '0000-00-00')",
        )
        _wait(lambda: any(exceptions.rglob("*.jsonl")), "the exceptions file", lambda: _tables(store))
    assert _tables(store)["days"].get("SuspendedReason") is None
    (logged,) = [json.loads(line) for f in exceptions.rglob("*.jsonl") for line in f.read_text().splitlines()]
    assert logged["table"].endswith("days") and logged["column"] == "d" and logged["task"] == TASK
    assert str(logged["key"]["id"]) == "2" and "no calendar day" in logged["reason"], logged
    changed = [p for p in lake.rglob("*.csv") if "LOAD" not in p.name and ".conveyor" not in p.parts]
    text = "".join(p.read_text() for p in changed)
    assert "2024-01-02" in text and "0000-00-00" not in text, text


@pytest.mark.parametrize("target", ["postgres", "lake"])
def test_zero_dates_captured_count_toward_the_escalation(
    target: str, mariadb_db: str, pg_server: PostgresServer, store: Store, tmp_path: Path
) -> None:
    """DataErrorEscalationCount counts a table's rows capture could not hold,
    as the full load counts its refused rows: the first zero date is logged,
    the second suspends the table; another table goes on. On PostgreSQL (a
    target that screens changes) and the lake (one that does not)."""
    _run(
        mariadb_db,
        "CREATE TABLE days (id int PRIMARY KEY, d date)",
        "CREATE TABLE other (id int PRIMARY KEY)",
    )
    url = pg_server.url(pg_server.new_database("esc_dst"))
    stack = _stack(tmp_path, mariadb_db, url, "LOG_ERROR")
    document = json.loads(stack.read_text())
    document["tasks"][TASK]["settings"]["ErrorBehavior"].update(
        {"DataErrorEscalationCount": 2, "DataErrorEscalationPolicy": "SUSPEND_TABLE"}
    )
    if target == "lake":
        settings = {"CdcMaxBatchInterval": 1}
        document["endpoints"]["dst"] = {
            "engine": "lake",
            "path": str(tmp_path / "lake"),
            "settings": settings,
        }
    stack.write_text(json.dumps(document))
    with RunningTask(store, stack, TASK):
        _wait(lambda: store.task_progress(TASK) is not None, "capture to begin")
        _run(
            mariadb_db,
            "INSERT INTO days VALUES (1, '2024-01-02')",
            "INSERT INTO days VALUES (2, '0000-00-00')",
        )
        _wait(lambda: _applied(store) >= 2, "the first changes applied", lambda: _tables(store))
        assert _tables(store)["days"].get("SuspendedReason") is None
        _run(mariadb_db, "INSERT INTO days VALUES (3, '0000-00-00')", "INSERT INTO other VALUES (9)")
        _wait(lambda: _tables(store)["days"].get("SuspendedReason") is not None, "the suspension")
        _wait(lambda: _inserts(store, "other") == 1, "other goes on", lambda: _tables(store))
    reason = _tables(store)["days"]["SuspendedReason"]
    assert "(data error escalation: 2 errors)" in reason and "0000-00-00" in reason, reason
    if target == "postgres":
        logged = _rows(url, "SELECT key::text FROM public.awsdms_apply_exceptions")
        assert logged == [('{"id": "2"}',)], logged
    else:
        exceptions = tmp_path / "lake" / ".conveyor" / "exceptions"
        keys = [
            json.loads(line)["key"]
            for f in exceptions.rglob("*.jsonl")
            for line in f.read_text().splitlines()
        ]
        assert [str(k["id"]) for k in keys] == ["2"], keys
