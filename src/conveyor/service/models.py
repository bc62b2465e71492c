"""The typed answers of the Python API (``conveyor.Conveyor``), which are also what
``--json`` prints and what the REST API answers: one model per answer, dumped by
:func:`to_json`, so the three cannot drift.

Keys are the managed services' names where they have one (``FullLoadRows``,
``TableState``, ``executionArn``, ``Id``, ``NextToken``) and snake_case elsewhere,
never both for one thing. Answers whose members depend on the engine or on the
run (per-table change counters, drift lines) keep those members as extra fields:
``model_extra`` has them, and they are dumped as they came.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, PrivateAttr, RootModel


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        return int(value)
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


class Model(BaseModel):
    """Base of every answer: extra members kept, attributes named as the JSON keys."""

    model_config = ConfigDict(extra="allow")


def to_json(model: BaseModel) -> Any:
    """The JSON value of an answer: members never set are left out (an optional
    section such as ``capture`` appears only when there is one). Values JSON has no
    type for: whole decimals (SUM of integers is a HUGEINT) as numbers, bytes as
    hex, other decimals and times as their exact text."""
    dumped = model.model_dump(mode="python", by_alias=True, exclude_unset=True)
    return json.loads(json.dumps(dumped, default=_json_value))


# --- apply -----------------------------------------------------------------------------------------


class StackSummary(Model):
    """What a stack file declares, secrets shown only as their references."""

    file: str | None
    endpoints: dict[str, dict[str, Any]]
    tasks: dict[str, dict[str, Any]]
    state_machines: list[str]
    rules: list[str]
    functions: dict[str, str]
    lake_tables: list[str]
    warnings: list[str]


class ApplyResult(Model):
    """``apply``: what the file declares, and one line per entry created, updated or unchanged."""

    summary: StackSummary
    changes: list[str]
    definition_warnings: list[str]
    notices: list[str]
    dry_run: bool


# --- tasks ---------------------------------------------------------------------------------------


class TaskSummary(Model):
    name: str
    source: str
    target: str
    migration_type: str
    status: str
    stop_reason: str | None


class TaskList(RootModel[list[TaskSummary]]):
    """Every applied task with its status."""


class TableStatistics(Model):
    """One table of a task's latest run, as the migration service's
    DescribeTableStatistics names it; change-capture counters (Inserts, Updates,
    Deletes, Ddls), ValidationState (during capture with ValidationPendingRecords and
    ValidationFailedRecords), Drift and GeneratedColumns appear when they apply."""

    SchemaName: str
    TableName: str
    TableState: str
    FullLoadRows: int = 0
    FullLoadErrorRows: int = 0
    RowsPerSecond: float | int = 0


class TaskDescription(Model):
    """``describe_task``: status and stop reason, per-table statistics, recent runs,
    where a change capture stands (``capture``) and suspended tables."""

    task: str
    status: str
    stop_reason: str | None = None
    last_error: str | None = None
    pid: int | None = None
    tables: list[TableStatistics]
    runs: list[dict[str, Any]]
    settings_not_acted_on: dict[str, list[str]]
    capture: dict[str, Any] | None = None
    suspended_tables: list[dict[str, Any]] | None = None
    reloading: list[str] | None = None


class TaskProcess(Model):
    """A task's worker process: started in the background (``status`` starting),
    or asked to stop (``status`` stopping)."""

    task: str
    status: str
    pid: int | None
    reloading: list[str] | None = None


class TaskSamples(RootModel[list[dict[str, Any]]]):
    """A task's progress samples (rows loaded, changes applied, latencies), oldest
    first, as the worker recorded them: what the console charts."""


class TaskLog(Model):
    """A chunk of a run's worker log: bytes ``offset`` to ``next_offset`` of its
    current file. ``running`` is false once the run ended and the log is complete;
    ``rotated`` says the file rolled over since the offset asked for."""

    task: str
    run: int
    offset: int
    next_offset: int
    size: int
    rotated: bool
    running: bool
    text: str


class WorkerSummary(Model):
    """``conveyor worker`` at exit: who it was and how many segments it loaded."""

    worker: str
    segments_loaded: int


class TableReload(Model):
    """``reload_task(name, tables)`` on a running task: it reloads these tables itself.
    (A stopped task is resumed to reload them: its answer names them in ``reloading``.)"""

    task: str
    status: str
    reloading: list[str]


# --- endpoints, validation, events ----------------------------------------------------------------


class AwsAnswer(Model):
    """An answer in a managed service's own shape (DescribeEndpoints, TestConnection,
    DescribeConnections, ModifyEndpoint), as its API returns it."""


class Endpoint(Model):
    """An applied endpoint; secrets shown only as their references."""

    name: str
    engine: str


class EndpointList(RootModel[list[Endpoint]]):
    pass


class ConnectionTest(Model):
    endpoint: str
    status: str
    version: str | None = None
    error: str | None = None


class TableValidation(Model):
    Table: str
    ValidationState: str
    Reason: str | None
    SourceRows: int | None
    TargetRows: int | None
    MissingOnTarget: int
    ExtraOnTarget: int
    Different: int
    FailedRecords: int
    FailuresRecorded: int
    FirstFailures: list[dict[str, Any]]
    Notes: list[str]


class ValidationReport(Model):
    """``validate``: every table compared, source against target, value by value."""

    Task: str
    Tables: list[TableValidation]
    Notes: list[str]

    @property
    def validated(self) -> bool:
        return all(t.ValidationState == "Validated" for t in self.Tables)


class EventsPage(Model):
    """Stored events, newest first; ``NextToken`` names the older page."""

    Events: list[dict[str, Any]]
    NextToken: str | None


class PutEventsResult(Model):
    EventId: str
    MatchedRules: list[str]
    Executions: list[str]
    Failures: list[dict[str, Any]]


# --- executions, state machines, rules, statements ----------------------------------------------


class Execution(Model):
    """A state machine execution, in Step Functions' DescribeExecution names."""

    executionArn: str
    executionId: str
    stateMachineName: str
    status: str


class ExecutionList(RootModel[list[Execution]]):
    pass


class StoppedExecution(Model):
    executionArn: str
    stopDate: str


class ExecutionHistory(Model):
    events: list[dict[str, Any]]


class StateRun(Model):
    """What one state did in an execution (its last entry, for a state run several times)."""

    name: str
    entered: int = 0
    input: Any = None
    output: Any = None
    error: str | None = None
    cause: str | None = None
    exited: bool = False


class ExecutionStates(Model):
    """``execution_states``: the definition an execution ran, the states in the order
    entered (``path``), per state what it took, gave and raised, and the state it
    failed in."""

    definition: dict[str, Any]
    path: list[str]
    states: list[StateRun]
    failed_state: str | None


class StateMachine(Model):
    name: str
    stateMachineArn: str
    valid: bool


class StateMachineList(RootModel[list[StateMachine]]):
    pass


class Rule(Model):
    Name: str
    State: str
    Targets: list[dict[str, Any]]


class RuleList(RootModel[list[Rule]]):
    pass


class Statement(Model):
    """A statement in the Redshift Data API's names: ExecuteStatement's answer
    (``Id``), or DescribeStatement's (with ``Status``; ``Result`` when waited for)."""

    Id: str
    ClusterIdentifier: str | None = None
    Database: str | None = None


class StatementList(Model):
    Statements: list[dict[str, Any]]


class StatementResult(Model):
    ColumnMetadata: list[dict[str, Any]]
    Records: list[list[dict[str, Any]]]


class CancelResult(Model):
    Status: bool


# --- the lake ------------------------------------------------------------------------------------


class LakeTable(Model):
    """One entry of the curation job's controller table."""

    Table: str
    Lake: str
    ActiveFlag: bool
    PrimaryKey: str | None
    PartitionKey: str | None
    LastFullLoadDate: str | None
    LastIncrementalFile: str | None


class LakeTableList(RootModel[list[LakeTable]]):
    pass


class CurationRuns(RootModel[list[dict[str, Any]]]):
    """Recent curation commits of the curated tables, newest first: table, version,
    time, operation, rows and files touched, the controller values."""


class LakeTableResult(Model):
    """One table of a curation run."""

    table: str
    lake: str
    status: str
    error: str | None


class LakeProcessResult(RootModel[list[LakeTableResult]]):
    @property
    def failed(self) -> bool:
        return any(r.status == "failed" for r in self.root)


class QueryResult(RootModel[list[dict[str, Any]]]):
    """``query``: the rows, with DuckDB's own values in Python (``Decimal``,
    ``datetime``); :func:`to_json` makes them JSON.
    ``columns`` names the columns also when there is no row."""

    _columns: list[str] = PrivateAttr(default_factory=list)

    @property
    def columns(self) -> list[str]:
        return self._columns
