"""``/endpoints``: the migration service's endpoint operations, in its shapes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body
from fastapi.responses import JSONResponse

from conveyor.api.routes._common import Service, answer

router = APIRouter(prefix="/endpoints", tags=["endpoints"])


@router.get("", summary="Every endpoint (DescribeEndpoints)")
def list_endpoints(conveyor: Service) -> JSONResponse:
    return answer(conveyor.describe_endpoints())


@router.post("/{name}/test", summary="Test the connection (TestConnection)")
def test_endpoint(name: str, conveyor: Service) -> JSONResponse:
    return answer(conveyor.test_connection(name))


@router.get("/connections", summary="Connection tests (DescribeConnections)")
def connections(conveyor: Service) -> JSONResponse:
    return answer(conveyor.describe_connections())


@router.post("/{name}/modify", summary="ModifyEndpoint (S3Settings, ...)")
def modify_endpoint(name: str, conveyor: Service, body: dict[str, Any] = Body(...)) -> JSONResponse:  # noqa: B008
    return answer(conveyor.modify_endpoint_settings(name, body))
