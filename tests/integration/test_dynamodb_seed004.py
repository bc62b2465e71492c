"""Seed 004's stack through the CLI, against moto: DynamoDB
``Orders`` selected by name (its child table ``Orders_Items`` comes with it),
the seed's DDL (``order_items`` without ``position``: a mapping removes it),
full load then change capture by incremental scans and by DynamoDB Streams.
No child row is lost: a child table keyed by its parent alone is replaced per
parent."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import duckdb
import pytest

from support import tasks as support_tasks
from support.cli import conveyor

pytestmark = pytest.mark.e2e

DEADLINE_S = 60
# The seed's DDL, as written (the warehouse's tables).
SEED_DDL = (
    "CREATE TABLE orders (order_id VARCHAR(32) PRIMARY KEY, customer_id VARCHAR(32), "
    "order_date TIMESTAMP, total NUMERIC(12,2))",
    "CREATE TABLE order_items (order_id VARCHAR(32), sku VARCHAR(16), quantity INT)",
)


@pytest.fixture
def moto(moto_url: str) -> Iterator[str]:
    """The moto server, whose ``Orders`` table (named as the seed's) goes afterwards."""
    yield moto_url
    client = boto3.client("dynamodb", endpoint_url=moto_url, region_name="us-east-1")
    with contextlib.suppress(client.exceptions.ResourceNotFoundException):
        client.delete_table(TableName="Orders")


def _order(n: int, lines: int, stamp: str, total: str = "10.50") -> dict[str, Any]:
    return {
        "OrderId": f"ORD-20240615-{n:04d}",
        "CustomerId": f"CUST-{n}",
        "OrderDate": "2024-06-15T09:12:11Z",
        "Items": [{"Sku": f"S{n}-{j}", "Q": j + 1} for j in range(lines)],
        "Total": Decimal(total),
        "UpdatedAt": stamp,
    }


def _rules() -> list[dict[str, Any]]:
    def rule(
        rule_id: int, target: str, locator: dict[str, str], action: str, value: str = ""
    ) -> dict[str, Any]:
        document = {
            "rule-type": "transformation",
            "rule-id": str(rule_id),
            "rule-name": f"r{rule_id}",
            "rule-target": target,
            "object-locator": {"schema-name": "dynamodb", **locator},
            "rule-action": action,
        }
        return document | ({"value": value} if value else {})

    rules = [
        {
            "rule-type": "selection",
            "rule-id": "1",
            "rule-name": "orders",
            "object-locator": {"schema-name": "dynamodb", "table-name": "Orders"},
            "rule-action": "include",
        },
        rule(2, "schema", {}, "rename", "main"),
        rule(3, "table", {"table-name": "Orders"}, "rename", "orders"),
        rule(4, "table", {"table-name": "Orders_Items"}, "rename", "order_items"),
        rule(5, "column", {"table-name": "Orders_Items", "column-name": "position"}, "remove-column"),
        rule(6, "column", {"table-name": "Orders", "column-name": "UpdatedAt"}, "remove-column"),
    ]
    renames = [
        ("Orders", "OrderId", "order_id"),
        ("Orders", "CustomerId", "customer_id"),
        ("Orders", "OrderDate", "order_date"),
        ("Orders", "Total", "total"),
        ("Orders_Items", "OrderId", "order_id"),
        ("Orders_Items", "Sku", "sku"),
        ("Orders_Items", "Q", "quantity"),
    ]
    for i, (table, column, value) in enumerate(renames):
        rules.append(rule(10 + i, "column", {"table-name": table, "column-name": column}, "rename", value))
    return rules


def _stack(tmp_path: Path, url: str, incremental: bool, prep_mode: str) -> Path:
    settings: dict[str, Any] = {
        "variant_column": None,
        "column_types": {
            "Orders": {
                "OrderId": "varchar(32)",
                "CustomerId": "varchar(32)",
                "OrderDate": "timestamp",
                "Total": "decimal(12,2)",
            },
            "Orders_Items": {"OrderId": "varchar(32)", "Sku": "varchar(16)", "Q": "int32"},
        },
    }
    if incremental:
        settings["incremental"] = {"attribute": "UpdatedAt", "interval_seconds": 0.5}
    document = {
        "endpoints": {
            "ddb": {"engine": "dynamodb", "endpoint_url": url, "region": "us-east-1", "settings": settings},
            "dw": {"engine": "duckdb", "path": str(tmp_path / "dw.duckdb")},
        },
        "tasks": {
            "orders": {
                "source": "ddb",
                "target": "dw",
                "migration_type": "full-load-and-cdc",
                "table_mappings": {"rules": _rules()},
                "settings": {"FullLoadSettings": {"TargetTablePrepMode": prep_mode}},
            }
        },
    }
    path = tmp_path / "conveyor.yaml"
    path.write_text(json.dumps(document))
    return path


def _describe(home: Path) -> dict[str, Any]:
    """`conveyor tasks describe orders --json`, read in this process (it is polled)."""
    return support_tasks.described(home, "orders")


def _table(described: dict[str, Any], name: str) -> dict[str, Any]:
    return next((t for t in described["tables"] if t["TableName"] == name), {})


def _wait(home: Path, check: Any, what: str) -> dict[str, Any]:
    deadline = time.monotonic() + DEADLINE_S
    while True:
        described = _describe(home)
        if check(described):
            return described
        assert described["status"] in {"starting", "running"}, described
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {described}"
        time.sleep(0.3)


def _expected(orders: dict[str, dict[str, Any]]) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    parents = sorted((o["OrderId"], o["CustomerId"], o["Total"]) for o in orders.values())
    children = sorted((o["OrderId"], i["Sku"], i["Q"]) for o in orders.values() for i in o["Items"])
    return parents, children


def _target(path: Path) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    with duckdb.connect(str(path), read_only=True) as conn:
        parents = conn.execute("SELECT order_id, customer_id, total FROM main.orders ORDER BY ALL").fetchall()
        children = conn.execute(
            "SELECT order_id, sku, quantity FROM main.order_items ORDER BY ALL"
        ).fetchall()
    return parents, children


@pytest.mark.parametrize(
    ("mode", "prep_mode"), [("incremental", "DROP_AND_CREATE"), ("streams", "DO_NOTHING")]
)
def test_seed_004_stack_loses_no_child_row(moto: str, tmp_path: Path, mode: str, prep_mode: str) -> None:
    incremental = mode == "incremental"
    resource = boto3.resource("dynamodb", endpoint_url=moto, region_name="us-east-1")
    spec: dict[str, Any] = {}
    if not incremental:
        spec["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}
    table = resource.create_table(
        TableName="Orders",
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "OrderId", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "OrderId", "AttributeType": "S"}],
        **spec,
    )
    orders = {
        o["OrderId"]: o for o in (_order(1, 8, "2024-06-15T09:12:11Z"), _order(2, 3, "2024-06-15T09:12:12Z"))
    }
    orders |= {o["OrderId"]: o for o in [_order(3, 5, "2024-06-15T09:12:13Z")]}
    for item in orders.values():
        table.put_item(Item=item)
    if prep_mode == "DO_NOTHING":  # the tables as the seed's DDL creates them
        with duckdb.connect(str(tmp_path / "dw.duckdb")) as conn:
            for statement in SEED_DDL:
                conn.execute(statement)
    home = tmp_path / "home"
    applied = conveyor(home, "apply", str(_stack(tmp_path, moto, incremental, prep_mode)))
    assert applied.returncode == 0, applied.stderr
    assert conveyor(home, "tasks", "start", "orders").returncode == 0
    try:
        loaded = _wait(
            home,
            lambda d: d.get("capture") is not None and _table(d, "order_items").get("FullLoadRows"),
            "the full load",
        )
        assert _table(loaded, "order_items")["FullLoadRows"] == 16
        assert _table(loaded, "orders")["FullLoadRows"] == 3
        # Changes: the 8-line order changes every line, one order shrinks, one is new.
        changed = [
            _order(1, 8, "2024-06-16T00:00:01Z", "99.00"),
            _order(2, 1, "2024-06-16T00:00:02Z"),
            _order(4, 6, "2024-06-16T00:00:03Z"),
        ]
        changed[0]["Items"] = [{"Sku": f"N{j}", "Q": 100 + j} for j in range(8)]
        for item in changed:
            table.put_item(Item=item)
            orders[item["OrderId"]] = item
        if not incremental:  # a delete, which only streams see
            table.delete_item(Key={"OrderId": "ORD-20240615-0003"})
            del orders["ORD-20240615-0003"]
        # Streams replay from the trim horizon: the three first writes come again too.
        wanted = 3 if incremental else 3 + 4
        described = _wait(
            home,
            lambda d: (
                _table(d, "orders").get("Updates", 0)
                + _table(d, "orders").get("Inserts", 0)
                + _table(d, "orders").get("Deletes", 0)
                >= wanted
            ),
            "the changes",
        )
        time.sleep(1)  # the child table's share of the same batches
        described = _describe(home)
    finally:
        conveyor(home, "tasks", "stop", "orders")
    _wait_stopped(home)
    assert _target(tmp_path / "dw.duckdb") == _expected(orders)
    assert len(_expected(orders)[1]) == (20 if incremental else 15)
    assert _table(described, "order_items").get("SuspendedReason") is None
    latency = described["capture"]["CDCLatencySource"]
    if incremental:  # measured from the pass's read, not from UpdatedAt (2024)
        assert latency is not None and 0 <= latency < DEADLINE_S, latency
    with duckdb.connect(str(tmp_path / "dw.duckdb"), read_only=True) as conn:
        keys = conn.execute(
            "SELECT table_name, constraint_column_names FROM duckdb_constraints() "
            "WHERE constraint_type = 'PRIMARY KEY' AND table_name LIKE 'order%' ORDER BY ALL"
        ).fetchall()
    assert keys == [("orders", ["order_id"])]  # order_items: no key, as the seed's DDL


def _wait_stopped(home: Path) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while _describe(home)["status"] not in {"stopped", "failed"}:
        assert time.monotonic() < deadline, "the task did not stop"
        time.sleep(0.3)
    assert _describe(home)["status"] == "stopped", _describe(home)
