"""DynamoDB without a server: rejected values (load errors), incremental
settings and high-water-mark arithmetic."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from conveyor.connectors.dynamodb.flatten import flatten, items_from_python
from conveyor.connectors.dynamodb.incremental import IncrementalSettings, _later, _minus, observe
from conveyor.connectors.dynamodb.infer import DocumentLayout, Node, layout
from conveyor.core.errors import ConfigError, DataError
from conveyor.core.schema import TableRef


def _layout(items: pa.Array, **kw: Any) -> DocumentLayout:
    node = Node()
    node.observe_map(items)
    return layout(node, TableRef("dynamodb", "T"), {"pk": "S"}, **kw)


def test_rejected_values_carry_key_column_value_and_reason() -> None:
    sample = items_from_python([{"pk": {"S": "a"}, "n": {"N": "1"}, "m": {"M": {"d": {"S": "2024-01-01"}}}}])
    doc = _layout(sample, variant=None)
    items = items_from_python(
        [
            {"pk": {"S": "a"}, "n": {"N": "2"}},
            {"pk": {"S": "b"}, "n": {"BOOL": True}, "extra": {"N": "5"}},
            {"pk": {"S": "c"}, "n": {"N": "99999999999999999999999"}},
        ]
    )
    with pytest.raises(DataError):
        flatten(items, doc.parent)
    result = flatten(items, doc.parent, reject=True)
    assert result.batch.column("n").to_pylist() == [2, None, None]
    rejected = [(r.key, r.column, r.value) for r in result.rejected]
    assert rejected == [
        ({"pk": "b"}, "extra", '{"N": "5"}'),
        ({"pk": "b"}, "n", '{"BOOL": true}'),
        ({"pk": "c"}, "n", '{"N": "99999999999999999999999"}'),
    ]
    reasons = [r.reason for r in result.rejected]
    assert "is not a column" in reasons[0]
    assert "value of type BOOL where column 'n' (int64) holds N values" in reasons[1]
    assert "the N value does not fit column 'n' (int64)" in reasons[2]
    assert all(r.table == TableRef("dynamodb", "T") for r in result.rejected)
    assert result.drift == {"extra"} and result.variants == 2
    # With a variant column nothing is rejected.
    assert flatten(items, _layout(sample).parent, reject=True).rejected == []


def test_incremental_settings() -> None:
    parsed = IncrementalSettings.parse("e", {"attribute": "updated_at", "start": 10, "number_unit": "ms"})
    assert (parsed.type, parsed.start, parsed.units_per_second) == ("N", "10", 1000)
    assert IncrementalSettings.parse("e", "ts").attribute == "ts"
    assert IncrementalSettings.parse("e", {"attribute": "ts", "type": "string"}).type == "S"
    for bad, message in [
        ({}, "needs the modified-at attribute"),
        ({"attribute": "a", "type": "date"}, "type must be"),
        ({"attribute": "a", "number_unit": "h"}, "number_unit"),
        ({"attribute": "a", "high_water_mark_store": "s3"}, "high_water_mark_store"),
    ]:
        with pytest.raises(ConfigError, match=message):
            IncrementalSettings.parse("e", bad)
    assert (
        IncrementalSettings.parse("e", "a").filter(None, None)["FilterExpression"] == "attribute_exists(#m)"
    )
    later = IncrementalSettings.parse("e", {"attribute": "a", "overlap_seconds": 2}).filter("10", "N")
    assert later["FilterExpression"] == "#m > :hwm"
    assert later["ExpressionAttributeValues"] == {":hwm": {"N": "8"}}


def test_high_water_mark_arithmetic() -> None:
    assert _minus("2024-01-01T00:00:05Z", "S", 10, 1) == "2023-12-31T23:59:55Z"
    assert _minus("2024-01-01 00:00:05.250+02:00", "S", 0.5, 1) == "2024-01-01 00:00:04.750+02:00"
    assert _minus("not a time", "S", 10, 1) == "not a time"
    assert _minus("1700000000000", "N", 1.5, 1000) == "1699999998500"
    assert _minus("5", "N", 0, 1) == "5"
    assert _later("9", "10", "N") == "10" and _later("9", "10", "S") == "9"
    assert _later(None, "1", "N") == "1" and _later("1", None, "N") == "1"


def test_observe_learns_type_mark_and_longest_lists() -> None:
    items = items_from_python(
        [
            {"pk": {"S": "a"}, "u": {"S": "2024-01-02"}, "l": {"L": [{"M": {}}, {"M": {}}, {"M": {}}]}},
            {"pk": {"S": "b"}, "u": {"S": "2024-01-03"}, "l": {"L": [{"M": {"x": {"N": "1"}}}]}},
            {"pk": {"S": "c"}},
        ]
    )
    doc = _layout(items)
    state: dict[str, Any] = {"high_water_mark": None, "type": None}
    settings = IncrementalSettings.parse("e", "u")
    assert observe(state, items, doc.children, settings) == "2024-01-03"
    assert state == {"high_water_mark": None, "type": "S", "lists": {"T_l": 3}}


def test_tasks_describe_lists_drift_per_table(capsys: pytest.CaptureFixture[str]) -> None:
    from conveyor.cli.tasks import _print_described

    table = {
        "SchemaName": "dynamodb",
        "TableName": "Orders",
        "TableState": "Table completed",
        "FullLoadRows": 3,
        "FullLoadErrorRows": 0,
        "RowsPerSecond": 1.0,
        "Drift": ["new column coupon (text) at 2026-01-01T00:00:00+00:00"],
    }
    _print_described(
        {"task": "t", "status": "stopped", "tables": [table, {**table, "TableName": "x"} | {"Drift": []}]}
    )
    out = capsys.readouterr().out
    assert "drift: dynamodb.Orders: new column coupon (text) at 2026-01-01T00:00:00+00:00" in out
    assert "drift: dynamodb.x" not in out


def test_a_mixed_attribute_under_a_column_types_override_converts_or_is_rejected() -> None:
    """An attribute seen as S and N, overridden to decimal: values whose text is an
    exact decimal(10,2) load; the rest go to the load-errors table with a reason."""
    sample = items_from_python(
        [{"pk": {"S": "a"}, "price": {"S": "1.50"}}, {"pk": {"S": "b"}, "price": {"N": "2"}}]
    )
    doc = _layout(sample, variant=None, column_types={"T": {"price": "decimal(10,2)"}})
    items = items_from_python(
        [
            {"pk": {"S": "a"}, "price": {"S": "n/a"}},
            {"pk": {"S": "b"}, "price": {"N": "2.5"}},
            {"pk": {"S": "c"}, "price": {"S": "3.25"}},
            {"pk": {"S": "d"}, "price": {"BOOL": True}},
            {"pk": {"S": "e"}, "price": {"NULL": True}},
            {"pk": {"S": "f"}, "price": {"N": "1.005"}},
        ]
    )
    with pytest.raises(DataError, match="does not fit its column"):
        flatten(items, doc.parent)
    result = flatten(items, doc.parent, reject=True)
    assert result.batch.column("price").to_pylist() == [
        None,
        Decimal("2.50"),
        Decimal("3.25"),
        None,
        None,
        None,
    ]
    assert [(r.key, r.value) for r in result.rejected] == [
        ({"pk": "a"}, '{"S": "n/a"}'),
        ({"pk": "d"}, '{"BOOL": true}'),
        ({"pk": "f"}, '{"N": "1.005"}'),
    ]
    assert (
        result.rejected[0].reason == "the S value does not convert exactly to column 'price' (decimal(10,2))"
    )
    # As text (no override) every value is kept as its JSON.
    as_text = flatten(items, _layout(sample, variant=None).parent, reject=True)
    assert as_text.rejected == []
    assert as_text.batch.column("price").to_pylist() == ['"n/a"', "2.5", '"3.25"', "true", None, "1.005"]
