"""Seed 003's journey with its three Lambda functions as written: Python files whose
handlers call boto3's dms client, declared under `functions:` and invoked by a
`lambda:invoke` Task in `conveyor serve`, which their boto3 calls reach."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from support.cli import conveyor
from support.serve import Serve, wait_for
from support.servers import free_port

pytestmark = pytest.mark.e2e

HERE = Path(__file__).resolve().parent
QUICKSTART = HERE.parents[1] / "examples" / "quickstart"
KEYS = {"CONVEYOR_AWS_ACCESS_KEY_ID": "AKIALAMBDATEST", "CONVEYOR_AWS_SECRET_ACCESS_KEY": "lambda-secret"}
TOKEN = {"CONVEYOR_API_TOKEN": "lambda-test-token"}
ENDPOINT_ARN = "arn:aws:dms:local:000000000000:endpoint:s3-target"
TASK_ARN = "arn:aws:dms:local:000000000000:task:dms-full-dump-task"


def invoke(function: str, next_state: str, result_path: str) -> dict[str, Any]:
    return {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {
            "FunctionName": f"arn:aws:lambda:us-east-1:123456789012:function:{function}",
            "Payload.$": "$",
        },
        "ResultSelector": {"Payload.$": "$.Payload"},
        "ResultPath": result_path,
        "Next": next_state,
    }


# The article's workflow (its 60-second wait shortened to 2 for the test).
WORKFLOW = {
    "StartAt": "ModifyEndpoint",
    "States": {
        "ModifyEndpoint": invoke("ModifyEndpoint", "Wait", "$.Modified"),
        "Wait": {"Type": "Wait", "Seconds": 2, "Next": "DescribeConnections"},
        "DescribeConnections": invoke("DescribeConnections", "ConnectionStatus", "$.Connection"),
        "ConnectionStatus": {
            "Type": "Choice",
            "Choices": [
                {
                    "Variable": "$.Connection.Payload.Status",
                    "StringEquals": "successful",
                    "Next": "StartReplicationTask",
                },
                {"Variable": "$.Connection.Payload.Status", "StringEquals": "testing", "Next": "Wait"},
            ],
            "Default": "Failed",
        },
        "Failed": {"Type": "Fail", "Error": "ConnectionTestFailed"},
        "StartReplicationTask": {**invoke("StartReplicationTask", "Done", "$.Started"), "Next": "Done"},
        "Done": {"Type": "Succeed"},
    },
}
FAILING = {"StartAt": "Call", "States": {"Call": {**invoke("Failing", "x", "$.r"), "End": True}}}
del FAILING["States"]["Call"]["Next"]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Serve, Path]]:
    subprocess.run(
        [sys.executable, str(QUICKSTART / "make_source.py"), str(tmp_path / "data" / "shop.sqlite")],
        check=True,
        timeout=60,
    )
    (tmp_path / "mappings.json").write_text((QUICKSTART / "mappings.json").read_text())
    shutil.copytree(HERE / "seed_003_lambdas", tmp_path / "lambdas")
    (tmp_path / "workflow.asl.json").write_text(json.dumps(WORKFLOW))
    (tmp_path / "failing.asl.json").write_text(json.dumps(FAILING))
    environment = f"{{S3_ENDPOINT_ARN: '{ENDPOINT_ARN}', DMS_TASK_ARN: '{TASK_ARN}', BUCKET_FOLDER: raw}}"
    (tmp_path / "conveyor.yaml").write_text(
        f"""
endpoints:
  shop-db: {{engine: sqlite, path: ./data/shop.sqlite}}
  s3-target: {{engine: lake, path: ./lake, format: csv, bucket_path: raw}}
tasks:
  dms-full-dump-task:
    source: shop-db
    target: s3-target
    table_mappings: file://mappings.json
functions:
  ModifyEndpoint:
    handler: ./lambdas/modify_endpoint.py:lambda_handler
    environment: {environment}
  DescribeConnections:
    handler: ./lambdas/describe_connections.py:lambda_handler
    environment: {environment}
  StartReplicationTask:
    handler: ./lambdas/start_replication_task.py:lambda_handler
    environment: {environment}
  Failing: {{handler: ./lambdas/failing.py:lambda_handler, timeout: 30}}
state_machines:
  TaskWorkflowStateMachine: {{definition: file://workflow.asl.json}}
  failing: {{definition: file://failing.asl.json}}
"""
    )
    home = tmp_path / "home"
    applied = conveyor(home, "apply", str(tmp_path / "conveyor.yaml"))
    assert applied.returncode == 0, applied.stderr
    server = Serve(home, free_port(), KEYS | TOKEN)
    try:
        server.ready()
        yield server, tmp_path
    finally:
        server.kill()


def sfn(server: Serve) -> Any:
    return boto3.client(
        "stepfunctions",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id=KEYS["CONVEYOR_AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=KEYS["CONVEYOR_AWS_SECRET_ACCESS_KEY"],
        config=Config(retries={"max_attempts": 1}),
    )


def finished(client: Any, arn: str) -> dict[str, Any] | None:
    described: dict[str, Any] = client.describe_execution(executionArn=arn)
    return None if described["status"] == "RUNNING" else described


def test_seed_003_functions_as_written_repoint_the_lake_and_start_the_load(
    served: tuple[Serve, Path],
) -> None:
    server, folder = served
    client = sfn(server)
    arn = "arn:aws:states:local:000000000000:stateMachine:TaskWorkflowStateMachine"
    started = client.start_execution(stateMachineArn=arn, input="{}")
    described = wait_for(lambda: finished(client, started["executionArn"]), 90, "the workflow")
    assert described["status"] == "SUCCEEDED", (described.get("error"), described.get("cause"))
    output = json.loads(described["output"])
    today = f"raw/{datetime.now(UTC):%Y/%m/%d}"
    assert output["Modified"]["Payload"] == {"BucketFolder": today}
    assert output["Connection"]["Payload"] == {"Status": "successful"}

    def tables_loaded() -> set[str]:
        files = (folder / "lake" / today / "dbo").glob("*/LOAD*.csv")
        tables = {f.parent.name for f in files}
        # The tables load one after the other: wait for both, not the first.
        return tables if len(tables) >= 2 else set()

    tables = wait_for(tables_loaded, 60, "the full load of both tables into today's folder")
    assert tables == {"customer", "fact_sales_stg"}


def test_a_function_that_raises_fails_its_task_with_lambdas_error(served: tuple[Serve, Path]) -> None:
    server, _ = served
    client = sfn(server)
    started = client.start_execution(
        stateMachineArn="arn:aws:states:local:000000000000:stateMachine:failing", input='{"n": 1}'
    )
    described = wait_for(lambda: finished(client, started["executionArn"]), 60, "the execution")
    assert described["status"] == "FAILED"
    assert described["error"] == "ValueError"
    assert json.loads(described["cause"]) == {"errorMessage": "no good: {'n': 1}", "errorType": "ValueError"}
