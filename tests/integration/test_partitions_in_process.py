"""parallel-load partitions-auto and partitions-list without `conveyor worker`s,
from PostgreSQL into DuckDB, through a stack file and the CLI: the task reads
the table by its leaf partitions (named ones first), several at once in the
one exported snapshot, with the selection's filter in each read; the table
equals the source. The raw PostgreSQL -> PostgreSQL copy says it reads in one
stream instead."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest

from support.cli import conveyor
from support.servers import PostgresServer

pytestmark = pytest.mark.integration

ROWS = "SELECT id, region, a FROM {} WHERE region <> 'ap' ORDER BY id, region"


def _source(pg: PostgresServer) -> str:
    url = pg.url(pg.new_database("partsrc"))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE big (id integer, region text, a integer NOT NULL,"
            " PRIMARY KEY (id, region)) PARTITION BY LIST (region)"
        )
        conn.execute("CREATE TABLE big_eu PARTITION OF big FOR VALUES IN ('eu')")
        conn.execute("CREATE TABLE big_us PARTITION OF big FOR VALUES IN ('us', 'ca')")
        conn.execute("CREATE TABLE big_other PARTITION OF big DEFAULT")
        conn.execute(
            "INSERT INTO big SELECT g, (ARRAY['eu', 'us', 'ca', 'ap', 'eu'])[g % 5 + 1], g % 11"
            " FROM generate_series(1, 20000) g"
        )
    return url


def _stack(tmp_path: Path, source: str, target: dict[str, Any], parallel: dict[str, Any]) -> Path:
    locator = {"schema-name": "public", "table-name": "big"}
    document = {
        "endpoints": {"src": {"engine": "postgres", "url": source}, "dst": target},
        "tasks": {
            "parts": {
                "source": "src",
                "target": "dst",
                "migration_type": "full-load",
                "table_mappings": {
                    "rules": [
                        {
                            "rule-type": "selection",
                            "rule-id": "1",
                            "rule-name": "big",
                            "object-locator": locator,
                            "rule-action": "include",
                            "filters": [
                                {
                                    "filter-type": "source",
                                    "column-name": "region",
                                    "filter-conditions": [{"filter-operator": "noteq", "value": "ap"}],
                                }
                            ],
                        },
                        {
                            "rule-type": "table-settings",
                            "rule-id": "2",
                            "rule-name": "by-partition",
                            "object-locator": locator,
                            "parallel-load": parallel,
                        },
                    ]
                },
            }
        },
    }
    stack = tmp_path / "conveyor.yaml"
    stack.write_text(json.dumps(document))
    return stack


@pytest.mark.parametrize(
    "parallel",
    [{"type": "partitions-auto"}, {"type": "partitions-list", "partitions": ["big_us", "big_eu"]}],
    ids=["auto", "list"],
)
def test_partitions_read_in_parallel_into_duckdb(
    parallel: dict[str, Any], pg_server: PostgresServer, tmp_path: Path
) -> None:
    source = _source(pg_server)
    target = {"engine": "duckdb", "path": str(tmp_path / "dw.duckdb")}
    home = tmp_path / "home"
    assert conveyor(home, "apply", str(_stack(tmp_path, source, target, parallel))).returncode == 0
    # INFO records on stderr, one JSON object per line: the partitions read.
    started = conveyor(
        home, "--log-format", "json", "tasks", "start", "parts", "--wait", "--json", timeout=120
    )
    assert started.returncode == 0, started.stdout + started.stderr
    (table,) = json.loads(started.stdout)["tables"]
    with psycopg.connect(source) as conn:
        expected = conn.execute(ROWS.format("big")).fetchall()
    assert (table["TableState"], table["FullLoadRows"]) == ("Table completed", len(expected))
    with duckdb.connect(target["path"], read_only=True) as con:
        assert con.execute(ROWS.format("public.big")).fetchall() == expected
    said = [json.loads(line)["message"] for line in started.stderr.splitlines() if line.startswith("{")]
    assert "table public.big: read by its 3 leaf partitions" in said, said


def test_a_raw_postgres_copy_says_it_reads_in_one_stream(pg_server: PostgresServer, tmp_path: Path) -> None:
    source = _source(pg_server)
    target = {"engine": "postgres", "url": pg_server.url(pg_server.new_database("partdst"))}
    home = tmp_path / "home"
    parallel = {"type": "partitions-list", "partitions": ["big_eu"]}
    assert conveyor(home, "apply", str(_stack(tmp_path, source, target, parallel))).returncode == 0
    started = conveyor(
        home, "--log-format", "json", "tasks", "start", "parts", "--wait", "--json", timeout=120
    )
    assert started.returncode == 0, started.stdout + started.stderr
    with psycopg.connect(source) as conn:
        expected = conn.execute(ROWS.format("big")).fetchall()
    with psycopg.connect(target["url"]) as conn:
        assert conn.execute(ROWS.format("public.big")).fetchall() == expected
    said = [json.loads(line) for line in started.stderr.splitlines() if line.startswith("{")]
    warned = [s["message"] for s in said if s.get("level") == "WARNING"]
    assert any("parallel-load partitions-list: the table is copied in one raw stream" in m for m in warned), (
        said
    )


def test_a_value_refused_in_a_partition_is_reported(pg_server: PostgresServer, tmp_path: Path) -> None:
    """A value the reader cannot carry (a timestamp past DuckDB's range) in one
    partition: its row goes to the exceptions table, as from a table read whole."""
    source = _source(pg_server)
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("ALTER TABLE big ADD COLUMN at timestamp")
        conn.execute("UPDATE big SET at = '294276-12-31 23:59:59' WHERE id = 7")  # in big_us (us, ca)
    target = {"engine": "duckdb", "path": str(tmp_path / "dw.duckdb")}
    home = tmp_path / "home"
    stack = _stack(tmp_path, source, target, {"type": "partitions-auto"})
    assert conveyor(home, "apply", str(stack)).returncode == 0
    started = conveyor(home, "tasks", "start", "parts", "--wait", "--json", timeout=120)
    assert started.returncode == 0, started.stdout + started.stderr
    (table,) = json.loads(started.stdout)["tables"]
    with psycopg.connect(source) as conn:
        expected = conn.execute(ROWS.format("big")).fetchall()
    assert (table["TableState"], table["FullLoadRows"]) == ("Table completed", len(expected) - 1)
    with duckdb.connect(target["path"], read_only=True) as con:
        logged = con.execute("SELECT key, column_name FROM main.awsdms_apply_exceptions").fetchall()
    assert [(json.loads(k), c) for k, c in logged] == [({"id": "7", "region": "ca"}, "at")]
