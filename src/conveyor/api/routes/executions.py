"""``/state-machines`` and ``/executions``: Step Functions' operations, the same
answers as ``conveyor state-machines|executions ... --json``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from conveyor.api.routes._common import Service, answer
from conveyor.service.models import (
    Execution,
    ExecutionHistory,
    ExecutionList,
    StateMachineList,
    StoppedExecution,
)

machines = APIRouter(prefix="/state-machines", tags=["state-machines"])
router = APIRouter(prefix="/executions", tags=["executions"])


class StartExecution(BaseModel):
    input: Any = Field(default=None, description="The execution input (any JSON value).")
    name: str | None = Field(default=None, description="A name unique for the state machine.")


class StopExecution(BaseModel):
    error: str | None = None
    cause: str | None = None


@machines.get("", summary="Every state machine", response_model=StateMachineList)
def list_state_machines(conveyor: Service) -> JSONResponse:
    return answer(conveyor.list_state_machines())


@machines.post("/{name}/executions", summary="Start an execution (StartExecution)", response_model=Execution)
def start_execution(name: str, conveyor: Service, body: StartExecution | None = None) -> JSONResponse:
    body = body or StartExecution()
    return answer(conveyor.start_execution(name, body.input, body.name))


@router.get("", summary="Executions, newest first (ListExecutions)", response_model=ExecutionList)
def list_executions(
    conveyor: Service, state_machine: str | None = None, status: str | None = None, limit: int = 100
) -> JSONResponse:
    return answer(conveyor.list_executions(state_machine, status, limit))


@router.get("/{ref}", summary="DescribeExecution", response_model=Execution)
def describe_execution(ref: str, conveyor: Service) -> JSONResponse:
    return answer(conveyor.describe_execution(ref))


@router.get("/{ref}/history", summary="GetExecutionHistory", response_model=ExecutionHistory)
def execution_history(ref: str, conveyor: Service) -> JSONResponse:
    return answer(conveyor.get_execution_history(ref))


@router.post("/{ref}/stop", summary="StopExecution", response_model=StoppedExecution)
def stop_execution(ref: str, conveyor: Service, body: StopExecution | None = None) -> JSONResponse:
    body = body or StopExecution()
    return answer(conveyor.stop_execution(ref, body.error, body.cause))
