"""Redshift SQL translated for PostgreSQL and DuckDB warehouses: one row per case,
each one sqlglot alone gets wrong or a clause with no meaning off Redshift."""

from __future__ import annotations

import duckdb
import pytest

from conveyor.orchestration.redshift_sql import (
    CallProcedure,
    CreateProcedure,
    Statement,
    Untranslatable,
    Warehouse,
    split_statements,
    translate,
)
from support.redshift_cases import DATEDIFF_CASES, datediff_sql

CASES: list[tuple[str, str, str]] = [
    # (Redshift, PostgreSQL, DuckDB)
    (
        "CREATE TABLE dbo.t (a integer ENCODE az64, b character varying(10) ENCODE lzo) DISTSTYLE AUTO",
        "CREATE TABLE dbo.t (a INT, b VARCHAR(10))",
        "CREATE TABLE dbo.t (a INT, b TEXT(10))",
    ),
    (
        "create table u (a int, b int) diststyle key distkey(a) compound sortkey(a, b) backup no",
        "CREATE TABLE u (a INT, b INT)",
        "CREATE TABLE u (a INT, b INT)",
    ),
    ("create table v (a int) interleaved sortkey(a)", "CREATE TABLE v (a INT)", "CREATE TABLE v (a INT)"),
    (
        "select getdate()",
        "SELECT (STATEMENT_TIMESTAMP() AT TIME ZONE 'UTC')",
        "SELECT (CURRENT_TIMESTAMP AT TIME ZONE 'UTC')",
    ),
    (
        "select sysdate",
        "SELECT (TRANSACTION_TIMESTAMP() AT TIME ZONE 'UTC')",
        "SELECT (CURRENT_TIMESTAMP AT TIME ZONE 'UTC')",
    ),
    ("select nvl(a, 0) from t", "SELECT COALESCE(a, 0) FROM t", "SELECT COALESCE(a, 0) FROM t"),
    (
        "select dateadd(day, 1, d) from t",
        "SELECT CAST(d AS TIMESTAMP) + INTERVAL '1 DAY' FROM t",
        "SELECT CAST(d AS TIMESTAMP) + INTERVAL 1 DAY FROM t",
    ),
    (
        "select listagg(x, ',') within group (order by x) from t",
        "SELECT STRING_AGG(x, ',' ORDER BY x) FROM t",
        "SELECT LISTAGG(x, ',' ORDER BY x) FROM t",
    ),
    (
        "select approximate count(distinct x) from t",
        "SELECT COUNT(DISTINCT x) FROM t",
        "SELECT APPROX_COUNT_DISTINCT(x) FROM t",
    ),
    (
        "select regexp_substr(s, 'a+') from t",
        "SELECT (REGEXP_MATCH(s, '(' || 'a+' || ')'))[1] FROM t",
        "SELECT REGEXP_EXTRACT(s, 'a+') FROM t",
    ),
    (
        "select decode(a, null, 'x', 'y') from t",
        "SELECT CASE WHEN a IS NULL THEN 'x' ELSE 'y' END FROM t",
        "SELECT CASE WHEN a IS NULL THEN 'x' ELSE 'y' END FROM t",
    ),
    ("vacuum t", "vacuum t", "vacuum t"),
]


@pytest.mark.parametrize(("redshift", "postgres", "duck"), CASES)
def test_translation(redshift: str, postgres: str, duck: str) -> None:
    assert translate(redshift, "postgres") == [Statement(postgres, 1)]
    assert translate(redshift, "duckdb") == [Statement(duck, 1)]


@pytest.mark.parametrize(("start", "end", "expected"), DATEDIFF_CASES)
def test_datediff_counts_boundaries_crossed_on_duckdb(start: str, end: str, expected: dict[str, int]) -> None:
    """(The PostgreSQL form is checked on a server by the statement tests.)"""
    conn = duckdb.connect()
    for unit, count in expected.items():
        row = conn.execute(datediff_sql(unit, start, end, "duckdb")).fetchone()
        assert row is not None and row[0] == count, (unit, start, end)


def test_procedures() -> None:
    script = """CREATE OR REPLACE PROCEDURE dbo.sp_load()
LANGUAGE plpgsql
AS $$
BEGIN
--refresh
truncate table dbo.dim;
insert into dbo.dim select getdate();
END;
$$;
call dbo.sp_load();"""
    create, call = translate(script, "duckdb")
    assert create == CreateProcedure(
        "dbo",
        "sp_load",
        ("TRUNCATE TABLE dbo.dim", "INSERT INTO dbo.dim SELECT (CURRENT_TIMESTAMP AT TIME ZONE 'UTC')"),
        True,
        1,
    )
    assert call == CallProcedure("dbo", "sp_load", 10)
    pg_create, pg_call = translate(script, "postgres")
    assert isinstance(pg_create, Statement)
    assert "INSERT INTO dbo.dim SELECT (STATEMENT_TIMESTAMP() AT TIME ZONE 'UTC');" in pg_create.sql
    assert pg_create.sql.startswith(
        "CREATE OR REPLACE PROCEDURE dbo.sp_load()\nLANGUAGE plpgsql AS $conveyor$"
    )
    assert pg_call == Statement("call dbo.sp_load()", 10)


def test_procedural_bodies() -> None:
    script = """CREATE PROCEDURE p(n int) LANGUAGE plpgsql AS $$
BEGIN
  IF n > 0 THEN
    insert into t values (n);
  END IF;
END;
$$"""
    (kept,) = translate(script, "postgres")
    assert kept == Statement(script, 1)  # PL/pgSQL as written
    with pytest.raises(
        Untranslatable, match=r"line 1: procedure main.p: DuckDB procedures take no parameters"
    ):
        translate(script, "duckdb")
    without_params = script.replace("p(n int)", "q()").replace("n > 0", "1 > 0").replace("(n)", "(1)")
    with pytest.raises(Untranslatable, match="this one has control flow"):
        translate(without_params, "duckdb")


@pytest.mark.parametrize(
    ("script", "warehouse", "message"),
    [
        ("select 1;\nselect 2;\ncopy t from 's3://b/k' iam_role 'r';", "postgres", "line 3: COPY from S3"),
        ("select 1;\n\nselect (1", "duckdb", "line 3: not Redshift SQL"),
        ("select 1;\nunload ('select 1') to 's3://b/k'", "postgres", "line 2: UNLOAD has no translation"),
        ("grant select on t to u", "duckdb", "line 1: GRANT has no translation for duckdb"),
        ("call p(1)", "duckdb", "line 1: DuckDB procedures take no arguments"),
        ("select 'unterminated", "postgres", "cannot read the SQL"),
    ],
)
def test_refusals_name_the_line(script: str, warehouse: Warehouse, message: str) -> None:
    with pytest.raises(Untranslatable, match=message):
        translate(script, warehouse)


def test_statements_split_at_semicolons_outside_strings_and_bodies() -> None:
    script = "select ';' as a;\n-- note; here\nselect $$x;y$$;\n\n  select 3"
    assert [(text.strip(), line) for text, line in split_statements(script)] == [
        ("select ';' as a", 1),
        ("select $$x;y$$", 3),
        ("select 3", 5),
    ]
