"""A column's type changed on a MariaDB source during change capture, then the
task stopped, resumed and SIGKILLed: the table is reported suspended across all
of it until its per-table reload, after which it equals the source, while the
other table flows (PostgreSQL's own case is in test_cdc_ddl). Through a stack
file and the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from integration.test_cdc_ddl import _active, _items_suspended
from integration.test_cdc_tasks import _described
from integration.test_cdc_tasks import _stack_file as stack_file
from support.cli import conveyor
from support.mariadb import mariadb_connect
from support.servers import MariaDBServer, PostgresServer
from support.tasks import described as read_task
from support.tasks import kill_worker, wait_until

pytestmark = pytest.mark.integration


def _mariadb(url: str, *statements: str) -> list[tuple[Any, ...]]:
    conn = mariadb_connect(url)
    try:
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
            rows = list(cur.fetchall()) if cur.description else []
        conn.commit()
        return [tuple(r) for r in rows]
    finally:
        conn.close()


def _pg(url: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(query).fetchall()


ITEMS = "SELECT id, name, counter FROM {}items ORDER BY id"


def test_mariadb_type_change_then_stop_resume_and_sigkill(
    mariadb_server: MariaDBServer, pg_server: PostgresServer, tmp_path: Path
) -> None:
    source = mariadb_server.url(mariadb_server.new_database("typesrc"))
    database = source.rsplit("/", 1)[1]
    target = pg_server.url(pg_server.new_database("typedst"))
    _mariadb(
        source,
        "CREATE TABLE items (id int PRIMARY KEY, name varchar(40), counter int NOT NULL)",
        "INSERT INTO items SELECT seq, CONCAT('item ', seq), seq FROM seq_1_to_50",
        "CREATE TABLE other (id int PRIMARY KEY, v varchar(40))",
        "INSERT INTO other SELECT seq, CONCAT('v', seq) FROM seq_1_to_5",
    )
    stack = stack_file(
        tmp_path / "s.yaml",
        {"engine": "mysql", "url": source},
        {"engine": "postgres", "url": target},
        database,
    )
    home = tmp_path / "home"
    assert conveyor(home, "apply", str(stack)).returncode == 0
    on_target = f'"{database}".'

    def equal() -> bool:
        return _pg(target, ITEMS.format(on_target)) == _mariadb(source, ITEMS.format(""))

    def other(row: int) -> list[tuple[Any, ...]]:
        return _pg(target, f'SELECT v FROM "{database}".other WHERE id = {row}')

    try:
        assert conveyor(home, "tasks", "start", "sync").returncode == 0
        wait_until(lambda: _active(home), "capture to begin", seconds=60)
        _mariadb(source, "ALTER TABLE items MODIFY counter bigint NOT NULL")
        _mariadb(source, "UPDATE items SET counter = 5000000000 WHERE id = 1")
        wait_until(
            lambda: _items_suspended(home) is not None,
            "the table to be suspended",
            debug=lambda: _described(home).get("tables"),
        )
        assert "column 'counter' changed type" in str(_items_suspended(home))
        assert not equal()

        # Stopped, changed meanwhile, resumed.
        assert conveyor(home, "tasks", "stop", "sync").returncode == 0
        wait_until(lambda: read_task(home, "sync")["status"] == "stopped", "the stop")
        _mariadb(source, "UPDATE items SET name = 'while stopped' WHERE id = 2")
        _mariadb(source, "UPDATE other SET v = 'while stopped' WHERE id = 1")
        assert conveyor(home, "tasks", "resume", "sync").returncode == 0
        wait_until(lambda: other(1) == [("while stopped",)], "the other table's change")

        # Killed and resumed.
        kill_worker(home, "sync")
        wait_until(lambda: read_task(home, "sync")["status"] == "failed", "the dead worker to be noticed")
        assert conveyor(home, "tasks", "resume", "sync").returncode == 0
        _mariadb(source, "UPDATE items SET counter = 6000000000 WHERE id = 3")
        _mariadb(source, "UPDATE other SET v = 'after kill' WHERE id = 2")
        wait_until(lambda: other(2) == [("after kill",)], "the other table after the kill")

        # Still suspended after the stop, the resume and the kill, until reloaded.
        assert _items_suspended(home) is not None, _described(home)
        assert not equal()
        reload = conveyor(home, "tasks", "reload", "sync", "--table", f"{database}.items")
        assert reload.returncode == 0, reload.stderr
        wait_until(lambda: not read_task(home, "sync").get("suspended_tables"), "the reload", seconds=60)
        wait_until(equal, "items to equal the source after the reload")
        _mariadb(source, "UPDATE items SET counter = 7000000000 WHERE id = 4")
        wait_until(equal, "a change after all of it")
        assert _pg(target, f'SELECT counter FROM "{database}".items WHERE id = 1') == [(5000000000,)]
        items = next(t for t in _described(home)["tables"] if t["TableName"] == "items")
        assert items["TableState"] == "Table completed", items
        assert conveyor(home, "tasks", "stop", "sync").returncode == 0
        wait_until(lambda: read_task(home, "sync")["status"] == "stopped", "the stop")
    finally:
        kill_worker(home, "sync")
