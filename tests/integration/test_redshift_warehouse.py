"""Seed 001's Redshift DDL and procedures, as written, on PostgreSQL and DuckDB
warehouses declared `dialect: redshift`, through `conveyor statements execute`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest

from support.cli import conveyor
from support.redshift_cases import DATEDIFF_CASES, datediff_sql
from support.seeds import SEED_001_WAREHOUSE_SQL
from support.servers import PostgresServer

pytestmark = pytest.mark.e2e


@pytest.fixture(params=["postgres", "duckdb"])
def warehouse(request: pytest.FixtureRequest, tmp_path: Path, pg_server: PostgresServer) -> tuple[str, str]:
    """(engine, where): a fresh warehouse of each kind."""
    if request.param == "postgres":
        return "postgres", pg_server.url(pg_server.new_database("rs"))
    return "duckdb", str(tmp_path / "dw.duckdb")


def execute(home: Path, sql: str) -> dict[str, Any]:
    done = conveyor(home, "statements", "execute", "redshiftcluster-abcd", sql, "--json", timeout=120)
    described: dict[str, Any] = json.loads(done.stdout)
    return described


def rows(engine: str, where: str, sql: str) -> list[tuple[Any, ...]]:
    if engine == "postgres":
        with psycopg.connect(where) as conn:
            return [tuple(r) for r in conn.execute(sql).fetchall()]
    with duckdb.connect(where, read_only=True) as conn:
        return [tuple(r) for r in conn.execute(sql).fetchall()]


def test_seed_001_ddl_and_procedures_run_as_written(tmp_path: Path, warehouse: tuple[str, str]) -> None:
    engine, where = warehouse
    location = f'url: "{where}"' if engine == "postgres" else f'path: "{where}"'
    (tmp_path / "conveyor.yaml").write_text(
        f"endpoints:\n  redshiftcluster-abcd: {{engine: {engine}, {location}, dialect: redshift}}\n"
    )
    home = tmp_path / "home"
    applied = conveyor(home, "apply", str(tmp_path / "conveyor.yaml"))
    assert applied.returncode == 0, applied.stderr

    assert execute(home, "CREATE SCHEMA IF NOT EXISTS dbo")["Status"] == "FINISHED"
    created = execute(home, SEED_001_WAREHOUSE_SQL)
    assert created["Status"] == "FINISHED", created
    for procedure in ("dbo.sp_load_cust_dim", "dbo.sp_load_fact_sales"):
        called = execute(home, f"call {procedure}()")
        assert called["Status"] == "FINISHED", called.get("Error", called)

    dims = rows(engine, where, "SELECT cust_key, cust_id, cust_rev_flg FROM dbo.dim_cust ORDER BY cust_key")
    assert dims == [(1, "100", "N"), (2, "101", "N"), (3, "102", "Y")]
    staged = rows(engine, where, "SELECT order_number, cust_id, order_amt FROM dbo.fact_sales_stg")
    assert len(staged) == 6 and staged[0][0] == "100"
    # The seed's sample data joins on cust_id '1'..'3' against '100'..'102': nothing matches.
    assert rows(engine, where, "SELECT count(*) FROM dbo.fact_sales") == [(0,)]

    # Storage clauses were dropped, types kept.
    columns = rows(
        engine,
        where,
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'dbo' AND table_name = 'fact_sales' ORDER BY ordinal_position",
    )
    assert [c[0] for c in columns] == ["order_number", "cust_key", "order_amt"]
    assert columns[2][1].lower().startswith(("numeric", "decimal"))

    refused = execute(
        home, "select 1;\ncopy dbo.fact_sales from 's3://bucket/key' iam_role 'arn:aws:iam::1:role/r'"
    )
    assert refused["Status"] == "FAILED"
    assert "line 2: COPY from S3 is not translated" in refused["Error"]


@pytest.mark.parametrize(("start", "end", "expected"), DATEDIFF_CASES)
def test_datediff_on_postgres_counts_boundaries_like_redshift(
    pg_server: PostgresServer, start: str, end: str, expected: dict[str, int]
) -> None:
    url = pg_server.url()
    with psycopg.connect(url) as conn:
        for unit, count in expected.items():
            (got,) = conn.execute(datediff_sql(unit, start, end, "postgres")).fetchone() or (None,)
            assert got == count, (unit, start, end)
