"""Step Functions semantics checked through boto3 against `conveyor serve`, as the AWS
documentation describes them: the context object's ARNs and times, StartExecution's
idempotence for a STANDARD name, and the five-minute limit of an EXPRESS execution
(lowered for the test with CONVEYOR_EXPRESS_MAX_SECONDS, which may only lower it)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from support.aws import SHOP_STACK, aws_client, served_stack
from support.cli import conveyor
from support.serve import wait_for

pytestmark = pytest.mark.e2e

CONTEXT = {"StartAt": "P", "States": {"P": {"Type": "Pass", "Parameters": {"ctx.$": "$$"}, "End": True}}}
SLOW = {
    "StartAt": "W",
    "States": {"W": {"Type": "Wait", "Seconds": 30, "Next": "P"}, "P": {"Type": "Pass", "End": True}},
}
STACK = (
    SHOP_STACK
    + f"""
state_machines:
  ctx: {{definition: {json.dumps(CONTEXT)}}}
  quick-ctx: {{type: EXPRESS, definition: {json.dumps(CONTEXT)}}}
  slow: {{definition: {json.dumps(SLOW)}}}
  quick-slow: {{type: EXPRESS, definition: {json.dumps(SLOW)}}}
"""
)
MILLIS = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
LIMIT = 2


def ended(sfn: Any, arn: str, timeout: float = 60) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        described: dict[str, Any] = sfn.describe_execution(executionArn=arn)
        return described if described["status"] != "RUNNING" else None

    return wait_for(done, timeout, f"{arn} to end")  # type: ignore[no-any-return]


def test_context_name_reuse_and_the_express_limit(tmp_path: Path) -> None:
    env = {"CONVEYOR_EXPRESS_MAX_SECONDS": str(LIMIT)}
    with served_stack(tmp_path, STACK, env=env) as server:
        sfn = aws_client(server.url, "stepfunctions")
        machines = {m["name"]: m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"]}

        # $$.Execution.Id and $$.StateMachine.Id are ARNs; times to the millisecond
        started = sfn.start_execution(stateMachineArn=machines["ctx"], name="c1", input='{"k": 1}')
        ctx = json.loads(ended(sfn, started["executionArn"])["output"])["ctx"]
        assert ctx["Execution"]["Id"] == started["executionArn"]
        assert ctx["Execution"]["Name"] == "c1" and ctx["Execution"]["Input"] == {"k": 1}
        assert ctx["StateMachine"] == {"Id": machines["ctx"], "Name": "ctx"}
        assert re.fullmatch(MILLIS, ctx["Execution"]["StartTime"])
        assert re.fullmatch(MILLIS, ctx["State"]["EnteredTime"])
        assert (ctx["Execution"]["RedriveCount"], ctx["State"]["RetryCount"]) == (0, 0)
        quick = sfn.start_sync_execution(stateMachineArn=machines["quick-ctx"], name="q1")
        assert json.loads(quick["output"])["ctx"]["Execution"]["Id"] == quick["executionArn"]

        # a STANDARD name: the same input while it runs answers the same execution ...
        first = sfn.start_execution(stateMachineArn=machines["slow"], name="w1", input='{"a": 1}')
        again = sfn.start_execution(stateMachineArn=machines["slow"], name="w1", input='{"a":1}')
        assert (again["executionArn"], again["startDate"]) == (first["executionArn"], first["startDate"])
        listed = sfn.list_executions(stateMachineArn=machines["slow"])["executions"]
        assert [e["name"] for e in listed] == ["w1"]
        # ... another input does not; nor the same once it has ended
        with pytest.raises(sfn.exceptions.ExecutionAlreadyExists):
            sfn.start_execution(stateMachineArn=machines["slow"], name="w1", input='{"a": 2}')
        sfn.stop_execution(executionArn=first["executionArn"])
        with pytest.raises(sfn.exceptions.ExecutionAlreadyExists):
            sfn.start_execution(stateMachineArn=machines["slow"], name="w1", input='{"a": 1}')
        with pytest.raises(sfn.exceptions.ExecutionAlreadyExists):
            sfn.start_execution(stateMachineArn=machines["ctx"], name="c1", input='{"k": 1}')

        # an EXPRESS execution ends TIMED_OUT at its limit; a STANDARD one runs on
        standard = sfn.start_execution(stateMachineArn=machines["slow"], name="w2")
        began = time.monotonic()
        run = sfn.start_sync_execution(stateMachineArn=machines["quick-slow"], name="s1")
        took = time.monotonic() - began
        assert (run["status"], run["error"]) == ("TIMED_OUT", "States.Timeout"), run
        assert f"the {LIMIT}-second limit of an EXPRESS execution" in run["cause"]
        assert "output" not in run
        assert LIMIT <= took < 20
        assert sfn.describe_execution(executionArn=standard["executionArn"])["status"] == "RUNNING"
        sfn.stop_execution(executionArn=standard["executionArn"])

        later = sfn.start_execution(stateMachineArn=machines["quick-slow"], name="s2")

        def finished() -> dict[str, Any] | None:
            shown = conveyor(tmp_path / "home", "executions", "describe", later["executionArn"], "--json")
            assert shown.returncode == 0, shown.stderr
            described: dict[str, Any] = json.loads(shown.stdout)
            return described if described["status"] != "RUNNING" else None

        described = wait_for(finished, 20, "the asynchronous EXPRESS execution to time out")
        assert (described["status"], described["error"]) == ("TIMED_OUT", "States.Timeout")
        history = conveyor(tmp_path / "home", "executions", "history", later["executionArn"], "--json")
        assert history.returncode == 0, history.stderr
        last = json.loads(history.stdout)["events"][-1]
        assert last["type"] == "ExecutionTimedOut"
        assert last["executionTimedOutEventDetails"]["error"] == "States.Timeout"
