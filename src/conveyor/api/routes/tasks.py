"""``/tasks``: the same answers as ``conveyor tasks ... --json``."""

from __future__ import annotations

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from conveyor.api.routes._common import Service, answer
from conveyor.core.errors import ConfigError
from conveyor.replication.run_logs import READ_LIMIT
from conveyor.service.models import TableReload, TaskDescription, TaskList, TaskLog, TaskProcess

router = APIRouter(prefix="/tasks", tags=["tasks"])
START_TYPES = ("start-replication", "resume-processing", "reload-target")


class StartTask(BaseModel):
    StartReplicationTaskType: str = Field(
        default="start-replication", description="start-replication | resume-processing | reload-target"
    )


@router.get("", summary="Every task with its status", response_model=TaskList)
def list_tasks(conveyor: Service) -> JSONResponse:
    return answer(conveyor.list_tasks())


@router.get(
    "/{name}", summary="One task: status, stop reason, table statistics", response_model=TaskDescription
)
def describe_task(name: str, conveyor: Service) -> JSONResponse:
    return answer(conveyor.describe_task(name))


@router.post("/{name}/start", summary="Start a task in a worker process", response_model=TaskProcess)
def start_task(name: str, conveyor: Service, body: StartTask | None = None) -> JSONResponse:
    """``StartReplicationTaskType`` as the migration service names it: start afresh,
    resume from the checkpoint, or reload the target."""
    kind = body.StartReplicationTaskType if body is not None else "start-replication"
    if kind == "start-replication":
        return answer(conveyor.start_task(name))
    if kind == "resume-processing":
        return answer(conveyor.resume_task(name))
    if kind == "reload-target":
        return answer(conveyor.reload_task(name))
    raise ConfigError(f"StartReplicationTaskType must be one of {', '.join(START_TYPES)}, got {kind!r}")


@router.post(
    "/{name}/reload",
    summary="Reload some tables (or all) of a task",
    response_model=TaskProcess | TableReload,
)
def reload_task(name: str, conveyor: Service, table: list[str] | None = Query(None)) -> JSONResponse:  # noqa: B008
    """``table`` (repeatable, SCHEMA.TABLE): reload only those while capture goes on."""
    return answer(conveyor.reload_task(name, table))


@router.post("/{name}/stop", summary="Stop a task between batches", response_model=TaskProcess)
def stop_task(name: str, conveyor: Service) -> JSONResponse:
    return answer(conveyor.stop_task(name))


@router.delete(
    "/{name}", summary="Delete a stopped task (its capture ended on the source)", response_model=TaskProcess
)
def delete_task(name: str, conveyor: Service) -> JSONResponse:
    return answer(conveyor.delete_task(name))


@router.get("/{name}/logs", summary="A run's worker log (the latest run by default)", response_model=TaskLog)
def task_logs(
    name: str, conveyor: Service, run: int | None = None, offset: int | None = None, limit: int = READ_LIMIT
) -> JSONResponse:
    """Without ``offset``, the log's last ``limit`` bytes (whole lines); with it,
    from there on (pass the answer's ``next_offset``). ``running`` is false once
    the run ended and its log is complete."""
    return answer(conveyor.task_log(name, run, offset, limit))
