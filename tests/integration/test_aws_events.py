"""EventBridge rules and targets through boto3: they are the stack's rules, and an
event put afterwards starts the target the API attached."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from support.aws import SHOP_STACK, aws_client, served_stack
from support.serve import wait_for

pytestmark = pytest.mark.e2e

STACK = (
    SHOP_STACK
    + """
state_machines:
  passer: {definition: {StartAt: P, States: {P: {Type: Pass, End: true}}}}
"""
)


def runs_with(sfn: Any, arn: str, marker: int) -> list[dict[str, Any]]:
    found = []
    for row in sfn.list_executions(stateMachineArn=arn)["executions"]:
        described = sfn.describe_execution(executionArn=row["executionArn"])
        if json.loads(described["input"]).get("detail", {}).get("n") == marker:
            found.append(described)
    return found


def test_rules_and_targets(tmp_path: Path) -> None:
    with served_stack(tmp_path, STACK) as server:
        events = aws_client(server.url, "events")
        sfn = aws_client(server.url, "stepfunctions")
        machine = sfn.list_state_machines()["stateMachines"][0]["stateMachineArn"]

        arn = events.put_rule(Name="orders", EventPattern=json.dumps({"source": ["shop"]}))["RuleArn"]
        assert arn.endswith(":rule/orders")
        assert events.list_targets_by_rule(Rule="orders")["Targets"] == []
        put = events.put_targets(Rule="orders", Targets=[{"Id": "run-passer", "Arn": machine}])
        assert put["FailedEntryCount"] == 0
        (target,) = events.list_targets_by_rule(Rule="orders")["Targets"]
        assert target == {"Id": "run-passer", "Arn": machine}

        def fire(n: int) -> None:
            answer = events.put_events(
                Entries=[{"Source": "shop", "DetailType": "order", "Detail": json.dumps({"n": n})}]
            )
            assert answer["FailedEntryCount"] == 0

        fire(1)
        wait_for(lambda: runs_with(sfn, machine, 1), 30, "the rule's execution")

        events.disable_rule(Name="orders")
        assert events.describe_rule(Name="orders")["State"] == "DISABLED"
        fire(2)
        events.enable_rule(Name="orders")
        fire(3)
        wait_for(lambda: runs_with(sfn, machine, 3), 30, "the re-enabled rule's execution")
        assert runs_with(sfn, machine, 2) == []  # the disabled rule started nothing

        # replacing the rule keeps its targets; a schedule rule is listed with its expression
        events.put_rule(Name="orders", EventPattern=json.dumps({"source": ["shop", "till"]}))
        assert len(events.list_targets_by_rule(Rule="orders")["Targets"]) == 1
        events.put_rule(Name="nightly", ScheduleExpression="cron(0 2 * * ? *)", State="DISABLED")
        listed = {r["Name"]: r for r in events.list_rules()["Rules"]}
        assert listed["nightly"]["ScheduleExpression"] == "cron(0 2 * * ? *)"
        assert json.loads(listed["orders"]["EventPattern"]) == {"source": ["shop", "till"]}

        with pytest.raises(ClientError, match="ValidationException"):
            events.put_rule(Name="bad", ScheduleExpression="every day")
        with pytest.raises(ClientError, match="ValidationException"):
            events.put_targets(
                Rule="orders", Targets=[{"Id": "q", "Arn": "arn:aws:sqs:us-east-1:000000000000:queue"}]
            )
        with pytest.raises(events.exceptions.ResourceNotFoundException):
            events.put_targets(Rule="missing", Targets=[{"Id": "x", "Arn": machine}])
        with pytest.raises(ClientError, match="ValidationException"):
            events.delete_rule(Name="orders")  # it has targets

        removed = events.remove_targets(Rule="orders", Ids=["run-passer", "nope"])
        assert removed["FailedEntryCount"] == 1 and removed["FailedEntries"][0]["TargetId"] == "nope"
        assert events.list_targets_by_rule(Rule="orders")["Targets"] == []
        events.delete_rule(Name="orders")
        events.delete_rule(Name="nightly")
        assert events.list_rules()["Rules"] == []
        with pytest.raises(events.exceptions.ResourceNotFoundException):
            events.describe_rule(Name="orders")
