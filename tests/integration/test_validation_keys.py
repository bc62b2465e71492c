"""Validation of given keys only (validation during change capture): rows read
by key on both sides, PostgreSQL -> PostgreSQL and -> DuckDB, each kind of
difference found, keys absent from both sides in order; and the store keeps
what is left to compare."""

from __future__ import annotations

from pathlib import Path

import duckdb
import psycopg
import pytest

from conveyor.connectors.base import EndpointConfig
from conveyor.connectors.registry import open_source, open_target
from conveyor.core.schema import TableRef
from conveyor.replication.settings import ValidationSettings
from conveyor.replication.table_plan import TablePlan
from conveyor.replication.validation import ValidationRun
from conveyor.replication.validation_keys import validate_keys
from conveyor.store.store import Store
from conveyor.store.validation_keys import KeyRow
from support.mariadb import mariadb_connect
from support.servers import PostgresServer

pytestmark = pytest.mark.integration

ROWS = "SELECT g, 'item ' || g, (g * 1.5)::numeric(8, 2) FROM generate_series(1, 20) g"


def _source(pg_server: PostgresServer) -> str:
    url = pg_server.url(pg_server.new_database("vksrc"))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id bigint PRIMARY KEY, name text, n numeric(8, 2))")
        conn.execute(f"INSERT INTO items {ROWS}")
        conn.execute("CREATE TABLE pairs (a text, b integer, v text, PRIMARY KEY (a, b))")
        conn.execute("INSERT INTO pairs VALUES ('x''y', 1, 'one'), ('Ä', 2, 'two')")
    return url


def _compare(source_url: str, target: EndpointConfig, table: str, keys: list[tuple[str | None, ...]]) -> dict:
    source = open_source(EndpointConfig("src", "postgres", url=source_url))
    opened = open_target(target)
    try:
        schema = next(t for t in source.tables() if t.ref == TableRef("public", table))
        snapshot = source.snapshot()
        try:
            settings = ValidationSettings.model_validate({"PartitionSize": 2})  # several partitions
            result = validate_keys(
                snapshot, opened, TablePlan(schema, schema), keys, ValidationRun("t", settings, record=False)
            )
        finally:
            snapshot.close()
    finally:
        opened.close()
        source.close()
    assert result is not None
    return {
        "state": result.state,
        "failures": sorted((f.key, f.failure_type, f.columns) for f in result.failures),
        "partitions": result.partitions,
    }


def test_postgres_target(pg_server: PostgresServer) -> None:
    source = _source(pg_server)
    target = pg_server.url(pg_server.new_database("vkdst"))
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id bigint PRIMARY KEY, name text, n numeric(8, 2))")
        conn.execute(f"INSERT INTO items {ROWS}")
        conn.execute("CREATE TABLE pairs (a text, b integer, v text, PRIMARY KEY (a, b))")
        conn.execute("INSERT INTO pairs VALUES ('x''y', 1, 'one'), ('Ä', 2, 'TWO')")
        conn.execute("UPDATE items SET n = 4.51 WHERE id = 3")  # different
        conn.execute("DELETE FROM items WHERE id = 5")  # missing on the target
        conn.execute("INSERT INTO items VALUES (99, 'extra', 0)")  # extra on the target
        conn.execute("UPDATE items SET name = 'not asked' WHERE id = 12")  # a key not asked for
    config = EndpointConfig("dst", "postgres", url=target)
    keys = [("3",), ("5",), ("99",), ("7",), ("1000",)]  # 1000: on neither side
    assert _compare(source, config, "items", keys) == {
        "state": "Mismatched records",
        "failures": [
            (("3",), "RECORD_DIFF", ("n",)),
            (("5",), "MISSING_TARGET", ()),
            (("99",), "MISSING_SOURCE", ()),
        ],
        "partitions": 3,
    }
    assert _compare(source, config, "items", [("7",), ("8",)])["state"] == "Validated"
    assert _compare(source, config, "pairs", [("x'y", "1"), ("Ä", "2")])["failures"] == [
        (("Ä", "2"), "RECORD_DIFF", ("v",))
    ]


def test_duckdb_target(pg_server: PostgresServer, tmp_path: Path) -> None:
    source = _source(pg_server)
    path = tmp_path / "dw.duckdb"
    with duckdb.connect(str(path)) as conn:
        conn.execute("CREATE SCHEMA public")
        conn.execute("CREATE TABLE public.items (id BIGINT PRIMARY KEY, name VARCHAR, n DECIMAL(8, 2))")
        conn.execute("INSERT INTO public.items SELECT g, 'item ' || g, g * 1.5 FROM range(1, 21) t(g)")
        conn.execute("UPDATE public.items SET name = 'item 3 ' WHERE id = 3")  # a trailing space
        conn.execute("DELETE FROM public.items WHERE id = 5")
    config = EndpointConfig("dst", "duckdb", path=str(path))
    assert _compare(source, config, "items", [("3",), ("5",), ("6",)]) == {
        "state": "Mismatched records",
        "failures": [(("3",), "RECORD_DIFF", ("name",)), (("5",), "MISSING_TARGET", ())],
        "partitions": 2,
    }


def test_the_store_keeps_what_is_left_to_compare(store: Store) -> None:
    keys = store.validation_keys
    keys.put("t", [KeyRow("public", "items", "", "keys"), KeyRow("public", "items", '["1"]', "pending")])
    keys.put(
        "t",
        [
            KeyRow("public", "items", '["1"]', "differing", 12.5),
            KeyRow("public", "items", '["2"]', "pending"),
        ],
    )
    keys.put("other", [KeyRow("public", "items", '["1"]', "pending")])
    assert sorted(keys.of_task("t"), key=lambda r: r.key) == [
        KeyRow("public", "items", "", "keys"),
        KeyRow("public", "items", '["1"]', "differing", 12.5),
        KeyRow("public", "items", '["2"]', "pending"),
    ]
    keys.drop("t", "public", "items", ['["1"]', '["3"]'])
    assert sorted(r.key for r in keys.of_task("t")) == ["", '["2"]']
    keys.clear("t")
    assert keys.of_task("t") == [] and len(keys.of_task("other")) == 1


def test_mariadb_source(mariadb_db: str, pg_server: PostgresServer) -> None:
    """MariaDB's text read by key, integer keys only: a text key (its collation may
    match other spellings) is left to the whole-table comparison (None)."""
    with mariadb_connect(mariadb_db) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE items (id bigint PRIMARY KEY, name varchar(20), n decimal(8, 2))")
        cur.execute("INSERT INTO items VALUES (1, 'a', 1.50), (2, 'b', 3.00), (3, 'c', NULL)")
        cur.execute("CREATE TABLE named (code varchar(10) PRIMARY KEY, v int)")
        cur.execute("INSERT INTO named VALUES ('x', 1)")
    target = pg_server.url(pg_server.new_database("vkmdst"))
    with psycopg.connect(target, autocommit=True) as pg:
        pg.execute("CREATE SCHEMA IF NOT EXISTS " + mariadb_db.rsplit("/", 1)[1])
        schema = mariadb_db.rsplit("/", 1)[1]
        pg.execute(f"CREATE TABLE {schema}.items (id bigint PRIMARY KEY, name varchar(20), n numeric(8, 2))")
        pg.execute(f"INSERT INTO {schema}.items VALUES (1, 'a', 1.50), (2, 'B', 3.00)")
        pg.execute(f"CREATE TABLE {schema}.named (code varchar(10) PRIMARY KEY, v integer)")
    source = open_source(EndpointConfig("src", "mysql", url=mariadb_db))
    opened = open_target(EndpointConfig("dst", "postgres", url=target))
    try:
        tables = {t.ref.name: t for t in source.tables()}
        snapshot = source.snapshot()
        try:
            run = ValidationRun("t", ValidationSettings(), record=False)
            items = TablePlan(tables["items"], tables["items"])
            result = validate_keys(snapshot, opened, items, [("1",), ("2",), ("3",), ("4",)], run)
            assert result is not None
            assert sorted((f.key, f.failure_type) for f in result.failures) == [
                (("2",), "RECORD_DIFF"),
                (("3",), "MISSING_TARGET"),
            ]
            named = TablePlan(tables["named"], tables["named"])
            assert validate_keys(snapshot, opened, named, [("x",)], run) is None
        finally:
            snapshot.close()
    finally:
        opened.close()
        source.close()
