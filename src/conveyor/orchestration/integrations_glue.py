"""``arn:aws:states:::glue:startJobRun`` (and ``.sync``) as Conveyor's lake
curation job, so a schedule rule can run `conveyor lake process` the way a Glue
trigger runs the seed's job.

``JobName`` is free and kept in the answer; ``Arguments`` may hold ``--lake``
(a lake endpoint) and ``--table`` (``schema.table``) to narrow the run, and
``--engine`` (``embedded`` or ``spark``) with ``--master`` to pick the engine. With
``.sync`` the Task waits and fails with ``States.TaskFailed`` (the JobRun as
its cause) when a table failed; without it the run starts in a background
thread (the process waits for it before it exits) and the Task answers
``{"JobRunId": ...}`` at once.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from conveyor.core.errors import ConveyorError
from conveyor.orchestration.asl.errors import TaskError
from conveyor.orchestration.asl.integrations import TaskContext, TaskHandler

if TYPE_CHECKING:
    from conveyor.stack.model import Stack

log = logging.getLogger(__name__)

START_JOB_RUN = "arn:aws:states:::glue:startJobRun"
ARGUMENTS = ("--lake", "--table", "--engine", "--master")
INVALID_INPUT = "Glue.InvalidInputException"


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _request(parameters: Any) -> tuple[str, dict[str, str]]:
    if not isinstance(parameters, dict):
        raise TaskError(INVALID_INPUT, "Parameters must be a JSON object with JobName")
    job = parameters.get("JobName")
    if not isinstance(job, str) or not job:
        raise TaskError(INVALID_INPUT, "JobName is required")
    arguments = parameters.get("Arguments") or {}
    if not isinstance(arguments, dict) or not all(isinstance(v, str) for v in arguments.values()):
        raise TaskError(INVALID_INPUT, "Arguments must map names to strings")
    unknown = sorted(set(arguments) - set(ARGUMENTS))
    if unknown:
        raise TaskError(
            INVALID_INPUT,
            f"unknown argument(s) {', '.join(unknown)} (the curation job takes {', '.join(ARGUMENTS)})",
        )
    return job, arguments


def _run(stack: Callable[[], Stack], job: str, run_id: str, arguments: dict[str, str]) -> dict[str, Any]:
    """One curation run, answered as Glue's JobRun."""
    from conveyor.lake.jobs import curate

    answer: dict[str, Any] = {"Id": run_id, "JobName": job, "Arguments": arguments, "StartedOn": _now()}
    try:
        results = curate(
            stack(),
            arguments.get("--lake"),
            arguments.get("--table"),
            arguments.get("--engine"),
            arguments.get("--master"),
        )
    except ConveyorError as exc:
        answer.update(JobRunState="FAILED", ErrorMessage=str(exc), CompletedOn=_now())
        return answer
    failed = [r for r in results if r.status == "failed"]
    answer["CompletedOn"] = _now()
    answer["JobRunState"] = "FAILED" if failed else "SUCCEEDED"
    if failed:
        answer["ErrorMessage"] = "; ".join(f"{r.table}: {r.error}" for r in failed)
    answer["Tables"] = [r.as_dict() for r in results]
    return answer


def start_job_run(stack: Callable[[], Stack], sync: bool) -> TaskHandler:
    def handler(parameters: Any, context: TaskContext) -> Any:
        job, arguments = _request(parameters)
        run_id = f"jr_{uuid.uuid4().hex}"
        if not sync:
            # Not a daemon: a process that started it waits for it before exiting
            # (killing native code mid-write at interpreter exit can crash it).
            threading.Thread(
                target=_run_logged, args=(stack, job, run_id, arguments), name=f"glue-{run_id}", daemon=False
            ).start()
            return {"JobRunId": run_id}
        answer = _run(stack, job, run_id, arguments)
        if answer["JobRunState"] != "SUCCEEDED":
            raise TaskError("States.TaskFailed", json.dumps(answer, default=str))
        return answer

    return handler


def _run_logged(stack: Callable[[], Stack], job: str, run_id: str, arguments: dict[str, str]) -> None:
    answer = _run(stack, job, run_id, arguments)
    if answer["JobRunState"] != "SUCCEEDED":
        log.error("glue job run %s (%s) failed: %s", run_id, job, answer.get("ErrorMessage"))
