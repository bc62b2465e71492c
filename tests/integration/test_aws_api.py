"""Unchanged boto3 code against `conveyor serve`: the migration service, the Redshift
Data API, Step Functions and EventBridge through their JSON protocols, SigV4-signed."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from support.cli import conveyor
from support.serve import Serve, wait_for
from support.servers import free_port

pytestmark = pytest.mark.e2e

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart"
KEYS = {
    "CONVEYOR_AWS_ACCESS_KEY_ID": "AKIACONVEYORTEST",
    "CONVEYOR_AWS_SECRET_ACCESS_KEY": "s3cr3t/key+value",
}
TOKEN = {"CONVEYOR_API_TOKEN": "aws-api-test-token"}
PASS_ASL = {
    "StartAt": "P",
    "States": {"P": {"Type": "Pass", "Result": {"ok": 1}, "ResultPath": "$.r", "End": True}},
}
WAIT_ASL = {"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 60, "End": True}}}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Serve, Path]]:
    folder = tmp_path_factory.mktemp("aws")
    source = folder / "data" / "shop.sqlite"
    subprocess.run([sys.executable, str(QUICKSTART / "make_source.py"), str(source)], check=True, timeout=60)
    (folder / "mappings.json").write_text((QUICKSTART / "mappings.json").read_text())
    (folder / "pass.asl.json").write_text(json.dumps(PASS_ASL))
    (folder / "wait.asl.json").write_text(json.dumps(WAIT_ASL))
    (folder / "conveyor.yaml").write_text(
        """
endpoints:
  shop-db: {engine: sqlite, path: ./data/shop.sqlite}
  warehouse: {engine: duckdb, path: ./data/warehouse.duckdb}
tasks:
  shop-load: {source: shop-db, target: warehouse, table_mappings: file://mappings.json}
state_machines:
  passer: {definition: file://pass.asl.json}
  waiter: {definition: file://wait.asl.json}
  quick: {type: EXPRESS, definition: file://pass.asl.json}
rules:
  on-app-event:
    event_pattern: {source: [my.app]}
    targets: [{state_machine: passer}]
"""
    )
    home = folder / "home"
    applied = conveyor(home, "apply", str(folder / "conveyor.yaml"))
    assert applied.returncode == 0, applied.stderr
    server = Serve(home, free_port(), KEYS | TOKEN)
    try:
        server.ready()
        yield server, folder
    finally:
        server.kill()


def client(served: tuple[Serve, Path], service: str, secret: str | None = None) -> Any:
    return boto3.client(
        service,
        endpoint_url=served[0].url,
        region_name="us-east-1",
        aws_access_key_id=KEYS["CONVEYOR_AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=secret or KEYS["CONVEYOR_AWS_SECRET_ACCESS_KEY"],
        # StartSyncExecution's host prefix ("sync-") would name another host.
        config=Config(retries={"max_attempts": 1}, inject_host_prefix=False),
    )


def until(check: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    return wait_for(check, timeout, what)


def test_migration_service(served: tuple[Serve, Path]) -> None:
    dms = client(served, "dms")
    tasks = dms.describe_replication_tasks()["ReplicationTasks"]
    assert [t["ReplicationTaskIdentifier"] for t in tasks] == ["shop-load"]
    arn = tasks[0]["ReplicationTaskArn"]
    assert arn == "arn:aws:dms:local:000000000000:task:shop-load"
    filtered = dms.describe_replication_tasks(Filters=[{"Name": "replication-task-id", "Values": ["nope"]}])
    assert filtered["ReplicationTasks"] == []

    endpoints = {e["EndpointIdentifier"] for e in dms.describe_endpoints()["Endpoints"]}
    assert endpoints == {"shop-db", "warehouse"}

    started = dms.start_replication_task(ReplicationTaskArn=arn, StartReplicationTaskType="start-replication")
    assert started["ReplicationTask"]["ReplicationTaskIdentifier"] == "shop-load"

    def stopped() -> dict[str, Any] | None:
        (task,) = dms.describe_replication_tasks()["ReplicationTasks"]
        return task if task["Status"] == "stopped" else None

    task = until(stopped, "the full load to finish")
    assert task["StopReason"] == "Stop Reason FULL_LOAD_ONLY_FINISHED"
    tables = dms.describe_table_statistics(ReplicationTaskArn=arn)["TableStatistics"]
    assert {t["TableName"]: t["FullLoadRows"] for t in tables} == {"customer": 3, "fact_sales_stg": 6}
    messages = [e["Message"] for e in dms.describe_events()["Events"]]
    assert "Stop Reason FULL_LOAD_ONLY_FINISHED" in messages

    with pytest.raises(dms.exceptions.ResourceNotFoundFault):
        dms.start_replication_task(
            ReplicationTaskArn="arn:aws:dms:local:0:task:missing",
            StartReplicationTaskType="start-replication",
        )


def test_redshift_data_api(served: tuple[Serve, Path]) -> None:
    data = client(served, "redshift-data")
    sql = "SELECT 42 AS n, 'x' AS s, CAST('\\x00\\xff' AS BLOB) AS b, NULL AS z"
    statement = data.execute_statement(ClusterIdentifier="warehouse", Database="dev", Sql=sql)

    def finished() -> dict[str, Any] | None:
        described = data.describe_statement(Id=statement["Id"])
        return described if described["Status"] in ("FINISHED", "FAILED") else None

    described = until(finished, "the statement")
    assert described["Status"] == "FINISHED", described
    result = data.get_statement_result(Id=statement["Id"])
    (record,) = result["Records"]
    assert record[0] == {"longValue": 42} and record[1] == {"stringValue": "x"}
    assert record[2] == {"blobValue": b"\x00\xff"}  # base64 on the wire, bytes in boto3
    assert record[3] == {"isNull": True}
    assert [c["name"] for c in result["ColumnMetadata"]] == ["n", "s", "b", "z"]

    batch = data.batch_execute_statement(
        ClusterIdentifier="warehouse",
        Database="dev",
        Sqls=["CREATE TABLE bt (a INT)", "INSERT INTO bt VALUES (1)"],
    )
    until(lambda: data.describe_statement(Id=batch["Id"])["Status"] == "FINISHED", "the batch")
    ids = [s["Id"] for s in data.list_statements()["Statements"]]
    assert statement["Id"] in ids and batch["Id"] in ids

    with pytest.raises(data.exceptions.ResourceNotFoundException):
        data.describe_statement(Id="00000000-0000-0000-0000-000000000000")
    with pytest.raises(data.exceptions.ResourceNotFoundException):
        data.execute_statement(ClusterIdentifier="missing", Database="dev", Sql="select 1")
    with pytest.raises(data.exceptions.ValidationException):
        data.execute_statement(ClusterIdentifier="shop-db", Database="dev", Sql="select 1")  # not SQL


def test_a_cancelled_statement_is_rolled_back_on_duckdb(served: tuple[Serve, Path]) -> None:
    """CancelStatement interrupts a DuckDB statement (rolled back, ABORTED); one that has
    ended cannot be cancelled. Before, the statement was only marked ABORTED and ran on
    to commit its changes (here: about 2-4 s after the cancel; the check waits 8 s)."""
    data = client(served, "redshift-data")

    def run(sql: str) -> str:
        statement: str = data.execute_statement(ClusterIdentifier="warehouse", Database="dev", Sql=sql)["Id"]
        return statement

    running = run("CREATE TABLE slow AS SELECT sum(hash(i) % 7) AS n FROM range(600000000) t(i)")
    until(lambda: data.describe_statement(Id=running)["Status"] == "STARTED", "the statement to start")
    assert data.cancel_statement(Id=running)["Status"] is True
    described = data.describe_statement(Id=running)
    assert (described["Status"], described["Error"]) == ("ABORTED", "cancelled by the user")

    def tables_named_slow() -> int:
        check = run("SELECT count(*) FROM information_schema.tables WHERE table_name = 'slow'")
        until(lambda: data.describe_statement(Id=check)["Status"] == "FINISHED", "the check")
        found: int = data.get_statement_result(Id=check)["Records"][0][0]["longValue"]
        return found

    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        assert tables_named_slow() == 0, "the cancelled statement committed its table"
        time.sleep(0.5)
    finished = run("SELECT 1")
    until(lambda: data.describe_statement(Id=finished)["Status"] == "FINISHED", "a statement")
    with pytest.raises(data.exceptions.ValidationException, match="is FINISHED and cannot be cancelled"):
        data.cancel_statement(Id=finished)


def test_connection_tests_through_the_migration_service(served: tuple[Serve, Path]) -> None:
    dms = client(served, "dms")
    arns = {e["EndpointIdentifier"]: e["EndpointArn"] for e in dms.describe_endpoints()["Endpoints"]}
    tested = dms.test_connection(ReplicationInstanceArn="conveyor", EndpointArn=arns["shop-db"])
    assert tested["Connection"]["Status"] == "testing"
    assert tested["Connection"]["EndpointIdentifier"] == "shop-db"

    def done() -> dict[str, Any] | None:
        (found,) = dms.describe_connections(Filters=[{"Name": "endpoint-arn", "Values": [arns["shop-db"]]}])[
            "Connections"
        ]
        return found if found["Status"] != "testing" else None

    assert until(done, "the connection test")["Status"] == "successful"
    with pytest.raises(dms.exceptions.ResourceNotFoundFault):
        dms.test_connection(
            ReplicationInstanceArn="conveyor", EndpointArn="arn:aws:dms:local:0:endpoint:nope"
        )


def test_step_functions(served: tuple[Serve, Path]) -> None:
    sfn = client(served, "stepfunctions")
    machines = {m["name"]: m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"]}
    assert set(machines) == {"passer", "waiter", "quick"}
    definition = json.loads(sfn.describe_state_machine(stateMachineArn=machines["passer"])["definition"])
    assert definition == PASS_ASL

    started = sfn.start_execution(stateMachineArn=machines["passer"], name="first", input='{"a": 1}')
    described = until(
        lambda: (
            (d := sfn.describe_execution(executionArn=started["executionArn"]))["status"] != "RUNNING" and d
        ),
        "the execution",
    )
    assert described["status"] == "SUCCEEDED"
    assert json.loads(described["output"]) == {"a": 1, "r": {"ok": 1}}
    history = sfn.get_execution_history(executionArn=started["executionArn"])["events"]
    assert history[0]["type"] == "ExecutionStarted" and history[-1]["type"] == "ExecutionSucceeded"
    listed = sfn.list_executions(stateMachineArn=machines["passer"])["executions"]
    assert started["executionArn"] in [e["executionArn"] for e in listed]

    # StartSyncExecution is for EXPRESS machines only
    with pytest.raises(sfn.exceptions.StateMachineTypeNotSupported):
        sfn.start_sync_execution(stateMachineArn=machines["passer"], input='{"b": 2}')
    synced = sfn.start_sync_execution(stateMachineArn=machines["quick"], input='{"b": 2}')
    assert synced["status"] == "SUCCEEDED" and json.loads(synced["output"]) == {"b": 2, "r": {"ok": 1}}
    assert synced["executionArn"].startswith("arn:aws:states:local:000000000000:express:quick:")

    waiting = sfn.start_execution(stateMachineArn=machines["waiter"])
    until(
        lambda: sfn.describe_execution(executionArn=waiting["executionArn"])["status"] == "RUNNING", "a wait"
    )
    sfn.stop_execution(executionArn=waiting["executionArn"], error="Stopped", cause="by the test")
    stopped = until(
        lambda: (
            (d := sfn.describe_execution(executionArn=waiting["executionArn"]))["status"] == "ABORTED" and d
        ),
        "the abort",
    )
    assert stopped["status"] == "ABORTED"

    with pytest.raises(sfn.exceptions.ExecutionDoesNotExist):
        sfn.describe_execution(executionArn="arn:aws:states:local:000000000000:execution:passer:none")


def test_event_bridge(served: tuple[Serve, Path]) -> None:
    events = client(served, "events")
    sfn = client(served, "stepfunctions")
    answer = events.put_events(
        Entries=[{"Source": "my.app", "DetailType": "order", "Detail": json.dumps({"order": 7})}]
    )
    assert answer["FailedEntryCount"] == 0 and answer["Entries"][0]["EventId"]

    def ran() -> list[dict[str, Any]]:
        arn = "arn:aws:states:local:000000000000:stateMachine:passer"
        rows = sfn.list_executions(stateMachineArn=arn)["executions"]
        found = []
        for row in rows:
            described = sfn.describe_execution(executionArn=row["executionArn"])
            if described["status"] == "SUCCEEDED" and json.loads(described["input"]).get("detail") == {
                "order": 7
            }:
                found.append(described)
        return found

    until(ran, "the rule's execution")
    rules = events.list_rules()["Rules"]
    assert [r["Name"] for r in rules] == ["on-app-event"]
    assert json.loads(events.describe_rule(Name="on-app-event")["EventPattern"]) == {"source": ["my.app"]}
    with pytest.raises(events.exceptions.ResourceNotFoundException):
        events.describe_rule(Name="missing")
    bad = events.put_events(Entries=[{"Source": "my.app", "DetailType": "x", "Detail": "not json"}])
    assert bad["FailedEntryCount"] == 1 and bad["Entries"][0]["ErrorCode"]


@pytest.mark.parametrize(
    ("service", "call"),
    [
        ("dms", lambda c: c.describe_replication_tasks()),
        ("redshift-data", lambda c: c.list_statements()),
        ("stepfunctions", lambda c: c.list_state_machines()),
        ("events", lambda c: c.list_rules()),
        ("scheduler", lambda c: c.list_schedules()),
        ("glue", lambda c: c.get_job_runs(JobName="any")),
    ],
)
def test_a_wrong_secret_is_refused_by_every_service(
    served: tuple[Serve, Path], service: str, call: Callable[[Any], Any]
) -> None:
    with pytest.raises(ClientError) as refused:
        call(client(served, service, secret="not-the-secret"))
    error = refused.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert error["Error"]["Code"] == "InvalidSignatureException"
    other = boto3.client(
        service,
        endpoint_url=served[0].url,
        region_name="us-east-1",
        aws_access_key_id="AKIAOTHER",
        aws_secret_access_key="x",
        config=Config(retries={"max_attempts": 1}),
    )
    with pytest.raises(ClientError) as unknown:
        call(other)
    assert unknown.value.response["Error"]["Code"] == "UnrecognizedClientException"


def test_the_rest_api_still_answers_beside_the_aws_protocols(served: tuple[Serve, Path]) -> None:
    import httpx

    auth = {"Authorization": f"Bearer {TOKEN['CONVEYOR_API_TOKEN']}"}
    assert httpx.get(f"{served[0].url}/tasks", headers=auth, timeout=5).status_code == 200
    unsigned = httpx.post(
        served[0].url + "/",
        headers={
            "X-Amz-Target": "AmazonDMSv20160101.DescribeReplicationTasks",
            "Content-Type": "application/x-amz-json-1.1",
        },
        content=b"{}",
        timeout=5,
    )
    assert unsigned.status_code == 403
    assert unsigned.json()["__type"] == "MissingAuthenticationTokenException"
