"""add-column expressions: SQLite semantics over Arrow batches and CDC rows."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from conveyor.core.batch import Op
from conveyor.core.errors import ConfigError, DataError
from conveyor.core.schema import Column, TableRef, TableSchema
from conveyor.core.types import ColumnType, Kind, decimal, simple, varchar
from conveyor.replication.expressions import ExpressionError, parse_data_type, parse_expression
from conveyor.replication.mapped_table import MappedTable
from conveyor.replication.mappings import TableMappings

ORIGIN = "mappings.json"
WEIRD = 'we"ird col'
PEOPLE = TableSchema(
    TableRef("public", "people"),
    (
        Column("id", simple(Kind.INT64), nullable=False),
        Column("first name", varchar(20)),
        Column("last", simple(Kind.TEXT)),
        Column("amount", decimal(10, 2)),
        Column("qty", simple(Kind.INT32)),
        Column("ratio", simple(Kind.FLOAT64)),
        Column("flag", simple(Kind.BOOLEAN)),
        Column("born", simple(Kind.DATE)),
        Column("at", simple(Kind.TIMESTAMP)),
        Column("at_tz", simple(Kind.TIMESTAMPTZ)),
        Column("starts", simple(Kind.TIME)),
        Column("raw", simple(Kind.BYTES)),
        Column(WEIRD, simple(Kind.TEXT)),
        Column("tags", ColumnType(Kind.ARRAY, element=simple(Kind.TEXT))),
    ),
    ("id",),
)
ROWS: list[dict[str, Any]] = [
    {
        "id": 1,
        "first name": "Ada",
        "last": "Lovelace",
        "amount": Decimal("250.50"),
        "qty": 5,
        "ratio": 0.25,
        "flag": True,
        "born": date(1815, 12, 10),
        "at": datetime(2024, 1, 31, 10, 11, 12, 123456),
        "at_tz": datetime(2024, 1, 31, 10, 0, tzinfo=UTC),
        "starts": time(9, 30),
        "raw": b"\x00\xff",
        WEIRD: "w",
        "tags": ["a"],
    },
    {
        "id": 2,
        "first name": "Alan",
        "last": None,
        "amount": Decimal("3.00"),
        "qty": -7,
        "ratio": None,
        "flag": False,
        "born": None,
        "at": None,
        "at_tz": None,
        "starts": None,
        "raw": None,
        WEIRD: None,
        "tags": None,
    },
]
BATCH = pa.RecordBatch.from_pylist(ROWS, schema=PEOPLE.arrow_schema())
LOADED = datetime(2025, 6, 1, 12, 0, 0, 5)


def add(
    expression: str, data_type: dict[str, Any], value: str = "x", rid: int = 2, table: str = "%"
) -> dict[str, Any]:
    return {
        "rule-type": "transformation",
        "rule-id": rid,
        "rule-name": f"t{rid}",
        "rule-action": "add-column",
        "rule-target": "column",
        "object-locator": {"schema-name": "%", "table-name": table},
        "value": value,
        "expression": expression,
        "data-type": data_type,
    }


ALL = {
    "rule-type": "selection",
    "rule-id": "1",
    "rule-name": "r1",
    "object-locator": {"schema-name": "%", "table-name": "%"},
    "rule-action": "include",
}


def mapped(*rules: dict[str, Any], table: TableSchema = PEOPLE) -> MappedTable:
    [result] = TableMappings.parse({"rules": [ALL, *rules]}, ORIGIN).select([table])
    return result


def evaluate(expression: str, data_type: dict[str, Any]) -> list[Any]:
    out = mapped(add(expression, data_type)).project(BATCH, timestamp=LOADED)
    assert out.schema == mapped(add(expression, data_type)).target.arrow_schema()
    return out.column("x").to_pylist()  # type: ignore[no-any-return]


STRING = {"type": "string", "length": 50}


@pytest.mark.parametrize(
    ("expression", "data_type", "expected"),
    [
        # concatenation, and SQLite's NULL propagation
        ("$\"first name\"||' '||$last", STRING, ["Ada Lovelace", None]),
        ("$last||'x'", STRING, ["Lovelacex", None]),
        ("ifnull($last, '?')", STRING, ["Lovelace", "?"]),
        ('coalesce($last, $"first name")', STRING, ["Lovelace", "Alan"]),
        # CASE; a decimal compares as a number (NUMERIC affinity)
        ("CASE WHEN $amount > 100 THEN 'big' ELSE 'small' END", STRING, ["big", "small"]),
        ("CASE WHEN $ratio > 0 THEN 'pos' END", STRING, ["pos", None]),  # NULL > 0 is NULL
        # functions
        ('upper($"first name")', STRING, ["ADA", "ALAN"]),
        ('substr($"first name", 2)', STRING, ["da", "lan"]),
        ("length($last)", {"type": "int4"}, [8, None]),
        ("replace($\"first name\", 'A', 'E')", STRING, ["Eda", "Elan"]),
        ("printf('%05.1f', $amount)", STRING, ["250.5", "003.0"]),
        # a decimal that is a whole number becomes INTEGER (NUMERIC affinity), as in DMS's SQLite
        (
            "typeof($amount)||'/'||typeof($qty)||'/'||typeof($flag)",
            STRING,
            ["real/integer/integer", "integer/integer/integer"],
        ),
        # numbers: SQLite integer division, REAL truncated into integer types
        ("$qty * 2", {"type": "int8"}, [10, -14]),
        ("$qty / 2", {"type": "int8"}, [2, -3]),
        ("$qty / 2.0", {"type": "real8"}, [2.5, -3.5]),
        ("$qty / 2.0", {"type": "int2"}, [2, -3]),
        (
            "$amount * 2",
            {"type": "numeric", "precision": 12, "scale": 2},
            [Decimal("501.00"), Decimal("6.00")],
        ),
        (
            "$amount / 3",
            {"type": "numeric", "precision": 12, "scale": 2},
            [Decimal("83.50"), Decimal("1.00")],
        ),
        ("$amount + 0.005", {"type": "numeric"}, ["250.505", "3.005"]),  # p > 38 or none: exact text
        ("$ratio * 10", {"type": "real4"}, [2.5, None]),
        ("$qty", {"type": "uint8"}, [Decimal(5), Decimal(-7)]),
        ("'42'", {"type": "int2"}, [42, 42]),  # well-formed numeric text converts
        ("$qty > 0", {"type": "boolean"}, [True, False]),
        ("NOT $flag", {"type": "boolean"}, [False, True]),
        ("CASE WHEN $flag THEN 'yes' ELSE 'no' END", {"type": "boolean"}, [True, False]),
        # dates and times are ISO text to SQLite
        ("$born", {"type": "date"}, [date(1815, 12, 10), None]),
        ("date($born, '+1 day')", {"type": "date"}, [date(1815, 12, 11), None]),
        ("strftime('%Y', $at)", {"type": "int4"}, [2024, None]),
        ("$at", {"type": "datetime"}, [datetime(2024, 1, 31, 10, 11, 12, 123456), None]),
        ("$at_tz", STRING, ["2024-01-31 10:00:00.000000", None]),
        ("datetime($at, '+1 hour')", {"type": "datetime"}, [datetime(2024, 1, 31, 11, 11, 12), None]),
        ("$starts", {"type": "time"}, [time(9, 30), None]),
        ("date('2020-02-28', '+1 day')", {"type": "date"}, [date(2020, 2, 29)] * 2),
        # bytes
        ("$raw", {"type": "bytes"}, [b"\x00\xff", None]),
        ("hex($raw)", STRING, ["00FF", ""]),  # SQLite: hex(NULL) is the empty string
        ('$"first name"', {"type": "blob"}, [b"Ada", b"Alan"]),
        ("$qty", {"type": "clob"}, ["5", "-7"]),
        # header variables
        ("$AR_M_SOURCE_SCHEMA||'.'||$AR_M_SOURCE_TABLE_NAME", STRING, ["public.people"] * 2),
        ("$AR_H_OPERATION", STRING, ["INSERT"] * 2),
        ("$AR_H_TIMESTAMP", STRING, ["2025-06-01 12:00:00.000005"] * 2),
        ("$AR_H_TIMESTAMP", {"type": "datetime"}, [LOADED] * 2),
        # weird names, and '$' that is no reference
        (f'$"{WEIRD.replace(chr(34), chr(34) * 2)}"', STRING, ["w", None]),
        ("'$5 off '||$qty", STRING, ["$5 off 5", "$5 off -7"]),
        ('"$last"', STRING, ["$last"] * 2),  # SQLite: a double-quoted unknown name is a string
        ("$qty -- a comment with $nothing\n + 1", {"type": "int8"}, [6, -6]),
        ("/* $nothing */ $qty", {"type": "int8"}, [5, -7]),
        ("NULL", {"type": "int8"}, [None, None]),
    ],
)
def test_evaluate(expression: str, data_type: dict[str, Any], expected: list[Any]) -> None:
    assert evaluate(expression, data_type) == expected


@pytest.mark.parametrize(
    ("expression", "data_type", "message"),
    [
        ("$last", {"type": "int8"}, "row 0: the expression's value 'Lovelace' is not a int64"),
        ("$qty * 10000", {"type": "int2"}, "row 0: the expression's value 50000 is not a int16"),
        ("$amount * 1000", {"type": "numeric", "precision": 5, "scale": 2}, "is not a decimal(5,2)"),
        ("'soon'", {"type": "date"}, "row 0: the expression's value 'soon' is not a date"),
        ("$qty", {"type": "datetime"}, "value 5 is not a timestamp"),
        ("'maybe'", {"type": "boolean"}, "value 'maybe' is not a boolean"),
        ("'1e999'", {"type": "real8"}, None),  # inf is a float: fine
        ("abs(-9223372036854775807 - 1)", {"type": "int8"}, "failed in SQLite: integer overflow"),
    ],
)
def test_conversion_errors(expression: str, data_type: dict[str, Any], message: str | None) -> None:
    table = mapped(add(expression, data_type))
    if message is None:
        table.project(BATCH)
        return
    with pytest.raises(DataError, match=re.escape(message)) as info:
        table.project(BATCH)
    text = str(info.value)
    assert text.startswith("table public.people: ")
    if "SQLite" not in message:
        assert "rule 2 (t2): added column 'x'" in text
        assert info.value.column == "x" and info.value.row == 0


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (add("$nope || 'x'", STRING), "mappings.json: rule 2 (t2): the expression of column 'x' names $nope"),
        (add("$LAST", STRING), "names $LAST, which table public.people does not have (did you mean $last?)"),
        (add("$tags", STRING), "names $tags, a text[] column expressions cannot use"),
    ],
)
def test_select_errors(rule: dict[str, Any], message: str) -> None:
    mappings = TableMappings.parse({"rules": [ALL, rule]}, ORIGIN)
    with pytest.raises(ConfigError, match=re.escape(message)):
        mappings.select([PEOPLE])


def without(rule: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in rule.items() if k != key}


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (add("$qty +", STRING), "rule 2 (t2): SQLite cannot compile the expression: incomplete input"),
        (add("nosuch($qty)", STRING), "SQLite cannot compile the expression: no such function: nosuch"),
        (add("upper()", STRING), "wrong number of arguments to function upper()"),
        (add("first_name || 'x'", STRING), "no such column: first_name"),  # columns need '$'
        (add("$AR_H_USER", STRING), "header variable $AR_H_USER is not supported (supported: $AR_M_"),
        (add("$AR_M_SOURCE_COLUMN_NAME", STRING), "header variable $AR_M_SOURCE_COLUMN_NAME"),
        (add("$qty + ?", STRING), "SQL parameters (?) are not allowed"),
        (add("$qty + :a", STRING), "SQL parameters (:) are not allowed"),
        (add("1; DROP TABLE b", STRING), "';' is not allowed"),
        (add("1) FROM b WHERE (1", STRING), "unbalanced ')' at offset 1"),
        (add("(1", STRING), "unbalanced '('"),
        (add("'abc", STRING), "unterminated ' at offset 0"),
        (add("$ + 1", STRING), "'$' at offset 0 names no column"),
        (add("  ", STRING), "the expression is empty"),
        (add("/* c */", STRING), "the expression is empty"),
        (add("1", {"type": "set"}), "data-type 'set' is not supported"),
        (add("1", {"type": "string", "length": 0}), "data-type 'length' must be an integer >= 1, not 0"),
        (add("1", {"type": "numeric", "precision": 5, "scale": 6}), "scale 6 is larger than precision 5"),
        (add("1", {"type": "string", "size": 3}), "unknown key 'size' in data-type"),
        (add("1", {"length": 3}), "data-type needs 'type'"),
        (add("1", "string"), "'data-type' must be an object, not str"),  # type: ignore[arg-type]
        (without(add("1", STRING), "data-type"), "rule 2 (t2): missing 'data-type'"),
        (without(add("1", STRING), "expression"), "rule 2 (t2): missing 'expression'"),
        (without(add("1", STRING), "value"), "rule 2 (t2): missing 'value'"),
        ({**add("1", STRING), "rule-target": "table"}, "rule-action 'add-column' needs rule-target 'column'"),
    ],
)
def test_parse_errors(rule: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)) as info:
        TableMappings.parse({"rules": [ALL, rule]}, ORIGIN)
    assert str(info.value).startswith("mappings.json: rule 2 (t2): ")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"type": "string"}, varchar(None)),
        ({"type": "string", "length": 50}, varchar(50)),
        ({"type": "wstring", "length": 5}, varchar(5)),
        ({"type": "int1"}, simple(Kind.INT16)),
        ({"type": "int2"}, simple(Kind.INT16)),
        ({"type": "int4"}, simple(Kind.INT32)),
        ({"type": "INT8"}, simple(Kind.INT64)),
        ({"type": "uint1"}, simple(Kind.INT16)),
        ({"type": "uint2"}, simple(Kind.INT32)),
        ({"type": "uint4"}, simple(Kind.INT64)),
        ({"type": "uint8"}, decimal(20, 0)),
        ({"type": "numeric", "precision": 10, "scale": 3}, decimal(10, 3)),
        ({"type": "numeric", "precision": 10}, decimal(10, 0)),
        ({"type": "numeric", "precision": 39, "scale": 3}, simple(Kind.NUMERIC)),
        ({"type": "numeric"}, simple(Kind.NUMERIC)),
        ({"type": "real4"}, simple(Kind.FLOAT32)),
        ({"type": "real8"}, simple(Kind.FLOAT64)),
        ({"type": "boolean"}, simple(Kind.BOOLEAN)),
        ({"type": "date"}, simple(Kind.DATE)),
        ({"type": "time"}, simple(Kind.TIME)),
        ({"type": "datetime"}, simple(Kind.TIMESTAMP)),
        ({"type": "bytes", "length": 10}, simple(Kind.BYTES)),
        ({"type": "blob"}, simple(Kind.BYTES)),
        ({"type": "clob"}, simple(Kind.TEXT)),
        ({"type": "nclob"}, simple(Kind.TEXT)),
    ],
)
def test_data_types(raw: dict[str, Any], expected: ColumnType) -> None:
    assert parse_data_type(raw) == expected


def test_parse_expression_references() -> None:
    expr = parse_expression('$a || $"b c" || $a || $AR_H_OPERATION')
    assert expr.columns == ("a", "b c")
    with pytest.raises(ExpressionError, match="no such column: x\\$y"):
        parse_expression("x$y")


def test_compute_added_for_cdc() -> None:
    table = mapped(
        add("$AR_H_OPERATION||':'||$\"first name\"", STRING, value="op", rid=2),
        add("$qty * 2", {"type": "int8"}, value="double", rid=3),
        add("$AR_H_TIMESTAMP", {"type": "datetime"}, value="ts", rid=4),
    )
    assert table.added_names == {"op", "double", "ts"}
    at = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert table.compute_added(ROWS, Op.INSERT, at) == [
        {"op": "INSERT:Ada", "double": 10, "ts": datetime(2025, 1, 2, 3, 4, 5)},
        {"op": "INSERT:Alan", "double": -14, "ts": datetime(2025, 1, 2, 3, 4, 5)},
    ]
    # An UPDATE that did not send qty (unchanged): 'double' is left out, the caller keeps it unchanged.
    [update] = table.compute_added([{"id": 1, "first name": "Bea"}], Op.UPDATE, at)
    assert update == {"op": "UPDATE:Bea", "ts": datetime(2025, 1, 2, 3, 4, 5)}
    [delete] = table.compute_added([{"id": 1}], Op.DELETE, at)
    assert delete == {"ts": datetime(2025, 1, 2, 3, 4, 5)}
    assert table.compute_added([]) == []
    assert mapped().compute_added(ROWS) == [{}, {}]


def test_compute_added_bad_value() -> None:
    table = mapped(add("$born", {"type": "date"}))
    with pytest.raises(
        DataError, match=r"column 'born' holds \[1\], which an expression cannot use as a date"
    ):
        table.compute_added([{"born": [1]}])
    with pytest.raises(DataError, match="row 0: the expression's value 'infinity' is not a date"):
        table.compute_added([{"born": "infinity"}])


@pytest.mark.parametrize(
    "expression",
    [
        '$"first name"||$last||$amount||$qty||$ratio||$flag||$born||$at||$at_tz||$starts||hex($raw)',
        "typeof($amount)||typeof($flag)||typeof($born)||typeof($raw)||typeof($ratio)",
    ],
)
def test_cdc_rows_see_the_values_a_batch_does(expression: str) -> None:
    table = mapped(add(expression, STRING))
    from_batch = table.project(BATCH).column("x").to_pylist()
    from_rows = [r.get("x") for r in table.compute_added(ROWS)]
    assert from_rows == from_batch
    assert from_batch[0] == (
        "AdaLovelace250.550.251"
        "1815-12-102024-01-31 10:11:12.1234562024-01-31 10:00:00.00000009:30:00.00000000FF"
        if "typeof" not in expression
        else "realintegertextblobreal"
    )


def test_timestamp_defaults_to_now() -> None:
    table = mapped(add("$AR_H_TIMESTAMP", {"type": "datetime"}))
    before = datetime.now(UTC).replace(tzinfo=None)
    [value] = table.project(BATCH.slice(0, 1)).column("x").to_pylist()
    assert before <= value <= datetime.now(UTC).replace(tzinfo=None)


def test_project_from_several_threads() -> None:
    from concurrent.futures import ThreadPoolExecutor

    table = mapped(add("$qty * 3", {"type": "int8"}))
    big = pa.concat_batches([BATCH] * 500) if hasattr(pa, "concat_batches") else BATCH
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: table.project(big).column("x").to_pylist(), range(8)))
    assert all(r == [15, -21] * (big.num_rows // 2) for r in results)
