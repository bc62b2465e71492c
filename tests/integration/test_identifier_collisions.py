"""Source tables whose names differ only in case, into DuckDB (which matches
names without regard to case), through the stack file and the CLI: the
colliding tables are refused by name, every other table loads, and the task
ends with a reason instead of a crash."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import psycopg
import pytest

from support.cli import conveyor
from support.servers import PostgresServer

pytestmark = pytest.mark.e2e

OTHERS = 36


def test_mixed_and_upper_case_tables_are_refused_and_the_rest_loads(
    tmp_path: Path, pg_server: PostgresServer
) -> None:
    source = pg_server.url(pg_server.new_database("collide"))
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute('CREATE TABLE "Mixed" (id integer PRIMARY KEY, v text)')
        conn.execute('CREATE TABLE "MIXED" (id integer PRIMARY KEY, w text)')
        conn.execute("INSERT INTO \"Mixed\" VALUES (1, 'a')")
        conn.execute("INSERT INTO \"MIXED\" VALUES (1, 'b')")
        conn.execute('CREATE TABLE cols (id integer PRIMARY KEY, "Note" text, "NOTE" text)')
        for i in range(OTHERS):
            conn.execute(f"CREATE TABLE t{i:02} (id integer PRIMARY KEY, v text)")
            conn.execute(f"INSERT INTO t{i:02} SELECT g, 'v' || g FROM generate_series(1, {i + 1}) g")
    warehouse = tmp_path / "dw.duckdb"
    stack = {
        "endpoints": {
            "src": {"engine": "postgres", "url": source},
            "dw": {"engine": "duckdb", "path": str(warehouse)},
        },
        "tasks": {
            "load": {
                "source": "src",
                "target": "dw",
                "migration_type": "full-load",
                "table_mappings": {
                    "rules": [
                        {
                            "rule-type": "selection",
                            "rule-id": "1",
                            "rule-name": "public",
                            "object-locator": {"schema-name": "public", "table-name": "%"},
                            "rule-action": "include",
                        }
                    ]
                },
                "settings": {"FullLoadSettings": {"MaxFullLoadSubTasks": 4}},
            }
        },
    }
    path = tmp_path / "conveyor.yaml"
    path.write_text(json.dumps(stack))
    home = tmp_path / "home"
    assert conveyor(home, "apply", str(path)).returncode == 0
    started = conveyor(home, "tasks", "start", "load", "--wait", "--json")
    assert started.returncode == 1, started.stdout + started.stderr
    result = json.loads(started.stdout)
    assert result["status"] == "failed"
    assert "3 of 39 tables failed" in result["last_error"]
    assert "internal error" not in result["last_error"]

    text = conveyor(home, "tasks", "describe", "load").stdout
    assert "collides with public.MIXED (source table public.MIXED)" in " ".join(text.split())
    described = json.loads(conveyor(home, "tasks", "describe", "load", "--json").stdout)
    tables = {t["TableName"]: t for t in described["tables"]}
    assert len(tables) == OTHERS + 3
    for name, other in (("Mixed", "MIXED"), ("MIXED", "Mixed")):
        assert tables[name]["TableState"] == "Table error"
        error = tables[name]["Error"]
        assert (
            f"(source table public.{name}) collides with public.{other} (source table public.{other})"
            in error
        )
        assert "DuckDB matches table and column names without regard to case" in error
    assert tables["cols"]["TableState"] == "Table error"
    assert "columns collide: column 'Note' and column 'NOTE'" in tables["cols"]["Error"]
    others = {name: t for name, t in tables.items() if name.startswith("t")}
    assert {t["TableState"] for t in others.values()} == {"Table completed"}
    assert [others[f"t{i:02}"]["FullLoadRows"] for i in range(OTHERS)] == list(range(1, OTHERS + 1))

    with duckdb.connect(str(warehouse), read_only=True) as conn:
        loaded = conn.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'public' ORDER BY table_name"
        ).fetchall()
        assert [name for (name,) in loaded] == [f"t{i:02}" for i in range(OTHERS)]
        assert conn.execute("SELECT count(*) FROM public.t35").fetchone() == (36,)
