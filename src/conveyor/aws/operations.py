"""The AWS services' operations that ``conveyor serve`` answers, by ``X-Amz-Target``.

Each operation takes the request's JSON members and returns the response's, in the
service's own shapes, so unchanged boto3 code and ``aws`` commands work with
``AWS_ENDPOINT_URL`` pointing at Conveyor. The work is done by the classes the
state machines' integrations already use (``DatabaseMigration``, ``RedshiftData``)
and by the executions, statement and event services. What is not listed answers
``UnknownOperationException`` (docs/aws-api.md lists what each service has).
"""

from __future__ import annotations

from typing import Any

from conveyor.aws.base import AwsError, AwsService, Paging
from conveyor.aws.dms import DMS
from conveyor.aws.events import EVENTS
from conveyor.aws.glue import GLUE
from conveyor.aws.paging import page
from conveyor.aws.states import STEP_FUNCTIONS
from conveyor.core.errors import ConfigError, ConveyorError, NotFoundError
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
    status = p.get("Status")
    rows = service.statements.list(_ALL)
    if status and status != "ALL":
        rows = [r for r in rows if r.get("Status") == status]
    return {"Statements": rows}


_ALL = 1_000_000  # a list filtered after the store's query: page the whole of it


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
    paging={"ListStatements": Paging("Statements", "MaxResults", "NextToken", zero_is_default=True)},
)


SERVICES = {s.name: s for s in (DMS, REDSHIFT_DATA, STEP_FUNCTIONS, EVENTS, GLUE)}


def call(service: Service, target: str, body: dict[str, Any]) -> tuple[AwsService, dict[str, Any]]:
    """Run the operation ``target`` names (``Prefix.Operation``); raises AwsError
    with the service's error code for whatever goes wrong."""
    prefix, _, operation = target.partition(".")
    aws = SERVICES.get(prefix)
    if aws is None or operation not in aws.operations:
        raise AwsError("UnknownOperationException", f"{target} is not an operation Conveyor answers")
    run = aws.operations[operation]
    paging = aws.paging.get(operation)
    try:
        if paging is not None:
            return aws, page(operation, paging, aws.invalid, body, lambda p: run(service, p))
        return aws, run(service, body)
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
