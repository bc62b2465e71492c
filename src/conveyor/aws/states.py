"""Step Functions (``AWSStepFunctions``) on the stack's state machines and Conveyor's
executions.

Create/Update/DeleteStateMachine write the applied stack as ``conveyor apply`` does
(stack/entries.py), after the definition parsed against the integrations Conveyor has
(``InvalidDefinition`` otherwise). SendTaskSuccess / SendTaskFailure /
SendTaskHeartbeat answer the token a ``.waitForTaskToken`` Task is waiting on, from
any process sharing the store (orchestration/task_tokens.py).
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

from conveyor.aws.base import AwsError, AwsService, Paging, json_member, required
from conveyor.core.arns import ACCOUNT
from conveyor.core.errors import ConfigError, NotFoundError
from conveyor.orchestration.asl.definition import parse_definition
from conveyor.orchestration.executions import is_express, state_machine_arn, state_machine_name
from conveyor.orchestration.service import Service
from conveyor.orchestration.task_tokens import TokenTimedOut
from conveyor.stack.entries import delete_entry, put_entry
from conveyor.stack.model import waiting_resources


def _now() -> str:
    return datetime.now(UTC).isoformat()


_NOT_THIS_TYPE = "This operation is not supported by this type of state machine"
_EXPRESS_ARN = "Invalid Arn: 'Resource type not valid in this context: express'"


def _start_execution(service: Service, p: dict[str, Any], run: str, *, sync: bool = False) -> dict[str, Any]:
    raw = p.get("input", "{}")
    try:
        given = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError as exc:
        raise AwsError("InvalidExecutionInput", f"input is not JSON: {exc}") from None
    name = _machine(service, p)
    if sync and service.stack().state_machines[name].type != "EXPRESS":
        raise AwsError("StateMachineTypeNotSupported", _NOT_THIS_TYPE)
    try:
        return service.executions.start(
            required(p, "stateMachineArn"),
            given,
            name=p.get("name"),
            run=run,  # type: ignore[arg-type]
        )
    except ConfigError as exc:
        if "already has an execution named" in str(exc):
            raise AwsError("ExecutionAlreadyExists", str(exc)) from None
        raise


def _start(service: Service, p: dict[str, Any]) -> dict[str, Any]:
    started = _start_execution(service, p, "thread")
    return {"executionArn": started["executionArn"], "startDate": started["startDate"]}


_SYNC_MEMBERS = (
    "executionArn",
    "stateMachineArn",
    "name",
    "startDate",
    "stopDate",
    "status",
    "error",
    "cause",
)


def _start_sync(service: Service, p: dict[str, Any]) -> dict[str, Any]:
    """StartSyncExecution: EXPRESS machines only; runs in the request and answers as the
    service does, with ``billingDetails`` (see :func:`_billing`)."""
    ran = _start_execution(service, p, "inline", sync=True)
    answer = {k: ran[k] for k in _SYNC_MEMBERS if ran.get(k) is not None}
    answer |= {"input": ran["input"], "inputDetails": {"included": True}}
    if "output" in ran:
        answer |= {"output": ran["output"], "outputDetails": {"included": True}}
    answer["billingDetails"] = _billing(ran["startDate"], ran.get("stopDate"))
    return answer


_BILLED_MEMORY_MB = 64
"""The smallest chunk the service bills EXPRESS memory in: Conveyor does not measure an
execution's memory, so it reports this floor."""


def _billing(start: str, stop: str | None) -> dict[str, int]:
    """What the service would bill: the duration rounded up to the next 100 ms (100 at
    least), and :data:`_BILLED_MEMORY_MB`."""
    began = datetime.fromisoformat(start.replace("Z", "+00:00"))
    ended = datetime.fromisoformat(stop.replace("Z", "+00:00")) if stop else datetime.now(UTC)
    millis = max(1, math.ceil((ended - began).total_seconds() * 1000))
    billed = -(-millis // 100) * 100
    return {"billedMemoryUsedInMB": _BILLED_MEMORY_MB, "billedDurationInMilliseconds": billed}


def _standard_execution(service: Service, p: dict[str, Any]) -> str:
    """The ``executionArn`` of a STANDARD execution: the service keeps no history of
    EXPRESS ones, and refuses their ARNs (``InvalidArn``) as it does; another reference
    to one does not exist for these operations."""
    ref = required(p, "executionArn")
    if ref.startswith("arn:") and ":express:" in ref:
        raise AwsError("InvalidArn", _EXPRESS_ARN)
    if is_express(service.executions.resolve(ref)):
        raise AwsError("ExecutionDoesNotExist", f"Execution Does Not Exist: '{ref}'")
    return ref


def _applied(service: Service) -> str:
    """A state machine's creationDate: when the stack declaring it was last applied."""
    applied = service.store.stack_applied_at()
    return (applied or datetime(1970, 1, 1, tzinfo=UTC)).isoformat()


def _machine(service: Service, p: dict[str, Any]) -> str:
    name = state_machine_name(required(p, "stateMachineArn"))
    if name not in service.stack().state_machines:
        raise AwsError("StateMachineDoesNotExist", f"State Machine Does Not Exist: '{name}'")
    return name


def _state_machines(service: Service, p: dict[str, Any]) -> dict[str, Any]:
    stack = service.stack()
    return {
        "stateMachines": [
            {
                "stateMachineArn": state_machine_arn(n),
                "name": n,
                "type": stack.state_machines[n].type,
                "creationDate": _applied(service),
            }
            for n in sorted(stack.state_machines)
        ]
    }


def _state_machine(service: Service, p: dict[str, Any]) -> dict[str, Any]:
    name = _machine(service, p)
    spec = service.stack().state_machines[name]
    answer = {
        "stateMachineArn": state_machine_arn(name),
        "name": name,
        "status": "ACTIVE",
        "definition": json.dumps(spec.definition),
        "roleArn": f"arn:aws:iam::{ACCOUNT}:role/conveyor",
        "type": spec.type,
        "creationDate": _applied(service),
    }
    if spec.description:
        answer["description"] = spec.description
    return answer


def _definition(service: Service, p: dict[str, Any]) -> dict[str, Any]:
    definition = json_member(p, "definition")
    if not isinstance(definition, dict):
        raise AwsError("InvalidDefinition", "definition must be a JSON object (Amazon States Language)")
    try:
        parse_definition(definition, resources=service.executions.integrations)
    except ConfigError as exc:
        raise AwsError("InvalidDefinition", str(exc)) from None
    return definition


def _express_allows(kind: str, definition: dict[str, Any]) -> None:
    """AWS refuses the ``.sync`` / ``.waitForTaskToken`` patterns in an EXPRESS machine."""
    waiting = waiting_resources(definition) if kind == "EXPRESS" else []
    if waiting:
        where, resource, pattern = waiting[0]
        raise AwsError(
            "InvalidDefinition",
            f"{where}: Express state machine does not support '{pattern}' service integration ({resource})",
        )


def _create_state_machine(service: Service, p: dict[str, Any]) -> dict[str, Any]:
    name = required(p, "name")
    kind = p.get("type", "STANDARD")
    if kind not in ("STANDARD", "EXPRESS"):
        raise AwsError("ValidationException", f"type: {kind!r} is not STANDARD or EXPRESS")
    definition = _definition(service, p)
    _express_allows(kind, definition)
    existing = service.stack().state_machines.get(name)
    if existing is not None:
        if existing.definition != definition or existing.type != kind:
            raise AwsError("StateMachineAlreadyExists", f"State Machine Already Exists: '{name}'")
    else:
        body = {"definition": definition, "description": p.get("description"), "type": kind}
        put_entry(service.store, "state_machines", name, body, create=True)
    return {"stateMachineArn": state_machine_arn(name), "creationDate": _applied(service)}


def _update_state_machine(service: Service, p: dict[str, Any]) -> dict[str, Any]:
    name = _machine(service, p)
    body = service.stack().state_machines[name].model_dump(mode="json")
    if "definition" in p:
        body["definition"] = _definition(service, p)
    if "description" in p:
        body["description"] = p["description"]
    _express_allows(body["type"], body["definition"])
    put_entry(service.store, "state_machines", name, body, create=False)
    return {"updateDate": _now()}


def _delete_state_machine(service: Service, p: dict[str, Any]) -> dict[str, Any]:
    name = state_machine_name(required(p, "stateMachineArn"))
    if name in service.stack().state_machines:  # deleting one that is gone succeeds, as the service's
        delete_entry(service.store, "state_machines", name)
    return {}


def _executions(service: Service, p: dict[str, Any]) -> dict[str, Any]:
    if service.stack().state_machines[_machine(service, p)].type == "EXPRESS":
        raise AwsError("StateMachineTypeNotSupported", _NOT_THIS_TYPE)
    wanted = int(p.get("maxResults") or 100)
    asked = wanted
    while True:  # ends: each turn asks for more rows, and the store has finitely many
        rows = service.executions.list(
            state_machine=required(p, "stateMachineArn"), status=p.get("statusFilter"), limit=asked
        )
        # executions run while the machine was EXPRESS (re-applied since) have no history here
        kept = [r for r in rows if r["stateMachineType"] != "EXPRESS"]
        if len(rows) < asked or len(kept) >= wanted:
            break
        asked *= 2
    return {"executions": [{k: v for k, v in r.items() if v is not None} for r in kept[:wanted]]}


def _stop(service: Service, p: dict[str, Any]) -> dict[str, Any]:
    return service.executions.stop(_standard_execution(service, p), p.get("error"), p.get("cause"))


def _history(service: Service, p: dict[str, Any]) -> dict[str, Any]:
    events = service.executions.history(_standard_execution(service, p))["events"]
    if p.get("reverseOrder"):
        events = events[::-1]
    return {"events": events}


def _token_call(action: str) -> Any:
    def operation(service: Service, p: dict[str, Any]) -> dict[str, Any]:
        tokens = service.executions.tokens
        token = p.get("taskToken")
        try:
            if action == "success":
                tokens.succeed(token, p.get("output", "null"))
            elif action == "failure":
                tokens.fail(token, p.get("error"), p.get("cause"))
            else:
                tokens.heartbeat(token)
        except NotFoundError as exc:
            raise AwsError("TaskDoesNotExist", str(exc)) from None
        except TokenTimedOut as exc:
            raise AwsError("TaskTimedOut", str(exc)) from None
        except ConfigError as exc:
            code = "InvalidOutput" if "output" in str(exc) else "InvalidToken"
            raise AwsError(code, str(exc)) from None
        return {}

    return operation


STEP_FUNCTIONS = AwsService(
    "AWSStepFunctions",
    "application/x-amz-json-1.0",
    not_found="ExecutionDoesNotExist",
    invalid="ValidationException",
    wrong_state="ExecutionAlreadyExists",
    exists="StateMachineAlreadyExists",
    operations={
        "ListStateMachines": _state_machines,
        "DescribeStateMachine": _state_machine,
        "CreateStateMachine": _create_state_machine,
        "UpdateStateMachine": _update_state_machine,
        "DeleteStateMachine": _delete_state_machine,
        "StartExecution": _start,
        "StartSyncExecution": _start_sync,
        "DescribeExecution": lambda s, p: s.executions.describe(_standard_execution(s, p)),
        "StopExecution": _stop,
        "ListExecutions": _executions,
        "GetExecutionHistory": _history,
        "SendTaskSuccess": _token_call("success"),
        "SendTaskFailure": _token_call("failure"),
        "SendTaskHeartbeat": _token_call("heartbeat"),
    },
    paging={
        "ListStateMachines": Paging(
            "stateMachines",
            "maxResults",
            "nextToken",
            maximum=1000,
            zero_is_default=True,
            invalid_token="InvalidToken",
        ),
        "ListExecutions": Paging(
            "executions",
            "maxResults",
            "nextToken",
            maximum=1000,
            zero_is_default=True,
            passes_limit=True,
            invalid_token="InvalidToken",
        ),
        "GetExecutionHistory": Paging(
            "events",
            "maxResults",
            "nextToken",
            maximum=1000,
            zero_is_default=True,
            invalid_token="InvalidToken",
        ),
    },
)
