"""Step Functions through boto3: state machines created, updated and deleted through
the API, and `.waitForTaskToken` Tasks answered with SendTaskSuccess / Failure /
Heartbeat, also by a Lambda function calling boto3 itself."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from support.aws import SHOP_STACK, aws_client, served_stack
from support.cli import conveyor
from support.serve import wait_for

pytestmark = pytest.mark.e2e

APPROVE = """
import json
import boto3

def handler(event, context):
    sfn = boto3.client("stepfunctions")
    sfn.send_task_heartbeat(taskToken=event["token"])
    sfn.send_task_success(taskToken=event["token"], output=json.dumps({"approved": event["order"]}))
    return {"sent": True}
"""
NOOP = "def handler(event, context):\n    return {'queued': True}\n"


def waiting(function: str, **fields: Any) -> str:
    task = {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
        "Parameters": {
            "FunctionName": function,
            "Payload": {"token.$": "$$.Task.Token", "order.$": "$.order"},
        },
        "ResultPath": "$.answer",
        "End": True,
        **fields,
    }
    return json.dumps({"StartAt": "Ask", "States": {"Ask": task}})


def stack(folder: Path) -> str:
    (folder / "approve.py").write_text(APPROVE)
    (folder / "noop.py").write_text(NOOP)
    return (
        SHOP_STACK
        + f"""
functions:
  approve: {{handler: ./approve.py:handler}}
  noop: {{handler: ./noop.py:handler}}
state_machines:
  approval: {{definition: {waiting("approve")}}}
  manual: {{definition: {waiting("noop", HeartbeatSeconds=4, TimeoutSeconds=60)}}}
"""
    )


def ended(sfn: Any, arn: str, timeout: float = 60) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        described: dict[str, Any] = sfn.describe_execution(executionArn=arn)
        return described if described["status"] != "RUNNING" else None

    return wait_for(done, timeout, f"{arn} to end")  # type: ignore[no-any-return]


def token_of(sfn: Any, arn: str) -> str:
    def submitted() -> str | None:
        events = sfn.get_execution_history(executionArn=arn)["events"]
        if not any(e["type"] == "TaskSubmitted" for e in events):
            return None
        scheduled = next(e for e in events if e["type"] == "TaskScheduled")
        return str(json.loads(scheduled["taskScheduledEventDetails"]["parameters"])["Payload"]["token"])

    return wait_for(submitted, 60, "the task to be submitted")  # type: ignore[no-any-return]


def test_wait_for_task_token(tmp_path: Path) -> None:
    tmp_path.mkdir(exist_ok=True)
    with served_stack(tmp_path, stack(tmp_path)) as server:
        sfn = aws_client(server.url, "stepfunctions")
        machines = {m["name"]: m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"]}

        # a Lambda function answers the token itself, through boto3
        answered = sfn.start_execution(stateMachineArn=machines["approval"], input='{"order": 7}')
        described = ended(sfn, answered["executionArn"])
        assert described["status"] == "SUCCEEDED", described
        assert json.loads(described["output"]) == {"order": 7, "answer": {"approved": 7}}

        # a person answers: heartbeat, then failure; a late answer is refused
        first = sfn.start_execution(stateMachineArn=machines["manual"], input='{"order": 1}')
        token = token_of(sfn, first["executionArn"])
        assert sfn.describe_execution(executionArn=first["executionArn"])["status"] == "RUNNING"
        sfn.send_task_heartbeat(taskToken=token)
        sfn.send_task_failure(taskToken=token, error="Rejected", cause="out of stock")
        failed = ended(sfn, first["executionArn"])
        assert (failed["status"], failed["error"], failed["cause"]) == ("FAILED", "Rejected", "out of stock")
        with pytest.raises(sfn.exceptions.TaskTimedOut):
            sfn.send_task_success(taskToken=token, output="{}")
        with pytest.raises(sfn.exceptions.TaskDoesNotExist):
            sfn.send_task_success(taskToken="not-a-token", output="{}")

        second = sfn.start_execution(stateMachineArn=machines["manual"], input='{"order": 2}')
        token = token_of(sfn, second["executionArn"])
        with pytest.raises(sfn.exceptions.InvalidOutput):
            sfn.send_task_success(taskToken=token, output="not json")
        sfn.send_task_success(taskToken=token, output=json.dumps({"ok": True}))
        assert json.loads(ended(sfn, second["executionArn"])["output"]) == {
            "order": 2,
            "answer": {"ok": True},
        }

        # nobody answers: HeartbeatSeconds (4 s) ends it
        silent = sfn.start_execution(stateMachineArn=machines["manual"], input='{"order": 3}')
        timed_out = ended(sfn, silent["executionArn"])
        assert (timed_out["status"], timed_out["error"]) == ("FAILED", "States.HeartbeatTimeout")
        types = [e["type"] for e in sfn.get_execution_history(executionArn=silent["executionArn"])["events"]]
        assert "TaskTimedOut" in types


PASS = {"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": 1, "ResultPath": "$.v", "End": True}}}


def test_create_update_delete_state_machines(tmp_path: Path) -> None:
    with served_stack(tmp_path) as server:
        sfn = aws_client(server.url, "stepfunctions")
        role = "arn:aws:iam::000000000000:role/any"
        created = sfn.create_state_machine(name="made", definition=json.dumps(PASS), roleArn=role)
        arn = created["stateMachineArn"]
        assert arn.endswith(":stateMachine:made")
        assert json.loads(sfn.describe_state_machine(stateMachineArn=arn)["definition"]) == PASS
        # the same again is fine; another definition under the name is not
        sfn.create_state_machine(name="made", definition=json.dumps(PASS), roleArn=role)
        other = PASS | {"Comment": "other"}
        with pytest.raises(sfn.exceptions.StateMachineAlreadyExists):
            sfn.create_state_machine(name="made", definition=json.dumps(other), roleArn=role)
        with pytest.raises(sfn.exceptions.InvalidDefinition):
            sfn.create_state_machine(
                name="broken",
                definition=json.dumps(
                    {"StartAt": "X", "States": {"X": {"Type": "Task", "Resource": "nope"}}}
                ),
                roleArn=role,
            )

        first = sfn.start_execution(stateMachineArn=arn, name="one", input='{"a": 1}')
        run = ended(sfn, first["executionArn"])
        assert run["status"] == "SUCCEEDED" and json.loads(run["output"]) == {"a": 1, "v": 1}
        with pytest.raises(sfn.exceptions.ExecutionAlreadyExists):
            sfn.start_execution(stateMachineArn=arn, name="one")

        updated = PASS | {"States": {"P": PASS["States"]["P"] | {"Result": 2}}}
        sfn.update_state_machine(stateMachineArn=arn, definition=json.dumps(updated))
        again = ended(sfn, sfn.start_execution(stateMachineArn=arn)["executionArn"])
        assert json.loads(again["output"]) == {"v": 2}

        from conveyor.store.store import Store

        store = Store.open(tmp_path / "home")
        try:
            stored = (store.stack_document() or {})["state_machines"]["made"]
        finally:
            store.close()
        assert stored == {
            "definition": updated,
            "description": None,
            "type": "STANDARD",
        }  # as apply stores a declaration

        sfn.delete_state_machine(stateMachineArn=arn)
        assert sfn.list_state_machines()["stateMachines"] == []
        with pytest.raises(sfn.exceptions.StateMachineDoesNotExist):
            sfn.describe_state_machine(stateMachineArn=arn)
        with pytest.raises(sfn.exceptions.StateMachineDoesNotExist):
            sfn.start_execution(stateMachineArn=arn)


JSONATA_MAP = {
    "QueryLanguage": "JSONata",
    "StartAt": "Setup",
    "States": {
        "Setup": {"Type": "Pass", "Assign": {"rate": "{% $states.input.rate %}"}, "Next": "Each"},
        "Each": {
            "Type": "Map",
            "Items": "{% $states.input.orders %}",
            "MaxConcurrency": 2,
            "ItemProcessor": {
                "StartAt": "Price",
                "States": {
                    "Price": {
                        "Type": "Pass",
                        "Output": {"id": "{% $states.input.id %}", "cost": "{% $states.input.qty * $rate %}"},
                        "End": True,
                    }
                },
            },
            "Assign": {"total": "{% $sum($states.result.cost) %}"},
            "Output": {"orders": "{% $states.result %}"},
            "Next": "Done",
        },
        "Done": {
            "Type": "Pass",
            "Output": {"total": "{% $total %}", "count": "{% $count($states.input.orders) %}"},
            "End": True,
        },
    },
}


def test_jsonata_assign_and_map_through_boto3(tmp_path: Path) -> None:
    with served_stack(tmp_path) as server:
        sfn = aws_client(server.url, "stepfunctions")
        role = "arn:aws:iam::000000000000:role/any"
        arn = sfn.create_state_machine(name="priced", definition=json.dumps(JSONATA_MAP), roleArn=role)[
            "stateMachineArn"
        ]
        orders = [{"id": f"o{i}", "qty": i} for i in range(1, 6)]
        run = sfn.start_execution(stateMachineArn=arn, input=json.dumps({"rate": 3, "orders": orders}))
        described = ended(sfn, run["executionArn"])
        assert described["status"] == "SUCCEEDED", described
        assert json.loads(described["output"]) == {"total": 45, "count": 5}
        events = sfn.get_execution_history(executionArn=run["executionArn"])["events"]
        assert sum(e["type"] == "MapIterationSucceeded" for e in events) == 5
        # a JSONata state with a JSONPath field is refused as the service refuses it
        bad = {
            "QueryLanguage": "JSONata",
            "StartAt": "P",
            "States": {"P": {"Type": "Pass", "InputPath": "$", "End": True}},
        }
        with pytest.raises(
            sfn.exceptions.InvalidDefinition, match="InputPath: not allowed in a JSONata state"
        ):
            sfn.create_state_machine(name="bad", definition=json.dumps(bad), roleArn=role)


def waiting_map() -> str:
    processor = {"StartAt": "Ask", "States": {"Ask": json.loads(waiting("noop"))["States"]["Ask"]}}
    state = {"Type": "Map", "ItemsPath": "$.orders", "ItemProcessor": processor, "End": True}
    return json.dumps({"StartAt": "Each", "States": {"Each": state}})


def test_task_tokens_inside_a_map_survive_a_killed_serve(tmp_path: Path) -> None:
    from support.aws import KEYS, TOKEN
    from support.serve import Serve
    from support.servers import free_port

    (tmp_path / "noop.py").write_text(NOOP)
    stack_text = SHOP_STACK + "functions:\n  noop: {handler: ./noop.py:handler}\n"
    stack_text += f"state_machines:\n  asks: {{definition: {waiting_map()}}}\n"
    with served_stack(tmp_path, stack_text) as first:
        sfn = aws_client(first.url, "stepfunctions")
        arn = sfn.list_state_machines()["stateMachines"][0]["stateMachineArn"]
        run = sfn.start_execution(
            stateMachineArn=arn, input=json.dumps({"orders": [{"order": 1}, {"order": 2}]})
        )

        def submitted() -> list[str] | None:
            events = sfn.get_execution_history(executionArn=run["executionArn"])["events"]
            if sum(e["type"] == "TaskSubmitted" for e in events) < 2:
                return None
            scheduled = [e for e in events if e["type"] == "TaskScheduled"]
            return [
                json.loads(e["taskScheduledEventDetails"]["parameters"])["Payload"]["token"]
                for e in scheduled
            ]

        tokens = wait_for(submitted, 60, "both iterations to be submitted")
        first.kill()  # SIGKILL: nothing is suspended cleanly
    second = Serve(tmp_path / "home", free_port(), KEYS | TOKEN)
    try:
        second.ready()
        sfn = aws_client(second.url, "stepfunctions")
        for number, token in enumerate(tokens, 1):
            sfn.send_task_success(taskToken=token, output=json.dumps({"ok": number}))
        described = ended(sfn, run["executionArn"])
        assert described["status"] == "SUCCEEDED", described
        answers = sorted(item["answer"]["ok"] for item in json.loads(described["output"]))
        assert answers == [1, 2]
        events = sfn.get_execution_history(executionArn=run["executionArn"])["events"]
        assert sum(e["type"] == "TaskScheduled" for e in events) == 2  # not called again
    finally:
        second.kill()


def test_express_state_machines(tmp_path: Path) -> None:
    """type EXPRESS is kept and answered; its definition may not use the .sync or
    .waitForTaskToken patterns (InvalidDefinition), in a Map's processor either; the
    same holds for a stack file applied with `conveyor apply`."""
    with served_stack(tmp_path) as server:
        sfn = aws_client(server.url, "stepfunctions")
        role = "arn:aws:iam::000000000000:role/any"
        arn = sfn.create_state_machine(
            name="quick", definition=json.dumps(PASS), roleArn=role, type="EXPRESS"
        )["stateMachineArn"]
        assert sfn.describe_state_machine(stateMachineArn=arn)["type"] == "EXPRESS"
        listed = {m["name"]: m["type"] for m in sfn.list_state_machines()["stateMachines"]}
        assert listed["quick"] == "EXPRESS"
        run = sfn.start_sync_execution(stateMachineArn=arn, input='{"a": 1}')
        assert run["status"] == "SUCCEEDED" and json.loads(run["output"]) == {"a": 1, "v": 1}
        with pytest.raises(sfn.exceptions.InvalidDefinition, match="waitForTaskToken"):
            sfn.create_state_machine(name="asks", definition=waiting("noop"), roleArn=role, type="EXPRESS")
        mapped = {
            "StartAt": "M",
            "States": {
                "M": {
                    "Type": "Map",
                    "ItemProcessor": {
                        "StartAt": "Run",
                        "States": {
                            "Run": {
                                "Type": "Task",
                                "Resource": "arn:aws:states:::states:startExecution.sync:2",
                                "Parameters": {"StateMachineArn": arn},
                                "End": True,
                            }
                        },
                    },
                    "End": True,
                }
            },
        }
        with pytest.raises(
            sfn.exceptions.InvalidDefinition, match=r"States\.M\.ItemProcessor\.States\.Run.*'\.sync'"
        ):
            sfn.create_state_machine(
                name="nested", definition=json.dumps(mapped), roleArn=role, type="EXPRESS"
            )
        # the same definition as STANDARD is taken
        sfn.create_state_machine(name="nested", definition=json.dumps(mapped), roleArn=role)
        with pytest.raises(sfn.exceptions.InvalidDefinition):
            sfn.update_state_machine(stateMachineArn=arn, definition=json.dumps(mapped))
        with pytest.raises(ClientError, match=r"ValidationException.*FAST"):
            sfn.create_state_machine(name="odd", definition=json.dumps(PASS), roleArn=role, type="FAST")

    home = tmp_path / "files"
    home.mkdir()
    file = home / "stack.yaml"
    file.write_text(
        SHOP_STACK + f"\nstate_machines:\n  asks: {{type: EXPRESS, definition: {waiting('noop')}}}\n"
    )
    refused = conveyor(home, "apply", str(file))
    assert refused.returncode != 0
    assert "state_machines.asks.definition.States.Ask.Resource" in refused.stderr + refused.stdout
    assert "waitForTaskToken" in refused.stderr + refused.stdout


WAIT_THEN_PASS = {
    "StartAt": "W",
    "States": {"W": {"Type": "Wait", "Seconds": 1, "Next": "P"}, "P": PASS["States"]["P"]},
}
FAILS = {"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "Broken", "Cause": "on purpose"}}}
EXPRESS_STACK = (
    SHOP_STACK
    + f"""
state_machines:
  quick: {{type: EXPRESS, definition: {json.dumps(WAIT_THEN_PASS)}}}
  failing: {{type: EXPRESS, definition: {json.dumps(FAILS)}}}
  standard: {{definition: {json.dumps(PASS)}}}
"""
)
EXPRESS_ARN = r"arn:aws:states:local:000000000000:express:{machine}:{name}:[0-9a-f-]{{36}}"


def test_express_executions(tmp_path: Path) -> None:
    """StartSyncExecution runs EXPRESS machines only, answering with billingDetails; the
    API keeps no history of EXPRESS executions (Describe / History / Stop: InvalidArn,
    ListExecutions: StateMachineTypeNotSupported), as the service's answers recorded by
    LocalStack against AWS show; `conveyor executions` still shows them."""
    with served_stack(tmp_path, EXPRESS_STACK) as server:
        sfn = aws_client(server.url, "stepfunctions")
        machines = {m["name"]: m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"]}
        with pytest.raises(sfn.exceptions.StateMachineTypeNotSupported):
            sfn.start_sync_execution(stateMachineArn=machines["standard"])

        run = sfn.start_sync_execution(stateMachineArn=machines["quick"], name="one", input='{"a": 1}')
        assert run["status"] == "SUCCEEDED" and json.loads(run["output"]) == {"a": 1, "v": 1}
        assert re.fullmatch(EXPRESS_ARN.format(machine="quick", name="one"), run["executionArn"])
        assert (run["name"], run["stateMachineArn"]) == ("one", machines["quick"])
        assert json.loads(run["input"]) == {"a": 1}
        assert run["inputDetails"] == run["outputDetails"] == {"included": True}
        billed = run["billingDetails"]
        took = (run["stopDate"] - run["startDate"]).total_seconds() * 1000
        assert billed["billedMemoryUsedInMB"] == 64
        assert billed["billedDurationInMilliseconds"] % 100 == 0
        assert billed["billedDurationInMilliseconds"] - 100 < took <= billed["billedDurationInMilliseconds"]
        assert took >= 1000  # the Wait

        # an EXPRESS name need not be unique: its ARN carries an id
        again = sfn.start_sync_execution(stateMachineArn=machines["quick"], name="one")
        assert again["status"] == "SUCCEEDED" and again["executionArn"] != run["executionArn"]

        failed = sfn.start_sync_execution(stateMachineArn=machines["failing"], name="bad")
        assert (failed["status"], failed["error"], failed["cause"]) == ("FAILED", "Broken", "on purpose")
        assert "output" not in failed and failed["billingDetails"]["billedDurationInMilliseconds"] >= 100

        for call in (
            lambda: sfn.describe_execution(executionArn=run["executionArn"]),
            lambda: sfn.get_execution_history(executionArn=run["executionArn"]),
            lambda: sfn.stop_execution(executionArn=run["executionArn"]),
        ):
            with pytest.raises(
                sfn.exceptions.InvalidArn, match="Resource type not valid in this context: express"
            ):
                call()
        with pytest.raises(sfn.exceptions.ExecutionDoesNotExist):  # not as a STANDARD one either
            sfn.describe_execution(executionArn="arn:aws:states:local:000000000000:execution:failing:bad")
        with pytest.raises(sfn.exceptions.StateMachineTypeNotSupported):
            sfn.list_executions(stateMachineArn=machines["quick"])

        started = sfn.start_execution(stateMachineArn=machines["quick"], name="later")
        assert re.fullmatch(EXPRESS_ARN.format(machine="quick", name="later"), started["executionArn"])

        def finished() -> dict[str, Any] | None:
            shown = conveyor(tmp_path / "home", "executions", "describe", started["executionArn"], "--json")
            assert shown.returncode == 0, shown.stderr
            described: dict[str, Any] = json.loads(shown.stdout)
            return described if described["status"] != "RUNNING" else None

        described = wait_for(finished, 60, "the asynchronous EXPRESS execution")
        assert described["status"] == "SUCCEEDED" and described["stateMachineType"] == "EXPRESS"
        listed = conveyor(tmp_path / "home", "executions", "list", "--state-machine", "quick", "--json")
        assert listed.returncode == 0, listed.stderr
        arns = {e["executionArn"] for e in json.loads(listed.stdout)}
        assert arns == {run["executionArn"], again["executionArn"], started["executionArn"]}
        history = conveyor(tmp_path / "home", "executions", "history", run["executionArn"], "--json")
        assert history.returncode == 0, history.stderr
        assert [e["type"] for e in json.loads(history.stdout)["events"]][-1] == "ExecutionSucceeded"
