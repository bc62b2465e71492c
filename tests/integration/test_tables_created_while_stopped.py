"""A table created on the source while a capture task is stopped, and that the
task's selection takes, is loaded then captured by `tasks resume` (through a
stack file and the CLI), like a table created during capture."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from support.cli import conveyor
from support.mariadb import mariadb_connect
from support.servers import PostgresServer
from support.tasks import apply, drop_slots, ended, wait_for

pytestmark = pytest.mark.integration


def _rows(url: str, query: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(query).fetchall()


def _until(check: Callable[[], bool], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    for _ in range(600):
        if check():
            return
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    raise AssertionError(f"gave up waiting for {what}")


def _fresh(target: str) -> list[tuple[object, ...]]:
    exists = _rows(target, "SELECT to_regclass('public.fresh') IS NOT NULL")[0][0]
    return _rows(target, "SELECT id, v FROM public.fresh ORDER BY id") if exists else []


def test_postgres_table_created_while_stopped_is_loaded_on_resume(
    tmp_path: Path, pg_server: PostgresServer
) -> None:
    source, target = pg_server.url(pg_server.new_database()), pg_server.url(pg_server.new_database())
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.items (id int PRIMARY KEY, v text)")
        conn.execute("INSERT INTO public.items VALUES (1, 'a')")
    home = tmp_path / "home"
    apply(
        home,
        tmp_path / "conveyor.yaml",
        "endpoints:\n"
        f"  src: {{engine: postgres, url: '{source}'}}\n"
        f"  dw: {{engine: postgres, url: '{target}'}}\n"
        "tasks:\n"
        "  sync: {source: src, target: dw, migration_type: full-load-and-cdc,"
        f" settings: {json.dumps({})}}}\n",
    )
    try:
        assert conveyor(home, "tasks", "start", "sync").returncode == 0
        wait_for(home, "sync", lambda d: d["status"] == "running" and "capture" in d)
        assert conveyor(home, "tasks", "stop", "sync").returncode == 0
        assert wait_for(home, "sync", ended)["status"] == "stopped"
        with psycopg.connect(source) as conn:  # rows in the creating transaction too
            conn.execute("CREATE TABLE public.fresh (id int PRIMARY KEY, v text)")
            conn.execute("INSERT INTO public.fresh SELECT g, 'v' || g FROM generate_series(1, 50) g")
        with psycopg.connect(source, autocommit=True) as conn:
            conn.execute("INSERT INTO public.fresh VALUES (51, 'later')")
            conn.execute("INSERT INTO public.items VALUES (2, 'b')")
        assert conveyor(home, "tasks", "resume", "sync").returncode == 0
        _until(lambda: len(_fresh(target)) == 51, "the created table to be loaded")
        with psycopg.connect(source, autocommit=True) as conn:
            conn.execute("UPDATE public.fresh SET v = 'changed' WHERE id = 1")
            conn.execute("DELETE FROM public.fresh WHERE id = 2")
        query = "SELECT id, v FROM public.fresh ORDER BY id"
        _until(lambda: _fresh(target) == _rows(source, query), "changes after the load to be captured")
        assert len(_fresh(target)) == 50
        items = "SELECT id, v FROM public.items ORDER BY id"
        _until(lambda: _rows(target, items) == [(1, "a"), (2, "b")], "items' change while stopped")
        assert conveyor(home, "tasks", "stop", "sync").returncode == 0
        assert wait_for(home, "sync", ended)["status"] == "stopped"
    finally:
        drop_slots(source)


def test_mariadb_table_created_while_stopped_is_loaded_on_resume(
    tmp_path: Path, mariadb_db: str, pg_server: PostgresServer
) -> None:
    target = pg_server.url(pg_server.new_database())
    schema = mariadb_db.rsplit("/", 1)[1]

    def execute(*statements: str) -> None:
        with mariadb_connect(mariadb_db) as conn, conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)

    def source_rows() -> list[tuple[object, ...]]:
        with mariadb_connect(mariadb_db) as conn, conn.cursor() as cur:
            cur.execute("SELECT id, v FROM fresh ORDER BY id")
            return [tuple(row) for row in cur.fetchall()]

    def target_rows() -> list[tuple[object, ...]]:
        exists = _rows(target, f"SELECT to_regclass('\"{schema}\".fresh') IS NOT NULL")[0][0]
        return _rows(target, f'SELECT id, v FROM "{schema}".fresh ORDER BY id') if exists else []

    execute("CREATE TABLE items (id int PRIMARY KEY, v varchar(20))", "INSERT INTO items VALUES (1, 'a')")
    home = tmp_path / "home"
    apply(
        home,
        tmp_path / "conveyor.yaml",
        "endpoints:\n"
        f"  src: {{engine: mysql, url: '{mariadb_db}'}}\n"
        f"  dw: {{engine: postgres, url: '{target}'}}\n"
        "tasks:\n"
        "  sync: {source: src, target: dw, migration_type: full-load-and-cdc}\n",
    )
    assert conveyor(home, "tasks", "start", "sync").returncode == 0
    wait_for(home, "sync", lambda d: d["status"] == "running" and "capture" in d)
    assert conveyor(home, "tasks", "stop", "sync").returncode == 0
    assert wait_for(home, "sync", ended)["status"] == "stopped"
    execute("CREATE TABLE fresh (id int PRIMARY KEY, v varchar(20))")
    execute(*(f"INSERT INTO fresh VALUES ({i}, 'v{i}')" for i in range(1, 31)))
    assert conveyor(home, "tasks", "resume", "sync").returncode == 0
    try:
        _until(lambda: len(target_rows()) == 30, "the created table to be loaded")
        execute("UPDATE fresh SET v = 'changed' WHERE id = 1", "DELETE FROM fresh WHERE id = 2")
        _until(lambda: target_rows() == source_rows(), "changes after the load to be captured")
        assert len(target_rows()) == 29
    finally:
        assert conveyor(home, "tasks", "stop", "sync").returncode == 0
        assert wait_for(home, "sync", ended)["status"] == "stopped"
