"""Full loads from an SQLite file into an embedded DuckDB warehouse, checked value by value."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from conveyor.connectors.base import EndpointConfig, PrepMode
from conveyor.connectors.duckdb.target import DuckDBTarget
from conveyor.connectors.sqlite.source import SQLiteSource
from conveyor.core.errors import SchemaMismatch
from conveyor.replication.full_load import FullLoad
from conveyor.replication.settings import ErrorBehavior
from conveyor.replication.table_plan import TABLE_COMPLETED, TABLE_ERROR, TablePlan

WEIRD = 'we"ird; name.`x` é'


@pytest.fixture
def source_path(tmp_path: Path) -> Path:
    path = tmp_path / "shop.sqlite"
    with sqlite3.connect(path) as conn:
        conn.executescript(
            f"""
            CREATE TABLE customer (cust_id VARCHAR(10) PRIMARY KEY, cust_name VARCHAR(100) NOT NULL,
                                   cust_city VARCHAR(50));
            CREATE TABLE sales (order_number VARCHAR(20) PRIMARY KEY, cust_id VARCHAR(10),
                                order_amt DECIMAL(18,2), ordered_on DATE, created DATETIME, flag BOOLEAN,
                                ratio REAL, payload BLOB, note TEXT);
            CREATE TABLE "{WEIRD.replace('"', '""')}" ("select" INTEGER, "Mixed Case" TEXT,
                                                       PRIMARY KEY ("select"));
            """
        )
        conn.executemany(
            "INSERT INTO customer VALUES (?, ?, ?)",
            [("1", "abc", "chicago"), ("2", "xyz", "dallas"), ("3", "yrt", "new york")],
        )
        conn.executemany(
            "INSERT INTO sales VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    "100",
                    "1",
                    "200.00",
                    "2024-01-31",
                    "2024-01-31 10:11:12.123456",
                    1,
                    0.5,
                    b"\x00\xff",
                    "🚀 ok",
                ),
                (
                    "101",
                    "1",
                    "300.10",
                    "0001-01-01",
                    "9999-12-31 23:59:59.999999",
                    0,
                    float("inf"),
                    None,
                    None,
                ),
                ("102", "2", None, None, None, None, float("-inf"), b"", "tab\tnew\nline"),
            ],
        )
        conn.execute(f"INSERT INTO \"{WEIRD.replace(chr(34), chr(34) * 2)}\" VALUES (1, 'x')")
    conn.close()
    return path


@pytest.fixture
def target(tmp_path: Path) -> Iterator[DuckDBTarget]:
    tgt = DuckDBTarget(EndpointConfig("warehouse", "duckdb", path=str(tmp_path / "dw.duckdb")))
    yield tgt
    tgt.close()


def run_load(
    source_path: Path,
    target: DuckDBTarget,
    mode: PrepMode,
    batch_rows: int = 2,
    errors: ErrorBehavior | None = None,
) -> list[str]:
    source = SQLiteSource(EndpointConfig("shop", "sqlite", path=str(source_path)))
    snapshot = source.snapshot()
    try:
        plans = [TablePlan(t, t) for t in source.tables()]
        result = FullLoad(
            snapshot, target, plans, mode, batch_rows=batch_rows, parallel=2, errors=errors or ErrorBehavior()
        ).run()
    finally:
        snapshot.close()
    return [
        p.state if p.error is None or mode is PrepMode.DO_NOTHING else f"{p.state}: {p.error}" for p in result
    ]


def test_every_value_arrives_unchanged(source_path: Path, target: DuckDBTarget) -> None:
    assert run_load(source_path, target, PrepMode.DROP_AND_CREATE) == [TABLE_COMPLETED] * 3
    cur = target._connection().cursor()
    rows = cur.execute("SELECT * FROM main.sales ORDER BY order_number").fetchall()
    assert rows[0] == (
        "100", "1", Decimal("200.00"), date(2024, 1, 31), datetime(2024, 1, 31, 10, 11, 12, 123456),
        True, 0.5, b"\x00\xff", "🚀 ok",
    )  # fmt: skip
    assert rows[1][3:7] == (date(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59, 999999), False, float("inf"))
    assert (
        rows[2][2] is None
        and rows[2][6] == float("-inf")
        and rows[2][7] == b""
        and rows[2][8] == "tab\tnew\nline"
    )
    assert cur.execute(
        f'SELECT "select", "Mixed Case" FROM main."{WEIRD.replace(chr(34), chr(34) * 2)}"'
    ).fetchall() == [(1, "x")]
    described = target.describe(
        SQLiteSource(EndpointConfig("s", "sqlite", path=str(source_path))).tables()[1].ref
    )
    assert described is not None and described.primary_key == ("order_number",)
    assert described.column("order_amt").type.describe() == "decimal(18,2)"
    assert described.column("cust_id").nullable is not False


def test_prep_modes(source_path: Path, target: DuckDBTarget) -> None:
    run_load(source_path, target, PrepMode.DROP_AND_CREATE)
    run_load(source_path, target, PrepMode.TRUNCATE_BEFORE_LOAD)
    assert (
        target.count(SQLiteSource(EndpointConfig("s", "sqlite", path=str(source_path))).tables()[0].ref) == 3
    )
    # DO_NOTHING appends into the existing table: the primary key then refuses the
    # duplicates, which go to the apply-exceptions table
    states = run_load(source_path, target, PrepMode.DO_NOTHING)
    assert states == [TABLE_COMPLETED] * 3
    cur = target._connection().cursor()
    assert cur.execute("SELECT count(*) FROM main.customer").fetchone() == (3,)
    logged = cur.execute(
        "SELECT table_name, count(*) FROM main.awsdms_apply_exceptions GROUP BY ALL ORDER BY 1"
    ).fetchall()
    assert logged == [("customer", 3), ("sales", 3), (WEIRD, 1)]


def test_existing_table_of_another_shape_under_do_nothing(source_path: Path, target: DuckDBTarget) -> None:
    conn = target._connection().cursor()
    conn.execute("CREATE TABLE main.customer (cust_id INTEGER PRIMARY KEY)")
    source = SQLiteSource(EndpointConfig("s", "sqlite", path=str(source_path)))
    customer = source.tables()[0]
    with pytest.raises(SchemaMismatch, match="column 'cust_id' is INTEGER, the load writes VARCHAR") as info:
        target.begin_load(customer, PrepMode.DO_NOTHING)
    assert "column 'cust_name' is missing" in str(info.value)
    assert conn.execute("SELECT count(*) FROM main.customer").fetchone() == (0,)


def test_a_failed_table_leaves_the_previous_contents(source_path: Path, target: DuckDBTarget) -> None:
    run_load(source_path, target, PrepMode.DROP_AND_CREATE)
    with sqlite3.connect(source_path) as conn:
        conn.execute("INSERT INTO sales (order_number, order_amt) VALUES ('200', 'not a number')")
    conn.close()
    # The reader leaves the row out; DataErrorPolicy SUSPEND_TABLE fails its table.
    suspend = ErrorBehavior.model_validate({"DataErrorPolicy": "SUSPEND_TABLE"})
    states = run_load(source_path, target, PrepMode.DROP_AND_CREATE, errors=suspend)
    assert states[0] == states[2] == TABLE_COMPLETED
    assert states[1].startswith(TABLE_ERROR) and "'order_amt'" in states[1] and "decimal(18,2)" in states[1]
    assert (
        target.count(SQLiteSource(EndpointConfig("s", "sqlite", path=str(source_path))).tables()[1].ref) == 3
    )


def test_a_value_its_column_cannot_hold_is_logged_and_the_rest_loads(
    source_path: Path, target: DuckDBTarget
) -> None:
    with sqlite3.connect(source_path) as conn:
        conn.execute("INSERT INTO sales (order_number, order_amt) VALUES ('200', 'not a number')")
    conn.close()
    assert run_load(source_path, target, PrepMode.DROP_AND_CREATE) == [TABLE_COMPLETED] * 3
    cur = target._connection().cursor()
    logged = cur.execute(
        "SELECT table_name, key, column_name, value FROM main.awsdms_apply_exceptions"
    ).fetchall()
    assert logged == [("sales", '{"order_number": "200"}', "order_amt", "'not a number'")]
    assert cur.execute("SELECT count(*) FROM main.sales").fetchone() == (3,)


def test_add_column_expressions(source_path: Path, target: DuckDBTarget) -> None:
    from conveyor.replication.mappings import TableMappings

    def rule(rid: int, action: str, table: str, **extra: Any) -> dict[str, Any]:
        locator = {"schema-name": "%", "table-name": table}
        if "column" in extra:
            locator["column-name"] = extra.pop("column")
        return {
            "rule-type": "transformation", "rule-id": rid, "rule-name": f"t{rid}", "rule-target": "column",
            "object-locator": locator, "rule-action": action, **extra,
        }  # fmt: skip

    include = {
        "rule-type": "selection", "rule-id": 1, "rule-name": "all", "rule-action": "include",
        "object-locator": {"schema-name": "%", "table-name": "%"},
    }  # fmt: skip
    label = "upper($cust_name)||' of '||$cust_city||' ('||$cust_id||')'"
    rules = [
        include,
        rule(2, "add-column", "customer", value="label", expression=label,
             **{"data-type": {"type": "string", "length": 100}}),
        rule(3, "add-column", "sales", value="size",
             expression="CASE WHEN $order_amt > 250 THEN 'big' ELSE 'small' END",
             **{"data-type": {"type": "string"}}),
        rule(4, "add-column", "sales", value="tax", expression="$order_amt * 0.2",
             **{"data-type": {"type": "numeric", "precision": 10, "scale": 2}}),
        rule(5, "add-column", "%", value="origin", expression="$AR_M_SOURCE_TABLE_NAME||':'||$AR_H_OPERATION",
             **{"data-type": {"type": "string"}}),
        # the label expression still reads the removed source column
        rule(6, "remove-column", "%", column="cust_city"),
    ]  # fmt: skip
    mappings = TableMappings.parse({"rules": rules}, "mappings.json")
    source = SQLiteSource(EndpointConfig("shop", "sqlite", path=str(source_path)))
    mapped = mappings.select(source.tables())
    plans = [TablePlan(m.source, m.target, m.project, tuple(c.source for c in m.columns)) for m in mapped]
    snapshot = source.snapshot()
    try:
        result = FullLoad(snapshot, target, plans, PrepMode.DROP_AND_CREATE, batch_rows=2).run()
    finally:
        snapshot.close()
    assert [p.state for p in result] == [TABLE_COMPLETED] * 3
    cur = target._connection().cursor()
    assert cur.execute("SELECT * FROM main.customer ORDER BY cust_id").fetchall() == [
        ("1", "abc", "ABC of chicago (1)", "customer:INSERT"),
        ("2", "xyz", "XYZ of dallas (2)", "customer:INSERT"),
        ("3", "yrt", "YRT of new york (3)", "customer:INSERT"),
    ]
    assert cur.execute("SELECT order_number, size, tax, origin FROM main.sales ORDER BY 1").fetchall() == [
        ("100", "small", Decimal("40.00"), "sales:INSERT"),
        ("101", "big", Decimal("60.02"), "sales:INSERT"),
        ("102", "small", None, "sales:INSERT"),
    ]
    described = target.describe(mapped[1].target.ref)
    assert described is not None
    assert described.column("tax").type.describe() == "decimal(10,2)"
    assert described.column_names[-3:] == ["size", "tax", "origin"]
