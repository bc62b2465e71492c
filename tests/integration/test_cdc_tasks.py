"""Change-capture tasks end to end, in process: full load, hand-over, changes
arriving, stop, resume."""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest

from conveyor.core.faults import ENV as FAULT_ENV
from conveyor.replication.task_states import STOP_REASON_NORMAL
from conveyor.store.store import Store
from support import stacks
from support.cli import conveyor
from support.servers import PostgresServer
from support.task_thread import RunningTask
from support.tasks import described as read_task
from support.tasks import kill_worker, wait_until

pytestmark = pytest.mark.integration

DEADLINE_S = 30.0


@pytest.fixture
def sqlite_stack(tmp_path: Path) -> Path:
    source = tmp_path / "shop.sqlite"
    with sqlite3.connect(source) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price DECIMAL(10,2))")
        conn.executemany(
            "INSERT INTO items VALUES (?, ?, ?)", [(i, f"item {i}", f"{i}.50") for i in range(1, 101)]
        )
    conn.close()
    stack = {
        "endpoints": {
            "shop": {"engine": "sqlite", "path": str(source)},
            "dw": {"engine": "duckdb", "path": str(tmp_path / "dw.duckdb")},
        },
        "tasks": {
            "sync": {
                "source": "shop",
                "target": "dw",
                "migration_type": "full-load-and-cdc",
                "table_mappings": {
                    "rules": [
                        {
                            "rule-type": "selection",
                            "rule-id": "1",
                            "rule-name": "all",
                            "object-locator": {"schema-name": "main", "table-name": "%"},
                            "rule-action": "include",
                        }
                    ]
                },
                "settings": {"ValidationSettings": {"EnableValidation": True}},
            }
        },
    }
    path = tmp_path / "conveyor.yaml"
    path.write_text(json.dumps(stack))
    return path


def source_rows(path: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT id, name, CASE WHEN price IS NOT NULL THEN printf('%.2f', price) END "
            "FROM items ORDER BY id"
        ).fetchall()
    conn.close()
    return rows


def target_rows(path: Path) -> list[tuple[Any, ...]]:
    try:
        with duckdb.connect(str(path), read_only=True) as conn:
            return conn.execute(
                "SELECT id, name, CAST(price AS VARCHAR) FROM main.items ORDER BY id"
            ).fetchall()
    except duckdb.Error:
        return []  # not created yet, or the writer holds it


def test_sqlite_to_duckdb_full_load_then_changes(sqlite_stack: Path, store: Store, tmp_path: Path) -> None:
    source, target = tmp_path / "shop.sqlite", tmp_path / "dw.duckdb"
    with RunningTask(store, sqlite_stack, "sync"):
        wait_until(lambda: store.task_progress("sync") is not None, "capture to begin")
        with sqlite3.connect(source) as conn:
            conn.execute("INSERT INTO items VALUES (1000, 'new', '9.99')")
            conn.execute("UPDATE items SET name = 'renamed' WHERE id = 5")
            conn.execute("DELETE FROM items WHERE id = 7")
        conn.close()
        wait_until(lambda: _stats(store).get("Inserts") == 1 and _stats(store).get("Deletes") == 1, "changes")
        # EnableValidation: the changed rows are validated once they settle (5 s by default).
        wait_until(
            lambda: _stats(store).get("ValidationState") == "Validated",
            "validated",
            debug=lambda: _stats(store),
        )
    assert target_rows(target) == source_rows(source)
    stats = _stats(store)
    assert (stats["FullLoadRows"], stats["Inserts"], stats["Updates"], stats["Deletes"]) == (100, 1, 1, 1)
    assert stats["ValidationState"] == "Validated"
    status = store.task_status("sync")
    assert (status["status"], status["stop_reason"]) == ("stopped", STOP_REASON_NORMAL)

    # Changes made while the task is stopped arrive after a resume, once.
    with sqlite3.connect(source) as conn:
        conn.execute("UPDATE items SET price = '1.25' WHERE id = 1")
        conn.execute("INSERT INTO items VALUES (2000, 'while stopped', NULL)")
    conn.close()
    first_run = store.task_status("sync")["current_run"]
    with RunningTask(store, sqlite_stack, "sync", mode="resume"):
        wait_until(lambda: store.task_status("sync")["current_run"] != first_run, "the resumed run")
        wait_until(
            lambda: _stats(store).get("Inserts") == 1 and _stats(store).get("Updates") == 1,
            "resumed",
            debug=lambda: (_stats(store), store.task_status("sync"), store.task_progress("sync")),
        )
    assert target_rows(target) == source_rows(source)


def _stats(store: Store) -> dict[str, Any]:
    """The table's statistics in the task's current run."""
    run = store.task_status("sync")["current_run"]
    tables = store.table_stats("sync", run) if run is not None else []
    return tables[0] if tables else {}


def _stack_file(path: Path, source: dict[str, Any], target: dict[str, Any], schema: str) -> Path:
    settings = {"FullLoadSettings": {"CommitRate": 500}}
    return stacks.one_task(path, source, target, schema=schema, settings=settings)


class Writer:
    """Random inserts, updates (each bumping a per-row counter) and deletes, in
    small transactions, bounded in count."""

    def __init__(
        self,
        execute: Callable[[list[tuple[str, tuple[Any, ...]]]], None],
        operations: int,
        until: threading.Event | None = None,
    ) -> None:
        self.execute, self.operations = execute, operations
        self.until = until or threading.Event()
        self._rng = __import__("random").Random(7)
        self._next_id = 1001
        self._live = list(range(1, 1001))

    error: BaseException | None = None

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.error = exc

    def _run(self) -> None:
        done = 0
        while done < self.operations and not self.until.is_set():
            statements: list[tuple[str, tuple[Any, ...]]] = []
            for _ in range(self._rng.randint(1, 20)):
                roll = self._rng.random()
                if roll < 0.4 or not self._live:
                    statements.append(
                        (
                            "INSERT INTO items (id, name, counter) VALUES (%s, %s, 0)",
                            (self._next_id, f"n{self._next_id}"),
                        )
                    )
                    self._live.append(self._next_id)
                    self._next_id += 1
                elif roll < 0.85:
                    key = self._rng.choice(self._live)
                    statements.append(
                        ("UPDATE items SET counter = counter + 1, name = %s WHERE id = %s", (f"u{done}", key))
                    )
                else:
                    key = self._live.pop(self._rng.randrange(len(self._live)))
                    statements.append(("DELETE FROM items WHERE id = %s", (key,)))
                done += 1
            self.execute(statements)


def _pg_rows(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT id, name, counter, note FROM public.items ORDER BY id").fetchall()


@pytest.fixture
def pg_pair(pg_server: PostgresServer) -> tuple[str, str]:
    source, target = (pg_server.url(pg_server.new_database(p)) for p in ("cdcsrc", "cdcdst"))
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE items (id bigint PRIMARY KEY, name text, counter integer NOT NULL, note text)"
        )
        conn.execute(
            "INSERT INTO items SELECT g, 'item ' || g, 0, repeat('x', 10) FROM generate_series(1, 1000) g"
        )
    return source, target


def test_postgres_full_load_and_cdc_while_a_writer_runs(
    pg_pair: tuple[str, str], store: Store, tmp_path: Path
) -> None:
    source, target = pg_pair
    stack = _stack_file(
        tmp_path / "s.yaml",
        {"engine": "postgres", "url": source},
        {"engine": "postgres", "url": target},
        "public",
    )

    def execute(statements: list[tuple[str, tuple[Any, ...]]]) -> None:
        with psycopg.connect(source) as conn:
            for text, params in statements:
                conn.execute(text, params)

    writer = threading.Thread(target=Writer(execute, 3000).run)
    with RunningTask(store, stack, "sync"):
        writer.start()  # during the full load and after it
        writer.join(timeout=DEADLINE_S * 2)
        assert not writer.is_alive()
        with psycopg.connect(source, autocommit=True) as conn:  # a TOASTed value, then a neighbour's update
            conn.execute("UPDATE items SET note = repeat(md5(id::text), 4000) WHERE id = 3")
            conn.execute("ALTER TABLE items ADD COLUMN extra text")
            conn.execute("UPDATE items SET counter = counter + 1, extra = 'added' WHERE id = 3")
        wait_until(lambda: _pg_rows(target) == _pg_rows(source), "the target to equal the source")
    with psycopg.connect(target) as conn:
        assert conn.execute("SELECT length(note), extra FROM items WHERE id = 3").fetchone() == (
            128000,
            "added",
        )
    stats = _stats(store)
    assert stats["FullLoadRows"] >= 1000 and stats["Ddls"] == 1
    assert store.task_status("sync")["stop_reason"] == STOP_REASON_NORMAL


CRASH_POINTS = [
    "full-load-batch:1",  # inside the full load: no checkpoint yet, the load starts over
    "capture-before-apply:2",  # changes read, not applied
    "capture-after-partial-apply:1",  # inside a large source transaction, part of it applied
    "capture-after-apply:2",  # between the target commit and the source acknowledgement
    "capture-after-ack:3",  # after a complete batch
]


def test_sigkill_at_each_crash_point_then_resume_loses_and_repeats_nothing(
    pg_pair: tuple[str, str], tmp_path: Path
) -> None:
    source, target = pg_pair
    stack = _stack_file(
        tmp_path / "s.yaml",
        {"engine": "postgres", "url": source},
        {"engine": "postgres", "url": target},
        "public",
    )
    document = json.loads(stack.read_text())
    document["tasks"]["sync"]["settings"] = {
        "FullLoadSettings": {"CommitRate": 300},
        "ChangeProcessingTuning": {"BatchSplitSize": 200},
    }
    stack.write_text(json.dumps(document))
    home = tmp_path / "home"
    assert conveyor(home, "apply", str(stack)).returncode == 0
    done = threading.Event()

    def execute(statements: list[tuple[str, tuple[Any, ...]]]) -> None:
        with psycopg.connect(source) as conn:
            for text, params in statements:
                conn.execute(text, params)
        time.sleep(0.005)

    writer = Writer(execute, 50_000, until=done)
    thread = threading.Thread(target=writer.run)
    thread.start()
    try:
        for index, point in enumerate(CRASH_POINTS):
            if point.startswith("capture-after-partial"):
                # One transaction of several BatchSplitSizes (and of more than one
                # chunk of encoded rows, ENCODED_CHUNK_ROWS, so it is applied in parts).
                # Rows the writer never touches (touching its rows could deadlock with it).
                with psycopg.connect(source) as conn:
                    conn.execute(
                        "INSERT INTO items (id, name, counter) "
                        "SELECT g, 'bulk' || g, 0 FROM generate_series(1000001, 1002500) AS g"
                    )
                    conn.execute("UPDATE items SET counter = counter + 1 WHERE id > 1000000")
            command = "start" if index == 0 else "resume"
            started = conveyor(home, "tasks", command, "sync", env={FAULT_ENV: point})
            assert started.returncode == 0, started.stderr
            wait_until(
                lambda: read_task(home, "sync")["status"] == "failed",
                f"the worker to die at {point}",
                debug=lambda: (writer.error, _described(home)),
            )
            assert "died" in _described(home)["last_error"]
    except BaseException:
        kill_worker(home, "sync")
        raise
    finally:
        done.set()
        thread.join(timeout=DEADLINE_S)
    assert writer.error is None
    assert conveyor(home, "tasks", "resume", "sync").returncode == 0
    try:
        wait_until(
            lambda: _pg_rows(target) == _pg_rows(source), "the target to equal the source after resume"
        )
    finally:
        conveyor(home, "tasks", "stop", "sync")
        try:
            wait_until(lambda: read_task(home, "sync")["status"] == "stopped", "the task to stop")
        finally:
            kill_worker(home, "sync")
    with psycopg.connect(source) as conn:
        slots = conn.execute(
            "SELECT count(*) FROM pg_replication_slots WHERE database = current_database()"
        ).fetchone()
    assert slots == (1,)


def _described(home: Path) -> dict[str, Any]:
    result = conveyor(home, "tasks", "describe", "sync", "--json")
    assert result.returncode == 0, result.stderr
    described: dict[str, Any] = json.loads(result.stdout)
    return described


def _target_columns(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'items' "
            "ORDER BY ordinal_position"
        ).fetchall()
    return [r[0] for r in rows]


def test_source_ddl_is_applied_or_suspends_the_table_never_ignored(
    pg_pair: tuple[str, str], store: Store, tmp_path: Path
) -> None:
    source, target = pg_pair
    stack = _stack_file(
        tmp_path / "s.yaml",
        {"engine": "postgres", "url": source},
        {"engine": "postgres", "url": target},
        "public",
    )
    with RunningTask(store, stack, "sync"):
        wait_until(lambda: store.task_progress("sync") is not None, "capture to begin")
        with psycopg.connect(source, autocommit=True) as conn:
            conn.execute("ALTER TABLE items DROP COLUMN note")
            conn.execute("UPDATE items SET name = 'after drop' WHERE id = 1")
        wait_until(lambda: "note" not in _target_columns(target), "the dropped column to leave the target")
        with psycopg.connect(source, autocommit=True) as conn:
            conn.execute("ALTER TABLE items ALTER COLUMN counter TYPE bigint")
            conn.execute("UPDATE items SET counter = 5 WHERE id = 2")
        wait_until(lambda: _stats(store).get("SuspendedReason") is not None, "the table to be suspended")
    stats = _stats(store)
    assert "column 'counter' changed type to int64" in stats["SuspendedReason"]
    assert stats["TableState"] == "Table error" and stats["Ddls"] == 1
    with psycopg.connect(target) as conn:
        assert conn.execute("SELECT name FROM items WHERE id = 1").fetchone() == ("after drop",)
    suspended = [e for e in store.list_events() if e["detail"]["eventId"] == "CONVEYOR-EVENT-0001"]
    assert suspended and "public.items" in suspended[0]["detail"]["detailMessage"]


def test_added_columns_are_computed_for_captured_changes(
    sqlite_stack: Path, store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="conveyor.replication.cdc.row_forms")
    document = json.loads(sqlite_stack.read_text())
    document["tasks"]["sync"]["table_mappings"]["rules"].append(
        {
            "rule-type": "transformation",
            "rule-id": "2",
            "rule-name": "label",
            "rule-target": "column",
            "object-locator": {"schema-name": "main", "table-name": "items"},
            "rule-action": "add-column",
            "value": "label",
            "expression": "upper($name) || ' (' || $AR_H_OPERATION || ')'",
            "data-type": {"type": "string", "length": 50},
        }
    )
    sqlite_stack.write_text(json.dumps(document))
    source, target = tmp_path / "shop.sqlite", tmp_path / "dw.duckdb"
    with RunningTask(store, sqlite_stack, "sync"):
        wait_until(lambda: store.task_progress("sync") is not None, "capture to begin")
        with sqlite3.connect(source) as conn:
            conn.execute("INSERT INTO items VALUES (500, 'fresh', '1.00')")
            conn.execute("UPDATE items SET name = 'changed' WHERE id = 2")
        conn.close()
        wait_until(lambda: _stats(store).get("Inserts") == 1 and _stats(store).get("Updates") == 1, "changes")
    with duckdb.connect(str(target), read_only=True) as conn:
        labels = conn.execute(
            "SELECT id, label FROM main.items WHERE id IN (1, 2, 500) ORDER BY id"
        ).fetchall()
    assert labels == [(1, "ITEM 1 (INSERT)"), (2, "CHANGED (UPDATE)"), (500, "FRESH (INSERT)")]
    # computed in Arrow, as captured
    assert any(re.fullmatch(r"task sync: (\d+) of \1 tables captured in Arrow", m) for m in caplog.messages)
