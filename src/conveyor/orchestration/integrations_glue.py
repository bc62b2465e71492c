"""``arn:aws:states:::glue:startJobRun`` (and ``.sync``) as Conveyor's lake
curation job, so a schedule rule can run `conveyor lake process` the way a Glue
trigger runs the seed's job.

``JobName`` is free and kept in the answer; ``Arguments`` may hold ``--lake``
(a lake endpoint) and ``--table`` (``schema.table``) to narrow the run, and
``--engine`` (``embedded`` or ``spark``) with ``--master`` to pick the engine. With
``.sync`` the Task waits and fails with ``States.TaskFailed`` (the JobRun as
its cause) when a table failed; without it the run starts in a background
thread (the process waits for it before it exits) and the Task answers
``{"JobRunId": ...}`` at once. Runs are recorded in the metadata store, so Glue's
GetJobRun / GetJobRuns on ``conveyor serve`` (aws/glue.py) show them.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from conveyor.core.errors import NotFoundError
from conveyor.orchestration.asl.errors import TaskError
from conveyor.orchestration.asl.integrations import TaskContext, TaskHandler

if TYPE_CHECKING:
    from conveyor.stack.model import Stack
    from conveyor.store.rows import JobRunRow
    from conveyor.store.store import Store

log = logging.getLogger(__name__)

START_JOB_RUN = "arn:aws:states:::glue:startJobRun"
ARGUMENTS = ("--lake", "--table", "--engine", "--master")
INVALID_INPUT = "Glue.InvalidInputException"


def request_arguments(parameters: Any) -> tuple[str, dict[str, str]]:
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


class JobRuns:
    """Curation runs recorded in the metadata store as Glue's JobRuns (GetJobRun /
    GetJobRuns answer from it, in any process sharing the store)."""

    def __init__(self, store: Store, stack: Callable[[], Stack]) -> None:
        self.store = store
        self.stack = stack

    def start(self, job: str, arguments: dict[str, str], *, wait: bool) -> dict[str, Any]:
        """Record and run; with ``wait`` the finished JobRun, else ``{"JobRunId"}`` at once."""
        run_id = f"jr_{uuid.uuid4().hex}"
        self.store.put_job_run(
            {
                "id": run_id,
                "job_name": job,
                "state": "RUNNING",
                "arguments": arguments,
                "started_on": datetime.now(UTC),
                "pid": os.getpid(),
            }
        )
        if wait:
            self._run(run_id, arguments)
            return self.get(job, run_id)
        # Not a daemon: a process that started it waits for it before exiting
        # (killing native code mid-write at interpreter exit can crash it).
        threading.Thread(
            target=self._run, args=(run_id, arguments), name=f"glue-{run_id}", daemon=False
        ).start()
        return {"JobRunId": run_id}

    def _run(self, run_id: str, arguments: dict[str, str]) -> None:
        from conveyor.lake.jobs import curate

        values: dict[str, Any]
        try:
            results = curate(
                self.stack(),
                arguments.get("--lake"),
                arguments.get("--table"),
                arguments.get("--engine"),
                arguments.get("--master"),
            )
        except Exception as exc:
            log.exception("glue job run %s failed", run_id)
            values = {"state": "FAILED", "error": " ".join(str(exc).split()) or type(exc).__name__}
        else:
            failed = [r for r in results if r.status == "failed"]
            values = {"state": "FAILED" if failed else "SUCCEEDED", "tables": [r.as_dict() for r in results]}
            if failed:
                values["error"] = "; ".join(f"{r.table}: {r.error}" for r in failed)
                log.error("glue job run %s failed: %s", run_id, values["error"])
        self.store.update_job_run(run_id, values | {"completed_on": datetime.now(UTC)})

    def get(self, job: str, run_id: str) -> dict[str, Any]:
        row = self.store.job_run(run_id)
        if row is None or row["job_name"] != job:
            raise NotFoundError(f"Job run {run_id} of job {job} not found")
        return self._answer(row)

    def list(self, job: str, limit: int = 100) -> list[dict[str, Any]]:
        return [self._answer(row) for row in self.store.job_runs(job, limit)]

    def _answer(self, row: JobRunRow) -> dict[str, Any]:
        from conveyor.replication.worker import pid_alive

        state, error, completed = row["state"], row["error"], row["completed_on"]
        if state == "RUNNING" and row["pid"] is not None and not pid_alive(row["pid"]):
            state, error = "FAILED", f"the process running it (pid {row['pid']}) ended before the run did"
        answer: dict[str, Any] = {
            "Id": row["id"],
            "Attempt": 0,
            "JobName": row["job_name"],
            "JobRunState": state,
            "Arguments": row["arguments"],
            "StartedOn": _iso(row["started_on"]),
            "LastModifiedOn": _iso(completed or row["started_on"]),
        }
        if completed is not None:
            answer["CompletedOn"] = _iso(completed)
            answer["ExecutionTime"] = int((completed - row["started_on"]).total_seconds())
        if error:
            answer["ErrorMessage"] = error
        if row["tables"] is not None:
            answer["Tables"] = row["tables"]
        return answer


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def start_job_run(runs: JobRuns, sync: bool) -> TaskHandler:
    def handler(parameters: Any, context: TaskContext) -> Any:
        job, arguments = request_arguments(parameters)
        answer = runs.start(job, arguments, wait=sync)
        if sync and answer["JobRunState"] != "SUCCEEDED":
            raise TaskError("States.TaskFailed", json.dumps(answer, default=str))
        return answer

    return handler
