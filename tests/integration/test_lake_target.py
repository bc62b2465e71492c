"""The lake target: LOAD and change files laid out as the migration service's S3
target writes them, on a local folder and on a moto S3 server on loopback."""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conveyor.connectors.arrow_rows import change_batch
from conveyor.connectors.base import EndpointConfig, PrepMode
from conveyor.connectors.lake import layout as lay
from conveyor.connectors.lake.apply import LakeApplier
from conveyor.connectors.lake.target import LakeTarget
from conveyor.connectors.registry import open_applier, open_target
from conveyor.core import types as t
from conveyor.core.batch import ChangeBatch, Checkpoint, LoggedChange
from conveyor.core.errors import ConfigError
from conveyor.core.schema import Column, TableRef, TableSchema
from conveyor.core.types import Kind
from support.change_log import logged, upserted

pytestmark = pytest.mark.integration

BUCKET = "lake-bucket"
KEYS = {"AccessKeyId": "testing", "SecretAccessKey": "testing"}
TABLE = TableSchema(
    TableRef("sales", "orders"),
    (
        Column("id", t.simple(Kind.INT64), False),
        Column("name", t.simple(Kind.TEXT)),
        Column("amount", t.decimal(12, 2)),
        Column("at", t.simple(Kind.TIMESTAMPTZ)),
        Column("ok", t.simple(Kind.BOOLEAN)),
        Column("day", t.simple(Kind.DATE)),
    ),
    ("id",),
)
AT = datetime(2024, 1, 2, 3, 4, 5, 123000, tzinfo=UTC)
STAMP_RE = re.compile(r"^\d{8}-\d{9}\.csv$")


def rows(n: int, start: int = 1) -> list[dict[str, Any]]:
    return [
        {
            "id": i,
            "name": f"name {i}",
            "amount": Decimal(i) / 4,
            "at": AT,
            "ok": i % 2 == 0,
            "day": date(2024, 1, 1 + i % 28),
        }
        for i in range(start, start + n)
    ]


def batch(data: list[dict[str, Any]]) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist(data, schema=TABLE.arrow_schema())


# --- the two stores --------------------------------------------------------------------


Factory = Callable[..., EndpointConfig]


@pytest.fixture(params=["local", "s3"])
def lake(request: pytest.FixtureRequest, tmp_path: Path) -> Factory:
    """A factory of lake endpoints on one fresh store."""
    if request.param == "local":

        def local(settings: dict[str, Any] | None = None, **options: Any) -> EndpointConfig:
            opts = {"settings": settings or {}, "format": "csv", "bucket_path": "raw", **options}
            return EndpointConfig("lake", "lake", path=str(tmp_path / "lake"), options=opts)

        return local
    import boto3  # type: ignore[import-untyped]

    url: str = request.getfixturevalue("moto_url")
    bucket = f"{BUCKET}-{abs(hash(request.node.name)) % 10**8}"
    boto3.client(
        "s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    ).create_bucket(Bucket=bucket)

    def s3(settings: dict[str, Any] | None = None, **options: Any) -> EndpointConfig:
        opts = {
            "settings": {**KEYS, **(settings or {})},
            "format": "csv",
            "bucket_path": "raw",
            "endpoint_url": url,
            "region": "us-east-1",
            **options,
        }
        return EndpointConfig("lake", "lake", path=f"s3://{bucket}/prefix", options=opts)

    return s3


def files(target: LakeTarget | LakeApplier, folder: str = "") -> list[str]:
    return target.fs.list_tree(folder)


def text(target: LakeTarget | LakeApplier, rel: str) -> str:
    data = target.fs.read_bytes(rel)
    assert data is not None, rel
    return (gzip.decompress(data) if rel.endswith(".gz") else data).decode()


def load(target: LakeTarget, data: list[dict[str, Any]], mode: PrepMode = PrepMode.DROP_AND_CREATE) -> None:
    loading = target.begin_load(TABLE, mode)
    loading.write(batch(data))
    loading.commit()


# --- full load ---------------------------------------------------------------------------


def test_full_load_csv_as_the_service_writes_it(lake: Factory) -> None:
    target = open_target(lake())
    assert isinstance(target, LakeTarget)
    data = rows(2)
    data.append({"id": 3, "name": 'say "hi", ok', "amount": None, "at": None, "ok": None, "day": None})
    data.append(
        {"id": 4, "name": "", "amount": Decimal("-1.50"), "at": AT, "ok": True, "day": date(2024, 2, 29)}
    )
    load(target, data)
    assert files(target) == ["raw/sales/orders/LOAD00000001.csv"]
    assert text(target, "raw/sales/orders/LOAD00000001.csv").split("\n") == [
        "1,name 1,0.25,2024-01-02 03:04:05.123000,false,2024-01-02",
        "2,name 2,0.50,2024-01-02 03:04:05.123000,true,2024-01-03",
        '3,"say ""hi"", ok",,,,',
        '4,"",-1.50,2024-01-02 03:04:05.123000,true,2024-02-29',
        "",
    ]
    assert target.describe(TABLE.ref) == TABLE
    assert target.count(TABLE.ref) == 4
    back = pa.Table.from_batches(list(target.read(TABLE, 3, order_by_key=True)))
    assert back.to_pylist() == pa.Table.from_batches([batch(data)]).to_pylist()
    target.close()


def test_header_op_timestamp_and_null_spelling(lake: Factory) -> None:
    settings = {
        "AddColumnName": True,
        "IncludeOpForFullLoad": True,
        "TimestampColumnName": "dms_ts",
        "CsvNullValue": "NULL",
        "CsvDelimiter": "|",
        "CompressionType": "gzip",
    }
    target = open_target(lake(settings))
    assert isinstance(target, LakeTarget)
    data = [{"id": 1, "name": None, "amount": None, "at": None, "ok": None, "day": None}]
    load(target, data)
    assert files(target) == ["raw/sales/orders/LOAD00000001.csv.gz"]
    lines = text(target, "raw/sales/orders/LOAD00000001.csv.gz").split("\n")
    assert lines[0] == "Op|dms_ts|id|name|amount|at|ok|day"
    op, stamp, *values = lines[1].split("|")
    assert op == "I"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}", stamp)
    assert values == ["1", "NULL", "NULL", "NULL", "NULL", "NULL"]
    assert pa.Table.from_batches(list(target.read(TABLE, 10))).to_pylist() == data
    target.close()


def test_full_load_parquet_types(lake: Factory) -> None:
    settings = {
        "IncludeOpForFullLoad": True,
        "ParquetTimestampInMillisecond": True,
        "TimestampColumnName": "ts",
    }
    target = open_target(lake(settings, format="parquet"))
    assert isinstance(target, LakeTarget)
    data = rows(5)
    load(target, data)
    assert files(target) == ["raw/sales/orders/LOAD00000001.parquet"]
    with target.fs.open_input("raw/sales/orders/LOAD00000001.parquet") as handle:
        written = pq.read_table(handle)
    assert written.schema.names == ["Op", "ts", "id", "name", "amount", "at", "ok", "day"]
    types = {f.name: f.type for f in written.schema}
    assert types["Op"] == pa.string()
    assert types["ts"] == pa.string()
    assert types["id"] == pa.int64()
    assert types["amount"] == pa.decimal128(12, 2)
    assert types["at"] == pa.timestamp("ms", tz="UTC")
    assert types["day"] == pa.date32()
    assert written.column("Op").to_pylist() == ["I"] * 5
    assert target.count(TABLE.ref) == 5
    assert pa.Table.from_batches(list(target.read(TABLE, 2))).to_pylist() == data
    target.close()


def test_max_file_size_rolls_into_hex_numbered_files(lake: Factory) -> None:
    target = open_target(lake({"MaxFileSize": 1}))
    assert isinstance(target, LakeTarget)
    data = rows(300)
    loading = target.begin_load(TABLE, PrepMode.DROP_AND_CREATE)
    for i in range(0, 300, 70):
        loading.write(batch(data[i : i + 70]))
    loading.commit()
    names = target.load_files(TABLE.ref)
    assert names[:2] == ["LOAD00000001.csv", "LOAD00000002.csv"]
    assert "LOAD0000000A.csv" in names
    assert [int(n[4:12], 16) for n in names] == list(range(1, len(names) + 1))
    for name in names:
        assert target.fs.size(f"raw/sales/orders/{name}") <= 1024
    back = pa.Table.from_batches(list(target.read(TABLE, 1000)))
    assert back.column("id").to_pylist() == list(range(1, 301))
    target.close()


def test_drop_and_create_replaces_earlier_files_at_commit(lake: Factory) -> None:
    endpoint = lake({"MaxFileSize": 1})
    first = open_target(endpoint)
    assert isinstance(first, LakeTarget)
    load(first, rows(60))
    assert len(first.load_files(TABLE.ref)) >= 3
    second = open_target(endpoint)
    assert isinstance(second, LakeTarget)
    loading = second.begin_load(TABLE, PrepMode.DROP_AND_CREATE)
    loading.write(batch(rows(2, start=100)))
    assert len(second.load_files(TABLE.ref)) >= 3  # the old files until commit
    loading.commit()
    assert second.load_files(TABLE.ref) == ["LOAD00000001.csv"]
    assert second.count(TABLE.ref) == 2
    third = open_target(endpoint)
    assert isinstance(third, LakeTarget)
    load(third, rows(1, start=200), PrepMode.DO_NOTHING)
    assert third.load_files(TABLE.ref) == ["LOAD00000001.csv", "LOAD00000002.csv"]
    for target in (first, second, third):
        target.close()


def test_abort_and_a_killed_load_leave_nothing_visible(lake: Factory, tmp_path: Path) -> None:
    target = open_target(lake({"MaxFileSize": 1}))
    assert isinstance(target, LakeTarget)
    loading = target.begin_load(TABLE, PrepMode.DROP_AND_CREATE)
    loading.write(batch(rows(50)))
    loading.abort()
    assert files(target) == []
    assert target.describe(TABLE.ref) is None
    killed = target.begin_load(TABLE, PrepMode.DROP_AND_CREATE)
    killed.write(batch(rows(50)))  # never committed: the process "dies" here
    assert files(target) == []
    if not target.fs.is_s3:
        folder = tmp_path / "lake" / "raw" / "sales" / "orders"
        assert all(p.name.startswith(".") for p in folder.iterdir())
        load(target, rows(1))  # the next load sweeps the dead one's temporaries
        assert sorted(p.name for p in folder.iterdir()) == ["LOAD00000001.csv"]
    killed.abort()  # only to close its open file handle in this test process
    target.close()


def test_bucket_path_template_renders_the_load_date(lake: Factory) -> None:
    target = open_target(lake(bucket_path="raw/{date:%Y/%m/%d}"))
    assert isinstance(target, LakeTarget)
    load(target, rows(1))
    day = target.started.strftime("%Y/%m/%d")
    assert files(target) == [f"raw/{day}/sales/orders/LOAD00000001.csv"]
    target.close()


def test_settings_are_checked_by_their_service_names(tmp_path: Path) -> None:
    def endpoint(settings: dict[str, Any], **options: Any) -> EndpointConfig:
        return EndpointConfig("lk", "lake", path=str(tmp_path), options={"settings": settings, **options})

    with pytest.raises(ConfigError, match=r"AddColumName.*did you mean 'AddColumnName'"):
        LakeTarget(endpoint({"AddColumName": True}))
    with pytest.raises(ConfigError, match="DatePartitionSequence"):
        LakeTarget(endpoint({"DatePartitionSequence": "YYYY"}))
    with pytest.raises(ConfigError, match="CdcInsertsOnly and CdcInsertsAndUpdates"):
        LakeTarget(endpoint({"CdcInsertsOnly": True, "CdcInsertsAndUpdates": True}))
    with pytest.raises(ConfigError, match=r"unknown field \{day\}"):
        LakeTarget(endpoint({}, bucket_path="raw/{day}"))
    ok = LakeTarget(
        endpoint({"ServiceAccessRoleArn": "arn:x", "DataFormat": "parquet", "CsvRowDelimiter": "\\r\\n"})
    )
    assert ok.lake.ignored == ("ServiceAccessRoleArn",)
    assert ok.lake.data_format == "parquet"
    assert ok.lake.settings.csv_row_delimiter == "\r\n"


# --- change files -------------------------------------------------------------------------


def changes(inserts: list[dict[str, Any]], deletes: Sequence[dict[str, Any]] = (), **kw: Any) -> ChangeBatch:
    return upserted(TABLE, inserts, deletes, **kw)


def position(n: int) -> Checkpoint:
    return Checkpoint("sqlite", {"seq": n})


def test_change_files_with_op_column_and_date_partitions(lake: Factory) -> None:
    applier = open_applier(lake({"DatePartitionEnabled": True, "AddColumnName": True}))
    assert isinstance(applier, LakeApplier)
    assert applier.read_checkpoint("t1") is None
    partial = {"id": 7, "amount": Decimal("9.00"), "at": AT, "ok": True, "day": None}  # name unsent
    ops = [("D", {"id": 3}), ("I", rows(1, start=5)[0]), ("U", partial)]
    applier.apply_changes("t1", [logged(TABLE, ops)], position(1))
    assert applier.read_checkpoint("t1") == position(1)
    (path,) = files(applier, "raw")
    folder, name = path.rsplit("/", 1)
    assert STAMP_RE.match(name)
    assert folder == f"sales/orders/{name[0:4]}/{name[4:6]}/{name[6:8]}"
    assert text(applier, f"raw/{path}").split("\n") == [
        "Op,id,name,amount,at,ok,day",
        "D,3,,,,,",
        "I,5,name 5,1.25,2024-01-02 03:04:05.123000,false,2024-01-06",
        "U,7,,9.00,2024-01-02 03:04:05.123000,true,",
        "",
    ]
    applier.apply_changes("t1", [changes(rows(1, start=6))], position(2))
    later = files(applier, "raw")
    assert len(later) == 2
    assert later == sorted(later, key=lambda p: p.rsplit("/", 1)[1])  # names sort in apply order
    applier.close()


def test_date_partition_sequence_and_delimiter(tmp_path: Path) -> None:
    settings = {
        "DatePartitionEnabled": True,
        "DatePartitionSequence": "DDMMYYYY",
        "DatePartitionDelimiter": "DASH",
    }
    applier = LakeApplier(
        EndpointConfig("lk", "lake", path=str(tmp_path), options={"settings": {**settings, "CdcPath": "cdc"}})
    )
    applier.apply_changes("t", [changes(rows(1))], position(1))
    (path,) = files(applier)
    stamp = path.rsplit("/", 1)[1]
    assert path == f"cdc/sales/orders/{stamp[6:8]}-{stamp[4:6]}-{stamp[0:4]}/{stamp}"


def test_inserts_only_drops_deletes_and_the_op_column(lake: Factory) -> None:
    applier = open_applier(lake({"CdcInsertsOnly": True}, format="parquet"))
    assert isinstance(applier, LakeApplier)
    applier.apply_changes("t", [changes(rows(2), [{"id": 9}])], position(1))
    (path,) = files(applier, "raw/sales/orders")
    with applier.fs.open_input(f"raw/sales/orders/{path}") as handle:
        written = pq.read_table(handle)
    assert written.schema.names == TABLE.column_names
    assert written.column("id").to_pylist() == [1, 2]
    applier.close()


def test_replay_writes_the_same_file_and_the_checkpoint_last(lake: Factory) -> None:
    endpoint = lake()
    other = TableSchema(TableRef("sales", "other"), TABLE.columns, ("id",))
    crashed = open_applier(endpoint)
    assert isinstance(crashed, LakeApplier)
    crashed.apply_changes("t", [changes(rows(1))], position(1))
    first = files(crashed, "raw")

    # a part of a large transaction, under the stored checkpoint: a new file after
    # the stored batch's, which stays (rewriting it would lose the batch's rows)
    crashed.apply_changes("t", [changes(rows(1, start=5))], position(1))
    parted = files(crashed, "raw")
    assert len(parted) == 2 and set(first) < set(parted)
    assert [line.split(",")[1] for line in text(crashed, f"raw/{first[0]}").splitlines()] == ["1"]

    # a crash after the change files, before the checkpoint
    write_bytes = crashed.fs.write_bytes

    def dying(rel: str, data: bytes) -> None:
        if rel.endswith("checkpoints/t.json"):
            raise KeyboardInterrupt("killed")
        write_bytes(rel, data)

    crashed.fs.write_bytes = dying  # type: ignore[method-assign]
    batch_two = [changes(rows(2, start=10)), upserted(other, rows(1, start=50))]
    with pytest.raises(KeyboardInterrupt):
        crashed.apply_changes("t", batch_two, position(2))
    assert crashed.read_checkpoint("t") == position(1)
    assert len(files(crashed, "raw")) == 4

    # the replay (a new process) covers more of the source but not the other table
    resumed = open_applier(endpoint)
    assert isinstance(resumed, LakeApplier)
    resumed.apply_changes("t", [changes(rows(3, start=10))], position(3))
    assert resumed.read_checkpoint("t") == position(3)
    after = files(resumed, "raw")
    assert len(after) == 3, after  # the crashed attempt's files: rewritten or removed
    assert not [p for p in after if p.startswith("sales/other/")]
    newest = max(after, key=lambda p: p.rsplit("/", 1)[1])
    assert [line.split(",")[1] for line in text(resumed, f"raw/{newest}").splitlines()] == ["10", "11", "12"]
    state = resumed.fs.read_bytes(".conveyor/checkpoints/t.json")
    assert state is not None
    assert json.loads(state)["position"] == {"seq": 3}
    assert resumed.fs.read_bytes(".conveyor/checkpoints/t.pending.json") is None
    resumed.close()
    crashed.close()


def test_truncate_and_added_columns_do_not_break_the_files(tmp_path: Path) -> None:
    applier = LakeApplier(EndpointConfig("lk", "lake", path=str(tmp_path), options={"settings": {}}))
    applier.add_columns(TABLE, ["day"])
    applier.apply_changes("t", [logged(TABLE, [("T", None)])], position(1))
    assert files(applier) == []
    assert applier.read_checkpoint("t") == position(1)


WIDE = TableSchema(
    TableRef("public", "wide"),
    (
        Column("id", t.simple(Kind.INT32), False),
        Column("small", t.simple(Kind.INT16)),
        Column("f4", t.simple(Kind.FLOAT32)),
        Column("f8", t.simple(Kind.FLOAT64)),
        Column("num", t.simple(Kind.NUMERIC)),
        Column("raw", t.simple(Kind.BYTES)),
        Column("tm", t.simple(Kind.TIME)),
        Column("ts", t.simple(Kind.TIMESTAMP)),
        Column("d", t.simple(Kind.DATE)),
        Column("span", t.simple(Kind.INTERVAL)),
        Column("uid", t.simple(Kind.UUID)),
        Column("doc", t.simple(Kind.JSON)),
        Column("ints", t.array(t.simple(Kind.INT64))),
        Column("words", t.array(t.simple(Kind.TEXT))),
        Column("mood", t.enum(("sad", "ok"))),
    ),
    ("id",),
)


@pytest.mark.parametrize("data_format", ["csv", "parquet"])
def test_every_type_reads_back_unchanged(tmp_path: Path, data_format: str) -> None:
    from datetime import time

    from conveyor.connectors.arrow_rows import rows_to_batch

    values = [
        {
            "id": 1,
            "small": -3,
            "f4": 1.5,
            "f8": 0.1,
            "num": "12345678901234567890.5",
            "raw": b"\x00\xff,\n",
            "tm": time(1, 2, 3, 4),
            "ts": datetime(2024, 5, 6, 7, 8, 9, 10),
            "d": date(2024, 5, 6),
            "span": pa.MonthDayNano([1, -2, 3_000_000_500]),
            "uid": "0b6c1e8e-4f7a-4d8e-9c1e-0123456789ab",
            "doc": '{"a": [1, "x,y"]}',
            "ints": [1, None, 3],
            "words": ["a,b", 'q"', ""],
            "mood": "ok",
        },
        {"id": 2, "ts": "infinity", "d": "-infinity", "ints": [], "words": None},
        dict.fromkeys(WIDE.column_names) | {"id": 3},
    ]
    endpoint = EndpointConfig(
        "lk", "lake", path=str(tmp_path), options={"settings": {}, "format": data_format}
    )
    target = LakeTarget(endpoint)
    loading = target.begin_load(WIDE, PrepMode.DROP_AND_CREATE)
    written = rows_to_batch(WIDE, values, WIDE.column_names)
    loading.write(pa.RecordBatch.from_arrays(written.columns, schema=WIDE.arrow_schema()))
    loading.commit()
    back = pa.Table.from_batches(list(target.read(WIDE, 10, order_by_key=True)))
    for name in WIDE.column_names:  # compared as arrays: infinite timestamps have no Python value
        got, want = back.column(name).combine_chunks(), written.column(name)
        assert got.equals(want), (name, got, want)
    target.close()


def test_an_endpoint_from_the_stack_model(tmp_path: Path) -> None:
    from conveyor.stack.endpoints_spec import EndpointSpec

    spec = EndpointSpec(
        engine="lake",
        path=str(tmp_path / "lk"),
        bucket_path="dms/{date:%Y%m%d}",
        settings={"AddColumnName": True},
    )
    target = open_target(spec.to_config("lk", tmp_path))
    assert isinstance(target, LakeTarget)
    assert target.check().startswith("lake at ")
    load(target, rows(1))
    (path,) = files(target)
    assert path == f"dms/{target.started:%Y%m%d}/sales/orders/LOAD00000001.csv"
    assert text(target, path).startswith("id,name,amount,at,ok,day\n1,")
    target.close()


def test_a_part_under_the_stored_checkpoint_drops_a_crashed_later_attempt(tmp_path: Path) -> None:
    applier = LakeApplier(EndpointConfig("lk", "lake", path=str(tmp_path), options={"settings": {}}))
    applier.apply_changes("t", [changes(rows(1))], position(1))
    first = files(applier)
    write_bytes = applier.fs.write_bytes

    def dying(rel: str, data: bytes) -> None:
        if rel.endswith("checkpoints/t.json"):
            raise KeyboardInterrupt("killed")
        write_bytes(rel, data)

    applier.fs.write_bytes = dying  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        applier.apply_changes("t", [changes(rows(1, start=2))], position(2))
    assert len(files(applier)) == 2
    crashed = [f for f in files(applier) if f not in first]
    applier.fs.write_bytes = write_bytes  # type: ignore[method-assign]
    applier.apply_changes("t", [changes(rows(1))], position(1))  # a part under the stored checkpoint
    now = files(applier)
    assert len(now) == 2 and first[0] in now and crashed[0] not in now


def test_commit_times_and_a_key_change_in_commit_order(lake: Factory) -> None:
    applier = open_applier(lake({"TimestampColumnName": "ts"}))
    assert isinstance(applier, LakeApplier)
    one = rows(1)[0]
    committed = datetime(2024, 3, 1, 12, 0, 0, 250000, tzinfo=UTC)
    first = logged(TABLE, [("I", one), ("U", {**one, "name": "renamed"})], commit_time=committed)
    # then the key moves, in a transaction whose commit was not read yet (no commit time)
    moved = change_batch(
        TABLE, log=[*first.log, LoggedChange("u", {"id": 1}, {**one, "id": 2}, first.log[0].position, 2)]
    )
    applier.apply_changes("t", [moved], position(1))
    (path,) = files(applier, "raw")
    lines = text(applier, f"raw/{path}").splitlines()
    written = lay.stamp_time(path.rsplit("/", 1)[1].split(".")[0])
    assert [line.split(",")[:3] for line in lines] == [
        ["I", "2024-03-01 12:00:00.250000", "1"],
        ["U", "2024-03-01 12:00:00.250000", "1"],
        ["D", lay.format_timestamp(written, False), "1"],  # the file's time: no commit time known
        ["U", lay.format_timestamp(written, False), "2"],
    ]
    assert lines[1].split(",")[3] == "renamed" and lines[2].split(",")[3] == ""  # the key the source sent
    applier.close()


def test_inserts_and_updates_drop_every_delete_row(lake: Factory) -> None:
    applier = open_applier(lake({"CdcInsertsAndUpdates": True, "IncludeOpForFullLoad": True}))
    assert isinstance(applier, LakeApplier)
    one = rows(1)[0]
    ops = [("I", one), ("D", {"id": 1}), ("I", one), ("U", {**one, "name": "x"})]
    moved = logged(TABLE, ops)
    key_change = LoggedChange("u", {"id": 1}, {**one, "id": 5}, moved.log[0].position, 4)
    applier.apply_changes("t", [change_batch(TABLE, log=[*moved.log, key_change])], position(1))
    (path,) = files(applier, "raw")
    assert [line.split(",")[:2] for line in text(applier, f"raw/{path}").splitlines()] == [
        ["I", "1"],
        ["I", "1"],
        ["U", "1"],
        ["U", "5"],
    ]
    applier.close()


def test_a_batch_that_ended_inside_a_transaction_is_not_written_twice(tmp_path: Path) -> None:
    config = EndpointConfig("lk", "lake", path=str(tmp_path), options={"settings": {}})
    p0, p1, p2 = position(0), position(1), position(2)
    committed = [("I", r) for r in rows(2, start=1)]  # a transaction that committed at p1
    opened = [("I", r) for r in rows(4, start=10)]  # the next one, committed at p2
    first = LakeApplier(config)
    log = [*logged(TABLE, committed, at=p0).log, *logged(TABLE, opened[:2], at=p1).log]  # its first two
    first.apply_changes("t", [change_batch(TABLE, log=log)], p1)
    first.close()
    # a new process replays from p1: the open transaction's changes come again, from index 0
    again = LakeApplier(config)
    again.apply_changes("t", [logged(TABLE, opened, at=p1)], p2)
    ids = [
        line.split(",")[1]
        for rel in sorted(files(again), key=lambda rel: rel.rsplit("/", 1)[1])
        if not rel.startswith(".conveyor")
        for line in text(again, rel).splitlines()
    ]
    assert ids == ["1", "2", "10", "11", "12", "13"]
    again.close()


def test_changes_held_back_for_a_reloaded_table_are_written_later(tmp_path: Path) -> None:
    """One transaction after p1 changes two tables; the batch that ends inside
    it writes the first table's changes while the second's are held (a reload):
    those come in a later batch, with indexes the first table's covered, and
    are written."""
    other = TableSchema(TableRef("sales", "other"), TABLE.columns, ("id",))
    p1, p2 = position(1), position(2)
    applier = LakeApplier(EndpointConfig("lk", "lake", path=str(tmp_path), options={"settings": {}}))
    a0, x1, a2 = rows(3, start=1)
    written = logged(TABLE, [("I", a0), ("I", a2)], at=p1)  # indexes 0 and 1
    applier.apply_changes("t", [written], p1)
    held = logged(other, [("I", x1)], at=p1, first_index=1)  # index 1, after the reload
    applier.apply_changes("t", [held], p2)
    [path] = files(applier, "sales/other")
    assert [line.split(",")[1] for line in text(applier, f"sales/other/{path}").splitlines()] == ["2"]
    applier.close()


def test_a_replay_in_smaller_parts_writes_no_change_twice(tmp_path: Path) -> None:
    """A large transaction written in parts under one checkpoint, then replayed
    (the source not acknowledged) in parts that end earlier than the first
    run's: what the first run wrote is skipped whatever the replay's parts."""
    endpoint = EndpointConfig("lk", "lake", path=str(tmp_path), options={"settings": {}})
    anchor = position(1)

    def part(start: int, stop: int) -> ChangeBatch:
        ops = [("I", row) for row in rows(stop - start, start=start)]
        return logged(TABLE, ops, at=anchor, first_index=start)

    first = LakeApplier(endpoint)
    first.apply_changes("t", [part(0, 100)], anchor)
    first.apply_changes("t", [part(100, 200)], anchor)  # then killed, unacknowledged

    resumed = LakeApplier(endpoint)
    for start, stop in [(0, 60), (60, 150), (150, 360)]:
        resumed.apply_changes("t", [part(start, stop)], anchor)
    resumed.apply_changes("t", [logged(TABLE, [])], position(2))  # the commit

    ids = [
        int(line.split(",")[1])
        for rel in files(resumed)
        if rel.endswith(".csv") and "/orders/" in rel
        for line in text(resumed, rel).splitlines()
    ]
    assert sorted(ids) == list(range(360))
