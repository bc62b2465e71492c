"""add-before-image-columns through a stack file, full load and change capture
into PostgreSQL: the before-image columns are NULL for loaded and inserted
rows and hold each column's value before a row's last UPDATE; a value the
source does not send (a PostgreSQL table without REPLICA IDENTITY FULL under
column-filter all) suspends its table with the reason, never a guess."""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from conveyor.store.store import Store
from support import stacks
from support.cli import conveyor
from support.mariadb import mariadb_connect
from support.servers import PostgresServer
from support.task_thread import RunningTask
from support.tasks import wait_until

pytestmark = pytest.mark.integration

TASK = "sync"
ROW_FORMS = "conveyor.replication.cdc.row_forms"
DEADLINE_S = 60.0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(home=tmp_path / "home")
    yield opened
    opened.close()


def _wait(check: Callable[[], bool], what: str, debug: Callable[[], Any] | None = None) -> None:
    wait_until(check, what, seconds=DEADLINE_S, debug=debug)


def _maria(url: str, *statements: str) -> None:
    conn = mariadb_connect(url)
    try:
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
        conn.commit()
    finally:
        conn.close()


def _tables(store: Store) -> dict[str, dict[str, Any]]:
    run = store.task_status(TASK)["current_run"]
    return {t["TableName"]: t for t in (store.table_stats(TASK, run) if run is not None else [])}


def _before_image(rule_id: int, schema: str, table: str, **definition: str) -> dict[str, Any]:
    return {
        "rule-type": "transformation",
        "rule-id": str(rule_id),
        "rule-name": f"bi-{table}",
        "rule-target": "column",
        "object-locator": {"schema-name": schema, "table-name": table},
        "rule-action": "add-before-image-columns",
        "before-image-def": definition,
    }


def _rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()


def test_from_postgresql(
    pg_server: PostgresServer, store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=ROW_FORMS)
    source = pg_server.url(pg_server.new_database("bi_src"))
    target = pg_server.url(pg_server.new_database("bi_dst"))
    with psycopg.connect(source, autocommit=True) as conn:
        for table in ("whole", "keys", "strict"):
            conn.execute(f"CREATE TABLE {table} (id integer PRIMARY KEY, name text, amount numeric(8,2))")
            conn.execute(f"INSERT INTO {table} VALUES (1, 'one', 1.50), (2, 'two', 2.50)")
        conn.execute("ALTER TABLE whole REPLICA IDENTITY FULL")
    rules = [
        stacks.select_all("public"),
        _before_image(2, "public", "whole", **{"column-prefix": "old_", "column-filter": "all"}),
        _before_image(3, "public", "keys"),  # pk-only, BI_
        _before_image(4, "public", "strict", **{"column-filter": "all"}),  # no REPLICA IDENTITY FULL
    ]
    path = stacks.one_task(
        tmp_path / "conveyor.yaml",
        {"engine": "postgres", "url": source},
        {"engine": "postgres", "url": target},
        task=TASK,
        rules=rules,
    )
    with RunningTask(store, path, TASK):
        _wait(lambda: store.task_progress(TASK) is not None, "capture to begin")
        loaded = _rows(target, "SELECT id, old_id, old_name, old_amount FROM whole ORDER BY id")
        assert loaded == [(1, None, None, None), (2, None, None, None)]
        with psycopg.connect(source, autocommit=True) as conn:
            for table in ("whole", "keys", "strict"):
                conn.execute(f"UPDATE {table} SET name = 'uno', amount = 9.99 WHERE id = 1")
                conn.execute(f"UPDATE {table} SET name = 'eins' WHERE id = 1")
                conn.execute(f"UPDATE {table} SET id = 20 WHERE id = 2")
                conn.execute(f"INSERT INTO {table} VALUES (3, 'three', 3.50)")
        _wait(
            lambda: (
                len(_rows(target, "SELECT 1 FROM keys")) == 3
                and _rows(target, "SELECT name FROM whole WHERE id = 1") == [("eins",)]
            ),
            "the changes",
            lambda: _rows(target, "SELECT * FROM whole ORDER BY id"),
        )
        _wait(lambda: _tables(store)["strict"]["TableState"] == "Table error", "strict to be suspended")
        reason = str(_tables(store)["strict"])
    assert _rows(target, "SELECT * FROM whole ORDER BY id") == [
        (1, "eins", Decimal("9.99"), 1, "uno", Decimal("9.99")),  # the last UPDATE's before image
        (3, "three", Decimal("3.50"), None, None, None),
        (20, "two", Decimal("2.50"), 2, "two", Decimal("2.50")),
    ]
    assert _rows(target, 'SELECT id, name, amount, "BI_id" FROM keys ORDER BY id') == [
        (1, "eins", Decimal("9.99"), 1),
        (3, "three", Decimal("3.50"), None),
        (20, "two", Decimal("2.50"), 2),
    ]
    assert "before-image column 'BI_name' needs the value of 'name' before the UPDATE" in reason, reason
    assert "REPLICA IDENTITY FULL" in reason
    # captured in Arrow with their old rows; strict's UPDATEs came without them: one by one, refused
    assert "task sync: 3 of 3 tables captured in Arrow" in caplog.messages

    # Validation compares every other column: the before images are not the source's to compare.
    home = tmp_path / "home"
    assert conveyor(home, "apply", str(path)).returncode == 0
    tables = ("--table", "public.whole", "--table", "public.keys")
    validated = conveyor(home, "validate", TASK, *tables, "--json")
    assert validated.returncode == 0, validated.stdout + validated.stderr
    report = {t["Table"]: t for t in json.loads(validated.stdout)["Tables"]}
    for table, columns in (("public.whole", "old_id, old_name, old_amount"), ("public.keys", "BI_id")):
        assert report[table]["ValidationState"] == "Validated", report[table]
        assert (
            f"before-image columns not compared (the source keeps no value from before its rows' last "
            f"UPDATE): {columns}" in report[table]["Notes"]
        ), report[table]


def test_from_mariadb(
    mariadb_db: str, pg_server: PostgresServer, store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """MariaDB's row image (binlog_row_image FULL) carries every column's value before."""
    caplog.set_level(logging.INFO, logger=ROW_FORMS)
    _maria(
        mariadb_db,
        "CREATE TABLE items (id int PRIMARY KEY, name varchar(20), note text)",
        "INSERT INTO items VALUES (1, 'one', 'a'), (2, 'two', 'b')",
    )
    target = pg_server.url(pg_server.new_database("bi_maria"))
    schema = mariadb_db.rsplit("/", 1)[1]
    path = stacks.one_task(
        tmp_path / "conveyor.yaml",
        {"engine": "mysql", "url": mariadb_db},
        {"engine": "postgres", "url": target},
        task=TASK,
        rules=[stacks.select_all(schema), _before_image(2, schema, "items", **{"column-filter": "non-lob"})],
    )
    with RunningTask(store, path, TASK):
        _wait(lambda: store.task_progress(TASK) is not None, "capture to begin")
        _maria(
            mariadb_db,
            "UPDATE items SET name = 'uno', note = 'z' WHERE id = 1",
            "UPDATE items SET id = 20 WHERE id = 2",
        )
        _wait(
            lambda: (
                _rows(target, f'SELECT name FROM "{schema}".items WHERE id = 1') == [("uno",)]
                and len(_rows(target, f'SELECT 1 FROM "{schema}".items WHERE id = 20')) == 1
            ),
            "the changes",
        )
    # note is text (a LOB to the service): non-lob leaves it out
    assert _rows(target, f'SELECT * FROM "{schema}".items ORDER BY id') == [
        (1, "uno", "z", 1, "one"),
        (20, "two", "b", 2, "two"),
    ]
    assert "task sync: 1 of 1 tables captured in Arrow" in caplog.messages


def test_into_the_lake(
    pg_server: PostgresServer, store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The lake's change files carry the before images on their U rows; the
    LOAD file has the columns, empty."""
    caplog.set_level(logging.INFO, logger=ROW_FORMS)
    source = pg_server.url(pg_server.new_database("bi_lake"))
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id integer PRIMARY KEY, name text)")
        conn.execute("ALTER TABLE items REPLICA IDENTITY FULL")
        conn.execute("INSERT INTO items VALUES (1, 'one')")
    lake = tmp_path / "lake"
    path = stacks.one_task(
        tmp_path / "conveyor.yaml",
        {"engine": "postgres", "url": source},
        {"engine": "lake", "path": str(lake), "settings": {"AddColumnName": True, "CdcMaxBatchInterval": 1}},
        task=TASK,
        rules=[stacks.select_all("public"), _before_image(2, "public", "items", **{"column-filter": "all"})],
    )

    def rows(pattern: str) -> list[dict[str, str]]:
        found: list[dict[str, str]] = []
        for file in sorted(lake.rglob(pattern)):
            found.extend(csv.DictReader(io.StringIO(file.read_text())))
        return found

    with RunningTask(store, path, TASK):
        _wait(lambda: store.task_progress(TASK) is not None, "capture to begin")
        with psycopg.connect(source, autocommit=True) as conn:
            conn.execute("UPDATE items SET name = 'uno' WHERE id = 1")
            conn.execute("INSERT INTO items VALUES (2, 'two')")
        _wait(lambda: len(rows("2*.csv")) == 2, "the change file", lambda: rows("2*.csv"))
    assert rows("LOAD*.csv") == [{"id": "1", "name": "one", "BI_id": "", "BI_name": ""}]
    assert rows("2*.csv") == [
        {"Op": "U", "id": "1", "name": "uno", "BI_id": "1", "BI_name": "one"},
        {"Op": "I", "id": "2", "name": "two", "BI_id": "", "BI_name": ""},
    ]
    assert "task sync: 1 of 1 tables captured in Arrow" in caplog.messages
