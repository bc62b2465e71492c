"""EventBridge Scheduler through boto3 (its REST-JSON protocol): schedules are the
stack's schedule rules, and one created through the API fires its state machine."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from support.aws import SHOP_STACK, aws_client, served_stack
from support.serve import wait_for

pytestmark = pytest.mark.e2e

STACK = (
    SHOP_STACK
    + """
state_machines:
  tick: {definition: {StartAt: P, States: {P: {Type: Pass, End: true}}}}
rules:
  nightly: {schedule: "cron(0 2 * * ? *)", targets: [{state_machine: tick, input: {}}]}
"""
)
WINDOW = {"Mode": "OFF"}


def test_schedules(tmp_path: Path) -> None:
    with served_stack(tmp_path, STACK) as server:
        scheduler = aws_client(server.url, "scheduler")
        sfn = aws_client(server.url, "stepfunctions")
        machine = sfn.list_state_machines()["stateMachines"][0]["stateMachineArn"]
        target = {
            "Arn": machine,
            "RoleArn": "arn:aws:iam::000000000000:role/x",
            "Input": '{"from": "scheduler"}',
        }

        listed = scheduler.list_schedules()["Schedules"]
        assert [s["Name"] for s in listed] == ["nightly"]
        assert listed[0]["Arn"].endswith(":schedule/default/nightly")

        # A rate's grid is anchored at its StartDate: the first fire is at it, not a minute later.
        start = (datetime.now(UTC) + timedelta(seconds=3)).replace(microsecond=0)
        created = scheduler.create_schedule(
            Name="every-minute",
            ScheduleExpression="rate(1 minute)",
            StartDate=start,
            Target=target,
            FlexibleTimeWindow=WINDOW,
        )
        assert created["ScheduleArn"].endswith(":schedule/default/every-minute")
        got = scheduler.get_schedule(Name="every-minute")
        assert got["ScheduleExpression"] == "rate(1 minute)" and got["State"] == "ENABLED"
        assert got["StartDate"] == start
        assert got["Target"]["Arn"] == machine and json.loads(got["Target"]["Input"]) == {"from": "scheduler"}

        def fired() -> list[dict[str, Any]]:
            return [
                e
                for e in sfn.list_executions(stateMachineArn=machine)["executions"]
                if json.loads(sfn.describe_execution(executionArn=e["executionArn"])["input"])
                == {"from": "scheduler"}
            ]

        wait_for(fired, 30, "the schedule to fire at its StartDate")

        scheduler.update_schedule(
            Name="every-minute",
            ScheduleExpression="cron(30 6 * * ? *)",
            ScheduleExpressionTimezone="Europe/Paris",
            State="DISABLED",
            Target=target,
            FlexibleTimeWindow=WINDOW,
        )
        got = scheduler.get_schedule(Name="every-minute")
        assert (got["ScheduleExpression"], got["ScheduleExpressionTimezone"], got["State"]) == (
            "cron(30 6 * * ? *)",
            "Europe/Paris",
            "DISABLED",
        )
        assert [s["Name"] for s in scheduler.list_schedules(State="DISABLED")["Schedules"]] == [
            "every-minute"
        ]

        with pytest.raises(scheduler.exceptions.ConflictException):
            scheduler.create_schedule(
                Name="every-minute",
                ScheduleExpression="rate(5 minutes)",
                Target=target,
                FlexibleTimeWindow=WINDOW,
            )
        with pytest.raises(scheduler.exceptions.ValidationException):
            scheduler.create_schedule(
                Name="once",
                ScheduleExpression="at(2030-02-30T00:00:00)",  # no such day
                Target=target,
                FlexibleTimeWindow=WINDOW,
            )
        with pytest.raises(scheduler.exceptions.ValidationException, match="end_date must come after"):
            scheduler.create_schedule(
                Name="backwards",
                ScheduleExpression="rate(5 minutes)",
                StartDate=datetime(2030, 1, 2, tzinfo=UTC),
                EndDate=datetime(2030, 1, 1, tzinfo=UTC),
                Target=target,
                FlexibleTimeWindow=WINDOW,
            )
        window = {"StartDate": datetime(2030, 1, 1, tzinfo=UTC), "EndDate": datetime(2031, 1, 1, tzinfo=UTC)}
        scheduler.create_schedule(
            Name="bounded",
            ScheduleExpression="rate(1 day)",
            Target=target,
            FlexibleTimeWindow=WINDOW,
            **window,
        )
        got = scheduler.get_schedule(Name="bounded")
        assert (got["StartDate"], got["EndDate"]) == (window["StartDate"], window["EndDate"])

        # a one-time schedule fires once, then deletes itself (ActionAfterCompletion DELETE)
        soon = (datetime.now(UTC) + timedelta(seconds=4)).strftime("%Y-%m-%dT%H:%M:%S")
        once = target | {"Input": '{"from": "at"}'}
        scheduler.create_schedule(
            Name="once",
            ScheduleExpression=f"at({soon})",
            ActionAfterCompletion="DELETE",
            Target=once,
            FlexibleTimeWindow=WINDOW,
        )
        assert scheduler.get_schedule(Name="once")["ActionAfterCompletion"] == "DELETE"

        def gone() -> bool:
            return "once" not in {s["Name"] for s in scheduler.list_schedules()["Schedules"]}

        wait_for(gone, 60, "the one-time schedule to fire and delete itself")
        ran = [
            e
            for e in sfn.list_executions(stateMachineArn=machine)["executions"]
            if json.loads(sfn.describe_execution(executionArn=e["executionArn"])["input"]) == {"from": "at"}
        ]
        assert len(ran) == 1
        scheduler.delete_schedule(Name="bounded")
        with pytest.raises(scheduler.exceptions.ValidationException):
            scheduler.create_schedule(
                Name="queue",
                ScheduleExpression="rate(5 minutes)",
                Target={"Arn": "arn:aws:sqs:us-east-1:000000000000:q", "RoleArn": "r"},
                FlexibleTimeWindow=WINDOW,
            )
        with pytest.raises(scheduler.exceptions.ResourceNotFoundException):
            scheduler.get_schedule(Name="missing")

        scheduler.delete_schedule(Name="every-minute")
        assert [s["Name"] for s in scheduler.list_schedules()["Schedules"]] == ["nightly"]
        with pytest.raises(scheduler.exceptions.ResourceNotFoundException):
            scheduler.delete_schedule(Name="every-minute")
