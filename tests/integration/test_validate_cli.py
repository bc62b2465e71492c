"""`conveyor validate TASK` through a stack file and the CLI, against a private
PostgreSQL source and DuckDB / PostgreSQL targets: values changed behind
Conveyor's back are each found, with their key and column; missing tables are
a Table error while the others are still validated; settings are honoured."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest

from support.cli import conveyor

pytestmark = pytest.mark.e2e

SOURCE_DDL = """
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE TABLE typed (
    id integer PRIMARY KEY, t text, vc varchar(20), nu numeric, n12 numeric(12,2), f4 real,
    f8 double precision, b bytea, bo boolean, d date, tm time, ts timestamp, tstz timestamptz,
    iv interval, u uuid, j json, jb jsonb, x xml, m mood, ia integer[]
);
INSERT INTO typed
SELECT g, 'Text ' || g, 'v' || g, (g || '.50')::numeric, g + 0.25, g / 3.0, g / 7.0,
       decode(lpad(to_hex(g), 4, '0'), 'hex'), g % 2 = 0, date '2020-01-01' + g,
       time '10:00:00' + g * interval '1 second',
       timestamp '2020-01-01 00:00:00.123456' + g * interval '1 day',
       timestamptz '2020-01-01 00:00:00+00' + g * interval '1 hour', g * interval '1 day 1 microsecond',
       md5(g::text)::uuid, ('{"b": 1, "a": [1.0, ' || g || ']}')::json, ('{"k": ' || g || '}')::jsonb,
       ('<?xml version="1.0" standalone="yes"?><r n="' || g || '"/>')::xml, 'ok', ARRAY[g, g + 1]
FROM generate_series(1, 24) g;
CREATE TABLE plain (id integer PRIMARY KEY, v text);
INSERT INTO plain SELECT g, 'row ' || g FROM generate_series(1, 25) g;
CREATE TABLE other (code text PRIMARY KEY, n integer);
INSERT INTO other VALUES ('a', 1), ('B', 2), ('é', 3);
CREATE TABLE nokey (a integer, b text);
INSERT INTO nokey VALUES (1, 'x'), (1, 'x'), (2, NULL);
"""

# (key, column, how the target's value is changed behind Conveyor's back), DuckDB spelling
DUCKDB_CHANGES: list[tuple[int, str, str]] = [
    (1, "ts", "ts = ts + INTERVAL 1 MICROSECOND"),
    (2, "t", "t = upper(t)"),
    (3, "nu", "nu = '3.5'"),  # the scale of an unbounded numeric: 3.50 -> 3.5
    (4, "f8", "f8 = NULL"),
    (5, "f8", "f8 = nextafter(f8, 1e9)"),
    (6, "x", """x = '<r n="6"/>'"""),  # the xml declaration dropped
    (7, "jb", """jb = '{"k": 8}'"""),
    (8, "b", "b = '\\x00\\x09'::BLOB"),
    (9, "d", "d = d + 1"),
    (10, "iv", "iv = iv + INTERVAL 1 MICROSECOND"),
    (11, "u", "u = '00000000-0000-0000-0000-000000000000'"),
    (12, "bo", "bo = NOT bo"),
    (13, "tstz", "tstz = tstz + INTERVAL 1 MICROSECOND"),
    (14, "m", "m = 'happy'"),
    (15, "tm", "tm = tm + INTERVAL 1 MICROSECOND"),
    (16, "vc", "vc = vc || ' '"),
    (17, "ia", "ia = [17]"),
    (18, "f4", "f4 = f4 * 2"),
    (19, "n12", "n12 = n12 + 0.01"),
]
# Spelled differently, the same document: not a difference.
SAME_JSON = (20, "j", """j = '{ "a": [1.0, 20], "b": 1 }'""")


def _stack(tmp_path: Path, source_url: str, target: str, settings: dict[str, Any]) -> Path:
    (tmp_path / "mappings.json").write_text(
        json.dumps(
            {
                "rules": [
                    {
                        "rule-type": "selection",
                        "rule-id": "1",
                        "rule-name": "all",
                        "object-locator": {"schema-name": "public", "table-name": "%"},
                        "rule-action": "include",
                    }
                ]
            }
        )
    )
    (tmp_path / "settings.json").write_text(json.dumps(settings))
    stack = tmp_path / "conveyor.yaml"
    stack.write_text(
        "endpoints:\n"
        f"  src: {{engine: postgres, url: '{source_url}'}}\n"
        f"  dw: {target}\n"
        "tasks:\n"
        "  load: {source: src, target: dw, migration_type: full-load, "
        "table_mappings: file://mappings.json, settings: file://settings.json}\n"
    )
    return stack


def _loaded(tmp_path: Path, stack: Path) -> Path:
    home = tmp_path / "home"
    applied = conveyor(home, "apply", str(stack))
    assert applied.returncode == 0, applied.stderr
    started = conveyor(home, "tasks", "start", "load", "--wait")
    assert started.returncode == 0, started.stdout + started.stderr
    return home


def _validate(home: Path) -> tuple[int, dict[str, Any], dict[str, dict[str, Any]]]:
    done = conveyor(home, "validate", "load", "--json")
    assert done.returncode in (0, 1), done.stderr
    report = json.loads(done.stdout)
    return done.returncode, report, {t["Table"]: t for t in report["Tables"]}


@pytest.fixture
def source(pg_db: str) -> str:
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute(SOURCE_DDL)
    return pg_db


def test_every_change_behind_conveyors_back_is_found_on_duckdb(source: str, tmp_path: Path) -> None:
    stack = _stack(tmp_path, source, "{engine: duckdb, path: ./dw.duckdb}", {})
    home = _loaded(tmp_path, stack)
    code, _, tables = _validate(home)
    assert code == 0
    assert {name: t["ValidationState"] for name, t in tables.items()} == {
        "public.typed": "Validated",
        "public.plain": "Validated",
        "public.other": "Validated",
        "public.nokey": "Validated",
    }
    assert tables["public.typed"]["ComparedAs"] == "source text, target rendered as source text"

    con = duckdb.connect(str(tmp_path / "dw.duckdb"))
    tables_there = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert "awsdms_validation_failures_v1" not in tables_there  # created for the first failure only
    for key, _, change in [*DUCKDB_CHANGES, SAME_JSON]:
        con.execute(f"UPDATE public.typed SET {change} WHERE id = {key}")
    con.execute("DELETE FROM public.typed WHERE id = 21")
    con.execute("INSERT INTO public.typed (id) VALUES (1000)")
    con.execute("UPDATE public.nokey SET b = 'y' WHERE b IS NULL")
    con.close()

    code, _, tables = _validate(home)
    assert code == 1
    typed = tables["public.typed"]
    assert typed["ValidationState"] == "Mismatched records"
    assert (typed["Different"], typed["MissingOnTarget"], typed["ExtraOnTarget"]) == (
        len(DUCKDB_CHANGES),
        1,
        1,
    )
    assert tables["public.plain"]["ValidationState"] == "Validated"
    assert tables["public.nokey"]["ValidationState"] == "Mismatched records"
    assert "no primary key" in tables["public.nokey"]["Reason"]
    assert typed["FirstFailures"][0] == {"Key": {"id": "1"}, "FailureType": "RECORD_DIFF", "Columns": ["ts"]}

    con = duckdb.connect(str(tmp_path / "dw.duckdb"))
    recorded = con.execute(
        "SELECT KEY, FAILURE_TYPE, DETAILS, TASK_NAME, TABLE_OWNER, KEY_TYPE "
        "FROM main.awsdms_validation_failures_v1 WHERE TABLE_NAME = 'typed'"
    ).fetchall()
    con.close()
    found = {
        int(json.loads(k)["key"][0]): (kind, tuple(json.loads(d)["columns"])) for k, kind, d, *_ in recorded
    }
    expected = {key: ("RECORD_DIFF", (column,)) for key, column, _ in DUCKDB_CHANGES}
    expected |= {21: ("MISSING_TARGET", ()), 1000: ("MISSING_SOURCE", ())}
    assert found == expected  # every change found, nothing else
    assert {(r[3], r[4], r[5]) for r in recorded} == {("load", "public", "Row")}
    missing = next(json.loads(d) for k, kind, d, *_ in recorded if kind == "MISSING_TARGET")
    assert missing["columns"] == [] and missing["source"]["t"] == "Text 21" and missing["target"] is None

    shown = conveyor(home, "validate", "load")
    assert shown.returncode == 1
    assert "id=1: ts" in shown.stdout and "id=2: t" in shown.stdout

    con = duckdb.connect(str(tmp_path / "dw.duckdb"))
    con.execute("DROP TABLE public.other")
    con.close()
    code, _, tables = _validate(home)
    assert code == 1
    assert tables["public.other"]["ValidationState"] == "Table error"
    assert "public.other does not exist" in tables["public.other"]["Reason"]
    assert tables["public.plain"]["ValidationState"] == "Validated"
    assert tables["public.typed"]["ValidationState"] == "Mismatched records"

    # --table: only the tables named (a source or a target name), each once.
    only = conveyor(home, "validate", "load", "--table", "public.plain", "--table", "public.plain", "--json")
    assert only.returncode == 0, only.stderr
    assert [t["Table"] for t in json.loads(only.stdout)["Tables"]] == ["public.plain"]
    both = conveyor(home, "validate", "load", "--table", "public.typed", "--table", "public.plain", "--json")
    assert both.returncode == 1, both.stderr
    states = {t["Table"]: t["ValidationState"] for t in json.loads(both.stdout)["Tables"]}
    assert states == {"public.typed": "Mismatched records", "public.plain": "Validated"}
    unknown = conveyor(home, "validate", "load", "--table", "public.nope")
    assert unknown.returncode != 0 and "task 'load' has no table public.nope; its tables:" in unknown.stderr
    assert "public.plain" in unknown.stderr and "Traceback" not in unknown.stderr
    bad = conveyor(home, "validate", "load", "--table", "plain")
    assert bad.returncode != 0 and "give it as SCHEMA.TABLE" in bad.stderr


PG_CHANGES: list[tuple[int, str, str]] = [
    (1, "ts", "ts = ts + interval '1 microsecond'"),
    (2, "t", "t = upper(t)"),
    (3, "nu", "nu = 3.5"),
    (4, "x", """x = '<r n="4"/>'"""),
    (5, "ia", "ia = '{5,6}'"),  # the source holds {{5,6}}: flattened
    (6, "ia", "ia = '{6,7}'"),  # the source holds [0:1]={6,7}: lower bound dropped
    (7, "f4", "f4 = NULL"),
    (8, "jb", """jb = '{"k": 8.5}'"""),
]


def test_postgres_target_changes_and_settings(source: str, pg_server: Any, tmp_path: Path) -> None:
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("UPDATE typed SET ia = '{{5,6}}' WHERE id = 5")
        conn.execute("UPDATE typed SET ia = '[0:1]={6,7}' WHERE id = 6")
    target_url = pg_server.url(pg_server.new_database())
    settings = {
        "ValidationSettings": {
            "PartitionSize": 10,
            "ThreadCount": 2,
            "TableFailureMaxCount": 5,
            "FailureMaxCount": 6,
            "RecordFailureDelayLimitInMinutes": 5,
            "HandleCollationDiff": True,
        }
    }
    home = _loaded(tmp_path, _stack(tmp_path, source, f"{{engine: postgres, url: '{target_url}'}}", settings))
    code, report, tables = _validate(home)
    assert code == 0, report
    assert tables["public.plain"]["Partitions"] == 3  # 25 rows by 10
    assert tables["public.typed"]["ComparedAs"] == "source text, target text"
    assert tables["public.typed"]["Notes"] == []  # the same types on both sides
    notes = " ".join(report["Notes"])
    assert "RecordFailureDelayLimitInMinutes: not acted on" in notes and "HandleCollationDiff" not in notes

    with psycopg.connect(target_url, autocommit=True) as conn:
        for key, _, change in PG_CHANGES:
            conn.execute(f"UPDATE typed SET {change} WHERE id = {key}")  # type: ignore[arg-type]
        conn.execute("UPDATE plain SET v = 'changed' WHERE id IN (1, 2, 3)")
    code, report, tables = _validate(home)
    assert code == 1
    typed, plain = tables["public.typed"], tables["public.plain"]
    assert typed["Different"] == len(PG_CHANGES) and plain["Different"] == 3
    shown = {(f["Key"]["id"], tuple(f["Columns"])) for f in typed["FirstFailures"]}
    assert shown == {(str(key), (column,)) for key, column, _ in PG_CHANGES}
    # TableFailureMaxCount 5 per table, FailureMaxCount 6 for the run: 6 recorded in all.
    assert typed["FailuresRecorded"] <= 5 and typed["FailuresRecorded"] + plain["FailuresRecorded"] == 6
    assert typed["FailuresRecorded"] + typed["FailuresNotRecorded"] == len(PG_CHANGES)
    assert any("not recorded" in note for note in typed["Notes"])
    with psycopg.connect(target_url) as conn:
        count = conn.execute("SELECT count(*) FROM awsdms_validation_failures_v1 WHERE task_name = 'load'")
        assert count.fetchone() == (6,)
        conn.execute("UPDATE plain SET v = 'row ' || id")
        conn.execute("ALTER TABLE plain ALTER COLUMN v TYPE varchar(50)")
    _, _, tables = _validate(home)
    assert tables["public.plain"]["ValidationState"] == "Validated"
    assert tables["public.plain"]["Notes"] == [
        "target columns of other types, compared as each side's own text: v (text -> character varying(50))"
    ]


SHAPES_DDL = """
CREATE TABLE shapes (id integer PRIMARY KEY, a2 integer[], lb integer[], tsa timestamp[], da date[]);
INSERT INTO shapes VALUES
    (1, '{{1,2},{3,4}}', NULL, NULL, NULL),
    (2, NULL, '[0:1]={5,6}', NULL, NULL),
    (3, NULL, NULL, '{infinity,"2020-01-01 00:00:00"}', NULL),
    (4, NULL, NULL, NULL, '{-infinity,2020-01-01}'),
    (5, '{1}', '{1}', '{"2020-01-01 00:00:00.5"}', '{2020-01-01}');
"""


def test_rows_the_load_refused_are_found_missing_not_validated(pg_db: str, tmp_path: Path) -> None:
    """A 2-D array and an array's lower bound cannot travel into DuckDB: the load
    refuses those rows into awsdms_apply_exceptions, and validation finds them
    missing on the target, by key. Infinities inside timestamp and date arrays
    arrive exactly; validation never crashes on them."""
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute(SHAPES_DDL)
    home = _loaded(tmp_path, _stack(tmp_path, pg_db, "{engine: duckdb, path: ./dw.duckdb}", {}))
    code, _, tables = _validate(home)
    shapes = tables["public.shapes"]
    assert code == 1 and shapes["ValidationState"] == "Mismatched records", shapes
    flagged = {(f["Key"]["id"], tuple(f["Columns"])) for f in shapes["FirstFailures"]}
    assert flagged == {("1", ()), ("2", ())}
    assert shapes["MissingOnTarget"] == 2
    with duckdb.connect(str(tmp_path / "dw.duckdb"), read_only=True) as con:
        refused = con.execute(
            "SELECT key, column_name FROM main.awsdms_apply_exceptions ORDER BY key"
        ).fetchall()
    assert [(json.loads(k)["id"], c) for k, c in refused] == [("1", "a2"), ("2", "lb")]


def test_validation_only_compares_without_loading(source: str, tmp_path: Path) -> None:
    settings = {"ValidationSettings": {"ValidationOnly": True}}
    stack = _stack(tmp_path, source, "{engine: duckdb, path: ./dw.duckdb}", settings)
    home = tmp_path / "home"
    assert conveyor(home, "apply", str(stack)).returncode == 0
    con = duckdb.connect(str(tmp_path / "dw.duckdb"))
    con.execute("CREATE SCHEMA public")
    con.execute("CREATE TABLE public.plain (id INTEGER PRIMARY KEY, v VARCHAR)")
    con.execute("INSERT INTO public.plain SELECT g, 'row ' || g FROM range(1, 26) t(g)")
    con.close()
    started = conveyor(home, "tasks", "start", "load", "--wait", "--json")
    assert started.returncode == 0, started.stdout + started.stderr
    described = {t["TableName"]: t for t in json.loads(started.stdout)["tables"]}
    states = {name: (t["ValidationState"], t["FullLoadRows"]) for name, t in described.items()}
    assert "typed does not exist" in described["typed"]["ValidationStateDetails"]
    assert states == {
        "plain": ("Validated", 0),
        "typed": ("Table error", 0),
        "other": ("Table error", 0),
        "nokey": ("Table error", 0),
    }
