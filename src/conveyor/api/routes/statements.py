"""``/statements``: the Redshift Data API's operations on the statement service."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from conveyor.api.routes._common import Service, answer
from conveyor.service.models import CancelResult, Statement, StatementList, StatementResult

router = APIRouter(prefix="/statements", tags=["statements"])


class ExecuteStatement(BaseModel):
    ClusterIdentifier: str = Field(description="The Conveyor endpoint to run the SQL on.")
    Sql: str
    Database: str | None = None
    StatementName: str | None = None
    Parameters: list[dict[str, Any]] | None = None


@router.post("", summary="ExecuteStatement: run SQL asynchronously", response_model=Statement)
def execute_statement(body: ExecuteStatement, conveyor: Service) -> JSONResponse:
    return answer(
        conveyor.execute_statement(
            body.ClusterIdentifier,
            body.Sql,
            body.Database,
            name=body.StatementName,
            parameters=body.Parameters,
        )
    )


@router.get("", summary="ListStatements", response_model=StatementList)
def list_statements(conveyor: Service, limit: int = 100) -> JSONResponse:
    return answer(conveyor.list_statements(limit))


@router.get("/{statement_id}", summary="DescribeStatement", response_model=Statement)
def describe_statement(statement_id: str, conveyor: Service) -> JSONResponse:
    return answer(conveyor.describe_statement(statement_id))


@router.get("/{statement_id}/result", summary="GetStatementResult (paged)", response_model=StatementResult)
def statement_result(statement_id: str, conveyor: Service, next_token: str | None = None) -> JSONResponse:
    return answer(conveyor.get_statement_result(statement_id, next_token))


@router.post("/{statement_id}/cancel", summary="CancelStatement", response_model=CancelResult)
def cancel_statement(statement_id: str, conveyor: Service) -> JSONResponse:
    return answer(conveyor.cancel_statement(statement_id))
