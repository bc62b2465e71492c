"""DynamoDB items to tables without a server: inference, flattening, variants,
raw Scan pages, backoff and the read budget."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest
from botocore.exceptions import ClientError

from conveyor.connectors.base import EndpointConfig
from conveyor.connectors.dynamodb.client import Backoff, DynamoClient, TokenBucket
from conveyor.connectors.dynamodb.flatten import (
    PageReader,
    flatten,
    items_from_python,
    read_page,
    read_pages,
)
from conveyor.connectors.dynamodb.infer import DocumentLayout, Node, layout, parse_type
from conveyor.core.errors import ConfigError, DataError, TransientError
from conveyor.core.schema import TableRef
from conveyor.core.types import Kind

SEED = {
    "OrderId": {"S": "ORD-20240615-0001"},
    "CustomerId": {"S": "CUST-2994"},
    "OrderDate": {"S": "2024-06-15T09:12:11Z"},
    "Items": {
        "L": [{"M": {"Sku": {"S": "A77"}, "Q": {"N": "3"}}}, {"M": {"Sku": {"S": "F23"}, "Q": {"N": "7"}}}]
    },
    "Total": {"N": "424.50"},
}


def _page(items: list[dict[str, Any]], last_key: dict[str, Any] | None = None) -> bytes:
    body: dict[str, Any] = {"Items": items, "Count": len(items), "ScannedCount": len(items)}
    if last_key:
        body["LastEvaluatedKey"] = last_key
    body["ConsumedCapacity"] = {"TableName": "t", "CapacityUnits": 1.5}
    return json.dumps(body, separators=(",", ":")).encode()


def _layout(items: pa.Array, keys: dict[str, str], name: str = "Orders", **kw: Any) -> DocumentLayout:
    node = Node()
    node.observe_map(items)
    return layout(node, TableRef("dynamodb", name), keys, **kw)


def _tables(items: pa.Array, doc: DocumentLayout) -> dict[str, list[dict[str, Any]]]:
    return {t.schema.ref.name: flatten(items, t).batch.to_pylist() for t in doc.tables()}


@pytest.mark.parametrize("via", ["page", "python"])
def test_seed_item_decomposes_exactly(via: str) -> None:
    items = read_page(_page([SEED])).items if via == "page" else items_from_python([SEED])
    doc = _layout(items, {"OrderId": "S"}, variant=None, child_names={"Orders.Items": "order_items"})
    assert [t.schema.ref.name for t in doc.tables()] == ["Orders", "order_items"]
    orders, lines = doc.parent.schema, doc.children[0].schema
    assert [(c.name, c.type.describe()) for c in orders.columns] == [
        ("OrderId", "text"),
        ("CustomerId", "text"),
        ("OrderDate", "timestamptz"),
        ("Total", "decimal(38,2)"),
    ]
    assert [(c.name, c.type.describe()) for c in lines.columns] == [
        ("OrderId", "text"),
        ("position", "int64"),
        ("Sku", "text"),
        ("Q", "int64"),
    ]
    assert lines.primary_key == ("OrderId", "position")
    assert _tables(items, doc) == {
        "Orders": [
            {
                "OrderId": "ORD-20240615-0001",
                "CustomerId": "CUST-2994",
                "OrderDate": datetime(2024, 6, 15, 9, 12, 11, tzinfo=UTC),
                "Total": Decimal("424.50"),
            }
        ],
        "order_items": [
            {"OrderId": "ORD-20240615-0001", "position": 0, "Sku": "A77", "Q": 3},
            {"OrderId": "ORD-20240615-0001", "position": 1, "Sku": "F23", "Q": 7},
        ],
    }


def test_page_keeps_iso_strings_as_written_and_reads_the_page_metadata() -> None:
    reader = PageReader()
    first = reader.read_page(
        _page([{"pk": {"S": "a"}, "when": {"S": "2024-06-15T09:12:11Z"}}], {"pk": {"S": "a"}})
    )
    assert first.items.field("when").field("S").to_pylist() == ["2024-06-15T09:12:11Z"]
    assert first.last_key == {"pk": {"S": "a"}} and first.consumed == 1.5 and first.count == 1
    # A later page with a new timestamp-looking attribute is parsed again, not altered.
    second = reader.read_page(_page([{"pk": {"S": "b"}, "later": {"S": "2024-01-01 00:00:00"}}]))
    assert second.items.field("later").field("S").to_pylist() == ["2024-01-01 00:00:00"]
    assert second.last_key is None
    binary = read_page(_page([{"pk": {"S": "c"}}], {"pk": {"B": base64.b64encode(b"\x00k").decode()}}))
    assert binary.last_key == {"pk": {"B": b"\x00k"}}
    both = read_pages([_page([SEED]), _page([{"OrderId": {"S": "x"}}])])
    assert both.field("OrderId").field("S").to_pylist() == ["ORD-20240615-0001", "x"]
    assert both.field("OrderDate").field("S").to_pylist() == ["2024-06-15T09:12:11Z", None]


def test_number_lattice() -> None:
    items = items_from_python(
        [
            {
                "pk": {"S": str(i)},
                "i": {"N": str(i)},
                "big": {"N": "9223372036854775808"},  # int64 max + 1
                "d": {"N": "1.25" if i else "-3"},
                "huge": {"N": "1" * 39},
                "sci": {"N": "1E+40"},
            }
            for i in range(3)
        ]
    )
    doc = _layout(items, {"pk": "S"})
    types = {c.name: c.type.describe() for c in doc.parent.schema.columns}
    assert types["i"] == "int64"
    assert types["big"] == "decimal(38,0)"
    assert types["d"] == "decimal(38,2)"
    assert types["huge"] == "numeric"
    assert types["sci"] == "numeric"
    rows = flatten(items, doc.parent).batch.to_pylist()
    assert rows[0]["big"] == Decimal("9223372036854775808")
    assert rows[0]["huge"] == "1" * 39 and rows[0]["d"] == Decimal("-3.00")


def test_string_lattice_and_text_kept_exact() -> None:
    items = items_from_python(
        [
            {
                "pk": {"S": "1"},
                "tz": {"S": "2024-06-15T09:12:11+02:00"},
                "naive": {"S": "2024-06-15 09:12:11.5"},
            },
            {"pk": {"S": "2"}, "tz": {"S": "2024-06-15T09:12:11Z"}, "mixed": {"S": "2024-06-15T09:12:11Z"}},
            {"pk": {"S": "3"}, "mixed": {"S": "soon"}},
        ]
    )
    doc = _layout(items, {"pk": "S"})
    types = {c.name: c.type.kind for c in doc.parent.schema.columns}
    assert (
        types["tz"] is Kind.TIMESTAMPTZ and types["naive"] is Kind.TIMESTAMP and types["mixed"] is Kind.TEXT
    )
    rows = {r["pk"]: r for r in flatten(items, doc.parent).batch.to_pylist()}
    assert rows["1"]["tz"] == datetime(2024, 6, 15, 7, 12, 11, tzinfo=UTC)
    assert rows["1"]["naive"] == datetime(2024, 6, 15, 9, 12, 11, 500000)
    assert rows["2"]["mixed"] == "2024-06-15T09:12:11Z"


def test_lists_sets_maps_and_json() -> None:
    items = items_from_python(
        [
            {
                "pk": {"S": "1"},
                "tags": {"L": [{"S": "a"}, {"S": "b"}]},
                "nums": {"L": [{"N": "1.5"}, {"N": "2"}]},
                "mixed": {"L": [{"S": "a"}, {"N": "1"}, {"NULL": True}, {"M": {"k": {"BOOL": False}}}]},
                "empty": {"L": []},
                "nested": {"L": [{"L": [{"N": "1"}]}]},
                "either": {"S": "x"},
                "ss": {"SS": ["p", "q"]},
                "m": {"M": {"a": {"M": {"b": {"N": "12345678901234567890123"}}}, "flag": {"BOOL": True}}},
            },
            {"pk": {"S": "2"}, "either": {"N": "3.10"}, "tags": {"NULL": True}, "m": {"NULL": True}},
        ]
    )
    doc = _layout(items, {"pk": "S"})
    types = {c.name: c.type.describe() for c in doc.parent.schema.columns}
    assert types == {
        "pk": "text",
        "tags": "text[]",
        "nums": "decimal(38,1)[]",
        "mixed": "json",
        "empty": "json",
        "nested": "json",
        "either": "json",
        "ss": "text[]",
        "m__a__b": "decimal(38,0)",
        "m__flag": "boolean",
        "_variant": "json",
    }
    rows = {r["pk"]: r for r in flatten(items, doc.parent).batch.to_pylist()}
    one, two = rows["1"], rows["2"]
    assert one["tags"] == ["a", "b"] and one["nums"] == [Decimal("1.5"), Decimal("2.0")]
    assert one["mixed"] == '["a",1,null,{"k":false}]'
    assert one["empty"] == "[]" and one["nested"] == "[[1]]"
    assert one["either"] == '"x"' and two["either"] == "3.10"  # numbers keep their text
    assert one["m__a__b"] == Decimal("12345678901234567890123") and one["m__flag"] is True
    assert two["tags"] is None and two["m__flag"] is None and two["_variant"] is None


def test_child_positions_with_empty_absent_and_null_lists() -> None:
    def order(key: str, skus: list[str] | None) -> dict[str, Any]:
        item: dict[str, Any] = {"id": {"N": key}}
        if skus is not None:
            item["lines"] = {"L": [{"M": {"sku": {"S": s}, "a": {"M": {"b": {"S": s * 2}}}}} for s in skus]}
        return item

    items = items_from_python(
        [
            order("1", ["x", "y"]),
            order("2", []),
            order("3", None),
            {"id": {"N": "4"}, "lines": {"NULL": True}},
            order("5", ["z"]),
        ]
    )
    doc = _layout(items, {"id": "N"}, name="o")
    child = doc.children[0]
    assert child.schema.ref.name == "o_lines"
    assert child.schema.column_names == ["id", "position", "sku", "a__b", "_variant"]
    rows = [(r["id"], r["position"], r["sku"], r["a__b"]) for r in flatten(items, child).batch.to_pylist()]
    assert rows == [(1, 0, "x", "xx"), (1, 1, "y", "yy"), (5, 0, "z", "zz")]
    # Slices (a page cut into batches) keep positions.
    assert [r["position"] for r in flatten(items.slice(4), child).batch.to_pylist()] == [0]


def test_conflicting_values_go_to_the_variant_column_or_fail() -> None:
    sample = items_from_python([{"pk": {"S": "1"}, "n": {"N": "1"}, "when": {"S": "2024-06-15T09:12:11Z"}}])
    later = items_from_python(
        [
            {"pk": {"S": "2"}, "n": {"N": "1.5"}, "when": {"S": "not a date"}},
            {"pk": {"S": "3"}, "n": {"S": "x"}, "new": {"BS": [b"\x01"]}, "lines": {"S": "odd"}},
            {"pk": {"S": "4"}, "n": {"N": "4"}},
        ]
    )
    doc = _layout(sample, {"pk": "S"})
    result = flatten(later, doc.parent)
    rows = {r["pk"]: r for r in result.batch.to_pylist()}
    assert rows["2"]["n"] is None and rows["2"]["when"] is None
    assert json.loads(rows["2"]["_variant"]) == {"n": {"N": "1.5"}, "when": {"S": "not a date"}}
    assert json.loads(rows["3"]["_variant"]) == {
        "n": {"S": "x"},
        "new": {"BS": ["AQ=="]},
        "lines": {"S": "odd"},
    }
    assert rows["4"] == {"pk": "4", "n": 4, "when": None, "_variant": None}
    assert result.drift == {"new", "lines"} and result.variants == 2
    strict = _layout(sample, {"pk": "S"}, variant=None)
    with pytest.raises(DataError, match=r"item \{'pk': '2'\}: attribute 'n'"):
        flatten(later, strict.parent)


def test_column_type_overrides_and_lengths() -> None:
    items = items_from_python([SEED, {**SEED, "OrderId": {"S": "X" * 40}, "Total": {"N": "1.234"}}])
    doc = _layout(
        items.slice(0, 1),
        {"OrderId": "S"},
        column_types={
            "Orders": {"OrderId": "varchar(32)", "OrderDate": "timestamp", "Total": "decimal(12,2)"}
        },
    )
    types = {c.name: c.type.describe() for c in doc.parent.schema.columns}
    assert types["OrderId"] == "varchar(32)" and types["Total"] == "decimal(12,2)"
    assert types["OrderDate"] == "timestamp"
    rows = flatten(items, doc.parent).batch.to_pylist()
    assert rows[0]["OrderDate"] == datetime(2024, 6, 15, 9, 12, 11)
    # Never truncated: too long and too precise go to the variant column.
    assert rows[1]["OrderId"] is None and rows[1]["Total"] is None
    assert set(json.loads(rows[1]["_variant"])) == {"OrderId", "Total"}
    assert parse_type("int[]").kind is Kind.ARRAY
    with pytest.raises(ValueError, match="unknown column type"):
        parse_type("geometry")
    with pytest.raises(ConfigError, match=r"column_types: Orders.Total: unknown column type"):
        _layout(items, {"OrderId": "S"}, column_types={"Orders": {"Total": "money!"}})


def test_backoff_is_full_jitter_and_bounded() -> None:
    backoff = Backoff(base=0.1, cap=1.0)
    delays = [backoff.delay(a) for a in range(1, 12) for _ in range(50)]
    assert all(0 <= d <= 1.0 for d in delays)
    assert max(backoff.delay(1) for _ in range(200)) <= 0.2


def test_token_bucket_waits_for_spent_capacity() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    bucket = TokenBucket(10.0, clock=lambda: now[0], sleep=sleep)
    bucket.take()
    bucket.spend(25.0)  # 10 in the bucket: 15 owed, 1.5 s at 10/s
    bucket.take()
    assert slept and sum(slept) == pytest.approx(1.5, abs=0.01)
    bucket.spend(1.0)
    assert bucket.tokens < 0


def test_client_retries_throttling_then_gives_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    config = EndpointConfig("ddb", "dynamodb", options={"endpoint_url": "http://127.0.0.1:9", "settings": {}})
    slept: list[float] = []
    client = DynamoClient(config, backoff=Backoff(base=0.01, cap=0.02, max_attempts=4, sleep=slept.append))
    calls = {"n": 0}

    def throttled(**_: Any) -> dict[str, Any]:
        calls["n"] += 1
        if calls["n"] < 3:
            code = "ProvisionedThroughputExceededException" if calls["n"] == 1 else "ThrottlingException"
            raise ClientError({"Error": {"Code": code, "Message": "slow down"}}, "Scan")
        return {"TableNames": ["t"]}

    monkeypatch.setattr(client._client, "list_tables", throttled)
    assert client.call("list_tables") == {"TableNames": ["t"]}
    assert calls["n"] == 3 and len(slept) == 2 and client.retries == 2

    def always(**_: Any) -> dict[str, Any]:
        raise ClientError({"Error": {"Code": "RequestLimitExceeded", "Message": "no"}}, "Scan")

    monkeypatch.setattr(client._client, "list_tables", always)
    with pytest.raises(TransientError, match="after 4 attempts"):
        client.call("list_tables")
    client.close()
