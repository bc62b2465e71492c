"""The rows the store answers, typed: what each read returns, key by key, as the
dicts callers already index (TypedDicts, so the change is only in the types).
Datetimes are timezone-aware (UTC)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NotRequired, TypedDict


class TaskStatusRow(TypedDict):
    """A task's status (``tasks``); a task never started answers "ready" and no ``updated_at``."""

    name: str
    status: str
    stop_reason: str | None
    last_error: str | None
    current_run: int | None
    updated_at: NotRequired[datetime]


class RunRow(TypedDict):
    """One run of a task (``runs``)."""

    id: int
    task: str
    pid: int | None
    status: str
    started_at: datetime
    stopped_at: datetime | None
    stop_reason: str | None
    error: str | None


class SuspensionRow(TypedDict):
    """A captured table suspended or being reloaded (``table_suspensions``)."""

    task: str
    schema_name: str
    table_name: str
    target_schema: str
    target_table: str
    state: str  # suspended | reload
    reason: str
    position: Any  # the capture's checkpoint when it was suspended
    updated_at: datetime


class TaskSampleRow(TypedDict):
    """A progress sample of a change-capture task (``task_samples``)."""

    seq: int
    task: str
    run_id: int
    at: datetime
    latency_source: float | None
    latency_target: float | None
    retained_wal_bytes: int | None
    applied_changes: int | None


class TaskTokenRow(TypedDict):
    """A .waitForTaskToken token and its answer (``task_tokens``)."""

    token: str
    execution_id: str
    state: str
    status: str  # waiting | succeeded | failed | closed
    output: Any
    error: str | None
    cause: str | None
    issued_at: datetime
    heartbeat_at: datetime | None


class JobRunRow(TypedDict):
    """A curation job run (``job_runs``)."""

    id: str
    job_name: str
    state: str  # RUNNING | SUCCEEDED | FAILED
    arguments: dict[str, Any]
    started_on: datetime
    completed_on: datetime | None
    error: str | None
    tables: list[dict[str, Any]] | None
    pid: int | None


class StatementSummaryRow(TypedDict):
    """A statement of the Data API without its result (``statements``; a list's rows)."""

    id: str
    endpoint: str
    database: str | None
    statement_name: str | None
    query: str
    status: str  # SUBMITTED | PICKED | STARTED | FINISHED | FAILED | ABORTED
    error: str | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    duration_ns: int | None
    result_rows: int | None
    has_result_set: bool | None
    pid: int | None  # the Conveyor process running it
    backend_pid: int | None  # the database session running it (for cancel)


class StatementRow(StatementSummaryRow):
    """A statement with its result (``statements``)."""

    result: dict[str, Any] | None  # {"ColumnMetadata": [...], "Records": [...]} when HasResultSet


class ExecutionRow(TypedDict):
    """A state machine's execution (``executions``)."""

    id: str
    name: str
    state_machine: str
    status: str  # RUNNING | SUCCEEDED | FAILED | TIMED_OUT | ABORTED
    record: dict[str, Any]  # the engine's ExecutionRecord (its cursor included)
    start_time: datetime
    stop_time: datetime | None
    owner_pid: int | None  # the process running it; None = waiting for `conveyor serve`
    updated_at: datetime


class ExecutionEventRow(TypedDict):
    """One event of an execution's history (``execution_events``), as the engine's
    HistoryEvent names its fields."""

    id: int
    type: str
    timestamp: str
    details: dict[str, Any]


class ConnectionRow(TypedDict):
    """An endpoint's connection test (``endpoint_connections``)."""

    endpoint: str
    status: str  # testing | successful | failed
    message: str | None
    updated_at: datetime
