"""ValidationSettings.HandleCollationDiff: a key column whose collation orders
rows differently on the source (PostgreSQL's ICU linguistic order, MariaDB's
case- and accent-insensitive PAD SPACE order) than on the target (DuckDB's and
the PostgreSQL target's code point order) causes no false difference, over
many small partitions; a real difference is still found, with its key.
Through a stack file and the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest

from integration.test_validate_cli import _loaded, _stack, _validate
from support import stacks
from support.mariadb import mariadb_connect
from support.servers import PostgresServer

pytestmark = pytest.mark.e2e

KEYS = [
    "a", "B", "c", "Z", "z", "é", "E", "e", "_x", "-a", "a-", "a b", "ab", "10", "9", "Ä", "ß", "ss",
    "Apple", "apple", "APPLE", "Ω", "😀", " lead", "trail ", "ǅ", "ﬁ", "fi",
]  # fmt: skip
SOURCE_DDL = """
CREATE TABLE names (code text COLLATE "und-x-icu" PRIMARY KEY, n integer);
CREATE TABLE pairs (region text COLLATE "und-x-icu", code text COLLATE "und-x-icu", n integer,
                    PRIMARY KEY (region, code));
"""
ORDERED = "SELECT array_agg(code ORDER BY code) FROM names"


@pytest.mark.parametrize(("engine", "handle"), [("duckdb", True), ("duckdb", False), ("postgres", True)])
def test_keys_in_other_collations_are_paired_without_false_differences(
    pg_db: str, pg_server: PostgresServer, tmp_path: Path, engine: str, handle: bool
) -> None:
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute(SOURCE_DDL)
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO names VALUES (%s, %s)", [(k, i) for i, k in enumerate(KEYS)])
            cur.executemany(
                "INSERT INTO pairs VALUES (%s, %s, %s)",
                [(r, k, i) for r in ("b", "A", "é") for i, k in enumerate(KEYS)],
            )
        source_order = conn.execute(ORDERED).fetchone()
        assert source_order is not None and source_order[0] != sorted(KEYS)  # ICU is not code point order
    if engine == "duckdb":
        target_path = tmp_path / "dw.duckdb"
        target = f"{{engine: duckdb, path: '{target_path}'}}"
    else:
        target_url = pg_server.url(pg_server.new_database())
        target = f"{{engine: postgres, url: '{target_url}'}}"
    settings = {"ValidationSettings": {"PartitionSize": 4, "HandleCollationDiff": handle}}
    home = _loaded(tmp_path, _stack(tmp_path, pg_db, target, settings))

    def on_target(*statements: str) -> list[tuple[Any, ...]]:
        if engine == "duckdb":
            with duckdb.connect(str(target_path)) as duck:
                for statement in statements[:-1]:
                    duck.execute(statement)
                return duck.execute(statements[-1]).fetchall()
        with psycopg.connect(target_url, autocommit=True) as pg:
            for statement in statements[:-1]:
                pg.execute(statement)  # type: ignore[arg-type]
            return pg.execute(statements[-1]).fetchall()  # type: ignore[arg-type]

    if engine == "postgres":  # the target's column sorts otherwise: the test means something
        assert on_target(ORDERED) != [source_order]
    code, report, tables = _validate(home)
    assert code == 0, json.dumps(report, indent=1)
    for name, rows in (("public.names", len(KEYS)), ("public.pairs", 3 * len(KEYS))):
        table = tables[name]
        assert (table["ValidationState"], table["FailedRecords"]) == ("Validated", 0), table
        assert table["SourceRows"] == table["TargetRows"] == rows and table["Partitions"] > 5
    assert not any("HandleCollationDiff" in note for note in report["Notes"])  # acted on, nothing to say

    on_target(
        "UPDATE public.names SET n = -1 WHERE code = 'é'",
        "DELETE FROM public.names WHERE code = 'ß'",
        "INSERT INTO public.names VALUES ('zz', 99)",
        "UPDATE public.pairs SET n = -1 WHERE region = 'é' AND code = 'Z'",
        "SELECT 1",
    )
    code, report, tables = _validate(home)
    assert code == 1
    names, pairs = tables["public.names"], tables["public.pairs"]
    assert (names["Different"], names["MissingOnTarget"], names["ExtraOnTarget"]) == (1, 1, 1), names
    assert {tuple(f["Key"].values()) for f in names["FirstFailures"]} == {("é",), ("ß",), ("zz",)}
    assert (pairs["Different"], pairs["FailedRecords"]) == (1, 1), pairs
    assert [f["Key"] for f in pairs["FirstFailures"]] == [{"region": "é", "code": "Z"}]


# Distinct under a case- and accent-insensitive, PAD SPACE collation (the source's keys).
MARIADB_KEYS = [
    "a", "B", "c", "Z", "_x", "-a", "a-", "a b", "ab", "10", "9", "Ω", "ß", "😀", "Äc", " lead", "zz",
]  # fmt: skip


def test_mariadb_keys_in_an_insensitive_collation_are_paired_without_false_differences(
    mariadb_db: str, tmp_path: Path
) -> None:
    conn = mariadb_connect(mariadb_db)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "CREATE TABLE names (code varchar(20) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci "
                "PRIMARY KEY, n int)"
            )
            cur.executemany("INSERT INTO names VALUES (%s, %s)", [(k, i) for i, k in enumerate(MARIADB_KEYS)])
            cur.execute("SELECT code FROM names ORDER BY code")
            assert [r[0] for r in cur.fetchall()] != sorted(MARIADB_KEYS)  # not code point order
        conn.commit()
    finally:
        conn.close()
    database = mariadb_db.rsplit("/", 1)[1]
    target_path = tmp_path / "dw.duckdb"
    stack = stacks.one_task(
        tmp_path / "conveyor.yaml",
        {"engine": "mysql", "url": mariadb_db},
        {"engine": "duckdb", "path": str(target_path)},
        task="load",
        migration_type="full-load",
        schema=database,
        settings={"ValidationSettings": {"PartitionSize": 3, "HandleCollationDiff": True}},
    )
    home = _loaded(tmp_path, stack)
    code, report, tables = _validate(home)
    assert code == 0, json.dumps(report, indent=1)
    names = tables[f"{database}.names"]
    assert (names["ValidationState"], names["FailedRecords"], names["SourceRows"]) == (
        "Validated",
        0,
        len(MARIADB_KEYS),
    ), names
    with duckdb.connect(str(target_path)) as duck:
        duck.execute(f"UPDATE \"{database}\".names SET n = -1 WHERE code = 'ß'")
    code, report, tables = _validate(home)
    assert code == 1
    names = tables[f"{database}.names"]
    assert (names["Different"], names["FailedRecords"]) == (1, 1), names
    assert [f["Key"] for f in names["FirstFailures"]] == [{"code": "ß"}]
