"""Glue (``AWSGlue``): StartJobRun, GetJobRun and GetJobRuns for the lake curation job.

Any ``JobName`` names the curation job (the seed's ``dmscdc-lake`` or another);
``Arguments`` may narrow a run with ``--lake`` and ``--table`` as the state machines'
``glue:startJobRun`` Task does (orchestration/integrations_glue.py). A run started
here runs in ``conveyor serve``; runs are recorded in the metadata store, also those
state machines start, so GetJobRuns lists both. Every other Glue operation (the Data
Catalog, crawlers, job definitions) answers UnknownOperationException.
"""

from __future__ import annotations

from typing import Any

from conveyor.aws.base import AwsService, Paging, required
from conveyor.core.errors import ConfigError
from conveyor.orchestration.asl.errors import TaskError
from conveyor.orchestration.integrations_glue import JobRuns, request_arguments
from conveyor.orchestration.service import Service


def _runs(service: Service) -> JobRuns:
    return JobRuns(service.store, service.stack)


def _start(service: Service, p: dict[str, Any]) -> dict[str, Any]:
    try:
        job, arguments = request_arguments(p)
    except TaskError as exc:
        raise ConfigError(exc.cause or exc.error) from None
    service.stack()  # something is applied
    return {"JobRunId": _runs(service).start(job, arguments, wait=False)["JobRunId"]}


def _get(service: Service, p: dict[str, Any]) -> dict[str, Any]:
    return {"JobRun": _runs(service).get(required(p, "JobName"), required(p, "RunId"))}


def _list(service: Service, p: dict[str, Any]) -> dict[str, Any]:
    limit = int(p.get("MaxResults") or 100)
    return {"JobRuns": _runs(service).list(required(p, "JobName"), limit)}


GLUE = AwsService(
    "AWSGlue",
    "application/x-amz-json-1.1",
    not_found="EntityNotFoundException",
    invalid="InvalidInputException",
    wrong_state="ConcurrentRunsExceededException",
    exists="AlreadyExistsException",
    operations={"StartJobRun": _start, "GetJobRun": _get, "GetJobRuns": _list},
    paging={"GetJobRuns": Paging("JobRuns", "MaxResults", "NextToken", maximum=200, passes_limit=True)},
)
