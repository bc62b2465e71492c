"""FullLoadSettings.StopTaskCachedChangesApplied through a stack file and the
CLI: a change committed on the source while the full load runs (after the
capture's start) reaches the target, then the task stops with
STOPPED_AFTER_CACHED_EVENTS; a later change waits for `tasks resume`.

The write lands inside the load deterministically: the test holds a lock on
the target table ``b`` (created beforehand), waits until the load's DROP of it
(TargetTablePrepMode DROP_AND_CREATE) is blocked, so the capture has begun and
its snapshot is taken, commits a change to source table ``a``, then lets the
load go on."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import psycopg
import pytest

from support.cli import conveyor
from support.mariadb import mariadb_connect
from support.servers import PostgresServer
from support.tasks import apply, described, drop_slots, ended, wait_for

pytestmark = pytest.mark.integration

SETTINGS = {"FullLoadSettings": {"StopTaskCachedChangesApplied": True, "MaxFullLoadSubTasks": 1}}


def _until(check: Callable[[], bool], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    for _ in range(600):
        if check():
            return
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting for {what}")


def _ids(target: str, table: str) -> list[int]:
    with psycopg.connect(target, autocommit=True) as conn:
        return [row[0] for row in conn.execute(f"SELECT id FROM {table} ORDER BY id").fetchall()]


def _stack(tmp_path: Path, source: str, target: str) -> Path:
    home = tmp_path / "home"
    apply(
        home,
        tmp_path / "conveyor.yaml",
        "endpoints:\n"
        f"  src: {source}\n"
        f"  dw: {{engine: postgres, url: '{target}'}}\n"
        "tasks:\n"
        "  sync: {source: src, target: dw, migration_type: full-load-and-cdc,"
        f" settings: {json.dumps(SETTINGS)}}}\n",
    )
    return home


def _write_during_load(home: Path, target: str, table: str, write: Callable[[], None]) -> None:
    """Start the task with target ``table`` locked; once the load waits for it, ``write``."""
    with psycopg.connect(target) as locker:
        locker.execute(f"SELECT count(*) FROM {table}")  # holds ACCESS SHARE until the rollback
        assert conveyor(home, "tasks", "start", "sync").returncode == 0
        with psycopg.connect(target, autocommit=True) as conn:

            def load_blocked() -> bool:
                row = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND query ~* '^\\s*(drop|truncate)'"
                ).fetchone()
                return row is not None and row[0] > 0

            try:
                _until(load_blocked, f"the full load to wait for target table {table}", seconds=60)
            except AssertionError:
                raise AssertionError(f"load not blocked: {described(home, 'sync')}") from None
        write()  # after the capture's start and snapshot, before the load's end
        locker.rollback()


def _stopped_after_cached(home: Path) -> None:
    described = wait_for(home, "sync", ended, seconds=90)
    reason = (described["status"], described["stop_reason"])
    assert reason == ("stopped", "STOPPED_AFTER_CACHED_EVENTS"), described


def _resume_and_see(home: Path, target: str, table: str, ids: list[int]) -> None:
    assert conveyor(home, "tasks", "resume", "sync").returncode == 0
    try:
        _until(lambda: _ids(target, table) == ids, f"{table} to hold {ids} after resume")
    finally:
        assert conveyor(home, "tasks", "stop", "sync").returncode == 0
        assert wait_for(home, "sync", ended)["status"] == "stopped"


def _target_with_b(pg_server: PostgresServer, schema: str) -> str:
    target = pg_server.url(pg_server.new_database())
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        conn.execute(f"CREATE TABLE {schema}.b (id int PRIMARY KEY)")
    return target


def test_postgres_stops_once_the_cached_changes_are_applied(
    tmp_path: Path, pg_server: PostgresServer
) -> None:
    source = pg_server.url(pg_server.new_database())
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.a (id int PRIMARY KEY, name text)")
        conn.execute("CREATE TABLE public.b (id int PRIMARY KEY, name text)")
        conn.execute("INSERT INTO public.a VALUES (1, 'x'), (2, 'y')")
        conn.execute("INSERT INTO public.b VALUES (1, 'x')")
    target = _target_with_b(pg_server, "public")
    home = _stack(tmp_path, f"{{engine: postgres, url: '{source}'}}", target)

    def write(value: int) -> Callable[[], None]:
        def run() -> None:
            with psycopg.connect(source, autocommit=True) as conn:
                conn.execute("INSERT INTO public.a VALUES (%s, 'n')", (value,))

        return run

    try:
        _write_during_load(home, target, "public.b", write(3))
        _stopped_after_cached(home)
        assert _ids(target, "public.a") == [1, 2, 3]  # the cached change is applied
        assert _ids(target, "public.b") == [1]
        write(4)()
        time.sleep(1)
        assert _ids(target, "public.a") == [1, 2, 3]  # stopped: the later change waits
        _resume_and_see(home, target, "public.a", [1, 2, 3, 4])
    finally:
        drop_slots(source)


def test_mariadb_stops_once_the_cached_changes_are_applied(
    tmp_path: Path, mariadb_db: str, pg_server: PostgresServer
) -> None:
    with mariadb_connect(mariadb_db) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE a (id int PRIMARY KEY, name text)")
        cur.execute("CREATE TABLE b (id int PRIMARY KEY, name text)")
        cur.execute("INSERT INTO a VALUES (1, 'x'), (2, 'y')")
        cur.execute("INSERT INTO b VALUES (1, 'x')")
    schema = '"' + mariadb_db.rsplit("/", 1)[1] + '"'
    target = _target_with_b(pg_server, schema)
    home = _stack(tmp_path, f"{{engine: mysql, url: '{mariadb_db}'}}", target)

    def write(value: int) -> Callable[[], None]:
        def run() -> None:
            with mariadb_connect(mariadb_db) as conn, conn.cursor() as cur:
                cur.execute("INSERT INTO a VALUES (%s, 'n')", (value,))

        return run

    _write_during_load(home, target, f"{schema}.b", write(3))
    _stopped_after_cached(home)
    assert _ids(target, f"{schema}.a") == [1, 2, 3]
    write(4)()
    time.sleep(1)
    assert _ids(target, f"{schema}.a") == [1, 2, 3]
    _resume_and_see(home, target, f"{schema}.a", [1, 2, 3, 4])


def test_sqlite_stops_once_the_cached_changes_are_applied(tmp_path: Path, pg_server: PostgresServer) -> None:
    path = tmp_path / "src.db"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE a (id integer PRIMARY KEY, name text)")
        conn.execute("CREATE TABLE b (id integer PRIMARY KEY, name text)")
        conn.execute("INSERT INTO a VALUES (1, 'x'), (2, 'y')")
        conn.execute("INSERT INTO b VALUES (1, 'x')")
    target = _target_with_b(pg_server, "main")
    home = _stack(tmp_path, f"{{engine: sqlite, path: '{path}'}}", target)

    def write(value: int) -> Callable[[], None]:
        def run() -> None:
            with closing(sqlite3.connect(path, timeout=10)) as conn, conn:
                conn.execute("INSERT INTO a VALUES (?, 'n')", (value,))

        return run

    _write_during_load(home, target, "main.b", write(3))
    _stopped_after_cached(home)
    assert _ids(target, "main.a") == [1, 2, 3]
    write(4)()
    time.sleep(1)
    assert _ids(target, "main.a") == [1, 2, 3]
    _resume_and_see(home, target, "main.a", [1, 2, 3, 4])
