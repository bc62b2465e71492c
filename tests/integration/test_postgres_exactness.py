"""PostgreSQL to PostgreSQL exactly, or said where and why: rows the raw binary
COPY cannot take, XML declarations, composite and domain types, generated
columns. Against private PostgreSQL servers, through the `conveyor` CLI too."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pyarrow.parquet as pq
import pytest

from conveyor.connectors.base import EndpointConfig, PrepMode
from conveyor.connectors.postgres.source import PostgresSource
from conveyor.connectors.postgres.target import RAW_FORMAT, PostgresTarget
from conveyor.replication.full_load import FullLoad
from conveyor.replication.settings import ErrorBehavior
from conveyor.replication.table_plan import TABLE_COMPLETED, TablePlan, TableProgress
from support.cli import conveyor, worker_log
from support.servers import PostgresServer
from support.tasks import described as read_task

pytestmark = pytest.mark.integration


@pytest.fixture
def dbs(pg_server: PostgresServer) -> tuple[str, str]:
    return pg_server.url(pg_server.new_database("src")), pg_server.url(pg_server.new_database("dst"))


def _execute(url: str, *statements: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def _rows(url: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(query).fetchall()


def _stack(
    path: Path, source: str, target: str | dict[str, Any], migration_type: str, settings: dict[str, Any]
) -> Path:
    """A stack file with task ``load`` from ``source`` to ``target`` (a PostgreSQL
    URL, a DuckDB file or an endpoint)."""
    if isinstance(target, str):
        target = (
            {"engine": "postgres", "url": target} if "://" in target else {"engine": "duckdb", "path": target}
        )
    document = {
        "endpoints": {"src": {"engine": "postgres", "url": source}, "dst": target},
        "tasks": {
            "load": {
                "source": "src",
                "target": "dst",
                "migration_type": migration_type,
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
                "settings": settings,
            }
        },
    }
    path.write_text(json.dumps(document))
    return path


def _load(source: str, target: str, mode: PrepMode = PrepMode.DROP_AND_CREATE) -> list[TableProgress]:
    src = PostgresSource(EndpointConfig("src", "postgres", url=source))
    snapshot = src.snapshot()
    try:
        plans = [TablePlan(t, t) for t in src.tables()]
        dst = PostgresTarget(EndpointConfig("dst", "postgres", url=target))
        return FullLoad(snapshot, dst, plans, mode, batch_rows=100, task="t").run()
    finally:
        snapshot.close()


def test_rows_the_raw_copy_cannot_take_are_logged_and_the_rest_loads(
    tmp_path: Path, dbs: tuple[str, str]
) -> None:
    """A CHECK of the target and keys already there (DO_NOTHING) refuse rows of
    the raw binary COPY: the table is loaded again by the path that names each
    refused row, which goes to awsdms_apply_exceptions with its column."""
    source, target = dbs
    ddl = "CREATE TABLE orders (id integer PRIMARY KEY, amount integer, note text)"
    _execute(source, ddl, "INSERT INTO orders SELECT g, g - 3, 'n' || g FROM generate_series(1, 250) g")
    _execute(
        target,
        ddl.replace("amount integer", "amount integer CONSTRAINT positive CHECK (amount > 0)"),
        "INSERT INTO orders VALUES (100, 1, 'there before'), (200, 2, 'there before')",
    )
    plan = TablePlan(*[PostgresSource(EndpointConfig("s", "postgres", url=source)).tables()[0]] * 2)
    load = PostgresTarget(EndpointConfig("d", "postgres", url=target)).begin_load(
        plan.target, PrepMode.DO_NOTHING
    )
    load.abort()
    assert load.raw_format == RAW_FORMAT, "the table's types are the source's: the raw copy is tried first"

    settings = {
        "FullLoadSettings": {"TargetTablePrepMode": "DO_NOTHING", "CommitRate": 100},
        "ErrorBehavior": {"DataErrorPolicy": "LOG_ERROR"},
    }
    stack = _stack(tmp_path / "s.yaml", source, target, "full-load", settings)
    home = tmp_path / "home"
    assert conveyor(home, "apply", str(stack)).returncode == 0
    started = conveyor(home, "tasks", "start", "load", "--wait", "--json")
    assert started.returncode == 0, started.stdout + started.stderr
    [table] = json.loads(started.stdout)["tables"]
    assert table["TableState"] == TABLE_COMPLETED
    assert (table["FullLoadRows"], table["FullLoadErrorRows"]) == (245, 5)
    assert _rows(target, "SELECT count(*), min(id), max(id) FROM orders") == [(247, 4, 250)]
    assert _rows(target, "SELECT note FROM orders WHERE id IN (100, 200)") == [("there before",)] * 2
    logged = _rows(
        target,
        "SELECT task_name, table_name, key->>'id', column_name, value, error"
        " FROM awsdms_apply_exceptions ORDER BY (key->>'id')::int",
    )
    assert [row[:5] for row in logged] == [
        ("load", "orders", "1", "amount", "-2"),
        ("load", "orders", "2", "amount", "-1"),
        ("load", "orders", "3", "amount", "0"),
        ("load", "orders", "100", "id", "100"),
        ("load", "orders", "200", "id", "200"),
    ]
    assert 'violates check constraint "positive"' in logged[0][5]
    assert 'duplicate key value violates unique constraint "orders_pkey"' in logged[3][5]


def test_a_refused_raw_copy_under_suspend_table_fails_the_table_not_the_task(dbs: tuple[str, str]) -> None:
    source, target = dbs
    ddl = "CREATE TABLE t (id integer PRIMARY KEY, v integer)"
    _execute(source, ddl, "INSERT INTO t SELECT g, g FROM generate_series(1, 10) g")
    _execute(target, ddl.replace("v integer", "v integer CHECK (v <> 7)"), "INSERT INTO t VALUES (1, 1)")
    src = PostgresSource(EndpointConfig("src", "postgres", url=source))
    snapshot = src.snapshot()
    try:
        plans = [TablePlan(t, t) for t in src.tables()]
        dst = PostgresTarget(EndpointConfig("dst", "postgres", url=target))
        errors = ErrorBehavior.model_validate({"DataErrorPolicy": "SUSPEND_TABLE"})
        [progress] = FullLoad(snapshot, dst, plans, PrepMode.DO_NOTHING, task="t", errors=errors).run()
    finally:
        snapshot.close()
    assert progress.state == "Table error"
    assert progress.error is not None and "SUSPEND_TABLE" in progress.error
    assert _rows(target, "SELECT id, v FROM t") == [(1, 1)], "the table is as it was"


TYPES_DDL = """
CREATE SCHEMA app;
CREATE TYPE app.mood AS ENUM ('sad', 'ok ''quoted''');
CREATE DOMAIN app.posint AS integer DEFAULT 1 CONSTRAINT posint_positive CHECK (VALUE > 0);
CREATE DOMAIN email AS varchar(100) COLLATE "C" NOT NULL CHECK (VALUE LIKE '%@%');
CREATE TYPE app."Address" AS (street text, zip varchar(10), n app.posint, m app.mood);
CREATE TYPE wrapper AS (a app."Address", tags text[], at timestamptz);
CREATE TABLE things (
    id integer PRIMARY KEY, addr app."Address", addrs app."Address"[], w wrapper, e email,
    p app.posint, ps app.posint[], r int4range, tr tstzrange, nr numrange, mr int4multirange,
    mo money, bi bit(5), vb varbit, ip inet, ci cidr, mac macaddr, mac8 macaddr8
);
CREATE DOMAIN app.doc AS xml;
CREATE TABLE docs (id integer PRIMARY KEY, x xml, xa xml[], d app.doc);
"""
DECLARED = '<?xml version="1.0" encoding="UTF-8"?><doc a="1">é<b/></doc>'
THINGS = [
    "(1, ROW('Main St. 1, \"A\"', '1234', 5, 'ok ''quoted''')::app.\"Address\","
    " ARRAY[ROW('x', NULL, 2, 'sad')::app.\"Address\", NULL],"
    " ROW(ROW('in', 'z', 3, NULL), '{a,\"b c\"}', '2024-01-02 03:04:05.123456+00'), 'me@x.org',"
    " 7, '{1,2}', '[1,10)', '[2024-01-01 00:00+00,infinity)', '(,1.5]', '{[1,3),[5,7)}',"
    " 12.34, B'10101', B'1', '10.1.2.3/16', '10.1.0.0/16', '08:00:2b:01:02:03', '08:00:2b:01:02:03:04:05')",
    "(2, NULL, '{}', NULL, 'you@y.org', NULL, NULL, 'empty', NULL, NULL, '{}', -0.01, B'00000', B'',"
    " '::1', '::/0', NULL, NULL)",
]
DOCS = [
    f"(1, '{DECLARED}', ARRAY['{DECLARED}'::xml, '<a/>'], '{DECLARED}')",
    '(2, \'<?xml version="1.0" standalone="yes"?><s/>\', NULL, NULL)',
    "(3, 'text <i>content</i>', '{}', '<d/>')",
]
DOCS_SQL = "SELECT id, x::text, xa::text[], d::text FROM docs ORDER BY id"
THINGS_SQL = (
    "SELECT id, addr::text, addrs::text, w::text, e, p, ps, r::text, tr::text, nr::text, mr::text,"
    " mo::text, bi::text, vb::text, ip::text, ci::text, mac::text, mac8::text"
    " FROM things ORDER BY id"
)
SHAPE_SQL = """
SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
WHERE attrelid = 'things'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum
"""
TYPES_SQL = """
SELECT n.nspname, t.typname, t.typtype, t.typnotnull, t.typdefault, format_type(t.typbasetype, t.typtypmod),
       (SELECT string_agg(conname || ' ' || pg_get_constraintdef(c.oid), '; ') FROM pg_constraint c
        WHERE c.contypid = t.oid),
       (SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum)
        FROM pg_attribute WHERE attrelid = t.typrelid AND attnum > 0)
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace LEFT JOIN pg_class r ON r.oid = t.typrelid
WHERE n.nspname IN ('public', 'app') AND t.typtype IN ('c', 'd', 'e') AND coalesce(r.relkind, 'c') = 'c'
ORDER BY 1, 2
"""


def test_composites_domains_and_special_types_round_trip(dbs: tuple[str, str]) -> None:
    """Composite and domain types are created on the target (nested, in their
    own schema, with their constraints) and every value arrives exactly by the
    raw copy; XML documents keep their declaration (through COPY text)."""
    source, target = dbs
    _execute(
        source,
        TYPES_DDL,
        "INSERT INTO things VALUES " + ", ".join(THINGS),
        "INSERT INTO docs VALUES " + ", ".join(DOCS),
    )
    progress = _load(source, target)
    assert [p.state for p in progress] == [TABLE_COMPLETED] * 2, [p.error for p in progress]
    assert _rows(target, SHAPE_SQL) == _rows(source, SHAPE_SQL)
    assert _rows(target, TYPES_SQL) == _rows(source, TYPES_SQL)
    assert _rows(target, THINGS_SQL) == _rows(source, THINGS_SQL)
    assert _rows(target, DOCS_SQL) == _rows(source, DOCS_SQL)
    assert _rows(target, "SELECT x::text, d::text FROM docs WHERE id = 1") == [(DECLARED, DECLARED)]
    dst = PostgresTarget(EndpointConfig("d", "postgres", url=target))
    formats = {}
    for p in progress:
        load = dst.begin_load(p.plan.target, PrepMode.DO_NOTHING)
        load.abort()
        formats[p.plan.target.ref.name] = load.raw_format
    assert formats == {"things": RAW_FORMAT, "docs": None}, "xml is not copied raw (its binary form drops it)"
    # A domain's CHECK holds on the target too (the domain is the source's).
    with pytest.raises(psycopg.errors.CheckViolation):
        _execute(target, "UPDATE things SET p = 0 WHERE id = 1")


def test_a_type_the_target_cannot_have_is_refused_by_column(dbs: tuple[str, str]) -> None:
    source, target = dbs
    _execute(
        source,
        "CREATE TYPE floatrange AS RANGE (subtype = float8)",
        "CREATE TABLE odd (id integer PRIMARY KEY, fr floatrange)",
    )
    [progress] = _load(source, target)
    assert progress.state == "Table error"
    assert progress.error is not None
    assert "column 'fr' is of type floatrange" in progress.error
    assert "TargetTablePrepMode DO_NOTHING" in progress.error
    assert _rows(target, "SELECT to_regclass('public.odd') IS NULL") == [(True,)]


def _wait_until(check: Callable[[], bool], what: str, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}")


def _described(home: Path) -> dict[str, Any]:
    result = conveyor(home, "tasks", "describe", "load", "--json")
    assert result.returncode == 0, result.stderr
    described: dict[str, Any] = json.loads(result.stdout)
    return described


@contextlib.contextmanager
def _running_task(home: Path) -> Iterator[None]:
    """``conveyor tasks start load`` (a detached worker), stopped on exit, killed
    if it would not stop (a failed test must not leave it behind)."""
    started = conveyor(home, "tasks", "start", "load")
    assert started.returncode == 0, started.stderr
    try:
        yield
    finally:
        conveyor(home, "tasks", "stop", "load")
        try:
            stopped = {"stopped", "failed"}
            _wait_until(lambda: read_task(home, "load")["status"] in stopped, "the task to stop", 30)
        finally:
            pid = _described(home).get("pid")
            if pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


CDC_CHANGES = [
    "INSERT INTO things (id, addr, addrs, w, e, p, ps, r, mo, bi, vb, ip, ci, mac, mac8) VALUES (3,"
    " ROW('new', '99', 9, 'sad'), ARRAY[ROW('n', 'q', 1, NULL)::app.\"Address\"],"
    " ROW(NULL, '{}', 'infinity'), 'c@d.e', 4, '{3}', '(,)', '$1,000.00', B'11111', B'0101',"
    " '2001:db8::1/64', '2001:db8::/32', 'ff:ff:ff:ff:ff:ff', '00:00:00:00:00:00:00:01')",
    "UPDATE things SET addr = ROW('upd', NULL, 1, 'ok ''quoted''')::app.\"Address\", p = 99 WHERE id = 1",
    "UPDATE things SET e = 'z@z.z', nr = '[0,0]', tr = 'empty' WHERE id = 2",
    "DELETE FROM things WHERE id = 2",
    f"INSERT INTO docs VALUES (4, '{DECLARED}', NULL, NULL)",
    f"UPDATE docs SET xa = ARRAY['{DECLARED}'::xml], d = '{DECLARED}' WHERE id = 2",
    "UPDATE docs SET d = '<?xml version=\"1.0\"?><u/>' WHERE id = 4",
]


def test_composites_and_domains_through_full_load_and_cdc(tmp_path: Path, dbs: tuple[str, str]) -> None:
    """Through a stack file and the CLI: the target's types are created, and
    captured changes of composite, domain and other special columns arrive
    exactly; so do XML declarations, which pgoutput drops: looked up by key."""
    source, target = dbs
    _execute(
        source,
        TYPES_DDL,
        "INSERT INTO things VALUES " + ", ".join(THINGS),
        "INSERT INTO docs VALUES " + ", ".join(DOCS),
    )
    stack = _stack(tmp_path / "s.yaml", source, target, "full-load-and-cdc", {})
    home = tmp_path / "home"
    assert conveyor(home, "apply", str(stack)).returncode == 0
    with _running_task(home):
        _wait_until(lambda: _rows(target, "SELECT to_regclass('docs') IS NOT NULL")[0][0], "the full load")
        _wait_until(lambda: _rows(target, THINGS_SQL) == _rows(source, THINGS_SQL), "the full load")
        _execute(source, *CDC_CHANGES)
        _wait_until(lambda: _rows(target, THINGS_SQL) == _rows(source, THINGS_SQL), "captured changes")
        _wait_until(lambda: _rows(target, DOCS_SQL) == _rows(source, DOCS_SQL), "the captured documents")
        _execute(
            source,
            "CREATE TYPE app.pair AS (a integer, b app.posint)",
            "ALTER TABLE things ADD COLUMN pr app.pair",
            "UPDATE things SET pr = ROW(1, 2) WHERE id = 1",
        )
        pairs = "SELECT id, pr::text FROM things ORDER BY id"
        _wait_until(lambda: _rows(target, SHAPE_SQL) == _rows(source, SHAPE_SQL), "the added column")
        _wait_until(lambda: _rows(target, pairs) == _rows(source, pairs), "the added column's values")
        described = _described(home)
    assert described["status"] == "running", described
    assert {t["TableState"] for t in described["tables"]} == {TABLE_COMPLETED}
    assert _rows(target, TYPES_SQL) == _rows(source, TYPES_SQL)
    assert _rows(target, DOCS_SQL)[:3] == _rows(source, DOCS_SQL)[:3], "the full load keeps declarations"
    assert _rows(target, DOCS_SQL) == _rows(source, DOCS_SQL), "captured changes keep declarations"
    assert _rows(target, "SELECT x::text FROM docs WHERE id = 4") == [(DECLARED,)]
    assert "XML declaration" not in worker_log(home, "load"), "no warning: nothing is lost"


GEN_DDL = (
    "CREATE TABLE gen (id integer PRIMARY KEY, x integer, g integer GENERATED ALWAYS AS (x * 2) STORED,"
    " label text GENERATED ALWAYS AS ('#' || id::text) STORED, y text)"
)
GEN_ROWS = "SELECT id, x, g, label, y FROM gen ORDER BY id"


def _generated_on(url: str) -> list[tuple[Any, ...]]:
    return _rows(
        url,
        "SELECT a.attname, a.attgenerated, pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute a"
        " LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
        " WHERE a.attrelid = 'gen'::regclass AND a.attnum > 0 ORDER BY a.attnum",
    )


def test_generated_columns_are_declared_on_a_postgres_target(tmp_path: Path, dbs: tuple[str, str]) -> None:
    """The target computes its generated columns (GENERATED ... STORED), in the
    full load and for captured changes; `tasks describe` says so."""
    source, target = dbs
    _execute(
        source, GEN_DDL, "INSERT INTO gen (id, x, y) SELECT g, g, 'y' || g FROM generate_series(1, 300) g"
    )
    stack = _stack(tmp_path / "s.yaml", source, target, "full-load-and-cdc", {})
    home = tmp_path / "home"
    assert conveyor(home, "apply", str(stack)).returncode == 0
    with _running_task(home):
        _wait_until(lambda: _rows(target, "SELECT to_regclass('gen') IS NOT NULL")[0][0], "the target table")
        _wait_until(lambda: _rows(target, GEN_ROWS) == _rows(source, GEN_ROWS), "the full load")
        _execute(
            source,
            "INSERT INTO gen (id, x, y) VALUES (301, 7, 'new')",
            "UPDATE gen SET x = -x WHERE id <= 5",
            "DELETE FROM gen WHERE id = 300",
        )
        _wait_until(lambda: _rows(target, GEN_ROWS) == _rows(source, GEN_ROWS), "captured changes")
        described = conveyor(home, "tasks", "describe", "load")
    assert _generated_on(target) == _generated_on(source)
    validated = conveyor(home, "validate", "load", "--json")
    assert validated.returncode == 0, validated.stdout + validated.stderr
    assert {c["ValidationState"] for c in json.loads(validated.stdout)["Tables"]} == {"Validated"}
    assert (
        "generated column public.gen.g: computed by the target (GENERATED ALWAYS AS ((x * 2)) STORED)"
        in described.stdout
    ), described.stdout
    [table] = _described(home)["tables"]
    assert [c["Column"] for c in table["GeneratedColumns"]] == ["g", "label"]
    assert all(c["Handling"].startswith("computed by the target") for c in table["GeneratedColumns"])


def test_generated_columns_are_copied_to_duckdb(tmp_path: Path, dbs: tuple[str, str]) -> None:
    source, _ = dbs
    _execute(
        source, GEN_DDL, "INSERT INTO gen (id, x, y) SELECT g, g, 'y' || g FROM generate_series(1, 50) g"
    )
    path = tmp_path / "dw.duckdb"
    stack = _stack(tmp_path / "s.yaml", source, str(path), "full-load", {})
    home = tmp_path / "home"
    assert conveyor(home, "apply", str(stack)).returncode == 0
    started = conveyor(home, "tasks", "start", "load", "--wait", "--json")
    assert started.returncode == 0, started.stdout + started.stderr
    [table] = json.loads(started.stdout)["tables"]
    assert table["TableState"] == TABLE_COMPLETED
    assert [c["Column"] for c in table["GeneratedColumns"]] == ["g", "label"]
    assert table["GeneratedColumns"][0]["Handling"].startswith("copied as a plain column")
    assert "change capture looks it up from the source by key" in table["GeneratedColumns"][0]["Handling"]
    con = duckdb.connect(str(path), read_only=True)
    try:
        loaded = con.execute("SELECT id, x, g, label, y FROM public.gen ORDER BY id").fetchall()
    finally:
        con.close()
    assert loaded == _rows(source, GEN_ROWS)
    validated = conveyor(home, "validate", "load", "--json")
    assert validated.returncode == 0, validated.stdout + validated.stderr
    assert {c["ValidationState"] for c in json.loads(validated.stdout)["Tables"]} == {"Validated"}


def test_generated_columns_on_duckdb_under_change_capture_are_looked_up(
    tmp_path: Path, dbs: tuple[str, str]
) -> None:
    """pgoutput does not send generated columns: on a DuckDB target, captured
    inserts and updates get them looked up from the source by key."""
    source, _ = dbs
    _execute(source, GEN_DDL, "INSERT INTO gen (id, x, y) SELECT g, g, 'y' || g FROM generate_series(1, 5) g")
    path = tmp_path / "dw.duckdb"
    stack = _stack(tmp_path / "s.yaml", source, str(path), "full-load-and-cdc", {})
    home = tmp_path / "home"
    assert conveyor(home, "apply", str(stack)).returncode == 0

    def states() -> list[Any]:
        return [t.get("TableState") for t in _described(home)["tables"]]

    with _running_task(home):
        _wait_until(lambda: states() == [TABLE_COMPLETED], "the full load")
        _execute(
            source,
            "INSERT INTO gen (id, x, y) VALUES (6, 7, 'new')",
            "UPDATE gen SET x = -x WHERE id <= 2",
        )
        _wait_until(lambda: read_task(home, "load")["tables"][0].get("Updates", 0) >= 2, "captured changes")
    con = duckdb.connect(str(path), read_only=True)
    try:
        loaded = con.execute("SELECT id, x, g, label, y FROM public.gen ORDER BY id").fetchall()
    finally:
        con.close()
    assert loaded == _rows(source, GEN_ROWS)
    assert loaded[0] == (1, -1, -2, "#1", "y1")
    assert "generated column" not in worker_log(home, "load"), "no warning: nothing is lost"


def test_generated_columns_are_copied_to_the_lake(tmp_path: Path, dbs: tuple[str, str]) -> None:
    source, _ = dbs
    _execute(
        source, GEN_DDL, "INSERT INTO gen (id, x, y) SELECT g, g, 'y' || g FROM generate_series(1, 20) g"
    )
    lake = tmp_path / "lake"
    stack = _stack(
        tmp_path / "s.yaml",
        source,
        {"engine": "lake", "path": str(lake), "format": "parquet"},
        "full-load",
        {},
    )
    home = tmp_path / "home"
    assert conveyor(home, "apply", str(stack)).returncode == 0
    started = conveyor(home, "tasks", "start", "load", "--wait", "--json")
    assert started.returncode == 0, started.stdout + started.stderr
    [table] = json.loads(started.stdout)["tables"]
    assert [c["Column"] for c in table["GeneratedColumns"]] == ["g", "label"]
    [written] = sorted(lake.rglob("*.parquet"))
    loaded = pq.read_table(written).select(["id", "x", "g", "label", "y"]).to_pylist()
    assert [tuple(r.values()) for r in sorted(loaded, key=lambda r: r["id"])] == _rows(source, GEN_ROWS)
