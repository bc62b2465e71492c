"""Orchestration end to end: the two seed journeys (a full load's event runs stored
procedures through the statement service; a schedule re-points the lake endpoint at
today's folder and starts the load), and `conveyor serve` (API, token, restart in a Wait)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from conveyor.core.json_text import load_json
from conveyor.orchestration.bus import event_sink
from conveyor.orchestration.executions import ScaledClock
from conveyor.orchestration.service import Service
from conveyor.replication.task_runner import run_task
from conveyor.service.apply import merge_into_store
from conveyor.stack.loader import load_stack
from conveyor.stack.model import Stack
from conveyor.store.store import Store
from support.cli import conveyor
from support.seeds import SEED_001_ASL
from support.serve import Serve, wait_for
from support.servers import PostgresServer, free_port

pytestmark = pytest.mark.integration
QUICKSTART = Path(__file__).parents[2] / "examples" / "quickstart"

SEED_001_PATTERN = """{
"source": ["aws.dms"],
"detail": {
"eventId": ["DMS-EVENT-0079"],
"eventType": ["REPLICATION_TASK_STOPPED"],
"detailMessage": ["Stop Reason FULL_LOAD_ONLY_FINISHED"],
"type": ["REPLICATION_TASK"],
"category": ["StateChange"]
}
}"""

# The seed's tables (Redshift's ENCODE / DISTSTYLE removed) and procedures, as written.
WAREHOUSE_DDL = """
CREATE SCHEMA IF NOT EXISTS dbo;
CREATE TABLE dbo.dim_cust (cust_key integer, cust_id character varying(10),
  cust_name character varying(100), cust_city character varying(50), cust_rev_flg character varying(1));
CREATE TABLE dbo.fact_sales (order_number character varying(20), cust_key integer, order_amt numeric(18,2));
CREATE OR REPLACE PROCEDURE dbo.sp_load_cust_dim()
LANGUAGE plpgsql
AS $$
BEGIN
truncate table dbo.dim_cust;
insert into dbo.dim_cust(cust_key,cust_id,cust_name,cust_city) values (1,100,'abc','chicago');
insert into dbo.dim_cust(cust_key,cust_id,cust_name,cust_city) values (2,101,'xyz','dallas');
insert into dbo.dim_cust(cust_key,cust_id,cust_name,cust_city) values (3,102,'yrt','new york');
update dbo.dim_cust
set cust_rev_flg=case when cust_city='new york' then 'Y' else 'N' end
where cust_rev_flg is null;
END;
$$;
CREATE OR REPLACE PROCEDURE dbo.sp_load_fact_sales()
LANGUAGE plpgsql
AS $$
BEGIN
--Process Fact Sales
insert into dbo.fact_sales
select
sales_fct.order_number,
cust.cust_key as cust_key,
sales_fct.order_amt
from dbo.fact_sales_stg sales_fct
--join to customer dim
inner join (select * from dbo.dim_cust) cust on sales_fct.cust_id=cust.cust_id;
END;
$$;
CREATE OR REPLACE PROCEDURE dbo.sp_broken()
LANGUAGE plpgsql
AS $$
BEGIN
insert into dbo.fact_sales select order_number, 1 / 0, order_amt from dbo.fact_sales_stg;
END;
$$;
"""

# A definition that, unlike the seed's, also handles a FAILED statement.
CHECKED_ASL = {
    "StartAt": "Run",
    "States": {
        "Run": {
            "Type": "Task",
            "Resource": "arn:aws:states:::aws-sdk:redshiftdata:executeStatement",
            "Parameters": {"ClusterIdentifier": "redshiftcluster-abcd", "Database": "dev", "Sql.$": "$.sql"},
            "Next": "Wait",
        },
        "Wait": {"Type": "Wait", "Seconds": 1, "Next": "Check"},
        "Check": {
            "Type": "Task",
            "Resource": "arn:aws:states:::aws-sdk:redshiftdata:describeStatement",
            "Parameters": {"Id.$": "$.Id"},
            "Next": "Done?",
        },
        "Done?": {
            "Type": "Choice",
            "Choices": [
                {"Variable": "$.Status", "StringEquals": "FINISHED", "Next": "Ok"},
                {"Variable": "$.Status", "StringEquals": "FAILED", "Next": "Failed"},
            ],
            "Default": "Wait",
        },
        "Ok": {"Type": "Succeed"},
        "Failed": {"Type": "Fail", "Error": "ProcedureFailed", "CausePath": "$.Error"},
    },
}

# The seed-003 workflow: today's folder, ModifyEndpoint, DescribeConnections polled, StartReplicationTask.
DATED_LOAD_ASL = {
    "Comment": "Point the lake endpoint at today's folder, then run the full load",
    "StartAt": "TodaysFolder",
    "States": {
        "TodaysFolder": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Parameters": {"FunctionName": "test_orchestration:todays_folder", "Payload.$": "$"},
            "ResultSelector": {"Folder.$": "$.Payload"},
            "Next": "ModifyEndpoint",
        },
        "ModifyEndpoint": {
            "Type": "Task",
            "Resource": "arn:aws:states:::aws-sdk:databasemigration:modifyEndpoint",
            "Parameters": {
                "EndpointArn": "arn:aws:dms:local:000000000000:endpoint:s3-target",
                "S3Settings": {"BucketFolder.$": "$.Folder"},
            },
            "ResultPath": "$.Modified",
            "Next": "WaitForConnectionTest",
        },
        "WaitForConnectionTest": {"Type": "Wait", "Seconds": 60, "Next": "DescribeConnections"},
        "DescribeConnections": {
            "Type": "Task",
            "Resource": "arn:aws:states:::aws-sdk:databasemigration:describeConnections",
            "Parameters": {
                "Filters": [
                    {"Name": "endpoint-arn", "Values": ["arn:aws:dms:local:000000000000:endpoint:s3-target"]}
                ]
            },
            "ResultSelector": {"Status.$": "$.Connections[0].Status"},
            "ResultPath": "$.Connection",
            "Next": "ConnectionStatus",
        },
        "ConnectionStatus": {
            "Type": "Choice",
            "Choices": [
                {
                    "Variable": "$.Connection.Status",
                    "StringEquals": "successful",
                    "Next": "StartReplicationTask",
                },
                {
                    "Variable": "$.Connection.Status",
                    "StringEquals": "testing",
                    "Next": "WaitForConnectionTest",
                },
            ],
            "Default": "ConnectionFailed",
        },
        "ConnectionFailed": {"Type": "Fail", "Error": "ConnectionTestFailed"},
        "StartReplicationTask": {
            "Type": "Task",
            "Resource": "arn:aws:states:::aws-sdk:databasemigration:startReplicationTask",
            "Parameters": {
                "ReplicationTaskArn": "arn:aws:dms:local:000000000000:task:dms-full-dump-task",
                "StartReplicationTaskType": "start-replication",
            },
            "End": True,
        },
    },
}


def todays_folder(payload: Any) -> str:
    """The seed's ModifyEndpoint Lambda: the bucket folder with the current date."""
    prefix = payload.get("prefix", "raw") if isinstance(payload, dict) else "raw"
    return f"{prefix}/{datetime.now(UTC):%Y/%m/%d}"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """CONVEYOR_HOME for this process and the workers it spawns."""
    path = tmp_path / "home"
    monkeypatch.setenv("CONVEYOR_HOME", str(path))
    monkeypatch.delenv("CONVEYOR_STORE_URL", raising=False)
    return path


@pytest.fixture
def store(home: Path) -> Iterator[Store]:
    opened = Store.open(home)
    yield opened
    opened.close()


def make_source(folder: Path) -> Path:
    path = folder / "data" / "shop.sqlite"
    subprocess.run([sys.executable, str(QUICKSTART / "make_source.py"), str(path)], check=True, timeout=60)
    for name in ("mappings.json", "task-settings.json"):
        (folder / name).write_text((QUICKSTART / name).read_text())
    return path


def apply(store: Store, folder: Path, yaml_text: str) -> Stack:
    (folder / "conveyor.yaml").write_text(yaml_text)
    stack = load_stack(folder / "conveyor.yaml")
    merge_into_store(store, stack)
    return stack


def scaled(factor: float) -> Callable[[Callable[[], bool]], ScaledClock]:
    return lambda aborted: ScaledClock(aborted, factor)


# --- seed 001 ------------------------------------------------------------------------------


@pytest.fixture
def warehouse(pg_server: PostgresServer) -> str:
    url = pg_server.url(pg_server.new_database("dw"))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(WAREHOUSE_DDL.encode())
    return url


def seed_001_stack(tmp_path: Path, warehouse: str) -> str:
    make_source(tmp_path)
    # The seed's definition as written, typographic quote included: the stack
    # loader repairs it (with a warning) as the ASL reader does.
    _, warnings = load_json(SEED_001_ASL)
    assert warnings and "typographic quote" in warnings[0]
    (tmp_path / "redshift-elt-load-customer-sales.asl.json").write_text(SEED_001_ASL)
    (tmp_path / "pattern.json").write_text(SEED_001_PATTERN)
    (tmp_path / "checked.asl.json").write_text(json.dumps(CHECKED_ASL))
    return f"""
endpoints:
  shop-db: {{engine: sqlite, path: ./data/shop.sqlite}}
  redshiftcluster-abcd: {{engine: postgres, url: "{warehouse}"}}
  redshiftcluster-abcdef: {{engine: postgres, url: "{warehouse}"}}
tasks:
  dms-full-dump-task:
    source: shop-db
    target: redshiftcluster-abcd
    migration_type: full-load
    table_mappings: file://mappings.json
    settings: file://task-settings.json
state_machines:
  redshift-elt-load-customer-sales:
    definition: file://redshift-elt-load-customer-sales.asl.json
  run-checked:
    definition: file://checked.asl.json
rules:
  dms-test:
    event_pattern: file://pattern.json
    targets: [{{state_machine: redshift-elt-load-customer-sales}}]
"""


def test_seed_001_full_load_event_runs_the_stored_procedures(
    tmp_path: Path, home: Path, store: Store, warehouse: str
) -> None:
    stack = apply(store, tmp_path, seed_001_stack(tmp_path, warehouse))
    # The seed waits 30 s between polls: run the service's clock 100 times faster.
    service = Service(store, clock_factory=scaled(100.0), poll=0.2)
    service.start()
    try:
        assert run_task(store, stack, "dms-full-dump-task", events=event_sink(store)) == "stopped"
        stopped = store.list_events()[-1]
        assert stopped["detail"]["eventId"] == "DMS-EVENT-0079"

        def finished() -> list[dict[str, Any]]:
            rows = service.executions.list(state_machine="redshift-elt-load-customer-sales")
            return [r for r in rows if r["status"] != "RUNNING"]

        (row,) = wait_for(finished, 30, "the rule's execution to end")
    finally:
        service.stop()
    assert row["status"] == "SUCCEEDED", service.executions.describe(row["executionId"])
    described = service.executions.describe(row["executionId"])
    assert json.loads(described["input"])["detail"]["eventId"] == "DMS-EVENT-0079"
    last = json.loads(described["output"])
    assert last["ClusterIdentifier"] == "redshiftcluster-abcdef"
    # The seed does not wait for the last statement: do it here, then check the warehouse.
    assert service.statements.wait(last["Id"], 20)["Status"] == "FINISHED"
    with psycopg.connect(warehouse) as conn:
        assert conn.execute(
            "SELECT count(*) FROM dbo.dim_cust WHERE cust_rev_flg IS NOT NULL"
        ).fetchone() == (3,)
        assert conn.execute("SELECT count(*), sum(order_amt) FROM dbo.fact_sales").fetchone() == (6, 685)

    result = conveyor(home, "executions", "history", row["executionId"], "--json")
    assert result.returncode == 0, result.stderr
    events = json.loads(result.stdout)["events"]
    kinds = [e["type"] for e in events]
    assert kinds[0] == "ExecutionStarted" and kinds[-1] == "ExecutionSucceeded"
    entered = [e["stateEnteredEventDetails"]["name"] for e in events if e["type"].endswith("StateEntered")]
    exited = [e["stateExitedEventDetails"]["name"] for e in events if e["type"].endswith("StateExited")]
    assert entered == exited
    assert entered[:4] == [
        "Load_Customer_Dim",
        "Wait on Load_Customer_Dim",
        "Check_Status_Load_Customer_Dim",
        "Choice",
    ]
    assert entered[-1] == "Load_Sales_Fact"
    for event in events:
        if event["type"].endswith("StateEntered"):
            json.loads(event["stateEnteredEventDetails"]["input"])
        if event["type"].endswith("StateExited"):
            json.loads(event["stateExitedEventDetails"]["output"])
    checks = [
        json.loads(e["stateExitedEventDetails"]["output"])
        for e in events
        if e["type"] == "TaskStateExited"
        and e["stateExitedEventDetails"]["name"] == "Check_Status_Load_Customer_Dim"
    ]
    assert checks[-1]["Status"] == "FINISHED" and checks[-1]["QueryString"] == "call dbo.sp_load_cust_dim()"
    scheduled = [e for e in events if e["type"] == "TaskScheduled"]
    assert (
        json.loads(scheduled[0]["taskScheduledEventDetails"]["parameters"])["Sql"]
        == "call dbo.sp_load_cust_dim()"
    )


def test_a_failing_procedure_fails_its_execution_with_the_database_error(
    tmp_path: Path, home: Path, store: Store, warehouse: str
) -> None:
    apply(store, tmp_path, seed_001_stack(tmp_path, warehouse))
    with psycopg.connect(warehouse, autocommit=True) as conn:
        conn.execute("CREATE TABLE dbo.fact_sales_stg (order_number text, cust_id text, order_amt numeric)")
        conn.execute("INSERT INTO dbo.fact_sales_stg VALUES ('1', '100', 1)")
    started = conveyor(
        home,
        "state-machines",
        "start",
        "run-checked",
        "--input",
        '{"sql": "call dbo.sp_broken()"}',
        "--wait",
        "--json",
    )
    assert started.returncode == 1, started.stderr
    described = json.loads(started.stdout)
    assert described["status"] == "FAILED"
    assert described["error"] == "ProcedureFailed"
    assert "division by zero" in described["cause"]
    history = json.loads(conveyor(home, "executions", "history", described["executionId"], "--json").stdout)
    failed = history["events"][-1]
    assert failed["type"] == "ExecutionFailed"
    assert "division by zero" in failed["executionFailedEventDetails"]["cause"]

    ok = conveyor(
        home,
        "statements",
        "execute",
        "redshiftcluster-abcd",
        "select 1 as one, 'x' as two, null as three",
        "--json",
    )
    assert ok.returncode == 0, ok.stderr
    result = json.loads(ok.stdout)["Result"]
    assert [c["name"] for c in result["ColumnMetadata"]] == ["one", "two", "three"]
    assert result["Records"] == [[{"longValue": 1}, {"stringValue": "x"}, {"isNull": True}]]

    statements = Service(store).statements
    many = statements.execute("redshiftcluster-abcd", "select generate_series(1, 2500) as n")
    assert statements.wait(many, 20)["ResultRows"] == 2500
    pages, token = [], None
    while True:
        page = statements.result(many, token)
        pages.append(len(page["Records"]))
        token = page.get("NextToken")
        if token is None:
            break
    assert pages == [1000, 1000, 500] and page["Records"][-1] == [{"longValue": 2500}]

    slow = statements.execute("redshiftcluster-abcd", "select pg_sleep(30)")
    wait_for(lambda: statements.describe(slow)["Status"] == "STARTED", 10, "the statement to start")
    assert statements.cancel(slow)
    assert statements.describe(slow)["Status"] == "ABORTED"
    with psycopg.connect(warehouse) as conn:
        busy = (
            "SELECT count(*) FROM pg_stat_activity WHERE query = 'select pg_sleep(30)' AND state = 'active'"
        )
        wait_for(lambda: conn.execute(busy).fetchone() == (0,), 10, "the backend to stop")


# --- seed 003 ---------------------------------------------------------------------------------


def seed_003_stack(tmp_path: Path) -> str:
    make_source(tmp_path)
    (tmp_path / "dated-full-load.asl.json").write_text(json.dumps(DATED_LOAD_ASL))
    return """
endpoints:
  shop-db: {engine: sqlite, path: ./data/shop.sqlite}
  s3-target: {engine: lake, path: ./lake, format: csv, bucket_path: raw}
tasks:
  dms-full-dump-task:
    source: shop-db
    target: s3-target
    migration_type: full-load
    table_mappings: file://mappings.json
state_machines:
  dated-full-load:
    definition: file://dated-full-load.asl.json
rules:
  nightly:
    schedule: cron(0 2 * * ? *)
    targets: [{state_machine: dated-full-load, input: {prefix: raw}}]
"""


def test_seed_003_schedule_repoints_the_lake_at_todays_folder_then_loads(
    tmp_path: Path, home: Path, store: Store
) -> None:
    apply(store, tmp_path, seed_003_stack(tmp_path))
    service = Service(store, clock_factory=scaled(60.0))  # the seed's 60-second wait takes a second
    scheduler = service.scheduler
    try:
        assert scheduler.tick(datetime(2026, 3, 1, 1, 59, tzinfo=UTC)) == []  # first sight: from now on
        assert scheduler.tick(datetime(2026, 3, 1, 1, 59, 59, tzinfo=UTC)) == []
        (fired,) = scheduler.tick(datetime(2026, 3, 1, 2, 0, 5, tzinfo=UTC))
        assert fired["Rule"] == "nightly" and fired["Time"] == "2026-03-01T02:00:00Z"
        assert scheduler.tick(datetime(2026, 3, 1, 2, 0, 30, tzinfo=UTC)) == []  # fires once
        (arn,) = fired["Executions"]
        done = wait_for(
            lambda: (d := service.executions.describe(arn))["status"] != "RUNNING" and d, 30, "the execution"
        )
        assert done["status"] == "SUCCEEDED", done
        wait_for(
            lambda: store.task_status("dms-full-dump-task")["status"] in ("stopped", "failed"), 60, "the load"
        )
    finally:
        service.stop()
    assert store.task_status("dms-full-dump-task")["stop_reason"] == "FULL_LOAD_ONLY_FINISHED"
    folder = tmp_path / "lake" / "raw" / f"{datetime.now(UTC):%Y/%m/%d}"
    assert sorted(p.name for p in (folder / "dbo").iterdir()) == ["customer", "fact_sales_stg"]
    assert list((folder / "dbo" / "fact_sales_stg").glob("LOAD*.csv"))
    endpoint = Stack.from_store_dict(store.stack_document() or {}).endpoints["s3-target"]
    assert endpoint.settings["BucketFolder"] == f"raw/{date.today():%Y/%m/%d}"
    assert endpoint.bucket_path is None

    # A folder the lake cannot take fails the connection test: the execution fails, no load starts.
    runs_before = len(store.list_runs("dms-full-dump-task"))
    service = Service(store, clock_factory=scaled(60.0))
    try:
        described = service.executions.start("dated-full-load", {"prefix": "{bogus}"}, run="inline")
    finally:
        service.stop()
    assert described["status"] == "FAILED" and described["error"] == "ConnectionTestFailed"
    assert len(store.list_runs("dms-full-dump-task")) == runs_before
    (connection,) = [c for c in store.connections() if c["endpoint"] == "s3-target"]
    assert connection["status"] == "failed" and "bogus" in connection["message"]


# --- conveyor serve ---------------------------------------------------------------------------------

WAITER_ASL = {
    "StartAt": "Before",
    "States": {
        "Before": {"Type": "Pass", "Result": "before", "ResultPath": "$.step", "Next": "Nap"},
        "Nap": {"Type": "Wait", "Seconds": 4, "Next": "After"},
        "After": {"Type": "Pass", "Result": "after", "ResultPath": "$.step", "End": True},
    },
}


def test_serve_answers_requires_its_token_and_continues_a_wait_after_a_restart(
    tmp_path: Path, home: Path, store: Store
) -> None:
    make_source(tmp_path)
    (tmp_path / "waiter.asl.json").write_text(json.dumps(WAITER_ASL))
    (tmp_path / "echo.asl.json").write_text(
        json.dumps({"StartAt": "Echo", "States": {"Echo": {"Type": "Pass", "End": True}}})
    )
    apply(
        store,
        tmp_path,
        """
endpoints:
  shop-db: {engine: sqlite, path: ./data/shop.sqlite}
  warehouse: {engine: duckdb, path: ./data/warehouse.duckdb}
tasks:
  shop-load: {source: shop-db, target: warehouse}
state_machines:
  waiter: {definition: file://waiter.asl.json}
  echo: {definition: file://echo.asl.json}
rules:
  after-load:
    event_pattern: {source: [aws.dms], detail: {eventId: [DMS-EVENT-0079]}}
    targets:
      - state_machine: echo
        input_transformer:
          InputPathsMap: {task: "$.resources[0]", msg: "$.detail.detailMessage"}
          InputTemplate: '{"task": <task>, "message": "load: <msg>"}'
  app-events:
    event_pattern: {source: [{prefix: my.}], detail: {k: [{numeric: [">", 0]}]}}
    targets: [{state_machine: echo, input_path: $.detail}]
""",
    )
    refused = conveyor(home, "serve", "--host", "0.0.0.0", "--port", str(free_port()), timeout=30)
    assert refused.returncode == 2 and "needs a token" in refused.stderr

    port = free_port()
    first = Serve(home, port, None, "--no-auth")
    try:
        first.ready()
        spec = httpx.get(f"{first.url}/openapi.json", timeout=5).json()
        for path in (
            "/tasks",
            "/endpoints",
            "/events",
            "/executions",
            "/state-machines",
            "/statements",
            "/rules",
        ):
            assert path in spec["paths"], path
        # The same answer as `conveyor tasks list --json`.
        tasks = httpx.get(f"{first.url}/tasks", timeout=5).json()
        assert tasks == json.loads(conveyor(home, "tasks", "list", "--json").stdout)
        assert [t["name"] for t in tasks] == ["shop-load"]
        answer = httpx.post(
            f"{first.url}/state-machines/waiter/executions", json={"input": {"n": 1}}, timeout=5
        )
        assert answer.status_code == 200, answer.text
        execution_id = answer.json()["executionId"]
        wait_for(
            lambda: (
                httpx.get(f"{first.url}/executions/{execution_id}", timeout=5).json().get("currentState")
                == "Nap"
            ),
            10,
            "the Wait",
        )
        time.sleep(0.5)
        assert first.terminate() == 0
    finally:
        first.kill()
    parked = store.execution(execution_id)
    assert parked is not None and parked["status"] == "RUNNING" and parked["owner_pid"] is None
    assert parked["record"]["cursor"]["phase"] == "wait"
    wake_at = datetime.fromisoformat(parked["record"]["cursor"]["wake_at"].replace("Z", "+00:00"))

    token = {"CONVEYOR_API_TOKEN": "s3cret-token"}
    second = Serve(home, port, token)
    try:
        second.ready()
        restarted = datetime.now(UTC)
        assert httpx.get(f"{second.url}/tasks", timeout=5).status_code == 401
        bad = {"Authorization": "Bearer nope"}
        assert httpx.get(f"{second.url}/tasks", headers=bad, timeout=5).status_code == 401
        auth = {"Authorization": "Bearer s3cret-token"}
        assert httpx.get(f"{second.url}/tasks", headers=auth, timeout=5).status_code == 200

        def finished() -> dict[str, Any] | None:
            described = httpx.get(f"{second.url}/executions/{execution_id}", headers=auth, timeout=5).json()
            return None if described["status"] == "RUNNING" else described

        described = wait_for(finished, 20, "the execution to finish after the restart")
        history = httpx.get(f"{second.url}/executions/{execution_id}/history", headers=auth, timeout=5).json()

        # A task run by a worker process: its DMS-EVENT-0079 starts `echo` in serve.
        started = httpx.post(f"{second.url}/tasks/shop-load/start", headers=auth, timeout=10)
        assert started.status_code == 200, started.text

        def echoed(count: int) -> list[dict[str, Any]]:
            rows = httpx.get(f"{second.url}/executions?state_machine=echo", headers=auth, timeout=5).json()
            done = [r for r in rows if r["status"] == "SUCCEEDED"]
            return done if len(done) >= count else []

        (after_load,) = wait_for(lambda: echoed(1), 30, "the rule's execution after the load")
        output = httpx.get(
            f"{second.url}/executions/{after_load['executionId']}", headers=auth, timeout=5
        ).json()
        assert json.loads(output["output"]) == {
            "task": "arn:aws:dms:local:000000000000:task:shop-load",
            "message": "load: Stop Reason FULL_LOAD_ONLY_FINISHED",
        }
        # An event put from the CLI: recorded there, run by serve.
        put = conveyor(
            home,
            "events",
            "put",
            "--source",
            "my.app",
            "--detail-type",
            "Thing",
            "--detail",
            '{"k": 2}',
            "--json",
        )
        assert put.returncode == 0, put.stderr
        assert json.loads(put.stdout)["MatchedRules"] == ["app-events"]
        latest = wait_for(lambda: echoed(2), 20, "the CLI event's execution")
        output = httpx.get(
            f"{second.url}/executions/{latest[0]['executionId']}", headers=auth, timeout=5
        ).json()
        assert json.loads(output["output"]) == {"k": 2}
        assert second.terminate() == 0
    finally:
        second.kill()
    assert described["status"] == "SUCCEEDED"
    assert json.loads(described["output"]) == {"n": 1, "step": "after"}
    events = history["events"]
    assert [e["type"] for e in events].count("WaitStateEntered") == 1
    exited = next(e for e in events if e["type"] == "WaitStateExited")
    left = datetime.fromisoformat(exited["timestamp"].replace("Z", "+00:00"))
    # The Wait ended when it was due, not 4 s after the restart.
    assert left >= wake_at
    assert (left - max(wake_at, restarted)).total_seconds() < 2.5
    assert os.environ["CONVEYOR_HOME"] == str(home)
