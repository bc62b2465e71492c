"""Full loads from a private PostgreSQL server into PostgreSQL and DuckDB,
checked value by value for every type the spine carries."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import duckdb
import psycopg
import pyarrow as pa
import pytest

from conveyor.connectors.base import EndpointConfig, PrepMode
from conveyor.connectors.duckdb.target import DuckDBTarget
from conveyor.connectors.postgres.source import PostgresSource
from conveyor.connectors.postgres.target import PostgresTarget
from conveyor.core import types as t
from conveyor.core.errors import SchemaMismatch
from conveyor.core.schema import Column, TableRef, TableSchema
from conveyor.core.types import Kind
from conveyor.replication.full_load import FullLoad
from conveyor.replication.settings import ErrorBehavior, RecordPolicy
from conveyor.replication.table_plan import TABLE_COMPLETED, TablePlan, TableProgress
from conveyor.replication.validation import VALIDATED, validate_table

pytestmark = pytest.mark.integration

WEIRD_TABLE = 'Types "Table"; select.`x` é'

SOURCE_DDL = f"""
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy ''quoted'', yes');
CREATE TABLE "{WEIRD_TABLE.replace('"', '""')}" (
    id integer PRIMARY KEY,
    i2 smallint, i8 bigint NOT NULL DEFAULT 0,
    n12 numeric(12,2), n38 numeric(38,10), nu numeric,
    f4 real, f8 double precision,
    t text, vc varchar(20), ch char(3), b bytea, bo boolean,
    d date, tm time, ts timestamp, tstz timestamptz, iv interval,
    u uuid, j json, jb jsonb,
    ia integer[], ta text[], m mood, ma mood[],
    "select" text, "Mixed Case" integer, addr inet
);
"""

ROWS: list[tuple[Any, ...]] = [
    (
        1, -32768, 9223372036854775807,
        Decimal("-9999999999.99"), Decimal("9999999999999999999999999999.9999999999"),
        Decimal("123456789012345678901234567890123456789012.000000000000000000001"),
        float("nan"), float("inf"),
        "emoji 🚀 tab\tnewline\nbackslash\\ quote' \"", "varchar ü", "ab", b"\x00\xff\\\n", True,
        date(1, 1, 1), time(23, 59, 59, 999999), datetime(1, 1, 1),
        datetime(9999, 12, 31, 23, 59, 59, 999999, UTC),
        timedelta(days=3, hours=4, minutes=5, seconds=6, microseconds=789),
        UUID("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
        '{"k": "välue", "n": [1, 2.5, null]}', '{"a": {"b": "🚀"}}',
        [1, None, -3], ['a,b', 'c"d', "{e}", None, "", "NULL"], "happy 'quoted', yes", ["sad", "ok"],
        "reserved", 7, "192.168.0.1/24",
    ),
    (
        2, 0, 0, Decimal("0.01"), Decimal("-0.0000000001"), Decimal("NaN"),
        float("-inf"), -0.0, "", "", "", b"", False,
        date(9999, 12, 31), time(0, 0), datetime(9999, 12, 31, 23, 59, 59, 999999),
        datetime(1, 1, 1, tzinfo=UTC),
        timedelta(0), UUID(int=0), "[]", "{}", [], [], "sad", [], "", 0, "::1",
    ),
    (3, None, 0) + (None,) * 25,
]  # fmt: skip
INFINITE_ROW = (
    "INSERT INTO {t} (id, d, ts, tstz, iv, n12) "
    "VALUES (4, 'infinity', '-infinity', 'infinity', '1 year 2 mons -3 days 00:00:00.000001', 5)"
)


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@pytest.fixture
def source_url(pg_db: str) -> str:
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute(SOURCE_DDL)
        table = _quoted(WEIRD_TABLE)
        placeholders = ", ".join(["%s"] * len(ROWS[0]))
        with conn.cursor() as cur:
            cur.executemany(f"INSERT INTO {table} VALUES ({placeholders})", ROWS)
        conn.execute(INFINITE_ROW.format(t=table))
        conn.execute("SET timezone = 'Asia/Kolkata'")  # the instant, not the zone, must travel
        conn.execute(f"UPDATE {table} SET tstz = '2024-03-10 02:30:00+05:30' WHERE id = 3")
        conn.execute("CREATE TABLE plain (k text PRIMARY KEY, v integer)")
        conn.execute("INSERT INTO plain SELECT 'key ' || g, g FROM generate_series(1, 2500) g")
    return pg_db


def _load(
    source_url: str, target: Any, mode: PrepMode = PrepMode.DROP_AND_CREATE, **options: Any
) -> tuple[list[TableProgress], list[str]]:
    source = PostgresSource(EndpointConfig("src", "postgres", url=source_url))
    snapshot = source.snapshot()
    try:
        plans = [TablePlan(t, t) for t in source.tables()]
        progress = FullLoad(snapshot, target, plans, mode, batch_rows=1000, parallel=2, **options).run()
        checks = [validate_table(snapshot, target, p.plan, 1000).state for p in progress]
    finally:
        snapshot.close()
    return progress, checks


def _rows(url: str, table: str) -> list[tuple[Any, ...]]:
    """Rows as psycopg reads them; the row of infinities (no Python value) as text."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(f"SELECT * FROM public.{_quoted(table)} WHERE id <> 4 ORDER BY 1").fetchall()
        if table == WEIRD_TABLE:
            rows += conn.execute(
                "SELECT id, d::text, ts::text, tstz::text, iv::text, n12 "
                f"FROM public.{_quoted(table)} WHERE id = 4"
            ).fetchall()
        return rows


def _same(left: Any, right: Any) -> bool:
    if isinstance(left, float) and isinstance(right, float) and math.isnan(left):
        return math.isnan(right)
    if isinstance(left, Decimal) and isinstance(right, Decimal) and left.is_nan():
        return right.is_nan()
    return bool(left == right and type(left) is type(right))


def _assert_rows_equal(expected: list[tuple[Any, ...]], actual: list[tuple[Any, ...]]) -> None:
    assert len(expected) == len(actual)
    assert expected[-1][:5] == (
        4,
        "infinity",
        "-infinity",
        "infinity",
        "1 year 2 mons -3 days +00:00:00.000001",
    )
    for want, got in zip(expected, actual, strict=True):
        for index, (a, b) in enumerate(zip(want, got, strict=True)):
            assert _same(a, b), f"row {want[0]} column {index}: {a!r} != {b!r}"


def _raw_format(target: PostgresTarget, plan: TablePlan) -> str | None:
    """Whether a load of ``plan`` into the target as it is now takes the raw copy."""
    load = target.begin_load(plan.target, PrepMode.DO_NOTHING)
    load.abort()
    return load.raw_format


@pytest.fixture
def pg_target_url(pg_server: Any) -> str:
    url: str = pg_server.url(pg_server.new_database("target"))
    return url


def test_postgres_to_postgres_keeps_every_value_and_type(source_url: str, pg_target_url: str) -> None:
    target = PostgresTarget(EndpointConfig("dst", "postgres", url=pg_target_url))
    progress, checks = _load(source_url, target)
    assert [p.state for p in progress] == [TABLE_COMPLETED] * 2, [p.error for p in progress]
    assert checks == [VALIDATED, VALIDATED]
    assert sorted(p.rows for p in progress) == [4, 2500]
    assert all(_raw_format(target, p.plan) == "postgres-binary" for p in progress)  # binary COPY, not Arrow
    _assert_rows_equal(_rows(source_url, WEIRD_TABLE), _rows(pg_target_url, WEIRD_TABLE))
    source = PostgresSource(EndpointConfig("s", "postgres", url=source_url)).tables()
    loaded = {t.ref: t for t in PostgresSource(EndpointConfig("t", "postgres", url=pg_target_url)).tables()}
    for table in source:
        assert [(c.name, c.type.native, c.nullable) for c in loaded[table.ref].columns] == [
            (c.name, c.type.native, c.nullable) for c in table.columns
        ]
        assert loaded[table.ref].primary_key == table.primary_key


def test_postgres_to_postgres_through_arrow_when_types_differ(source_url: str, pg_target_url: str) -> None:
    """A pre-created target whose types are not the source's takes the Arrow path
    (COPY text), and values still arrive exactly."""
    with psycopg.connect(source_url) as conn:
        ddl = SOURCE_DDL.replace("addr inet", "addr text").replace("i2 smallint", "i2 integer")
    with psycopg.connect(pg_target_url, autocommit=True) as conn:
        conn.execute(ddl)
    target = PostgresTarget(EndpointConfig("dst", "postgres", url=pg_target_url))
    progress, checks = _load(source_url, target, PrepMode.TRUNCATE_BEFORE_LOAD)
    assert [p.state for p in progress] == [TABLE_COMPLETED] * 2, [p.error for p in progress]
    expected = [
        (*row[:-1], str(row[-1]) if row[-1] is not None and row[0] != 4 else row[-1])
        for row in _rows(source_url, WEIRD_TABLE)
    ]  # inet arrives in a text column as its text
    _assert_rows_equal(expected, _rows(pg_target_url, WEIRD_TABLE))
    assert checks[1] == VALIDATED
    assert [_raw_format(target, p.plan) for p in progress] == [None, "postgres-binary"]


def test_values_the_target_cannot_hold_go_to_apply_exceptions(source_url: str, pg_target_url: str) -> None:
    with psycopg.connect(pg_target_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE plain (k varchar(7) PRIMARY KEY, v smallint CHECK (v <> 1234))")
    with psycopg.connect(source_url, autocommit=True) as conn:
        conn.execute("INSERT INTO plain VALUES ('key 40000', 40000)")
    target = PostgresTarget(EndpointConfig("dst", "postgres", url=pg_target_url))
    source = PostgresSource(EndpointConfig("src", "postgres", url=source_url))
    plain = next(t for t in source.tables() if t.ref.name == "plain")
    snapshot = source.snapshot()
    try:
        [progress] = FullLoad(
            snapshot, target, [TablePlan(plain, plain)], PrepMode.DO_NOTHING, task="t1"
        ).run()
    finally:
        snapshot.close()
    # 'key 1000'..'key 2500' and 'key 40000' are longer than 7; v=1234 fails the check.
    with psycopg.connect(pg_target_url) as conn:
        loaded = conn.execute("SELECT count(*), max(v) FROM plain").fetchone()
        logged = conn.execute(
            "SELECT task_name, table_owner, table_name, key->>'k', column_name, value, error "
            "FROM public.awsdms_apply_exceptions ORDER BY key->>'k'"
        ).fetchall()
    assert progress.state == TABLE_COMPLETED, progress.error
    assert loaded == (999, 999)
    assert progress.rows == 999 and progress.error_rows == 2500 - 999 + 1
    assert len(logged) == progress.error_rows
    first = logged[0]
    assert first[:6] == ("t1", "public", "plain", "key 1000", "k", "key 1000")
    assert "value too long for type character varying(7)" in first[6]


def test_data_error_policy_suspend_table_rolls_the_table_back(source_url: str, pg_target_url: str) -> None:
    with psycopg.connect(pg_target_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE plain (k text PRIMARY KEY, v smallint CHECK (v <> 2000))")
    target = PostgresTarget(EndpointConfig("dst", "postgres", url=pg_target_url))
    source = PostgresSource(EndpointConfig("src", "postgres", url=source_url))
    plain = next(t for t in source.tables() if t.ref.name == "plain")
    snapshot = source.snapshot()
    errors = ErrorBehavior.model_validate({"DataErrorPolicy": "SUSPEND_TABLE"})
    assert errors.data_error_policy is RecordPolicy.SUSPEND_TABLE
    try:
        [progress] = FullLoad(
            snapshot, target, [TablePlan(plain, plain)], PrepMode.DO_NOTHING, errors=errors
        ).run()
    finally:
        snapshot.close()
    assert progress.error is not None and "v <> 2000" not in progress.error
    assert "violates check constraint" in progress.error and "SUSPEND_TABLE" in progress.error
    assert target.count(plain.ref) == 0


def test_existing_table_of_another_shape_is_refused_by_name(source_url: str, pg_target_url: str) -> None:
    with psycopg.connect(pg_target_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE plain (k integer PRIMARY KEY)")
        conn.execute("INSERT INTO plain VALUES (1)")
    target = PostgresTarget(EndpointConfig("dst", "postgres", url=pg_target_url))
    plain = next(
        t
        for t in PostgresSource(EndpointConfig("src", "postgres", url=source_url)).tables()
        if t.ref.name == "plain"
    )
    with pytest.raises(SchemaMismatch) as info:
        target.begin_load(plain, PrepMode.DO_NOTHING)
    assert "column 'k' is integer, the load writes text" in str(info.value)
    assert "column 'v' is missing" in str(info.value)
    assert target.count(plain.ref) == 1


@pytest.fixture
def duck(tmp_path: Path) -> Iterator[DuckDBTarget]:
    target = DuckDBTarget(EndpointConfig("dw", "duckdb", path=str(tmp_path / "dw.duckdb")))
    yield target
    target.close()


def _duck_rows(path: str, table: str) -> list[tuple[Any, ...]]:
    """Finite rows through Arrow (DuckDB's own Python conversion wants pytz)."""
    with duckdb.connect(path, read_only=True) as conn:
        rows = conn.sql(f"SELECT * FROM public.{_quoted(table)} WHERE id <> 4 ORDER BY 1").to_arrow_table()
    return [tuple(row.values()) for row in rows.to_pylist()]


def _as_duckdb(table: TableSchema, row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A PostgreSQL row as DuckDB holds it: unbounded numerics and types DuckDB
    lacks as their PostgreSQL text; enums and uuids as DuckDB's own values."""
    out = []
    for column, value in zip(table.columns, row, strict=True):
        native = column.type.native or ""
        as_text = value is not None and native in {"numeric", "inet", "uuid"}
        out.append(str(value) if as_text else value)
    return tuple(out)


def test_postgres_to_duckdb_keeps_every_value(source_url: str, duck: DuckDBTarget) -> None:
    progress, checks = _load(source_url, duck)
    assert [p.state for p in progress] == [TABLE_COMPLETED] * 2, [p.error for p in progress]
    assert checks == [VALIDATED, VALIDATED]
    table = next(
        t
        for t in PostgresSource(EndpointConfig("s", "postgres", url=source_url)).tables()
        if t.ref.name == WEIRD_TABLE
    )
    duck.close()
    got = _duck_rows(str(duck.path), WEIRD_TABLE)
    with psycopg.connect(source_url) as conn:
        conn.execute("SET timezone = 'UTC'")
        casts = {"json": "::text", "mood[]": "::text[]"}
        names = ", ".join(_quoted(c.name) + casts.get(c.type.native or "", "") for c in table.columns)
        query = f"SELECT {names} FROM {_quoted(WEIRD_TABLE)} WHERE id <> 4 ORDER BY 1"
        want = conn.execute(query).fetchall()
    for source_row, actual in zip(want, got, strict=True):
        expected = _as_duckdb(table, source_row)
        for column, a, b in zip(table.columns, expected, actual, strict=True):
            if column.name == "jb" and a is not None:
                assert json.loads(b) == a, column.name
            elif column.name == "iv" and a is not None:
                assert b.months == 0 and timedelta(days=b.days, microseconds=b.nanoseconds // 1000) == a
            else:
                assert _same(a, b) or (a == b), f"row {expected[0]} column {column.name}: {a!r} != {b!r}"
    with duckdb.connect(str(duck.path), read_only=True) as conn:
        text = conn.execute(
            f"SELECT d::varchar, ts::varchar, tstz::varchar, iv::varchar, n12 "
            f"FROM public.{_quoted(WEIRD_TABLE)} WHERE id = 4"
        ).fetchone()
    assert text == (
        "infinity",
        "-infinity",
        "infinity",
        "1 year 2 months -3 days 00:00:00.000001",
        Decimal("5.00"),
    )


def test_names_past_postgres_limit_are_refused_and_enum_types_stay_short(pg_target_url: str) -> None:
    target = PostgresTarget(EndpointConfig("dst", "postgres", url=pg_target_url))
    mood = t.enum(("a", "b"))
    too_long = TableSchema(
        TableRef("public", "ñ" * 40), (Column("id", t.simple(Kind.INT32), False),), ("id",)
    )
    with pytest.raises(SchemaMismatch, match=r"at most 63 bytes: table 'ñññ.*' \(80 bytes\)"):
        target.begin_load(too_long, PrepMode.DROP_AND_CREATE)
    name = "é" * 30  # 60 bytes: fits, but "<table>_<column>_enum" would not
    table = TableSchema(
        TableRef("public", name), (Column("id", t.simple(Kind.INT32), False), Column("m", mood))
    )
    load = target.begin_load(table, PrepMode.DROP_AND_CREATE)
    load.write(pa.record_batch({"id": pa.array([1], pa.int32()), "m": pa.array(["b"])}))
    load.commit()
    described = target.describe(table.ref)
    assert described is not None and described.column("m").type.labels == ("a", "b")
    assert len((described.column("m").type.native or "").strip('"').encode()) <= 63
