"""Change capture under trouble: a MariaDB source under a concurrent writer, a
target that goes away for 30 s, a source that restarts, ADD COLUMN on MariaDB.

Each task runs in a thread of this process (RunningTask); the writer makes
random inserts, updates (each bumping the row's counter) and deletes in small
transactions. When it stops, the target must equal the source row for row.
The servers that are stopped or restarted are private to their test, so the
session's shared servers are never disturbed."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from conveyor.connectors.base import EndpointConfig
from conveyor.connectors.captured_rows import CHUNK_ROWS, row_changes
from conveyor.connectors.changes import Commit
from conveyor.connectors.postgres.capture import PostgresChangeSource
from conveyor.core.batch import ChangeBatch
from conveyor.core.errors import TransientError
from conveyor.store.store import Store
from integration.test_cdc_tasks import DEADLINE_S, RunningTask, Writer, wait_until
from integration.test_cdc_tasks import _stack_file as stack_file
from integration.test_cdc_tasks import _stats as task_stats
from support.mariadb import mariadb_connect
from support.servers import MariaDBServer, PostgresServer

pytestmark = pytest.mark.integration

Statements = list[tuple[str, tuple[Any, ...]]]
ITEMS_PG = "CREATE TABLE items (id bigint PRIMARY KEY, name text, counter integer NOT NULL, note text)"
ITEMS_MARIADB = (
    "CREATE TABLE items (id bigint PRIMARY KEY, name varchar(100), counter int NOT NULL, note text) "
    "ENGINE=InnoDB"
)
OUTAGE_S = 30.0


@pytest.fixture
def private_pg() -> Iterator[PostgresServer]:
    """A PostgreSQL server of this test alone: it may be stopped and restarted."""
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture
def private_mariadb() -> Iterator[MariaDBServer]:
    """A MariaDB server of this test alone: it may be restarted."""
    server = MariaDBServer()
    try:
        server.start()
        yield server
    finally:
        server.close()


# -- helpers ---------------------------------------------------------------------


def _mariadb_rows(url: str) -> list[tuple[Any, ...]]:
    conn = mariadb_connect(url, autocommit=False)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT id, name, counter, note FROM items ORDER BY id")
            return [tuple(row) for row in cur.fetchall()]
    finally:
        conn.close()


def _pg_rows(
    url: str, schema: str = "public", columns: str = "id, name, counter, note"
) -> list[tuple[Any, ...]]:
    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            return conn.execute(f'SELECT {columns} FROM "{schema}".items ORDER BY id').fetchall()
    except psycopg.Error:
        return []  # not there yet, or the server is down


def _pg_source(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(ITEMS_PG)
        conn.execute("INSERT INTO items SELECT g, 'item ' || g, 0, 'n' FROM generate_series(1, 1000) g")


def _pg_execute(url: str, pause_s: float = 0.0) -> Callable[[Statements], None]:
    def execute(statements: Statements) -> None:
        with psycopg.connect(url) as conn:
            for text, params in statements:
                conn.execute(text, params)
        time.sleep(pause_s)

    return execute


def _start_writer(writer: Writer) -> threading.Thread:
    thread = threading.Thread(target=writer.run, daemon=True)
    thread.start()
    return thread


def _stop_writer(writer: Writer, thread: threading.Thread) -> None:
    writer.until.set()
    thread.join(timeout=DEADLINE_S)
    assert not thread.is_alive(), "the writer did not stop"
    assert writer.error is None, writer.error


def _capturing(store: Store) -> bool:
    return store.task_progress("sync") is not None


def _mariadb_stack(tmp_path: Path, source: str, target: str) -> Path:
    database = source.rsplit("/", 1)[1]
    return stack_file(
        tmp_path / "s.yaml",
        {"engine": "mysql", "url": source},
        {"engine": "postgres", "url": target},
        database,
    )


def _mariadb_items(server: MariaDBServer) -> str:
    url = server.url(server.new_database("cdcsrc"))
    conn = mariadb_connect(url, autocommit=False)
    try:
        with conn.cursor() as cur:
            cur.execute(ITEMS_MARIADB)
            cur.executemany(
                "INSERT INTO items VALUES (%s, %s, 0, 'n')", [(i, f"item {i}") for i in range(1, 1001)]
            )
        conn.commit()
    finally:
        conn.close()
    return url


@pytest.fixture
def mariadb_items(mariadb_server: MariaDBServer) -> str:
    return _mariadb_items(mariadb_server)


def _mariadb_execute(url: str) -> Callable[[Statements], None]:
    def execute(statements: Statements) -> None:
        conn = mariadb_connect(url, autocommit=False)
        try:
            with conn.cursor() as cur:
                for text, params in statements:
                    cur.execute(text, params)
            conn.commit()
        finally:
            conn.close()

    return execute


# -- the tests ---------------------------------------------------------------------


def test_mariadb_full_load_and_cdc_while_a_writer_runs(
    mariadb_items: str,
    pg_server: PostgresServer,
    store: Store,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="conveyor.replication.cdc.row_forms")
    target = pg_server.url(pg_server.new_database("cdcdst"))
    stack = _mariadb_stack(tmp_path, mariadb_items, target)
    schema = mariadb_items.rsplit("/", 1)[1]
    writer = Writer(_mariadb_execute(mariadb_items), 3000)
    with RunningTask(store, stack, "sync"):
        thread = _start_writer(writer)  # during the full load and after it
        thread.join(timeout=DEADLINE_S * 2)
        _stop_writer(writer, thread)
        wait_until(
            lambda: _pg_rows(target, schema) == _mariadb_rows(mariadb_items),
            "the target to equal the source",
            debug=lambda: (task_stats(store), store.task_status("sync")),
        )
    stats = task_stats(store)
    assert stats["FullLoadRows"] >= 1000
    assert stats["Inserts"] + stats["Updates"] + stats["Deletes"] > 0
    assert len(_mariadb_rows(mariadb_items)) > 1000  # the writer inserted more than it deleted
    # The binlog's rows came as captured batches in Arrow (the mapping takes them whole).
    assert "task sync: 1 of 1 tables captured in Arrow" in caplog.messages


@pytest.mark.slow
def test_target_stopped_for_30_s_then_the_task_catches_up(
    pg_server: PostgresServer, private_pg: PostgresServer, store: Store, tmp_path: Path
) -> None:
    began = time.monotonic()
    source = pg_server.url(pg_server.new_database("cdcsrc"))
    target = private_pg.url(private_pg.new_database("cdcdst"))
    _pg_source(source)
    stack = stack_file(
        tmp_path / "s.yaml",
        {"engine": "postgres", "url": source},
        {"engine": "postgres", "url": target},
        "public",
    )
    writer = Writer(_pg_execute(source, pause_s=0.02), 1_000_000)
    with RunningTask(store, stack, "sync") as task:
        wait_until(lambda: _capturing(store), "capture to begin")
        thread = _start_writer(writer)
        try:
            time.sleep(2)
            private_pg.stop()
            time.sleep(OUTAGE_S)  # the writer goes on; the task retries the target
            assert task.status is None, (
                f"the task ended while the target was down: {store.task_status('sync')}"
            )
            private_pg.start()
            time.sleep(2)
        finally:
            _stop_writer(writer, thread)
        wait_until(
            lambda: _pg_rows(target) == _pg_rows(source),
            "the target to catch up",
            debug=lambda: (task_stats(store), store.task_status("sync")),
        )
    status = store.task_status("sync")
    assert (status["status"], status["last_error"]) == ("stopped", None)
    assert time.monotonic() - began < 90


def test_source_restarted_then_the_stream_reconnects(
    private_pg: PostgresServer, pg_server: PostgresServer, store: Store, tmp_path: Path
) -> None:
    source = private_pg.url(private_pg.new_database("cdcsrc"))
    target = pg_server.url(pg_server.new_database("cdcdst"))
    _pg_source(source)
    stack = stack_file(
        tmp_path / "s.yaml",
        {"engine": "postgres", "url": source},
        {"engine": "postgres", "url": target},
        "public",
    )
    # The writer holds this lock for each transaction; the restart takes it, so
    # no write of the writer's is cut off (the stream's reconnection is what is tested).
    lock = threading.Lock()
    write = _pg_execute(source, pause_s=0.01)

    def execute(statements: Statements) -> None:
        with lock:
            write(statements)

    writer = Writer(execute, 1_000_000)
    with RunningTask(store, stack, "sync") as task:
        wait_until(lambda: _capturing(store), "capture to begin")
        thread = _start_writer(writer)
        try:
            time.sleep(2)
            with lock:
                with psycopg.connect(source, autocommit=True) as conn:  # a change in flight
                    conn.execute("UPDATE items SET counter = counter + 1 WHERE id % 3 = 0")
                private_pg.restart()
            time.sleep(3)
            assert task.status is None, f"the task ended with the source restart: {store.task_status('sync')}"
        finally:
            _stop_writer(writer, thread)
        wait_until(
            lambda: _pg_rows(target) == _pg_rows(source),
            "the target to equal the source after the restart",
            debug=lambda: (task_stats(store), store.task_status("sync")),
        )
    status = store.task_status("sync")
    assert (status["status"], status["last_error"]) == ("stopped", None)


def test_mariadb_source_restarted_then_the_stream_reconnects(
    private_mariadb: MariaDBServer, pg_server: PostgresServer, store: Store, tmp_path: Path
) -> None:
    source = _mariadb_items(private_mariadb)
    target = pg_server.url(pg_server.new_database("cdcdst"))
    stack = _mariadb_stack(tmp_path, source, target)
    schema = source.rsplit("/", 1)[1]
    lock = threading.Lock()  # as in the PostgreSQL case: no write of the writer's is cut off
    write = _mariadb_execute(source)

    def execute(statements: Statements) -> None:
        time.sleep(0.01)
        with lock:
            write(statements)

    writer = Writer(execute, 1_000_000)
    with RunningTask(store, stack, "sync") as task:
        wait_until(lambda: _capturing(store), "capture to begin")
        thread = _start_writer(writer)
        try:
            time.sleep(2)
            with lock:
                write([("UPDATE items SET counter = counter + 1 WHERE MOD(id, 3) = 0", ())])  # in flight
                private_mariadb.restart()
            time.sleep(3)
            assert task.status is None, f"the task ended with the source restart: {store.task_status('sync')}"
        finally:
            _stop_writer(writer, thread)
        wait_until(
            lambda: _pg_rows(target, schema) == _mariadb_rows(source),
            "the target to equal the source after the restart",
            debug=lambda: (task_stats(store), store.task_status("sync")),
        )
    status = store.task_status("sync")
    assert (status["status"], status["last_error"]) == ("stopped", None)


def test_mariadb_add_column_during_cdc_reaches_the_target_with_its_values(
    mariadb_items: str, pg_server: PostgresServer, store: Store, tmp_path: Path
) -> None:
    target = pg_server.url(pg_server.new_database("cdcdst"))
    stack = _mariadb_stack(tmp_path, mariadb_items, target)
    schema = mariadb_items.rsplit("/", 1)[1]
    execute = _mariadb_execute(mariadb_items)
    with RunningTask(store, stack, "sync"):
        wait_until(lambda: _capturing(store), "capture to begin")
        execute([("UPDATE items SET counter = counter + 1 WHERE id = 1", ())])
        execute([("ALTER TABLE items ADD COLUMN extra varchar(20)", ())])
        execute(
            [
                ("UPDATE items SET counter = counter + 1, extra = 'added' WHERE id = 3", ()),
                (
                    "INSERT INTO items (id, name, counter, note, extra) "
                    "VALUES (5000, 'new', 0, 'n', 'fresh')",
                    (),
                ),
            ]
        )
        wait_until(
            lambda: _pg_rows(target, schema, "id, counter, extra")[-1:] == [(5000, 0, "fresh")],
            "the new column's values on the target",
            debug=lambda: (task_stats(store), store.task_status("sync")),
        )
    rows = {row[0]: row[1:] for row in _pg_rows(target, schema, "id, counter, extra")}
    assert rows[1] == (1, None) and rows[3] == (1, "added") and rows[5000] == (0, "fresh")
    assert len(rows) == 1001
    assert task_stats(store)["Ddls"] == 1


def test_a_transaction_cut_off_by_a_lost_connection_is_delivered_once(pg_db: str) -> None:
    """The connection is lost after part of a transaction was delivered (and
    after a whole one): the server sends both again from the slot's position;
    the stream hands on only what it had not."""
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id int PRIMARY KEY)")
    source = PostgresChangeSource(EndpointConfig("src", "postgres", url=pg_db))
    tables = [s for s in source.tables() if s.ref.name == "t"]
    start = source.begin_capture("cut", tables, export_snapshot=False)
    stream = source.open_stream("cut", tables, start.position)
    # Row changes come in captured batches of at most CHUNK_ROWS: a transaction
    # of more rows is delivered in parts before its commit.
    last = CHUNK_ROWS + 7
    expected = [("row", 1), ("row", 2), ("commit", None)]
    expected += [("row", i) for i in range(3, last + 1)] + [("commit", None)]
    cut_after: int | None = None  # the last row delivered before the cut
    try:
        with psycopg.connect(pg_db, autocommit=True) as conn:
            conn.execute("INSERT INTO t SELECT generate_series(1, 2)")  # delivered whole
            conn.execute(f"INSERT INTO t SELECT generate_series(3, {last})")  # cut off after its first part
        seen: list[tuple[str, Any]] = []
        deadline = time.monotonic() + DEADLINE_S
        for event in stream.events(idle_timeout=0.2):
            assert time.monotonic() < deadline, f"only {len(seen)} arrived, the last {seen[-3:]}"
            if isinstance(event, ChangeBatch):
                ids = [c.values["id"] for c in row_changes(event)]
                assert len(ids) == event.num_rows
                seen += [("row", i) for i in ids]
                if cut_after is None and seen.count(("commit", None)) == 1:
                    cut_after = ids[-1]
                    stream._lost(TransientError("cut off by the test"))  # as a failed read does
            elif isinstance(event, Commit):
                seen.append(("commit", None))
                if seen.count(("commit", None)) == 2:
                    break
    finally:
        stream.close()
        source.end_capture("cut")
        source.close()
    assert cut_after is not None and 3 <= cut_after < last, "cut off in the middle of the transaction"
    assert seen == expected
