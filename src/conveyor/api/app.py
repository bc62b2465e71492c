"""The REST API of ``conveyor serve``: every CLI noun (tasks, endpoints, events,
executions, state machines, statements, rules), described by its OpenAPI document at
``/openapi.json`` (and browsable at ``/docs``).

Every request needs ``Authorization: Bearer <token>`` (see ``api/security.py``), and
a body over the limit is refused with 413. Errors answer ``{"error": message}`` with
400 (invalid input), 404 (unknown name), 409 (wrong state) or 401 (no or wrong token).
"""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import Body, Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from conveyor import __version__
from conveyor.api.console import install_console
from conveyor.api.metrics import metrics_router
from conveyor.api.security import DEFAULT_MAX_BODY_BYTES, BodyLimit
from conveyor.api.task_logs import task_logs_router
from conveyor.aws.protocol import AwsJsonApi
from conveyor.aws.sigv4 import KeyPair
from conveyor.core.errors import ConfigError, ConveyorError, NotFoundError
from conveyor.orchestration.integrations_aws import DatabaseMigration
from conveyor.orchestration.service import Service, rules_listing, state_machines_listing
from conveyor.store.event_pages import events_page


class StartExecution(BaseModel):
    input: Any = Field(default=None, description="The execution input (any JSON value).")
    name: str | None = Field(default=None, description="A name unique for the state machine.")


class StopExecution(BaseModel):
    error: str | None = None
    cause: str | None = None


class ExecuteStatement(BaseModel):
    ClusterIdentifier: str = Field(description="The Conveyor endpoint to run the SQL on.")
    Sql: str
    Database: str | None = None
    StatementName: str | None = None
    Parameters: list[dict[str, Any]] | None = None


class StartTask(BaseModel):
    StartReplicationTaskType: str = Field(
        default="start-replication", description="start-replication | resume-processing | reload-target"
    )


def _status(exc: ConveyorError) -> int:
    from conveyor.replication.worker import TaskBusy

    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, TaskBusy):
        return 409
    if isinstance(exc, ConfigError):
        return 400
    return 409


def create_app(
    service: Service,
    token: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    aws_keys: KeyPair | None = None,
) -> FastAPI:
    """The API over one running :class:`Service`; ``token`` None serves without
    authentication (``conveyor serve --no-auth``, loopback only)."""

    def authorize(request: Request) -> None:
        if token is None:
            return
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
            raise HTTPException(401, "a bearer token is required", headers={"WWW-Authenticate": "Bearer"})

    app = FastAPI(
        title="Conveyor",
        version=__version__,
        description="Tasks, endpoints, events, executions, state machines, statements and rules.",
        dependencies=[Depends(authorize)],
    )
    app.add_middleware(AwsJsonApi, service=service, keys=aws_keys)  # signed with SigV4, not the token
    install_console(app, service, token)  # the web console at /, and /docs with local assets
    app.add_middleware(BodyLimit, limit=max_body_bytes)  # the outermost: every request

    @app.exception_handler(ConveyorError)
    def _conveyor_error(request: Request, exc: ConveyorError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=_status(exc))

    @app.exception_handler(HTTPException)
    def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    store = service.store
    executions = service.executions
    dms = _dms(service)
    app.include_router(metrics_router(store))  # behind the token too: docs/observability.md
    app.include_router(task_logs_router(store))

    # tasks
    @app.get("/tasks", tags=["tasks"], summary="Every task with its status (DescribeReplicationTasks)")
    def list_tasks() -> dict[str, Any]:
        return dms.describe_replication_tasks({})

    @app.get("/tasks/{name}", tags=["tasks"], summary="One task: status, stop reason, table statistics")
    def describe_task(name: str) -> dict[str, Any]:
        found = dms.describe_replication_tasks(
            {"Filters": [{"Name": "replication-task-id", "Values": [name]}]}
        )
        if not found["ReplicationTasks"]:
            raise NotFoundError(f"no task named {name!r}")
        task = found["ReplicationTasks"][0]
        task["Tables"] = store.table_stats(name)
        return dict(task)

    @app.post("/tasks/{name}/start", tags=["tasks"], summary="Start a task in a worker process")
    def start_task(name: str, body: StartTask | None = None) -> dict[str, Any]:
        kind = body.StartReplicationTaskType if body is not None else "start-replication"
        return dms.start_replication_task({"ReplicationTaskArn": name, "StartReplicationTaskType": kind})

    @app.post("/tasks/{name}/stop", tags=["tasks"], summary="Stop a task between batches")
    def stop_task(name: str) -> dict[str, Any]:
        return dms.stop_replication_task({"ReplicationTaskArn": name})

    # endpoints
    @app.get("/endpoints", tags=["endpoints"], summary="Every endpoint (DescribeEndpoints)")
    def list_endpoints() -> dict[str, Any]:
        return dms.describe_endpoints({})

    @app.post("/endpoints/{name}/test", tags=["endpoints"], summary="Test the connection (TestConnection)")
    def test_endpoint(name: str) -> dict[str, Any]:
        return dms.test_connection({"EndpointArn": name})

    @app.get("/endpoints/connections", tags=["endpoints"], summary="Connection tests (DescribeConnections)")
    def connections() -> dict[str, Any]:
        return dms.describe_connections({})

    @app.post("/endpoints/{name}/modify", tags=["endpoints"], summary="ModifyEndpoint (S3Settings, ...)")
    def modify_endpoint(name: str, body: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
        return dms.modify_endpoint(body | {"EndpointArn": name})

    # events and rules
    @app.get("/events", tags=["events"], summary="Stored events, newest first, a page at a time")
    def list_events(
        limit: int = 100, since: str | None = None, next_token: str | None = None
    ) -> dict[str, Any]:
        """``{"Events": [...], "NextToken": ...}``; pass ``next_token`` for the older page.
        ``since`` is an ISO 8601 time or an age (``15m``, ``2h``, ``7d``)."""
        return events_page(store, since, limit, next_token)

    @app.post("/events", tags=["events"], summary="Put an event; matching rules start executions")
    def put_event(event: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
        return service.bus.put_event(event)

    @app.get("/rules", tags=["rules"], summary="Rules: event patterns and schedules")
    def list_rules() -> list[dict[str, Any]]:
        return rules_listing(service)

    # state machines and executions
    @app.get("/state-machines", tags=["state-machines"], summary="Every state machine")
    def list_state_machines() -> list[dict[str, Any]]:
        return state_machines_listing(service)

    @app.post(
        "/state-machines/{name}/executions",
        tags=["state-machines"],
        summary="Start an execution (StartExecution)",
    )
    def start_execution(name: str, body: StartExecution | None = None) -> dict[str, Any]:
        body = body or StartExecution()
        return executions.start(name, body.input, name=body.name, run="thread")

    @app.get("/executions", tags=["executions"], summary="Executions, newest first (ListExecutions)")
    def list_executions(
        state_machine: str | None = None, status: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        return executions.list(state_machine=state_machine, status=status, limit=limit)

    @app.get("/executions/{ref}", tags=["executions"], summary="DescribeExecution")
    def describe_execution(ref: str) -> dict[str, Any]:
        return executions.describe(ref)

    @app.get("/executions/{ref}/history", tags=["executions"], summary="GetExecutionHistory")
    def execution_history(ref: str) -> dict[str, Any]:
        return executions.history(ref)

    @app.post("/executions/{ref}/stop", tags=["executions"], summary="StopExecution")
    def stop_execution(ref: str, body: StopExecution | None = None) -> dict[str, Any]:
        body = body or StopExecution()
        return executions.stop(ref, body.error, body.cause)

    # statements
    @app.post("/statements", tags=["statements"], summary="ExecuteStatement: run SQL asynchronously")
    def execute_statement(body: ExecuteStatement) -> dict[str, Any]:
        statement_id = service.statements.execute(
            body.ClusterIdentifier,
            body.Sql,
            body.Database,
            name=body.StatementName,
            parameters=body.Parameters,
        )
        return {"Id": statement_id, "ClusterIdentifier": body.ClusterIdentifier, "Database": body.Database}

    @app.get("/statements", tags=["statements"], summary="ListStatements")
    def list_statements(limit: int = 100) -> dict[str, Any]:
        return {"Statements": service.statements.list(limit)}

    @app.get("/statements/{statement_id}", tags=["statements"], summary="DescribeStatement")
    def describe_statement(statement_id: str) -> dict[str, Any]:
        return service.statements.describe(statement_id)

    @app.get("/statements/{statement_id}/result", tags=["statements"], summary="GetStatementResult (paged)")
    def statement_result(statement_id: str, next_token: str | None = None) -> dict[str, Any]:
        return service.statements.result(statement_id, next_token)

    @app.post("/statements/{statement_id}/cancel", tags=["statements"], summary="CancelStatement")
    def cancel_statement(statement_id: str) -> dict[str, Any]:
        return {"Status": service.statements.cancel(statement_id)}

    @app.get("/health", tags=["service"], summary="The service is up")
    def health() -> dict[str, Any]:
        return {"status": "ok", "version": __version__, "running_executions": executions.running()}

    return app


def _dms(service: Service) -> DatabaseMigration:
    return DatabaseMigration(service.executions)
