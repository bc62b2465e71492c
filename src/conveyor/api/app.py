"""The REST API of ``conveyor serve``: every CLI noun (tasks, endpoints, events,
executions, state machines, statements, rules), described by its OpenAPI document at
``/openapi.json`` (and browsable at ``/docs``).

This module only assembles: authentication, the body limit, the AWS protocols
(``aws/``), the error shape, and one router per noun (``api/routes/``), each over
the Python API (``conveyor.Conveyor``) of the running service.

Every request needs ``Authorization: Bearer <token>`` (see ``api/security.py``), and
a body over the limit is refused with 413. Errors answer ``{"error": message}`` with
400 (invalid input), 404 (unknown name), 409 (wrong state) or 401 (no or wrong token).
"""

from __future__ import annotations

import hmac

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

from conveyor import __version__
from conveyor.api.console import install_console
from conveyor.api.metrics import metrics_router
from conveyor.api.routes import ROUTERS
from conveyor.api.security import DEFAULT_MAX_BODY_BYTES, BodyLimit
from conveyor.aws.protocol import AwsJsonApi
from conveyor.aws.sigv4 import KeyPair
from conveyor.core.errors import ConfigError, ConveyorError, NotFoundError
from conveyor.orchestration.service import Service
from conveyor.service import Conveyor


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
    app.state.conveyor = Conveyor.over(service)
    app.add_middleware(AwsJsonApi, service=service, keys=aws_keys)  # signed with SigV4, not the token
    install_console(app, app.state.conveyor, token)  # the web console at /, and /docs with local assets
    app.add_middleware(BodyLimit, limit=max_body_bytes)  # the outermost: every request

    @app.exception_handler(ConveyorError)
    def _conveyor_error(request: Request, exc: ConveyorError) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=_status(exc))

    @app.exception_handler(HTTPException)
    def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    for router in ROUTERS:
        app.include_router(router)
    app.include_router(metrics_router(app.state.conveyor))  # behind the token too: docs/observability.md
    return app
