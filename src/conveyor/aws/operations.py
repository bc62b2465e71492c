"""The AWS services' operations that ``conveyor serve`` answers, by ``X-Amz-Target``.

Each operation takes the request's JSON members and returns the response's, in the
service's own shapes, so unchanged boto3 code and ``aws`` commands work with
``AWS_ENDPOINT_URL`` pointing at Conveyor. The work is done by the classes the
state machines' integrations already use (``DatabaseMigration``, ``RedshiftData``)
and by the executions, statement and event services. What is not listed answers
``UnknownOperationException`` (docs/aws-api.md lists what each service has).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from conveyor.aws.base import AwsError, AwsService, required
from conveyor.aws.dms import DMS
from conveyor.aws.events import EVENTS
from conveyor.core.arns import ACCOUNT
from conveyor.core.errors import ConfigError, ConveyorError, NotFoundError
from conveyor.orchestration.executions import state_machine_arn, state_machine_name
from conveyor.orchestration.integrations_aws import RedshiftData
from conveyor.orchestration.service import Service
from conveyor.stack.entries import AlreadyExists

# --- the Redshift Data API --------------------------------------------------------------------


def _data(service: Service) -> RedshiftData:
    return RedshiftData(service.executions)


def _batch(service: Service, p: dict[str, Any]) -> dict[str, Any]:
    sqls = p.get("Sqls")
    if not isinstance(sqls, list) or not sqls or not all(isinstance(s, str) for s in sqls):
        raise ConfigError("Sqls: a list of one or more SQL statements is required")
    return _data(service).execute_statement(
        {k: v for k, v in p.items() if k != "Sqls"} | {"Sql": ";\n".join(sqls)}
    )


def _statements(service: Service, p: dict[str, Any]) -> dict[str, Any]:
    limit = int(p.get("MaxResults") or 100)
    status = p.get("Status")
    rows = service.statements.list(limit)
    if status and status != "ALL":
        rows = [r for r in rows if r.get("Status") == status]
    return {"Statements": rows}


REDSHIFT_DATA = AwsService(
    "RedshiftData",
    "application/x-amz-json-1.1",
    not_found="ResourceNotFoundException",
    invalid="ValidationException",
    wrong_state="ExecuteStatementException",
    operations={
        "ExecuteStatement": lambda s, p: _data(s).execute_statement(p),
        "BatchExecuteStatement": _batch,
        "DescribeStatement": lambda s, p: _data(s).describe_statement(p),
        "GetStatementResult": lambda s, p: _data(s).get_statement_result(p),
        "CancelStatement": lambda s, p: _data(s).cancel_statement(p),
        "ListStatements": _statements,
    },
)


# --- Step Functions ---------------------------------------------------------------------------


def _start_execution(service: Service, p: dict[str, Any], run: str) -> dict[str, Any]:
    raw = p.get("input", "{}")
    try:
        given = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError as exc:
        raise ConfigError(f"input is not JSON: {exc}") from None
    started = service.executions.start(
        required(p, "stateMachineArn"),
        given,
        name=p.get("name"),
        run=run,  # type: ignore[arg-type]
    )
    return started


def _start(service: Service, p: dict[str, Any]) -> dict[str, Any]:
    started = _start_execution(service, p, "thread")
    return {"executionArn": started["executionArn"], "startDate": started["startDate"]}


def _start_sync(service: Service, p: dict[str, Any]) -> dict[str, Any]:
    return _start_execution(service, p, "inline")


def _state_machines(service: Service, p: dict[str, Any]) -> dict[str, Any]:
    stack = service.stack()
    return {
        "stateMachines": [
            {
                "stateMachineArn": state_machine_arn(n),
                "name": n,
                "type": "STANDARD",
                "creationDate": _applied(service),
            }
            for n in sorted(stack.state_machines)
        ]
    }


def _state_machine(service: Service, p: dict[str, Any]) -> dict[str, Any]:
    name = state_machine_name(required(p, "stateMachineArn"))
    definition = service.executions.definition(name)
    return {
        "stateMachineArn": state_machine_arn(name),
        "name": name,
        "status": "ACTIVE",
        "definition": json.dumps(definition),
        "roleArn": f"arn:aws:iam::{ACCOUNT}:role/conveyor",
        "type": "STANDARD",
        "creationDate": _applied(service),
    }


def _applied(service: Service) -> str:
    """A state machine's creationDate: when the stack declaring it was last applied."""
    applied = service.store.stack_applied_at()
    return (applied or datetime(1970, 1, 1, tzinfo=UTC)).isoformat()


def _executions(service: Service, p: dict[str, Any]) -> dict[str, Any]:
    rows = service.executions.list(
        state_machine=required(p, "stateMachineArn"),
        status=p.get("statusFilter"),
        limit=int(p.get("maxResults") or 100),
    )
    return {"executions": [{k: v for k, v in r.items() if v is not None} for r in rows]}


def _stop(service: Service, p: dict[str, Any]) -> dict[str, Any]:
    return service.executions.stop(required(p, "executionArn"), p.get("error"), p.get("cause"))


STEP_FUNCTIONS = AwsService(
    "AWSStepFunctions",
    "application/x-amz-json-1.0",
    not_found="ExecutionDoesNotExist",
    invalid="ValidationException",
    wrong_state="ExecutionAlreadyExists",
    operations={
        "StartExecution": _start,
        "StartSyncExecution": _start_sync,
        "DescribeExecution": lambda s, p: s.executions.describe(required(p, "executionArn")),
        "StopExecution": _stop,
        "ListExecutions": _executions,
        "GetExecutionHistory": lambda s, p: s.executions.history(required(p, "executionArn")),
        "ListStateMachines": _state_machines,
        "DescribeStateMachine": _state_machine,
    },
)


SERVICES = {s.name: s for s in (DMS, REDSHIFT_DATA, STEP_FUNCTIONS, EVENTS)}


def call(service: Service, target: str, body: dict[str, Any]) -> tuple[AwsService, dict[str, Any]]:
    """Run the operation ``target`` names (``Prefix.Operation``); raises AwsError
    with the service's error code for whatever goes wrong."""
    prefix, _, operation = target.partition(".")
    aws = SERVICES.get(prefix)
    if aws is None or operation not in aws.operations:
        raise AwsError("UnknownOperationException", f"{target} is not an operation Conveyor answers")
    try:
        return aws, aws.operations[operation](service, body)
    except AwsError:
        raise
    except NotFoundError as exc:
        raise AwsError(aws.not_found, str(exc)) from None
    except AlreadyExists as exc:
        raise AwsError(aws.exists, str(exc)) from None
    except ConfigError as exc:
        raise AwsError(aws.invalid, str(exc)) from None
    except ConveyorError as exc:
        raise AwsError(aws.wrong_state, str(exc)) from None
