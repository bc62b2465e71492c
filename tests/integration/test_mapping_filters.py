"""Selection rule filters, data masking and range segments end to end: a full-load-and-cdc task
from PostgreSQL and from MariaDB into PostgreSQL, whose target must hold
exactly the source rows the filters pass (masked), through the full load
(pushed down into the source's SELECT) and through changes that move rows in
and out of the filter."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest

from conveyor.orchestration.bus import event_sink
from conveyor.replication.task_runner import run_task
from conveyor.stack.loader import load_stack
from conveyor.store.store import Store
from support.mariadb import mariadb_connect
from support.servers import MariaDBServer, PostgresServer

pytestmark = pytest.mark.integration

DEADLINE_S = 60.0
# id, region, amount, phone
ROWS: list[tuple[int, str | None, str | None, str | None]] = [
    (1, "EU", "10.00", "+1 555-0101"),
    (2, "eu", "50.00", "555 0102"),  # case differs: out
    (3, "EU ", "50.00", None),  # trailing space: out
    (4, "US", "100.00", "0103"),
    (5, "US", "100.01", "0104"),  # amount out of range
    (6, None, "20.00", "0105"),  # NULL region: out
    (7, "EU", None, "0106"),  # NULL amount: out
    (8, "ÉU", "20.00", "0107"),  # out
    (9, "US", "9.99", "0108"),  # out
]
CHANGES = [
    "INSERT INTO src_items VALUES (20, 'EU', 30.00, '9999')",  # in
    "INSERT INTO src_items VALUES (21, 'XX', 30.00, '9998')",  # out
    "UPDATE src_items SET amount = 500.00 WHERE id = 1",  # moves out: deleted
    "UPDATE src_items SET region = 'EU' WHERE id = 2",  # moves in: inserted whole
    "UPDATE src_items SET phone = '123' WHERE id = 4",  # stays in
    "UPDATE src_items SET phone = '456' WHERE id = 5",  # stays out
    "DELETE FROM src_items WHERE id = 9",  # out, deleted
    "DELETE FROM src_items WHERE id = 4",  # in, deleted
]
MAPPINGS = {
    "rules": [
        {
            "rule-type": "selection",
            "rule-id": "1",
            "rule-name": "items",
            "object-locator": {"schema-name": "SCHEMA", "table-name": "src_items"},
            "rule-action": "include",
            "filters": [
                {
                    "filter-type": "source",
                    "column-name": "region",
                    "filter-conditions": [
                        {"filter-operator": "eq", "value": "EU"},
                        {"filter-operator": "eq", "value": "US"},
                    ],
                },
                {
                    "filter-type": "source",
                    "column-name": "amount",
                    "filter-conditions": [
                        {"filter-operator": "between", "start-value": "10", "end-value": "100"}
                    ],
                },
            ],
        },
        {
            "rule-type": "transformation",
            "rule-id": "2",
            "rule-name": "schema",
            "rule-target": "schema",
            "object-locator": {"schema-name": "SCHEMA"},
            "rule-action": "rename",
            "value": "public",
        },
        {
            "rule-type": "transformation",
            "rule-id": "3",
            "rule-name": "prefix",
            "rule-target": "table",
            "object-locator": {"schema-name": "SCHEMA", "table-name": "src_%"},
            "rule-action": "replace-prefix",
            "old-value": "src_",
            "value": "dst_",
        },
        {
            "rule-type": "transformation",
            "rule-id": "4",
            "rule-name": "mask phones",
            "rule-target": "column",
            "object-locator": {"schema-name": "SCHEMA", "table-name": "src_items", "column-name": "phone"},
            "rule-action": "data-masking-digits-mask",
            "value": "#",
        },
        {
            "rule-type": "table-settings",
            "rule-id": "5",
            "rule-name": "segments",
            "object-locator": {"schema-name": "SCHEMA", "table-name": "src_items"},
            "parallel-load": {"type": "ranges", "columns": ["id"], "boundaries": [["1"], ["2"]]},
        },
    ]
}


def expected(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The oracle, written independently of Conveyor's filter code."""
    kept = []
    for id_, region, amount, phone in rows:
        if region not in ("EU", "US") or amount is None or not Decimal(10) <= Decimal(amount) <= Decimal(100):
            continue
        kept.append((id_, region, Decimal(amount), None if phone is None else re.sub("[0-9]", "#", phone)))
    return kept


def wait_until(check: Callable[[], bool], what: str, debug: Callable[[], Any]) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}: {debug()}")


class Source:
    def __init__(
        self,
        endpoint: dict[str, Any],
        schema: str,
        execute: Callable[[str], None],
        rows: Callable[[], list[tuple[Any, ...]]],
    ) -> None:
        self.endpoint, self.schema, self.execute, self.rows = endpoint, schema, execute, rows


@pytest.fixture(params=["postgres", "mariadb"])
def source(request: pytest.FixtureRequest) -> Source:
    if request.param == "postgres":
        server: PostgresServer = request.getfixturevalue("pg_server")
        url = server.url(server.new_database("filtsrc"))
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE SCHEMA shop")
            conn.execute(
                "CREATE TABLE shop.src_items "
                "(id int PRIMARY KEY, region varchar(10), amount numeric(10,2), phone text)"
            )
            with conn.cursor() as cur:
                cur.executemany("INSERT INTO shop.src_items VALUES (%s, %s, %s, %s)", ROWS)

        def pg_execute(statement: str) -> None:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("SET search_path = shop")
                conn.execute(statement)

        def pg_rows() -> list[tuple[Any, ...]]:
            with psycopg.connect(url) as conn:
                return [
                    tuple(r)
                    for r in conn.execute(
                        "SELECT id, region, amount::text, phone FROM shop.src_items ORDER BY id"
                    )
                ]

        return Source({"engine": "postgres", "url": url}, "shop", pg_execute, pg_rows)
    maria: MariaDBServer = request.getfixturevalue("mariadb_server")
    url = maria.url(maria.new_database())
    schema = url.rsplit("/", 1)[1]
    conn = mariadb_connect(url)
    with conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE src_items "
            "(id int PRIMARY KEY, region varchar(10), amount decimal(10,2), phone text) "
            "CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci"
        )
        cur.executemany("INSERT INTO src_items VALUES (%s, %s, %s, %s)", ROWS)
    conn.close()

    def maria_execute(statement: str) -> None:
        c = mariadb_connect(url)
        try:
            with c.cursor() as cur:
                cur.execute(statement)
        finally:
            c.close()

    def maria_rows() -> list[tuple[Any, ...]]:
        c = mariadb_connect(url)
        try:
            with c.cursor() as cur:
                cur.execute("SELECT id, region, CAST(amount AS CHAR), phone FROM src_items ORDER BY id")
                return [tuple(r) for r in cur.fetchall()]
        finally:
            c.close()

    return Source({"engine": "mysql", "url": url}, schema, maria_execute, maria_rows)


def test_filters_and_masks_in_full_load_and_cdc(
    source: Source, pg_server: PostgresServer, store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="conveyor.replication.cdc.row_forms")
    target = pg_server.url(pg_server.new_database("filtdst"))
    mappings = json.loads(json.dumps(MAPPINGS).replace("SCHEMA", source.schema))
    stack_path = tmp_path / "conveyor.yaml"
    stack_path.write_text(
        json.dumps(
            {
                "endpoints": {"src": source.endpoint, "dst": {"engine": "postgres", "url": target}},
                "tasks": {
                    "sync": {
                        "source": "src",
                        "target": "dst",
                        "migration_type": "full-load-and-cdc",
                        "table_mappings": mappings,
                        "settings": {"ValidationSettings": {"EnableValidation": True}},
                    }
                },
            }
        )
    )

    def target_rows() -> list[tuple[Any, ...]]:
        try:
            with psycopg.connect(target) as conn:
                return [
                    tuple(r)
                    for r in conn.execute(
                        "SELECT id, region, amount, phone FROM public.dst_items ORDER BY id"
                    )
                ]
        except psycopg.errors.UndefinedTable:
            return []

    stop = threading.Event()
    stack = load_stack(stack_path)
    thread = threading.Thread(
        target=lambda: run_task(store, stack, "sync", events=event_sink(store), stop=stop), daemon=True
    )
    thread.start()
    try:
        wait_until(
            lambda: store.task_progress("sync") is not None,
            "capture to begin",
            lambda: store.task_status("sync"),
        )
        assert target_rows() == expected(ROWS)
        assert [r[0] for r in target_rows()] == [1, 4]
        [stats] = store.table_stats("sync", store.task_status("sync")["current_run"])
        assert stats["FullLoadRows"] == 2 and stats["ValidationState"] == "Validated", stats
        for statement in CHANGES:
            source.execute(statement)
        wait_until(
            lambda: target_rows() == expected(source.rows()),
            "the target to hold the filtered source",
            lambda: (target_rows(), expected(source.rows()), store.task_status("sync")),
        )
        assert [r[0] for r in target_rows()] == [2, 20]
        assert target_rows()[1][3] == "####"
        assert "task sync: 1 of 1 tables captured in Arrow" in caplog.messages  # filtered and masked there
    finally:
        stop.set()
        thread.join(timeout=DEADLINE_S)
    assert not thread.is_alive()
    assert store.task_status("sync")["status"] == "stopped", store.task_status("sync")


def test_change_data_type_converts_or_refuses_in_full_load_and_cdc(
    pg_server: PostgresServer, store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="conveyor.replication.cdc.row_forms")
    source = pg_server.url(pg_server.new_database("cdtsrc"))
    target = pg_server.url(pg_server.new_database("cdtdst"))
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("CREATE TABLE counts (id int PRIMARY KEY, qty text)")
        conn.execute("INSERT INTO counts VALUES (1, '10'), (2, 'twelve'), (3, '30')")
    rules = [
        {
            "rule-type": "selection",
            "rule-id": "1",
            "rule-name": "counts",
            "object-locator": {"schema-name": "public", "table-name": "counts"},
            "rule-action": "include",
        },
        {
            "rule-type": "transformation",
            "rule-id": "2",
            "rule-name": "qty as int",
            "rule-target": "column",
            "object-locator": {"schema-name": "public", "table-name": "counts", "column-name": "qty"},
            "rule-action": "change-data-type",
            "data-type": {"type": "int4"},
        },
    ]
    stack_path = tmp_path / "conveyor.yaml"
    stack_path.write_text(
        json.dumps(
            {
                "endpoints": {
                    "src": {"engine": "postgres", "url": source},
                    "dst": {"engine": "postgres", "url": target},
                },
                "tasks": {
                    "sync": {
                        "source": "src",
                        "target": "dst",
                        "migration_type": "full-load-and-cdc",
                        "table_mappings": {"rules": rules},
                        "settings": {
                            "ErrorBehavior": {"DataErrorPolicy": "LOG_ERROR"},
                            "ValidationSettings": {"EnableValidation": True},
                        },
                    }
                },
            }
        )
    )

    def rows() -> list[tuple[Any, ...]]:
        with psycopg.connect(target) as conn:
            return [tuple(r) for r in conn.execute("SELECT id, qty FROM counts ORDER BY id")]

    stop = threading.Event()
    stack = load_stack(stack_path)
    thread = threading.Thread(
        target=lambda: run_task(store, stack, "sync", events=event_sink(store), stop=stop), daemon=True
    )
    thread.start()
    try:
        wait_until(
            lambda: store.task_progress("sync") is not None,
            "capture to begin",
            lambda: store.task_status("sync"),
        )
        with psycopg.connect(target) as conn:
            assert conn.execute(
                "SELECT data_type FROM information_schema.columns WHERE column_name = 'qty'"
            ).fetchone() == ("integer",)
            logged = conn.execute(
                "SELECT key->>'id', column_name, value, error FROM awsdms_apply_exceptions"
            ).fetchall()
        assert rows() == [(1, 10), (3, 30)]
        assert [tuple(r[:3]) for r in logged] == [("2", "qty", "twelve")]
        assert "'twelve' cannot be converted to int32" in logged[0][3]
        [stats] = store.table_stats("sync", store.task_status("sync")["current_run"])
        assert (stats["FullLoadRows"], stats["FullLoadErrorRows"]) == (2, 1)
        # validation says the refused row is missing on the target, by its key
        assert stats["ValidationState"] == "Mismatched records"
        validation = stats["Validation"]
        assert (validation["SourceRows"], validation["MissingOnTarget"], validation["SampleKeys"]) == (
            3,
            1,
            [["2"]],
        )
        with psycopg.connect(source, autocommit=True) as conn:
            conn.execute("UPDATE counts SET qty = '11' WHERE id = 1")
            conn.execute("INSERT INTO counts VALUES (4, '40')")
        wait_until(lambda: rows() == [(1, 11), (3, 30), (4, 40)], "converted changes", rows)
        # converted in Arrow, as captured; the refusal below goes one by one, named
        assert "task sync: 1 of 1 tables captured in Arrow" in caplog.messages
        with psycopg.connect(source, autocommit=True) as conn:
            conn.execute("INSERT INTO counts VALUES (5, 'fifty')")

        def suspended() -> str | None:
            [stats] = store.table_stats("sync", store.task_status("sync")["current_run"])
            return stats.get("SuspendedReason")

        wait_until(
            lambda: suspended() is not None,
            "the table to be suspended",
            lambda: store.table_stats("sync", store.task_status("sync")["current_run"]),
        )
        assert "'fifty' cannot be converted to int32" in (suspended() or "")
    finally:
        stop.set()
        thread.join(timeout=DEADLINE_S)
    assert not thread.is_alive()


def test_update_moving_a_row_into_the_filter_with_an_unchanged_toasted_value(
    pg_server: PostgresServer, store: Store, tmp_path: Path
) -> None:
    """PostgreSQL does not send an unchanged TOASTed value; under REPLICA
    IDENTITY FULL the old row carries it, so a row moving in arrives whole."""
    source = pg_server.url(pg_server.new_database("toastsrc"))
    target = pg_server.url(pg_server.new_database("toastdst"))
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("CREATE TABLE docs (id int PRIMARY KEY, status text, body text)")
        conn.execute("ALTER TABLE docs REPLICA IDENTITY FULL")
        conn.execute(
            "INSERT INTO docs SELECT g.g, 'draft', (SELECT string_agg(md5(random()::text || g.g || x), '') "
            "FROM generate_series(1, 3000) x) FROM generate_series(1, 2) g"
        )
        conn.execute("UPDATE docs SET status = 'published' WHERE id = 2")
    rules = [
        {
            "rule-type": "selection",
            "rule-id": "1",
            "rule-name": "published",
            "object-locator": {"schema-name": "public", "table-name": "docs"},
            "rule-action": "include",
            "filters": [
                {
                    "filter-type": "source",
                    "column-name": "status",
                    "filter-conditions": [{"filter-operator": "eq", "value": "published"}],
                }
            ],
        }
    ]
    stack_path = tmp_path / "conveyor.yaml"
    stack_path.write_text(
        json.dumps(
            {
                "endpoints": {
                    "src": {"engine": "postgres", "url": source},
                    "dst": {"engine": "postgres", "url": target},
                },
                "tasks": {
                    "sync": {
                        "source": "src",
                        "target": "dst",
                        "migration_type": "full-load-and-cdc",
                        "table_mappings": {"rules": rules},
                    }
                },
            }
        )
    )

    def rows(url: str, where: str = "") -> list[tuple[Any, ...]]:
        with psycopg.connect(url) as conn:
            return [
                tuple(r) for r in conn.execute(f"SELECT id, status, md5(body) FROM docs {where} ORDER BY id")
            ]

    stop = threading.Event()
    stack = load_stack(stack_path)
    thread = threading.Thread(
        target=lambda: run_task(store, stack, "sync", events=event_sink(store), stop=stop), daemon=True
    )
    thread.start()
    try:
        wait_until(
            lambda: store.task_progress("sync") is not None,
            "capture to begin",
            lambda: store.task_status("sync"),
        )
        assert [r[0] for r in rows(target)] == [2]
        with psycopg.connect(source, autocommit=True) as conn:
            conn.execute("UPDATE docs SET status = 'published' WHERE id = 1")  # body unchanged: not sent
            conn.execute("UPDATE docs SET status = 'draft' WHERE id = 2")  # moves out
        published = "WHERE status = 'published'"
        wait_until(
            lambda: rows(target) == rows(source, published),
            "the row moved in, whole",
            lambda: (rows(target), rows(source, published)),
        )
        assert [r[0] for r in rows(target)] == [1]
    finally:
        stop.set()
        thread.join(timeout=DEADLINE_S)
    assert not thread.is_alive()
