"""The DynamoDB source against a moto server on loopback: load errors instead
of a variant column, drift as `tasks describe` lists it, and incremental
capture by a modified-at attribute merged into DuckDB."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import duckdb
import pyarrow as pa
import pytest

from conveyor.connectors.base import EndpointConfig, PrepMode
from conveyor.connectors.captured_rows import row_changes
from conveyor.connectors.changes import Commit, RowChange, TableDefinition
from conveyor.connectors.duckdb.apply import DuckDBApplier
from conveyor.connectors.duckdb.target import DuckDBTarget
from conveyor.connectors.dynamodb.incremental import DynamoDBIncrementalStream
from conveyor.connectors.dynamodb.source import DynamoDBSource
from conveyor.connectors.dynamodb.streams import DynamoDBChangeSource
from conveyor.core.batch import ChangeBatch, Checkpoint, Op
from conveyor.core.errors import ConfigError, DataError, TerminalError
from conveyor.core.schema import TableRef, TableSchema
from conveyor.replication.cdc.capture_table import CaptureTable
from conveyor.replication.cdc.runner import ChangeCapture
from conveyor.replication.full_load import FullLoad
from conveyor.replication.mappings import TableMappings
from conveyor.replication.table_plan import TABLE_COMPLETED, TablePlan

CREDS = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}
ALL = {
    "rules": [
        {
            "rule-type": "selection",
            "rule-id": "1",
            "rule-name": "all",
            "object-locator": {"schema-name": "dynamodb", "table-name": "%"},
            "rule-action": "include",
        }
    ]
}


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("CONVEYOR_HOME", str(tmp_path / "home"))


_counter = iter(range(1_000_000))


def _table(url: str, name: str, key: str = "pk") -> Any:
    resource = boto3.resource("dynamodb", endpoint_url=url, region_name="us-east-1", **CREDS)
    return resource.create_table(
        TableName=f"{name}{next(_counter)}",
        BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": key, "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": key, "AttributeType": "S"}],
    )


def _config(url: str, table: str, **settings: Any) -> EndpointConfig:
    options = {"endpoint_url": url, "region": "us-east-1", "settings": {"tables": [table], **settings}}
    return EndpointConfig("ddb", "dynamodb", options=options)


def _rows(source: DynamoDBSource, schema: TableSchema) -> list[dict[str, Any]]:
    batches = list(source.snapshot().read(schema, 1000))
    return pa.Table.from_batches(batches, schema=schema.arrow_schema()).to_pylist()


def _by_name(schemas: list[TableSchema]) -> dict[str, TableSchema]:
    return {s.ref.name: s for s in schemas}


# Load errors.


def _conflicting(table: Any) -> None:
    with table.batch_writer() as writer:
        for i in range(40):
            item: dict[str, Any] = {"pk": f"k{i:03d}", "n": i, "lines": [{"q": i}]}
            if i == 33:  # all after the sample of 10
                item["n"] = "not a number"
                item["coupon"] = "SAVE10"
                item["lines"] = [{"q": 1}, "loose", {"q": "many"}]
            writer.put_item(Item=item)


def test_load_errors_null_the_value_record_it_and_the_load_continues(moto_url: str, tmp_path: Path) -> None:
    table = _table(moto_url, "errors")
    _conflicting(table)
    name = table.name
    source = DynamoDBSource(
        _config(moto_url, name, sample_size=10, total_segments=2, conflicting_values="load_errors")
    )
    tables = _by_name(source.tables())
    parent, child = tables[name], tables[f"{name}_lines"]
    assert "_variant" not in parent.column_names and "_variant" not in child.column_names
    snapshot = source.snapshot()
    rows = {r["pk"]: r for r in _rows(source, parent)}
    assert len(rows) == 40 and rows["k033"]["n"] is None and rows["k032"]["n"] == 32
    rejected = {(r.column, r.value): r for r in snapshot.rejections(parent.ref)}
    assert set(rejected) == {("n", '{"S": "not a number"}'), ("coupon", '{"S": "SAVE10"}')}
    n = rejected[("n", '{"S": "not a number"}')]
    assert n.table == parent.ref and n.key == {"pk": "k033"}
    assert "value of type S where column 'n' (int64) holds N values" in n.reason
    assert "first appeared after the schema was inferred" in rejected[("coupon", '{"S": "SAVE10"}')].reason
    # Child rows: the element that is no map and the value that does not fit load with NULLs.
    lines = sorted((r["pk"], r["position"], r["q"]) for r in _rows(source, child) if r["pk"] == "k033")
    assert lines == [("k033", 0, 1), ("k033", 1, None), ("k033", 2, None)]
    by_position = {r.key["position"]: r for r in snapshot.rejections(child.ref)}
    assert set(by_position) == {1, 2}
    assert by_position[1].key == {"pk": "k033", "position": 1} and by_position[1].column == "_element"
    assert by_position[1].value == '{"S": "loose"}' and "element" in by_position[1].reason
    assert by_position[2].column == "q" and by_position[2].value == '{"S": "many"}'
    # A second read starts the table's list afresh (no duplicates).
    _rows(source, parent)
    assert len(snapshot.rejections(parent.ref)) == 2
    # Drift as `tasks describe` lists it.
    (line,) = snapshot.drift_report(parent.ref)
    assert line.startswith("new column coupon (text) at 20")

    # The full load's part (the load writes the snapshot's rejections at the table's end).
    target = DuckDBTarget(EndpointConfig("dw", "duckdb", path=str(tmp_path / "dw.duckdb")))
    try:
        plans = [TablePlan(t, t) for t in (parent, child)]
        result = FullLoad(snapshot, target, plans, PrepMode.DROP_AND_CREATE, task="t1").run()
        assert [p.state for p in result] == [TABLE_COMPLETED, TABLE_COMPLETED]
        assert result[0].drift and result[0].drift[0].startswith("new column coupon")
        assert target.count(parent.ref) == 40
    finally:
        target.close()
    with duckdb.connect(str(tmp_path / "dw.duckdb")) as db:
        logged = db.execute(
            "SELECT task_name, table_name, key, column_name, value FROM main.awsdms_apply_exceptions "
            "ORDER BY table_name, column_name"
        ).fetchall()
    assert [(t, tn, json.loads(k), c, v) for t, tn, k, c, v in logged] == [
        ("t1", name, {"pk": "k033"}, "coupon", '{"S": "SAVE10"}'),
        ("t1", name, {"pk": "k033"}, "n", '{"S": "not a number"}'),
        ("t1", f"{name}_lines", {"pk": "k033", "position": 1}, "_element", '{"S": "loose"}'),
        ("t1", f"{name}_lines", {"pk": "k033", "position": 2}, "q", '{"S": "many"}'),
    ]
    source.close()


def test_conflicting_values_settings(moto_url: str) -> None:
    table = _table(moto_url, "modes")
    _conflicting(table)
    failing = DynamoDBSource(_config(moto_url, table.name, sample_size=10, variant_column=None))
    assert failing.conflicting == "fail"
    with pytest.raises(DataError, match="does not fit its column"):
        _rows(failing, _by_name(failing.tables())[table.name])
    variant = DynamoDBSource(_config(moto_url, table.name, sample_size=10))
    rows = {r["pk"]: r for r in _rows(variant, _by_name(variant.tables())[table.name])}
    assert json.loads(rows["k033"]["_variant"])["n"] == {"S": "not a number"}
    with pytest.raises(ConfigError, match="conflicting_values must be one of"):
        DynamoDBSource(_config(moto_url, table.name, conflicting_values="drop"))
    with pytest.raises(ConfigError, match="variant_column is null"):
        DynamoDBSource(_config(moto_url, table.name, conflicting_values="variant", variant_column=None))


# Incremental by a modified-at attribute.


def _drain(stream: Any) -> list[Any]:
    events = []
    for event in stream.events(idle_timeout=0.05):
        if event is None:
            return events
        events.append(event)
    return events


def _row_changes(events: list[Any]) -> list[RowChange]:
    """The row changes, a captured batch's (the item table's) one by one."""
    return [
        change
        for e in events
        if isinstance(e, RowChange | ChangeBatch)
        for change in (row_changes(e) if isinstance(e, ChangeBatch) else [e])
    ]


def _changes(events: list[Any]) -> list[tuple[str, str, Any, Any]]:
    return sorted(
        (e.table.name, e.op.value, e.values["pk"], e.values.get("position")) for e in _row_changes(events)
    )


def _incremental(url: str, name: str, **incremental: Any) -> DynamoDBChangeSource:
    settings = {"attribute": "updated_at", "interval_seconds": 0, **incremental}
    return DynamoDBChangeSource(_config(url, name, incremental=settings))


def test_incremental_by_modified_at_reads_newer_items_and_resumes(moto_url: str) -> None:
    table = _table(moto_url, "incr")
    name, child = table.name, f"{table.name}_lines"
    table.put_item(
        Item={"pk": "a", "v": 1, "updated_at": "2024-01-01T00:00:01Z", "lines": [{"q": 1}, {"q": 2}]}
    )
    table.put_item(Item={"pk": "b", "v": 1, "updated_at": "2024-01-01T00:00:02Z", "lines": [{"q": 1}]})
    source = _incremental(moto_url, name)
    tables = source.tables()
    warnings = source.preflight(tables)
    assert warnings and "does not see deletes" in warnings[0]
    start = source.begin_capture("t1", tables, export_snapshot=True)
    state = start.position.position["tables"][name]
    assert start.position.position["mode"] == "incremental"
    assert state == {"high_water_mark": "2024-01-01T00:00:02Z", "type": "S", "lists": {child: 2}}
    stream = source.open_stream("t1", tables, start.position)
    assert isinstance(stream, DynamoDBIncrementalStream)
    assert _drain(stream) == []  # nothing modified since the mark

    table.put_item(Item={"pk": "a", "v": 2, "updated_at": "2024-01-01T00:00:05Z", "lines": [{"q": 9}]})
    table.put_item(Item={"pk": "c", "v": 1, "updated_at": "2024-01-01T00:00:04Z", "lines": []})
    table.put_item(Item={"pk": "b", "v": 2, "updated_at": "2024-01-01T00:00:00Z"})  # older: not seen
    before = datetime.now(UTC)
    events = _drain(stream)
    assert _changes(events) == [
        (name, "u", "a", None),
        (name, "u", "c", None),
        (child, "d", "a", 1),
        (child, "d", "c", 0),
        (child, "d", "c", 1),
        (child, "u", "a", 0),
    ]
    (upsert,) = [e for e in _row_changes(events) if e.values["pk"] == "a" and e.table.name == name]
    assert any(isinstance(e, ChangeBatch) for e in events), "the item table's rows come captured"
    assert upsert.values["v"] == 2 and upsert.op is Op.UPDATE
    (commit,) = [e for e in events if isinstance(e, Commit)]
    assert commit.position.position["tables"][name]["high_water_mark"] == "2024-01-01T00:00:05Z"
    # The source time is the read's (CDCLatencySource), not the items' own 2024 marks.
    assert commit.time is not None and before <= commit.time <= datetime.now(UTC)
    assert _drain(stream) == []  # the mark moved on

    # Reopened from the commit's position (a restart): nothing again, then what is newer.
    reopened = _incremental(moto_url, name)
    again = reopened.open_stream("t1", reopened.tables(), commit.position)
    assert _drain(again) == []
    table.put_item(
        Item={"pk": "b", "v": 3, "updated_at": "2024-01-01T00:00:09Z", "coupon": "X", "lines": [{"q": 3}]}
    )
    events = _drain(again)
    definitions = [e for e in events if isinstance(e, TableDefinition)]
    assert definitions and "coupon" in definitions[0].schema.column_names
    assert _changes(events) == [(name, "u", "b", None), (child, "d", "b", 1), (child, "u", "b", 0)]
    assert [e for e in events if isinstance(e, Commit)][-1].position.position["tables"][name][
        "high_water_mark"
    ] == "2024-01-01T00:00:09Z"

    # A streams checkpoint cannot resume incremental capture, nor the other way round.
    with pytest.raises(TerminalError, match="resync required"):
        reopened.open_stream("t1", tables, Checkpoint("dynamodb", {"tables": {}}))
    other = _incremental(moto_url, name, attribute="modified")
    with pytest.raises(TerminalError, match="resync required"):
        other.open_stream("t1", other.tables(), commit.position)
    source.close()
    reopened.close()
    other.close()


def test_incremental_by_a_number_attribute_from_a_given_start(moto_url: str) -> None:
    table = _table(moto_url, "incrn")
    name = table.name
    for i, stamp in enumerate([100, 200, 300]):
        table.put_item(Item={"pk": f"k{i}", "modified": stamp})
    source = _incremental(moto_url, name, attribute="modified", start=150, overlap_seconds=0)
    tables = source.tables()
    start = source.begin_capture("t", tables, export_snapshot=False)
    assert start.position.position["tables"][name] == {"high_water_mark": "150", "type": "N", "lists": {}}
    stream = source.open_stream("t", tables, start.position)
    events = _drain(stream)
    assert _changes(events) == [(name, "u", "k1", None), (name, "u", "k2", None)]
    (commit,) = [e for e in events if isinstance(e, Commit)]
    assert commit.position.position["tables"][name]["high_water_mark"] == "300"
    table.put_item(Item={"pk": "k0", "modified": 1000})
    assert _changes(_drain(stream)) == [(name, "u", "k0", None)]
    source.close()


def test_full_load_then_incremental_merge_into_duckdb(moto_url: str, tmp_path: Path) -> None:
    table = _table(moto_url, "merge")
    name = table.name
    for i in range(5):
        table.put_item(
            Item={
                "pk": f"k{i}",
                "total": Decimal(f"{i}.50"),
                "updated_at": f"2024-01-01T00:00:0{i}Z",
                "lines": [{"sku": f"s{j}"} for j in range(i % 3 + 1)],
            }
        )
    source = _incremental(moto_url, name)
    mappings = TableMappings.parse(ALL, "test")
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
        table.put_item(
            Item={"pk": "k2", "total": Decimal("99.00"), "updated_at": "2024-02-01T00:00:00Z", "lines": []}
        )
        table.put_item(
            Item={
                "pk": "k9",
                "total": Decimal("9.00"),
                "updated_at": "2024-02-01T00:00:01Z",
                "lines": [{"sku": "new"}],
            }
        )
        table.delete_item(Key={"pk": "k0"})  # not seen: deletes need streams
        deadline = time.monotonic() + 20
        while capture.progress.applied_changes < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.3)
    finally:
        capture.stop.set()
        worker.join(timeout=10)
        stream.close()
    checkpoint = applier.read_checkpoint("t")
    applier.close()
    assert checkpoint is not None
    assert checkpoint.position["tables"][name]["high_water_mark"] == "2024-02-01T00:00:01Z"
    target = DuckDBTarget(dw)
    try:
        parent = target.describe(TableRef("dynamodb", name))
        child = target.describe(TableRef("dynamodb", f"{name}_lines"))
        assert parent is not None and child is not None
        totals = sorted((r["pk"], r["total"]) for b in target.read(parent, 100) for r in b.to_pylist())
        lines = sorted(
            (r["pk"], r["position"], r["sku"]) for b in target.read(child, 100) for r in b.to_pylist()
        )
    finally:
        target.close()
        source.close()
    assert totals == [
        ("k0", Decimal("0.50")),
        ("k1", Decimal("1.50")),
        ("k2", Decimal("99.00")),
        ("k3", Decimal("3.50")),
        ("k4", Decimal("4.50")),
        ("k9", Decimal("9.00")),
    ]
    assert lines == [
        ("k0", 0, "s0"),
        ("k1", 0, "s0"),
        ("k1", 1, "s1"),
        ("k3", 0, "s0"),
        ("k4", 0, "s0"),
        ("k4", 1, "s1"),
        ("k9", 0, "new"),
    ]
