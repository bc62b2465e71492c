"""The DynamoDB source against a moto server on loopback: the seed's order item
as two tables, every DynamoDB type, drift, throttling through a proxy, parallel
segments, scan checkpoints and a full load into DuckDB."""

from __future__ import annotations

import http.client
import json
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pyarrow as pa
import pytest

from conveyor.connectors.base import EndpointConfig, PrepMode
from conveyor.connectors.captured_rows import row_changes
from conveyor.connectors.changes import Commit, RowChange, TableDefinition
from conveyor.connectors.duckdb.apply import DuckDBApplier
from conveyor.connectors.duckdb.target import DuckDBTarget
from conveyor.connectors.dynamodb.scan_checkpoint import ScanCheckpoint
from conveyor.connectors.dynamodb.source import DynamoDBSource
from conveyor.connectors.dynamodb.streams import DynamoDBChangeSource
from conveyor.core.batch import ChangeBatch, Checkpoint
from conveyor.core.errors import ConfigError, TerminalError
from conveyor.core.schema import TableRef, TableSchema
from conveyor.core.types import Kind
from conveyor.replication.cdc.capture_table import CaptureTable
from conveyor.replication.cdc.runner import ChangeCapture
from conveyor.replication.full_load import FullLoad
from conveyor.replication.mappings import TableMappings
from conveyor.replication.table_plan import TABLE_COMPLETED, TablePlan

CREDS = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}
SEED_ITEM = {
    "OrderId": "ORD-20240615-0001",
    "CustomerId": "CUST-2994",
    "OrderDate": "2024-06-15T09:12:11Z",
    "Items": [{"Sku": "A77", "Q": 3}, {"Sku": "F23", "Q": 7}],
    "Total": Decimal("424.50"),
}


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("CONVEYOR_HOME", str(tmp_path / "home"))


_counter = iter(range(1_000_000))


def _table(url: str, name: str, keys: tuple[tuple[str, str, str], ...] = (("pk", "S", "HASH"),)) -> Any:
    resource = boto3.resource("dynamodb", endpoint_url=url, region_name="us-east-1", **CREDS)
    name = f"{name}{next(_counter)}"
    table = resource.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": a, "KeyType": k} for a, _, k in keys],
        AttributeDefinitions=[{"AttributeName": a, "AttributeType": t} for a, t, _ in keys],
    )
    return table


def _source(url: str, table: str, **settings: Any) -> DynamoDBSource:
    options = {"endpoint_url": url, "region": "us-east-1", "settings": {"tables": [table], **settings}}
    return DynamoDBSource(EndpointConfig("ddb", "dynamodb", options=options))


def _rows(source: DynamoDBSource, schema: TableSchema) -> list[dict[str, Any]]:
    snapshot = source.snapshot()
    batches = list(snapshot.read(schema, 1000))
    return pa.Table.from_batches(batches, schema=schema.arrow_schema()).to_pylist()


def _by_name(schemas: list[TableSchema]) -> dict[str, TableSchema]:
    return {s.ref.name: s for s in schemas}


def test_seed_item_decomposes_into_orders_and_order_items(moto_url: str) -> None:
    table = _table(moto_url, "Orders", (("OrderId", "S", "HASH"),))
    table.put_item(Item=SEED_ITEM)
    source = _source(moto_url, table.name, variant_column=None)
    tables = _by_name(source.tables())
    orders, items = tables[table.name], tables[f"{table.name}_Items"]
    assert orders.column_names == ["OrderId", "CustomerId", "OrderDate", "Total"]
    assert orders.primary_key == ("OrderId",)
    assert [c.type.describe() for c in orders.columns] == ["text", "text", "timestamptz", "decimal(38,2)"]
    assert items.column_names == ["OrderId", "position", "Sku", "Q"]
    assert items.primary_key == ("OrderId", "position")
    assert [c.type.kind for c in items.columns] == [Kind.TEXT, Kind.INT64, Kind.TEXT, Kind.INT64]
    assert _rows(source, orders) == [
        {
            "OrderId": "ORD-20240615-0001",
            "CustomerId": "CUST-2994",
            "OrderDate": datetime(2024, 6, 15, 9, 12, 11, tzinfo=UTC),
            "Total": Decimal("424.50"),
        }
    ]
    assert _rows(source, items) == [
        {"OrderId": "ORD-20240615-0001", "position": 0, "Sku": "A77", "Q": 3},
        {"OrderId": "ORD-20240615-0001", "position": 1, "Sku": "F23", "Q": 7},
    ]


def test_every_dynamodb_type(moto_url: str) -> None:
    table = _table(moto_url, "types", (("pk", "S", "HASH"), ("sk", "N", "RANGE")))
    big = Decimal("12345678901234567890.123456789012345678")  # 38 digits
    table.put_item(
        Item={
            "pk": "a",
            "sk": 1,
            "s": "text é",
            "n_int": 9007199254740993,
            "n_dec": Decimal("0.000001"),
            "n_big": big,
            "b": b"\x00\xff",
            "bool": True,
            "nul": None,
            "m": {"city": "Oslo", "geo": {"lat": Decimal("59.9")}},
            "l": [1, 2, 3],
            "lmix": ["x", 1, {"k": True}],
            "ss": {"a", "b"},
            "ns": {Decimal("1.5"), Decimal("2")},
            "bs": {b"\x01", b"\x02"},
            "ts": "2024-01-02T03:04:05.123456",
        }
    )
    table.put_item(Item={"pk": "b", "sk": 2, "nul": None, "m": {"city": "Rome"}})
    source = _source(moto_url, table.name)
    (schema,) = source.tables()
    described = {c.name: c.type.describe() for c in schema.columns}
    assert described == {
        "pk": "text",
        "sk": "int64",
        "s": "text",
        "n_int": "int64",
        "n_dec": "decimal(38,6)",
        "n_big": "decimal(38,18)",
        "b": "bytes",
        "bool": "boolean",
        "nul": "text",
        "m__city": "text",
        "m__geo__lat": "decimal(38,1)",
        "l": "int64[]",
        "lmix": "json",
        "ss": "text[]",
        "ns": "decimal(38,1)[]",
        "bs": "bytes[]",
        "ts": "timestamp",
        "_variant": "json",
    }
    rows = {r["pk"]: r for r in _rows(source, schema)}
    a = rows["a"]
    assert a["n_int"] == 9007199254740993
    assert a["n_dec"] == Decimal("0.000001")
    assert a["n_big"] == big
    assert a["b"] == b"\x00\xff"
    assert a["bool"] is True and a["nul"] is None
    assert a["m__city"] == "Oslo" and a["m__geo__lat"] == Decimal("59.9")
    assert a["l"] == [1, 2, 3]
    assert json.loads(a["lmix"]) == ["x", 1, {"k": True}]
    assert sorted(a["ss"]) == ["a", "b"]
    assert sorted(a["ns"]) == [Decimal("1.5"), Decimal("2.0")]
    assert sorted(a["bs"]) == [b"\x01", b"\x02"]
    assert a["ts"] == datetime(2024, 1, 2, 3, 4, 5, 123456)
    assert a["_variant"] is None
    b = rows["b"]
    assert b["m__city"] == "Rome" and b["s"] is None and b["m__geo__lat"] is None


def test_nested_sparse_drifting_and_conflicting_items(moto_url: str) -> None:
    table = _table(moto_url, "drift")
    with table.batch_writer() as writer:
        for i in range(60):
            item: dict[str, Any] = {"pk": f"k{i:03d}", "n": i}
            if i % 3 == 0:
                item["addr"] = {"city": f"c{i}"}
            if i == 55:
                item["coupon"] = "SAVE10"  # after the sample
                item["addr"] = {"city": "x", "zip": "0150"}
                item["n"] = "not a number"  # conflicting type
            writer.put_item(Item=item)
    source = _source(moto_url, table.name, sample_size=10, total_segments=2)
    (schema,) = source.tables()
    sampled_names = set(schema.column_names)
    assert {"pk", "n", "_variant"} <= sampled_names and "coupon" not in sampled_names
    rows = {r["pk"]: r for r in _rows(source, schema)}
    assert len(rows) == 60
    odd = rows["k055"]
    assert odd["n"] is None
    variant = json.loads(odd["_variant"])
    assert variant["n"] == {"S": "not a number"}
    assert variant["coupon"] == {"S": "SAVE10"}
    assert variant["addr__zip"] == {"S": "0150"}
    assert rows["k054"]["_variant"] is None
    assert source.drift[schema.ref] >= {"coupon", "addr__zip"}
    assert source.variants[schema.ref] >= 1
    # Widening: the next listing has the new attributes as columns.
    (widened,) = source.tables()
    assert {"coupon", "addr__zip"} <= set(widened.column_names)
    again = {r["pk"]: r for r in _rows(source, widened)}
    assert again["k055"]["coupon"] == "SAVE10" and again["k055"]["addr__zip"] == "0150"


class _ThrottlingProxy:
    """Forwards requests to moto; every ``every``-th request is answered with
    DynamoDB's 400 ThrottlingException instead."""

    def __init__(self, upstream: str, every: int) -> None:
        self.upstream = upstream.removeprefix("http://")
        self.every = every
        self.requests = 0
        self.throttled = 0
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with proxy.lock:
                    proxy.requests += 1
                    throttle = proxy.requests % proxy.every == 0
                    proxy.throttled += throttle
                if throttle:
                    payload = json.dumps(
                        {
                            "__type": "com.amazonaws.dynamodb.v20120810#ThrottlingException",
                            "message": "Rate of requests exceeds the allowed throughput.",
                        }
                    ).encode()
                    self.send_response(400)
                    self.send_header("Content-Type", "application/x-amz-json-1.0")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                conn = http.client.HTTPConnection(proxy.upstream, timeout=30)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in {"host", "connection"}}
                conn.request("POST", self.path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in {
                        "content-length",
                        "connection",
                        "transfer-encoding",
                        "server",
                        "date",
                    }:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _fill(table: Any, count: int) -> None:
    with table.batch_writer() as writer:
        for i in range(count):
            writer.put_item(Item={"pk": f"k{i:05d}", "v": i, "lines": [{"q": i}, {"q": i + 1}]})


def test_throttling_survived_and_every_item_loaded_once(moto_url: str) -> None:
    table = _table(moto_url, "throttled")
    _fill(table, 500)
    proxy = _ThrottlingProxy(moto_url, every=3)
    try:
        source = _source(
            proxy.url,
            table.name,
            page_size=25,
            total_segments=3,
            retry_base_seconds=0.001,
            retry_cap_seconds=0.01,
        )
        tables = _by_name(source.tables())
        parent = _rows(source, tables[table.name])
        children = _rows(source, tables[f"{table.name}_lines"])
    finally:
        proxy.close()
    assert proxy.throttled >= 10
    assert source.client.retries >= 10
    assert sorted(r["v"] for r in parent) == list(range(500))
    assert len({r["pk"] for r in parent}) == 500
    assert len(children) == 1000
    assert len({(r["pk"], r["position"]) for r in children}) == 1000


def test_parallel_segments_cover_the_table_once(moto_url: str) -> None:
    table = _table(moto_url, "segments")
    _fill(table, 300)
    source = _source(moto_url, table.name, total_segments=4, page_size=20)
    (parent, _) = source.tables()
    snapshot = source.snapshot()
    seen: dict[int, int] = {}
    checkpoint = ScanCheckpoint(source.checkpoint_path(parent.ref), 4)
    keys: list[str] = []
    for segment, page in snapshot.pages(table.name, checkpoint):
        seen[segment] = seen.get(segment, 0) + page.count
        keys += page.items.field("pk").field("S").to_pylist()
    assert len(seen) >= 2 and sum(seen.values()) == 300
    assert sorted(keys) == sorted(f"k{i:05d}" for i in range(300))


def test_crash_mid_scan_then_resume_from_the_checkpoint(moto_url: str) -> None:
    table = _table(moto_url, "resume")
    _fill(table, 200)
    settings = {"total_segments": 2, "page_size": 10, "resume_scan": True}
    source = _source(moto_url, table.name, **settings)
    (parent, _) = source.tables()
    delivered: list[int] = []
    reader = source.snapshot().read(parent, 10)
    for batch in reader:
        if len(delivered) >= 70:
            break  # the "crash", while this batch was being written: it never became durable
        delivered += batch.column("v").to_pylist()  # durable, then the next batch is asked for
    reader.close()
    path = source.checkpoint_path(parent.ref)
    state = json.loads(path.read_text())
    assert state["total_segments"] == 2 and any(s["last_key"] for s in state["segments"].values())
    resumed = _source(moto_url, table.name, **settings)
    rest = [v for r in _rows(resumed, parent) for v in [r["v"]]]
    # A page counts as delivered once the batch after it was asked for: nothing twice, nothing lost.
    assert sorted(delivered + rest) == list(range(200))
    assert not path.exists()
    # Without resume_scan a read starts over, and writes no checkpoint (tasks reading
    # the same endpoint's table at once raced on that file).
    fresh = _source(moto_url, table.name, total_segments=2, page_size=10)
    partial = fresh.snapshot().read(parent, 10)
    for _ in range(3):  # pages of 10: two pages done
        next(partial)
    assert not path.exists()
    partial.close()
    assert len(_rows(fresh, parent)) == 200


def test_read_capacity_budget_is_spent(moto_url: str) -> None:
    table = _table(moto_url, "budget")
    _fill(table, 50)
    source = _source(moto_url, table.name, read_capacity_per_second=1000, page_size=10, total_segments=1)
    (parent, _) = source.tables()
    assert len(_rows(source, parent)) == 50
    assert source.client.budget is not None and source.client.budget.tokens < 1000


def test_full_load_of_the_seed_table_into_duckdb(moto_url: str, tmp_path: Path) -> None:
    table = _table(moto_url, "Orders", (("OrderId", "S", "HASH"),))
    with table.batch_writer() as writer:
        writer.put_item(Item=SEED_ITEM)
        for i in range(2, 40):
            writer.put_item(
                Item={
                    "OrderId": f"ORD-20240615-{i:04d}",
                    "CustomerId": f"CUST-{i}",
                    "OrderDate": f"2024-06-15T10:{i:02d}:00Z",
                    "Items": [{"Sku": f"S{j}", "Q": j + 1} for j in range(i % 4)],
                    "Total": Decimal(f"{i}.25"),
                }
            )
    name = table.name
    source = _source(
        moto_url,
        name,
        variant_column=None,
        column_types={
            name: {
                "OrderId": "varchar(32)",
                "CustomerId": "varchar(32)",
                "OrderDate": "timestamp",
                "Total": "decimal(12,2)",
            },
            f"{name}_Items": {"OrderId": "varchar(32)", "Sku": "varchar(16)", "Q": "int32"},
        },
    )

    def rename(rule_id: int, table_name: str, column: str, value: str) -> dict[str, Any]:
        return {
            "rule-type": "transformation",
            "rule-id": str(rule_id),
            "rule-name": f"r{rule_id}",
            "rule-target": "column",
            "object-locator": {"schema-name": "dynamodb", "table-name": table_name, "column-name": column},
            "rule-action": "rename",
            "value": value,
        }

    rules: list[dict[str, Any]] = [
        {
            "rule-type": "selection",
            "rule-id": "1",
            "rule-name": "all",
            "object-locator": {"schema-name": "dynamodb", "table-name": "%"},
            "rule-action": "include",
        },
        {
            "rule-type": "transformation",
            "rule-id": "2",
            "rule-name": "orders",
            "rule-target": "table",
            "object-locator": {"schema-name": "dynamodb", "table-name": name},
            "rule-action": "rename",
            "value": "orders",
        },
        {
            "rule-type": "transformation",
            "rule-id": "3",
            "rule-name": "order_items",
            "rule-target": "table",
            "object-locator": {"schema-name": "dynamodb", "table-name": f"{name}_Items"},
            "rule-action": "rename",
            "value": "order_items",
        },
        {
            "rule-type": "transformation",
            "rule-id": "4",
            "rule-name": "schema",
            "rule-target": "schema",
            "object-locator": {"schema-name": "dynamodb"},
            "rule-action": "rename",
            "value": "main",
        },
    ]
    renames = [
        (name, "OrderId", "order_id"),
        (name, "CustomerId", "customer_id"),
        (name, "OrderDate", "order_date"),
        (name, "Total", "total"),
        (f"{name}_Items", "OrderId", "order_id"),
        (f"{name}_Items", "Sku", "sku"),
        (f"{name}_Items", "Q", "quantity"),
    ]
    rules += [rename(10 + i, *r) for i, r in enumerate(renames)]
    mapped = TableMappings.parse({"rules": rules}, "test").select(source.tables())
    plans = [TablePlan(m.source, m.target, m.project, tuple(c.source for c in m.columns)) for m in mapped]
    target = DuckDBTarget(EndpointConfig("dw", "duckdb", path=str(tmp_path / "dw.duckdb")))
    try:
        result = FullLoad(source.snapshot(), target, plans, PrepMode.DROP_AND_CREATE).run()
        assert [p.state for p in result] == [TABLE_COMPLETED, TABLE_COMPLETED], [p.error for p in result]
        orders = target.describe(TableRef("main", "orders"))
        items = target.describe(TableRef("main", "order_items"))
        assert orders is not None and items is not None
        # The seed's DDL (DuckDB has no varchar length: VARCHAR(32) is text there).
        assert [(c.name, c.type.describe()) for c in plans[0].target.columns] == [
            ("order_id", "varchar(32)"),
            ("customer_id", "varchar(32)"),
            ("order_date", "timestamp"),
            ("total", "decimal(12,2)"),
        ]
        assert [(c.name, c.type.describe()) for c in orders.columns] == [
            ("order_id", "text"),
            ("customer_id", "text"),
            ("order_date", "timestamp"),
            ("total", "decimal(12,2)"),
        ]
        assert [(c.name, c.type.describe()) for c in items.columns] == [
            ("order_id", "text"),
            ("position", "int64"),
            ("sku", "text"),
            ("quantity", "int32"),
        ]
        assert orders.primary_key == ("order_id",)
        assert target.count(TableRef("main", "orders")) == 39
        assert target.count(TableRef("main", "order_items")) == 2 + sum(i % 4 for i in range(2, 40))
        seed_rows = [
            r for b in target.read(orders, 100) for r in b.to_pylist() if r["order_id"] == "ORD-20240615-0001"
        ]
        assert seed_rows == [
            {
                "order_id": "ORD-20240615-0001",
                "customer_id": "CUST-2994",
                "order_date": datetime(2024, 6, 15, 9, 12, 11),
                "total": Decimal("424.50"),
            }
        ]
        lines = sorted(
            (r["position"], r["sku"], r["quantity"])
            for b in target.read(items, 100)
            for r in b.to_pylist()
            if r["order_id"] == "ORD-20240615-0001"
        )
        assert lines == [(0, "A77", 3), (1, "F23", 7)]
    finally:
        target.close()


def _stream_table(url: str) -> Any:
    resource = boto3.resource("dynamodb", endpoint_url=url, region_name="us-east-1", **CREDS)
    name = f"Streamed{next(_counter)}"
    return resource.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "OrderId", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "OrderId", "AttributeType": "S"}],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )


def _drain(stream: Any) -> list[Any]:
    events = []
    for event in stream.events(idle_timeout=0.05):
        if event is None:
            return events
        events.append(event)
    return events


def _changes(events: list[Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """The row changes, a captured batch's one by one (a page's changes of
    the item table come captured, before those of its child tables)."""
    changes = (
        change
        for e in events
        if isinstance(e, RowChange | ChangeBatch)
        for change in (row_changes(e) if isinstance(e, ChangeBatch) else [e])
    )
    return [
        (e.table.name, e.op.value, {k: v for k, v in e.values.items() if k != "_variant"}) for e in changes
    ]


def test_streams_capture_inserts_modifies_removes_and_child_rows(moto_url: str) -> None:
    table = _stream_table(moto_url)
    table.put_item(Item=SEED_ITEM)
    name = table.name
    options = {"endpoint_url": moto_url, "region": "us-east-1", "settings": {"tables": [name]}}
    source = DynamoDBChangeSource(EndpointConfig("ddb", "dynamodb", options=options))
    tables = source.tables()
    assert source.preflight(tables) == []
    start = source.begin_capture("t1", tables, export_snapshot=True)
    stream = source.open_stream("t1", tables, start.position)
    events = _drain(stream)
    child = f"{name}_Items"
    assert _changes(events) == [
        (
            name,
            "c",
            {
                "OrderId": "ORD-20240615-0001",
                "CustomerId": "CUST-2994",
                "OrderDate": datetime(2024, 6, 15, 9, 12, 11, tzinfo=UTC),
                "Total": Decimal("424.50"),
            },
        ),
        (child, "c", {"OrderId": "ORD-20240615-0001", "position": 0, "Sku": "A77", "Q": 3}),
        (child, "c", {"OrderId": "ORD-20240615-0001", "position": 1, "Sku": "F23", "Q": 7}),
    ]
    commits = [e for e in events if isinstance(e, Commit)]
    assert commits and commits[-1].position.engine == "dynamodb"
    (shards,) = [t["shards"] for t in commits[-1].position.position["tables"].values()]
    assert all(s["seq"] for s in shards.values())

    table.put_item(Item={**SEED_ITEM, "Items": [{"Sku": "A77", "Q": 4}], "Total": Decimal("10.00")})
    table.delete_item(Key={"OrderId": "ORD-20240615-0001"})
    events = _drain(stream)
    assert [(t, op, v.get("position"), v.get("Q")) for t, op, v in _changes(events)] == [
        (name, "u", None, None),
        (name, "d", None, None),
        (child, "d", 1, None),
        (child, "u", 0, 4),
        (child, "d", 0, None),
    ]
    assert any(isinstance(e, ChangeBatch) and e.num_rows == 2 for e in events), "the item table's, captured"
    last = [e for e in events if isinstance(e, Commit)][-1].position

    # Resumed from the checkpoint: nothing again; then drift widens the layout.
    resumed = source.open_stream("t1", tables, last)
    assert _changes(_drain(resumed)) == []
    table.put_item(Item={"OrderId": "N1", "Coupon": "SAVE10", "Items": []})
    events = _drain(resumed)
    definitions = [e for e in events if isinstance(e, TableDefinition)]
    assert definitions and "Coupon" in definitions[0].schema.column_names
    assert (name, "c") in [(t, op) for t, op, v in _changes(events) if v.get("Coupon") == "SAVE10"]

    # A checkpointed shard the stream no longer has: resync required.
    arn = last.position["tables"][name]["arn"]
    gone = _checkpoint(name, arn, {"shardId-00000000000000000000-deadbeef": {"seq": "1", "done": False}})
    with pytest.raises(TerminalError, match="resync required"):
        _drain(source.open_stream("t1", tables, gone))
    plain = _table(moto_url, "nostream")
    other = DynamoDBChangeSource(
        EndpointConfig(
            "ddb", "dynamodb", options={"endpoint_url": moto_url, "settings": {"tables": [plain.name]}}
        )
    )
    with pytest.raises(ConfigError, match="no stream"):
        other.preflight(other.tables())
    source.close()
    other.close()


def _checkpoint(name: str, arn: str, shards: dict[str, Any]) -> Checkpoint:
    return Checkpoint("dynamodb", {"tables": {name: {"arn": arn, "shards": shards}}})


def test_full_load_then_streams_capture_into_duckdb(moto_url: str, tmp_path: Path) -> None:
    table = _stream_table(moto_url)
    name = table.name
    table.put_item(Item=SEED_ITEM)
    table.put_item(Item={**SEED_ITEM, "OrderId": "ORD-2", "Items": [{"Sku": "B1", "Q": 1}]})
    options = {"endpoint_url": moto_url, "settings": {"tables": [name]}}
    source = DynamoDBChangeSource(EndpointConfig("ddb", "dynamodb", options=options))
    mappings = TableMappings.parse(
        {
            "rules": [
                {
                    "rule-type": "selection",
                    "rule-id": "1",
                    "rule-name": "all",
                    "object-locator": {"schema-name": "dynamodb", "table-name": "%"},
                    "rule-action": "include",
                }
            ]
        },
        "test",
    )
    mapped = mappings.select(source.tables())
    start = source.begin_capture("t", [m.source for m in mapped], export_snapshot=True)
    dw = EndpointConfig("dw", "duckdb", path=str(tmp_path / "dw.duckdb"))
    target = DuckDBTarget(dw)
    plans = [TablePlan(m.source, m.target, m.project, tuple(c.source for c in m.columns)) for m in mapped]
    loaded = FullLoad(source.capture_snapshot(start), target, plans, PrepMode.DROP_AND_CREATE).run()
    assert [p.state for p in loaded] == [TABLE_COMPLETED, TABLE_COMPLETED]
    target.close()
    applier = DuckDBApplier(dw)
    applier.apply_changes("t", [], start.position)
    stream = source.open_stream("t", [m.source for m in mapped], start.position)
    capture = ChangeCapture(
        task="t",
        stream=stream,
        applier=applier,
        mappings=mappings,
        tables={m.source.ref: CaptureTable.of(m) for m in mapped},
        start=start.position,
        flush_seconds=0.1,
    )
    worker = threading.Thread(target=capture.run)
    worker.start()
    try:
        table.put_item(Item={**SEED_ITEM, "Items": [{"Sku": "Z9", "Q": 9}], "Total": Decimal("1.00")})
        table.delete_item(Key={"OrderId": "ORD-2"})
        table.put_item(Item={**SEED_ITEM, "OrderId": "ORD-3"})
        deadline = time.monotonic() + 20
        # 2 replayed inserts (+3 child rows) from the trim horizon, then the 3 changes.
        while capture.progress.applied_changes < 10 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
    finally:
        capture.stop.set()
        worker.join(timeout=10)
        stream.close()
        applier.close()
    target = DuckDBTarget(dw)
    try:
        orders = target.describe(TableRef("dynamodb", name))
        items = target.describe(TableRef("dynamodb", f"{name}_Items"))
        assert orders is not None and items is not None
        parent = sorted((r["OrderId"], r["Total"]) for b in target.read(orders, 100) for r in b.to_pylist())
        lines = sorted(
            (r["OrderId"], r["position"], r["Sku"]) for b in target.read(items, 100) for r in b.to_pylist()
        )
    finally:
        target.close()
        source.close()
    assert parent == [("ORD-20240615-0001", Decimal("1.00")), ("ORD-3", Decimal("424.50"))]
    assert lines == [("ORD-20240615-0001", 0, "Z9"), ("ORD-3", 0, "A77"), ("ORD-3", 1, "F23")]
