"""A Distributed Map reading its items from the stack's lakes: ``s3:listObjectsV2``
and ``s3:getObject`` on a local lake folder and on a lake in S3 (moto on loopback)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from conveyor.orchestration.bus import event_sink
from conveyor.orchestration.executions import Executions
from conveyor.stack.loader import load_stack
from conveyor.store.store import Store

pytestmark = pytest.mark.integration

BUCKET = "item-reader"


def distributed_map(reader: dict[str, Any]) -> dict[str, Any]:
    processor = {
        "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
        "StartAt": "Keep",
        "States": {"Keep": {"Type": "Pass", "End": True}},
    }
    return {
        "StartAt": "M",
        "States": {"M": {"Type": "Map", "ItemReader": reader, "ItemProcessor": processor, "End": True}},
    }


LIST = {
    "Resource": "arn:aws:states:::s3:listObjectsV2",
    "Parameters": {"Bucket.$": "$.bucket", "Prefix": "raw/"},
}
CSV = {
    "Resource": "arn:aws:states:::s3:getObject",
    "ReaderConfig": {"InputType": "CSV", "CSVHeaderLocation": "FIRST_ROW"},
    "Parameters": {"Bucket.$": "$.bucket", "Key.$": "$.key"},
}


def run(tmp_path: Path, moto_url: str, definition: dict[str, Any], execution_input: Any) -> dict[str, Any]:
    stack_file = tmp_path / "conveyor.yaml"
    stack_file.write_text(
        f"""
endpoints:
  lake: {{engine: lake, path: ./lake}}
  cloud:
    engine: lake
    path: s3://{BUCKET}/base
    endpoint_url: {moto_url}
    region: us-east-1
    settings: {{AccessKeyId: testing, SecretAccessKey: testing}}
state_machines:
  read: {{definition: {json.dumps(definition)}}}
"""
    )
    stack = load_stack(stack_file)
    store = Store.open(home=tmp_path / "home")
    try:
        executions = Executions(store, lambda: stack, events=event_sink(store))
        started = executions.start("read", execution_input, run="inline")
        return executions.describe(started["executionId"])
    finally:
        store.close()


@pytest.fixture
def lakes(tmp_path: Path, moto_url: str) -> str:
    raw = tmp_path / "lake" / "raw"
    (raw / "2024").mkdir(parents=True)
    (raw / "a.csv").write_text("id,name\n1,ana\n2,bo\n")
    (raw / "2024" / "b.json").write_text("[]")
    (tmp_path / "lake" / "other.txt").write_text("not listed")
    s3 = boto3.client("s3", endpoint_url=moto_url, region_name="us-east-1")
    s3.create_bucket(Bucket=BUCKET)
    s3.put_object(Bucket=BUCKET, Key="raw/x.csv", Body=b"id,name\n9,zed\n")
    s3.put_object(Bucket=BUCKET, Key="raw/y.csv", Body=b"id\n")
    s3.put_object(Bucket=BUCKET, Key="elsewhere.csv", Body=b"id\n")
    return moto_url


def test_list_objects_of_a_local_lake_and_of_an_s3_bucket(tmp_path: Path, lakes: str) -> None:
    local = run(tmp_path, lakes, distributed_map(LIST), {"bucket": "lake"})
    assert local["status"] == "SUCCEEDED", local
    listed = json.loads(local["output"])
    assert [o["Key"] for o in listed] == ["raw/2024/b.json", "raw/a.csv"]
    assert listed[1]["Size"] == len("id,name\n1,ana\n2,bo\n") and "LastModified" in listed[1]
    cloud = run(tmp_path, lakes, distributed_map(LIST), {"bucket": BUCKET})
    assert [o["Key"] for o in json.loads(cloud["output"])] == ["raw/x.csv", "raw/y.csv"]


def test_get_object_reads_csv_rows_and_names_a_missing_bucket(tmp_path: Path, lakes: str) -> None:
    local = run(tmp_path, lakes, distributed_map(CSV), {"bucket": "lake", "key": "raw/a.csv"})
    assert json.loads(local["output"]) == [{"id": "1", "name": "ana"}, {"id": "2", "name": "bo"}]
    cloud = run(tmp_path, lakes, distributed_map(CSV), {"bucket": BUCKET, "key": "raw/x.csv"})
    assert json.loads(cloud["output"]) == [{"id": "9", "name": "zed"}]
    missing = run(tmp_path, lakes, distributed_map(CSV), {"bucket": "nope", "key": "k"})
    assert (missing["status"], missing["error"]) == ("FAILED", "States.ItemReaderFailed")
    assert "'nope' is neither a lake endpoint nor the bucket of one" in missing["cause"]


def test_result_writer_exports_to_a_local_lake_and_to_s3(tmp_path: Path, lakes: str) -> None:
    """ResultWriter (s3:putObject) on the stack's lakes: the manifest and result files
    under PREFIX/MAP_RUN_ID/, as the AWS developer guide's "ResultWriter (Map)" shows."""
    for bucket, prefix in (("lake", "out"), ("cloud", "results/"), (BUCKET, "top")):
        definition = distributed_map(LIST)
        definition["States"]["M"]["ResultWriter"] = {
            "Resource": "arn:aws:states:::s3:putObject",
            "Parameters": {"Bucket": bucket, "Prefix": prefix},
        }
        ran = run(tmp_path, lakes, definition, {"bucket": "lake"})
        assert ran["status"] == "SUCCEEDED", ran
        output = json.loads(ran["output"])
        run_id = output["MapRunArn"].rsplit(":", 1)[1]
        assert output["MapRunArn"] == f"arn:aws:states:local:000000000000:mapRun:read/M:{run_id}"
        folder = f"{prefix.rstrip('/')}/{run_id}/"
        assert output["ResultWriterDetails"] == {"Bucket": bucket, "Key": folder + "manifest.json"}
        if bucket == "lake":
            read = {
                name: (tmp_path / "lake" / folder / name).read_text()
                for name in ("manifest.json", "SUCCEEDED_0.json")
            }
        else:
            s3 = boto3.client("s3", endpoint_url=lakes, region_name="us-east-1")
            base = "base/" if bucket == "cloud" else ""
            read = {
                name: s3.get_object(Bucket=BUCKET, Key=base + folder + name)["Body"].read().decode()
                for name in ("manifest.json", "SUCCEEDED_0.json")
            }
        manifest = json.loads(read["manifest.json"])
        assert manifest["DestinationBucket"] == bucket and manifest["MapRunArn"] == output["MapRunArn"]
        assert manifest["ResultFiles"] == {
            "FAILED": [],
            "PENDING": [],
            "SUCCEEDED": [{"Key": folder + "SUCCEEDED_0.json", "Size": len(read["SUCCEEDED_0.json"])}],
        }
        records = json.loads(read["SUCCEEDED_0.json"])
        assert [json.loads(r["Output"])["Key"] for r in records] == ["raw/2024/b.json", "raw/a.csv"]
        assert {r["Status"] for r in records} == {"SUCCEEDED"}
