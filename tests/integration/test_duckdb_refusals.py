"""Values a DuckDB target refuses go to awsdms_apply_exceptions, per
DataErrorPolicy, and the rest of the table loads: screened in the streamed
load, found batch by batch when DuckDB refuses the stream all the same."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pyarrow as pa
import pytest

from conveyor.connectors.base import EndpointConfig, PrepMode
from conveyor.connectors.duckdb.target import DuckDBTarget
from conveyor.core import types as t
from conveyor.core.schema import Column, TableRef, TableSchema
from conveyor.core.types import Kind
from conveyor.replication.full_load import FullLoad
from conveyor.replication.settings import ErrorBehavior, RecordPolicy
from conveyor.replication.table_plan import TABLE_COMPLETED, TABLE_ERROR, TablePlan
from support.cli import conveyor
from support.servers import PostgresServer

pytestmark = pytest.mark.integration

UUID = "6f1c2d3e-4b5a-4c6d-8e9f-0a1b2c3d4e5f"
TABLE = TableSchema(
    TableRef("main", "items"),
    (
        Column("id", t.simple(Kind.INT64), nullable=False),
        Column("size", t.enum(("s", "m", "l"))),
        Column("price", t.decimal(5, 2)),
        Column("doc", t.simple(Kind.JSON)),
        Column("tags", t.array(t.simple(Kind.UUID))),
    ),
    ("id",),
)


def _batch(rows: list[tuple[Any, ...]]) -> pa.RecordBatch:
    columns = list(zip(*rows, strict=True))
    schema = TABLE.arrow_schema()
    price = pa.array(columns[2], pa.decimal128(12, 2)).cast(schema.field("price").type, safe=False)
    arrays = [pa.array(columns[i], schema.field(i).type) for i in (0, 1)]
    arrays += [price] + [pa.array(columns[i], schema.field(i).type) for i in (3, 4)]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


GOOD = (1, "s", Decimal("1.50"), '{"a": 1}', [UUID])
BATCHES = [
    [
        GOOD,
        (2, "xl", Decimal("2.00"), None, None),  # not a label
        (3, "m", Decimal("123456.78"), None, None),  # wider than decimal(5,2)
        (4, "l", None, "{not json", None),
        (5, None, None, None, [UUID, "nope"]),  # an array element DuckDB cannot read
        (6, None, None, None, None),
        (6, "s", None, None, None),  # the key again, in the same batch
    ],
    [(7, "m", Decimal("7.00"), "[1, 2]", []), (None, "s", None, None, None)],  # a NULL key
]


class _Snapshot:
    def __init__(self, batches: list[list[tuple[Any, ...]]]) -> None:
        self.batches = batches

    def read(
        self, table: TableSchema, batch_rows: int, order_by_key: bool = False
    ) -> Iterator[pa.RecordBatch]:
        for rows in self.batches:
            yield _batch(rows)


@pytest.fixture
def duck(tmp_path: Path) -> Iterator[DuckDBTarget]:
    target = DuckDBTarget(EndpointConfig("dw", "duckdb", path=str(tmp_path / "dw.duckdb")))
    yield target
    target.close()


def _load(
    duck: DuckDBTarget,
    batches: list[list[tuple[Any, ...]]],
    errors: ErrorBehavior | None = None,
    mode: PrepMode = PrepMode.DROP_AND_CREATE,
) -> tuple[FullLoad, Any]:
    loader = FullLoad(
        _Snapshot(batches),  # type: ignore[arg-type]
        duck,
        [TablePlan(TABLE, TABLE)],
        mode,
        task="t1",
        errors=errors or ErrorBehavior(),
        stop=threading.Event(),
    )
    [progress] = loader.run()
    return loader, progress


def _errors(**settings: Any) -> ErrorBehavior:
    return ErrorBehavior.model_validate(settings)


def _rows(duck: DuckDBTarget, sql: str) -> list[tuple[Any, ...]]:
    return duck._connection().cursor().execute(sql).fetchall()


def _exceptions(duck: DuckDBTarget) -> list[tuple[Any, ...]]:
    return _rows(
        duck,
        "SELECT task_name, table_name, key, column_name, value, error FROM main.awsdms_apply_exceptions "
        "ORDER BY key, error",
    )


def test_refused_values_are_logged_and_the_rest_loads(duck: DuckDBTarget) -> None:
    _, progress = _load(duck, BATCHES)
    assert progress.state == TABLE_COMPLETED, progress.error
    assert (progress.rows, progress.error_rows) == (3, 6)
    loaded = _rows(duck, "SELECT id, size, price::VARCHAR, doc, tags::VARCHAR[] FROM main.items ORDER BY id")
    assert loaded == [
        (1, "s", "1.50", '{"a": 1}', [UUID]),
        (6, None, None, None, None),
        (7, "m", "7.00", "[1, 2]", []),
    ]
    logged = {(row[2], row[3]): row for row in _exceptions(duck)}
    assert set(logged) == {
        ('{"id": "2"}', "size"),
        ('{"id": "3"}', "price"),
        ('{"id": "4"}', "doc"),
        ('{"id": "5"}', "tags"),
        ('{"id": "6"}', None),  # the second row with key 6; the first loaded
        ('{"id": null}', "id"),
    }
    assert len(_exceptions(duck)) == 6
    size = logged[('{"id": "2"}', "size")]
    assert size[:2] == ("t1", "items") and size[4] == "xl"
    assert "not a label of the target's ENUM('s', 'm', 'l')" in size[5]
    assert logged[('{"id": "3"}', "price")][4] == "123456.78"
    assert "does not fit decimal(5,2)" in logged[('{"id": "3"}', "price")][5]
    assert logged[('{"id": "4"}', "doc")][4] == "{not json"
    assert "JSON" in logged[('{"id": "4"}', "doc")][5]
    assert "nope" in logged[('{"id": "5"}', "tags")][4]
    assert "duplicate primary key (id)" in logged[('{"id": "6"}', None)][5]
    assert "NOT NULL" in logged[('{"id": null}', "id")][5]


def test_a_created_table_gets_its_key_after_its_rows(duck: DuckDBTarget) -> None:
    """The load creates the table without its key and adds it once the rows are
    in: the committed table has it, and a duplicate within one load (found when
    the key is added) sends the table to the checked load, as a keyed INSERT did."""
    _, progress = _load(duck, [[GOOD, (2, "s", None, None, None)], [(2, "m", None, None, None)]])
    assert progress.state == TABLE_COMPLETED, progress.error
    assert _rows(duck, "SELECT id, size FROM main.items ORDER BY id") == [(1, "s"), (2, "s")]
    constraints = _rows(
        duck,
        "SELECT constraint_type, constraint_column_names FROM duckdb_constraints() "
        "WHERE table_name = 'items' AND constraint_type = 'PRIMARY KEY'",
    )
    assert constraints == [("PRIMARY KEY", ["id"])]
    [(key, column, error)] = [(row[2], row[3], row[5]) for row in _exceptions(duck)]
    assert (key, column) == ('{"id": "2"}', None) and "duplicate primary key (id)" in error
    with pytest.raises(duckdb.ConstraintException):
        _rows(duck, "INSERT INTO main.items (id) VALUES (1)")


def test_ignore_record_loads_the_rest_and_logs_nothing(duck: DuckDBTarget) -> None:
    _, progress = _load(duck, BATCHES, _errors(DataErrorPolicy="IGNORE_RECORD"))
    assert progress.state == TABLE_COMPLETED, progress.error
    assert (progress.rows, progress.error_rows) == (3, 6)
    assert _exceptions(duck) == []


@pytest.mark.parametrize("policy", [RecordPolicy.SUSPEND_TABLE, RecordPolicy.STOP_TASK])
def test_suspend_table_and_stop_task_leave_the_table_as_it_was(
    duck: DuckDBTarget, policy: RecordPolicy
) -> None:
    loader, progress = _load(duck, BATCHES, _errors(DataErrorPolicy=policy.value))
    assert progress.state == TABLE_ERROR
    assert f"DataErrorPolicy {policy.value}" in progress.error
    assert "not a label" in progress.error and "table main.items" in progress.error
    assert loader.stop.is_set() is (policy is RecordPolicy.STOP_TASK)
    assert duck.describe(TABLE.ref) is None  # created by the load, rolled back


def test_escalation_suspends_the_table_at_the_count(duck: DuckDBTarget) -> None:
    errors = _errors(DataErrorEscalationCount=3, DataErrorEscalationPolicy="SUSPEND_TABLE")
    _, progress = _load(duck, BATCHES, errors)
    assert progress.state == TABLE_ERROR
    assert "data error escalation: 3 errors" in progress.error
    below = _errors(DataErrorEscalationCount=8)
    _, progress = _load(duck, BATCHES, below)
    assert progress.state == TABLE_COMPLETED, progress.error


def test_keys_the_table_already_has_are_found_batch_by_batch(duck: DuckDBTarget) -> None:
    """DuckDB refuses the stream (a key from before the load, a key from an
    earlier batch): the table is loaded again batch by batch, checked."""
    _load(duck, [[GOOD]])
    again = [[(2, "s", None, None, None), GOOD], [(8, "m", None, None, None), (2, "l", None, "{", None)]]
    _, progress = _load(duck, again, mode=PrepMode.DO_NOTHING)
    assert progress.state == TABLE_COMPLETED, progress.error
    assert (progress.rows, progress.error_rows) == (2, 2)
    assert _rows(duck, "SELECT id, size FROM main.items ORDER BY id") == [(1, "s"), (2, "s"), (8, "m")]
    logged = [(row[2], row[3], row[5]) for row in _exceptions(duck)]
    assert [(key, column) for key, column, _ in logged] == [('{"id": "1"}', None), ('{"id": "2"}', "doc")]
    assert "the target table already has a row with it" in logged[0][2]


def test_a_refusal_no_check_foresees_is_narrowed_down_by_bisection(duck: DuckDBTarget) -> None:
    """A CHECK constraint on an existing table: DuckDB's own message names it."""
    cur = duck._connection().cursor()
    cur.execute(
        "CREATE TABLE main.items (id BIGINT NOT NULL PRIMARY KEY, size ENUM('s', 'm', 'l'), "
        "price DECIMAL(5,2) CHECK (price < 5), doc JSON, tags UUID[])"
    )
    rows = [(i, "s", Decimal(i), None, None) for i in range(1, 41)]
    _, progress = _load(duck, [rows[:20], rows[20:]], mode=PrepMode.DO_NOTHING)
    assert progress.state == TABLE_COMPLETED, progress.error
    assert (progress.rows, progress.error_rows) == (4, 36)
    logged = _exceptions(duck)
    assert len(logged) == 36
    assert all("CHECK constraint" in row[5] for row in logged)


def _sqlite_source(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.executescript(
            """
            CREATE TABLE docs (id TEXT PRIMARY KEY, body JSON, ref UUID, note TEXT);
            CREATE TABLE plain (id INTEGER PRIMARY KEY, note TEXT);
            """
        )
        conn.executemany(
            "INSERT INTO docs VALUES (?, ?, ?, ?)",
            [
                ("a", '{"ok": true}', UUID, "fine"),
                ("b", "not json", UUID, "bad body"),
                ("c", "[]", "not-a-uuid", "bad ref"),
                (None, "{}", None, "SQLite lets a TEXT key be NULL"),
                ("d", None, None, None),
            ],
        )
        conn.executemany("INSERT INTO plain VALUES (?, ?)", [(i, f"n{i}") for i in range(1, 11)])
    conn.close()


def test_through_the_cli_refused_sqlite_values_land_in_apply_exceptions(tmp_path: Path) -> None:
    source, warehouse = tmp_path / "app.sqlite", tmp_path / "dw.duckdb"
    _sqlite_source(source)
    stack = {
        "endpoints": {
            "app": {"engine": "sqlite", "path": str(source)},
            "dw": {"engine": "duckdb", "path": str(warehouse)},
        },
        "tasks": {
            "load": {
                "source": "app",
                "target": "dw",
                "migration_type": "full-load",
                "table_mappings": {
                    "rules": [
                        {
                            "rule-type": "selection",
                            "rule-id": "1",
                            "rule-name": "all",
                            "object-locator": {"schema-name": "%", "table-name": "%"},
                            "rule-action": "include",
                        }
                    ]
                },
                "settings": {"ErrorBehavior": {"DataErrorPolicy": "LOG_ERROR"}},
            }
        },
    }
    path = tmp_path / "conveyor.yaml"
    path.write_text(json.dumps(stack))
    home = tmp_path / "home"
    assert conveyor(home, "apply", str(path)).returncode == 0
    started = conveyor(home, "tasks", "start", "load", "--wait", "--json")
    assert started.returncode == 0, started.stdout + started.stderr
    tables = {t["TableName"]: t for t in json.loads(started.stdout)["tables"]}
    assert (tables["docs"]["FullLoadRows"], tables["docs"]["FullLoadErrorRows"]) == (2, 3)
    assert tables["plain"]["FullLoadRows"] == 10
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        assert conn.execute("SELECT id FROM main.docs ORDER BY id").fetchall() == [("a",), ("d",)]
        logged = conn.execute(
            "SELECT task_name, table_owner, table_name, key, column_name, value, error "
            "FROM main.awsdms_apply_exceptions ORDER BY column_name"
        ).fetchall()
    assert [row[:6] for row in logged] == [
        ("load", "main", "docs", '{"id": "b"}', "body", "not json"),
        ("load", "main", "docs", '{"id": null}', "id", None),
        ("load", "main", "docs", '{"id": "c"}', "ref", "not-a-uuid"),
    ]
    assert "cannot read the value as JSON" in logged[0][6]
    assert "NOT NULL" in logged[1][6]
    assert "cannot read the value as UUID" in logged[2][6]


def test_json_a_postgresql_source_validated_is_not_parsed_twice_yet_a_refusal_is_found(
    duck: DuckDBTarget,
) -> None:
    """PostgreSQL's own json is not checked in the stream (DuckDB takes all of
    it); should DuckDB refuse one all the same, the checked load finds it."""
    table = TableSchema(
        TableRef("main", "docs"),
        (
            Column("id", t.simple(Kind.INT64), nullable=False),
            Column("doc", t.simple(Kind.JSON, native="jsonb")),
        ),
        ("id",),
        native_engine="postgres",
    )

    class Docs:
        def read(
            self, table: TableSchema, batch_rows: int, order_by_key: bool = False
        ) -> Iterator[pa.RecordBatch]:
            yield pa.record_batch(
                {"id": [1, 2, 3], "doc": ['{"a": 1}', "{oops", "[]"]}, schema=table.arrow_schema()
            )

    loader = FullLoad(Docs(), duck, [TablePlan(table, table)], PrepMode.DROP_AND_CREATE, task="t1")  # type: ignore[arg-type]
    [progress] = loader.run()
    assert progress.state == TABLE_COMPLETED, progress.error
    assert (progress.rows, progress.error_rows) == (2, 1)
    assert _rows(duck, "SELECT id FROM main.docs ORDER BY id") == [(1,), (3,)]
    [logged] = _exceptions(duck)
    assert logged[2:5] == ('{"id": "2"}', "doc", "{oops")
    assert "Malformed JSON" in logged[5]


def test_times_outside_a_day_are_refused_not_stored_as_nonsense(duck: DuckDBTarget) -> None:
    table = TableSchema(
        TableRef("main", "times"),
        (Column("id", t.simple(Kind.INT64), nullable=False), Column("at", t.simple(Kind.TIME))),
        ("id",),
    )
    micros = [0, 86_400_000_000, -5, 90_000_000_000, None]

    class Times:
        def read(
            self, table: TableSchema, batch_rows: int, order_by_key: bool = False
        ) -> Iterator[pa.RecordBatch]:
            at = pa.array(micros, pa.int64()).view(pa.time64("us"))
            yield pa.RecordBatch.from_arrays(
                [pa.array(range(5), pa.int64()), at], schema=table.arrow_schema()
            )

    [progress] = FullLoad(Times(), duck, [TablePlan(table, table)], PrepMode.DROP_AND_CREATE).run()  # type: ignore[arg-type]
    assert (progress.state, progress.rows, progress.error_rows) == (TABLE_COMPLETED, 3, 2)
    loaded = _rows(duck, 'SELECT id, "at"::VARCHAR FROM main.times ORDER BY id')
    assert loaded == [(0, "00:00:00"), (1, "24:00:00"), (4, None)]
    assert {(row[2], row[3]) for row in _exceptions(duck)} == {('{"id": "2"}', "at"), ('{"id": "3"}', "at")}


@pytest.mark.parametrize("filtered", [False, True], ids=["whole", "filtered"])
def test_postgres_rows_whose_keys_the_duckdb_table_has_are_logged_through_the_cli(
    tmp_path: Path, pg_server: PostgresServer, filtered: bool
) -> None:
    """DO_NOTHING into a DuckDB table that already holds some keys: DuckDB
    refuses the stream, the table is loaded again batch by batch, the rows
    with those keys are logged and the rest loads, with escalation off. A row
    the source's reader left out (numeric NaN) is logged once although the
    table was read twice, also when a filter reads it (reads with a WHERE
    add to the source's list: it used to be logged twice)."""
    source = pg_server.url(pg_server.new_database("pgduck"))
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("CREATE TABLE orders (id integer PRIMARY KEY, amount numeric(12,2), note text)")
        conn.execute("INSERT INTO orders SELECT g, g * 1.25, 'n' || g FROM generate_series(1, 50) g")
        conn.execute("UPDATE orders SET amount = 'NaN' WHERE id = 40")
    warehouse = tmp_path / "dw.duckdb"
    with duckdb.connect(str(warehouse)) as conn:
        conn.execute("CREATE SCHEMA public")
        conn.execute(
            "CREATE TABLE public.orders (id INTEGER PRIMARY KEY, amount DECIMAL(12,2), note VARCHAR)"
        )
        conn.execute("INSERT INTO public.orders VALUES (7, 0, 'kept'), (30, 0, 'kept')")
    selection: dict[str, Any] = {
        "rule-type": "selection",
        "rule-id": "1",
        "rule-name": "public",
        "object-locator": {"schema-name": "public", "table-name": "%"},
        "rule-action": "include",
    }
    if filtered:
        selection["filters"] = [
            {
                "filter-type": "source",
                "column-name": "id",
                "filter-conditions": [{"filter-operator": "lte", "value": "45"}],
            }
        ]
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
                "table_mappings": {"rules": [selection]},
                "settings": {"FullLoadSettings": {"TargetTablePrepMode": "DO_NOTHING", "CommitRate": 8}},
            }
        },
    }
    path = tmp_path / "conveyor.yaml"
    path.write_text(json.dumps(stack))
    home = tmp_path / "home"
    assert conveyor(home, "apply", str(path)).returncode == 0
    started = conveyor(home, "tasks", "start", "load", "--wait", "--json")
    assert started.returncode == 0, started.stdout + started.stderr
    last = 45 if filtered else 50
    [table] = json.loads(started.stdout)["tables"]
    assert (table["TableState"], table["FullLoadRows"], table["FullLoadErrorRows"]) == (
        "Table completed",
        last - 3,
        3,
    )
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        assert conn.execute("SELECT count(*), sum(id) FROM public.orders").fetchone() == (
            last - 1,
            sum(range(last + 1)) - 40,
        )
        assert (
            conn.execute("SELECT note FROM public.orders WHERE id IN (7, 30)").fetchall() == [("kept",)] * 2
        )
        logged = conn.execute(
            "SELECT table_owner, table_name, key, column_name, value, error "
            "FROM main.awsdms_apply_exceptions ORDER BY error_time, key"
        ).fetchall()
    assert sorted(row[2] for row in logged) == ['{"id": "30"}', '{"id": "40"}', '{"id": "7"}']
    assert all(row[:2] == ("public", "orders") for row in logged)
    by_key = {row[2]: row for row in logged}
    assert all(
        by_key[k][3] is None and "the target table already has a row with it" in by_key[k][5]
        for k in ('{"id": "7"}', '{"id": "30"}')
    )
    assert by_key['{"id": "40"}'][3:5] == ("amount", "NaN")


def test_do_nothing_appends_to_the_table_duckdb_resolves_the_name_to(duck: DuckDBTarget) -> None:
    """An existing ``MAIN.ITEMS`` with an ``ID`` key is the table ``main.items``
    names in DuckDB: the load appends to it (it was dropped before) and its key
    refuses the keys it holds."""
    cur = duck._connection().cursor()
    cur.execute("CREATE SCHEMA IF NOT EXISTS MAIN")
    cur.execute(
        "CREATE TABLE MAIN.\"ITEMS\" (\"ID\" BIGINT NOT NULL PRIMARY KEY, \"SIZE\" ENUM('s', 'm', 'l'), "
        '"PRICE" DECIMAL(5,2), "DOC" JSON, "TAGS" UUID[])'
    )
    cur.execute("INSERT INTO main.items VALUES (1, 'm', NULL, NULL, NULL)")
    _, progress = _load(
        duck, [[GOOD, (2, "s", None, None, None), (None, "s", None, None, None)]], mode=PrepMode.DO_NOTHING
    )
    assert progress.state == TABLE_COMPLETED, progress.error
    assert (progress.rows, progress.error_rows) == (1, 2)
    assert _rows(duck, 'SELECT "ID", "SIZE" FROM main.items ORDER BY 1') == [(1, "m"), (2, "s")]
    assert _rows(duck, "SELECT table_name FROM duckdb_tables() WHERE lower(table_name) = 'items'") == [
        ("ITEMS",)
    ]
    logged = {(row[2], row[3]) for row in _exceptions(duck)}
    assert logged == {('{"id": "1"}', None), ('{"id": null}', "id")}
