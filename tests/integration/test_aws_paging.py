"""The AWS list operations page as the services do: boto3's own paginators walk
them with small pages and find every item exactly once; a bad token or page
size gets the service's error."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from support.aws import SHOP_STACK, aws_client, served_stack
from support.serve import Serve, wait_for

pytestmark = pytest.mark.e2e

MACHINES = 5
RULES = 4
TASKS = 23  # DMS pages hold 20 to 100 records


def _stack() -> str:
    machines = "\n".join(
        f"  m{i}: {{definition: {{StartAt: P, States: {{P: {{Type: Pass, End: true}}}}}}}}"
        for i in range(MACHINES)
    )
    rules = "\n".join(
        f"  r{i}: {{schedule: 'cron(0 {i} * * ? *)', targets: [{{state_machine: m0}}]}}" for i in range(RULES)
    )
    tasks = "\n".join(
        f"  t{i:02}: {{source: shop-db, target: warehouse, table_mappings: file://mappings.json}}"
        for i in range(TASKS)
    )
    return f"{SHOP_STACK}{tasks}\nstate_machines:\n{machines}\nrules:\n{rules}\n"


def walk(client: Any, operation: str, items: str, size: int, **params: Any) -> list[list[Any]]:
    pages = client.get_paginator(operation).paginate(PaginationConfig={"PageSize": size}, **params)
    return [page[items] for page in pages]


def flat(pages: list[list[Any]]) -> list[Any]:
    return [item for page in pages for item in page]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with served_stack(tmp_path_factory.mktemp("paging"), _stack()) as server:
        yield server


def test_step_functions_pages(served: Serve) -> None:
    sfn = aws_client(served.url, "stepfunctions")
    pages = walk(sfn, "list_state_machines", "stateMachines", 2)
    assert [len(p) for p in pages] == [2, 2, 1]
    assert sorted(m["name"] for m in flat(pages)) == [f"m{i}" for i in range(MACHINES)]

    machine = flat(pages)[0]["stateMachineArn"]
    started = [
        sfn.start_execution(stateMachineArn=machine, input=json.dumps({"n": n}))["executionArn"]
        for n in range(5)
    ]
    for arn in started:
        wait_for(lambda arn=arn: sfn.describe_execution(executionArn=arn)["status"] == "SUCCEEDED", 60, arn)
    pages = walk(sfn, "list_executions", "executions", 2, stateMachineArn=machine)
    assert [len(p) for p in pages] == [2, 2, 1]
    assert sorted(e["executionArn"] for e in flat(pages)) == sorted(started)

    whole = sfn.get_execution_history(executionArn=started[0])["events"]
    assert flat(walk(sfn, "get_execution_history", "events", 2, executionArn=started[0])) == whole
    assert len(whole) > 2

    with pytest.raises(ClientError, match="InvalidToken"):
        sfn.list_state_machines(nextToken="not-a-token")
    other = sfn.list_executions(stateMachineArn=machine, maxResults=1)["nextToken"]
    with pytest.raises(ClientError, match="InvalidToken"):
        sfn.list_state_machines(nextToken=other)  # a token of another operation
    with pytest.raises(ClientError, match="ValidationException"):
        sfn.list_state_machines(maxResults=1001)


def test_migration_service_pages(served: Serve) -> None:
    dms = aws_client(served.url, "dms")
    pages = walk(dms, "describe_replication_tasks", "ReplicationTasks", 20)
    assert [len(p) for p in pages] == [20, TASKS + 1 - 20]  # and the shop stack's own task
    names = sorted(t["ReplicationTaskIdentifier"] for t in flat(pages))
    assert names == ["shop-load", *(f"t{i:02}" for i in range(TASKS))]
    with pytest.raises(ClientError, match="InvalidParameterValue"):
        dms.describe_replication_tasks(MaxRecords=5)  # the service's minimum is 20
    with pytest.raises(ClientError, match="InvalidParameterValue"):
        dms.describe_endpoints(Marker="x")


def test_event_bridge_and_scheduler_pages(served: Serve) -> None:
    events = aws_client(served.url, "events")
    pages = walk(events, "list_rules", "Rules", 3)
    assert [len(p) for p in pages] == [3, 1]
    assert sorted(r["Name"] for r in flat(pages)) == [f"r{i}" for i in range(RULES)]
    with pytest.raises(ClientError, match="ValidationException"):
        events.list_rules(NextToken="garbage")

    scheduler = aws_client(served.url, "scheduler")
    pages = walk(scheduler, "list_schedules", "Schedules", 3)
    assert [len(p) for p in pages] == [3, 1]
    assert sorted(s["Name"] for s in flat(pages)) == [f"r{i}" for i in range(RULES)]


def test_redshift_data_pages(served: Serve) -> None:
    data = aws_client(served.url, "redshift-data")
    ids = [
        data.execute_statement(ClusterIdentifier="warehouse", Database="dev", Sql=f"SELECT {n}")["Id"]
        for n in range(3)
    ]
    for statement in ids:
        wait_for(lambda s=statement: data.describe_statement(Id=s)["Status"] == "FINISHED", 60, statement)
    listed = flat(walk(data, "list_statements", "Statements", 1))
    assert set(ids) <= {s["Id"] for s in listed}
    assert len(listed) == len({s["Id"] for s in listed})  # none twice
