"""``Conveyor``: the public Python API, and the one layer the CLI, the REST API
and (later) the web console call.

    from conveyor import Conveyor

    with Conveyor(home="./.conveyor") as conveyor:
        conveyor.apply("conveyor.yaml")
        described = conveyor.start_task("sales-load", wait=True)
        for table in described.tables:
            print(table.SchemaName, table.TableName, table.TableState, table.FullLoadRows)

Every operation returns a typed model (``service/models.py``); the CLI prints it
(``--json``: :func:`~conveyor.service.models.to_json`) and the REST API answers it.
Names are the managed services' where they have one (``start_execution``,
``execute_statement``, ``describe_statement``) and snake_case elsewhere.

An instance holds one store connection pool (opened on first use) and, for the
executions and statements, the orchestration objects over it: without
``conveyor serve``, an execution started without ``wait`` is recorded and run by
serve; inside serve (``Conveyor.over``) it runs in a thread at once.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, overload

from conveyor.core.errors import ConfigError, ConveyorError
from conveyor.replication.run_logs import READ_LIMIT
from conveyor.replication.task_states import StartMode
from conveyor.service import logs as log_ops
from conveyor.service import tasks as task_ops
from conveyor.service.apply import applied_stack, apply_stack
from conveyor.service.models import (
    ApplyResult,
    AwsAnswer,
    CancelResult,
    ConnectionTest,
    CurationRuns,
    Endpoint,
    EndpointList,
    EventsPage,
    Execution,
    ExecutionHistory,
    ExecutionList,
    ExecutionStates,
    LakeProcessResult,
    LakeTable,
    LakeTableList,
    PutEventsResult,
    QueryResult,
    RuleList,
    StateMachineList,
    Statement,
    StatementList,
    StatementResult,
    StoppedExecution,
    TableReload,
    TaskDescription,
    TaskList,
    TaskLog,
    TaskProcess,
    TaskSamples,
    ValidationReport,
    WorkerSummary,
)
from conveyor.service.observations import Observed, observe_store
from conveyor.stack.loader import load_stack
from conveyor.stack.model import Stack
from conveyor.store.store import Store

if TYPE_CHECKING:
    # The orchestration (executions, the scheduler, ASL) and the lake's job are
    # imported by the operations that use them: a task command does not pay
    # for them at start-up (issue 17's fixed cost).
    from conveyor.orchestration.integrations_aws import DatabaseMigration
    from conveyor.orchestration.service import Service
    from conveyor.replication.table_plan import ProgressCallback
    from conveyor.service import lake as lake_ops

TaskAnswer = TaskProcess | TaskDescription


class Conveyor:
    """The metadata store under ``home`` (default ``$CONVEYOR_HOME`` or
    ``./.conveyor``), or at ``store_url`` (PostgreSQL; default
    ``$CONVEYOR_STORE_URL``). Use as a context manager, or call :meth:`close`."""

    def __init__(self, home: str | Path | None = None, store_url: str | None = None) -> None:
        self.home = None if home is None else Path(home)
        self.store_url = store_url
        self._store: Store | None = None
        self._owns_store = True
        self._orchestration: Service | None = None
        self._background_run: Literal["none", "thread"] = "none"

    @classmethod
    def over(cls, service: Service) -> Conveyor:
        """The API over a running orchestration service (``conveyor serve``): its
        store, and executions started without ``wait`` run in its threads."""
        conveyor = cls()
        conveyor._store, conveyor._owns_store = service.store, False
        conveyor._orchestration, conveyor._background_run = service, "thread"
        return conveyor

    # --- lifetime -----------------------------------------------------------------------------

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = Store.open(self.home, self.store_url)
        return self._store

    @property
    def orchestration(self) -> Service:
        """Executions, statements, the bus and the scheduler over the store (not started)."""
        if self._orchestration is None:
            from conveyor.orchestration.service import Service

            self._orchestration = Service(self.store)
        return self._orchestration

    @property
    def environment(self) -> dict[str, str]:
        """The environment a worker process needs to find this store."""
        env = dict(os.environ)
        if self.home is not None:
            env["CONVEYOR_HOME"] = str(self.home.resolve())
        if self.store_url is not None:
            env["CONVEYOR_STORE_URL"] = self.store_url
        return env

    def close(self) -> None:
        if self._store is not None and self._owns_store:
            self._store.close()
        self._store, self._orchestration = None, None

    def __enter__(self) -> Conveyor:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- the stack -----------------------------------------------------------------------------

    def apply(
        self, path: str | Path, *, dry_run: bool = False, strict: bool = False, force: bool = False
    ) -> ApplyResult:
        """Create or update what the stack file declares. ``strict`` refuses task-settings
        keys Conveyor does not act on; ``force`` changes a running task's source, target,
        type or mappings all the same. With ``dry_run`` the store is not opened."""
        stack = load_stack(Path(path))
        return apply_stack(lambda: self.store, stack, dry_run=dry_run, strict=strict, force=force)

    def stack(self) -> Stack:
        """The applied stack."""
        return applied_stack(self.store)

    # --- tasks ---------------------------------------------------------------------------------

    def list_tasks(self) -> TaskList:
        return task_ops.list_tasks(self.store)

    @overload
    def start_task(
        self, name: str, wait: Literal[False] = False, on_progress: ProgressCallback | None = None
    ) -> TaskProcess: ...
    @overload
    def start_task(
        self, name: str, wait: Literal[True], on_progress: ProgressCallback | None = None
    ) -> TaskDescription: ...
    @overload
    def start_task(
        self, name: str, wait: bool, on_progress: ProgressCallback | None = None
    ) -> TaskAnswer: ...
    def start_task(
        self, name: str, wait: bool = False, on_progress: ProgressCallback | None = None
    ) -> TaskAnswer:
        """Start the task afresh: in a background worker process, or with ``wait`` here
        until it stops (``on_progress`` is called per table state change), answering
        its description. A change-capture task begins a new capture."""
        return self._run(name, "start", wait, on_progress)

    @overload
    def resume_task(
        self, name: str, wait: Literal[False] = False, on_progress: ProgressCallback | None = None
    ) -> TaskProcess: ...
    @overload
    def resume_task(
        self, name: str, wait: Literal[True], on_progress: ProgressCallback | None = None
    ) -> TaskDescription: ...
    @overload
    def resume_task(
        self, name: str, wait: bool, on_progress: ProgressCallback | None = None
    ) -> TaskAnswer: ...
    def resume_task(
        self, name: str, wait: bool = False, on_progress: ProgressCallback | None = None
    ) -> TaskAnswer:
        """Continue a change-capture task from its target's checkpoint, also after a crash."""
        return self._run(name, "resume", wait, on_progress)

    def reload_task(
        self,
        name: str,
        tables: Sequence[str] | None = None,
        wait: bool = False,
        on_progress: ProgressCallback | None = None,
    ) -> TaskAnswer | TableReload:
        """Without ``tables``: drop the task's capture and start afresh (full load, then
        capture). With ``tables`` (SCHEMA.TABLE, source or target names): reload only
        those; a running task does so itself (answering :class:`TableReload`), a
        stopped one is resumed to do so."""
        if not tables:
            return self._run(name, "reload", wait, on_progress)
        answer, running = task_ops.request_reloads(self.store, name, list(tables))
        if running:
            return answer
        resumed = self._run(name, "resume", wait, on_progress)
        resumed.reloading = answer.reloading
        return resumed

    def _run(
        self, name: str, mode: StartMode, wait: bool, on_progress: ProgressCallback | None
    ) -> TaskAnswer:
        if wait:
            return task_ops.run_here(self.store, name, mode, on_progress)
        return task_ops.start_in_worker(self.store, name, mode, self.environment)

    def stop_task(self, name: str) -> TaskProcess:
        """Ask the task's worker to stop between batches; tables not finished are rolled back."""
        return task_ops.stop(self.store, name)

    def delete_task(self, name: str) -> TaskProcess:
        """Remove a stopped task from what is applied, its change capture ended on the
        source first (slot, publication). A later ``apply`` of a file declaring it
        creates it again."""
        return task_ops.delete(self.store, name)

    def describe_task(self, name: str) -> TaskDescription:
        """Status, stop reason and per-table statistics of the latest run."""
        return task_ops.describe(self.store, name)

    def task_samples(self, name: str, since: datetime | None = None) -> TaskSamples:
        """The task's progress samples (since ``since``), oldest first."""
        task_ops.applied_task_stack(self.store, name)
        return TaskSamples([dict(row) for row in self.store.task_samples(name, since=since)])

    def task_log(
        self, name: str, run: int | None = None, offset: int | None = None, limit: int = READ_LIMIT
    ) -> TaskLog:
        """A chunk of a run's worker log (the latest run by default). Without
        ``offset``, the last ``limit`` bytes in whole lines; pass ``next_offset``
        back to read what follows."""
        return log_ops.task_log(self.store, self.home, name, run, offset, limit)

    def task_log_text(self, name: str, run: int | None = None, follow: bool = False) -> Iterator[str]:
        """A run's whole worker log as text pieces; with ``follow``, until the run ends."""
        return log_ops.task_log_text(self.store, self.home, name, run, follow)

    def export_stack(self) -> str:
        """The applied stack (also what the AWS APIs created) as YAML that ``apply`` takes back."""
        from conveyor.stack.export import export_yaml

        return export_yaml(self.stack())

    def run_segment_worker(
        self, stop: threading.Event, idle_exit: float | None = None, owner: str | None = None
    ) -> WorkerSummary:
        """Claim and load segments of full loads split across workers (docs/scale-workers.md)
        until ``stop`` is set or, with ``idle_exit``, nothing was claimable for that long."""
        from conveyor.replication.segment_worker import run_worker
        from conveyor.store.segments import SegmentQueue, worker_name

        owner = owner or worker_name()
        done = run_worker(SegmentQueue(self.store), self.stack, stop, idle_exit=idle_exit, owner=owner)
        return WorkerSummary(worker=owner, segments_loaded=done)

    def validate(self, name: str, tables: Sequence[str] = ()) -> ValidationReport:
        """Compare the task's target with its source, every table (or the ``tables``
        named SCHEMA.TABLE), value by value."""
        from conveyor.replication.task_runner import validate_task

        stack = task_ops.applied_task_stack(self.store, name)
        return ValidationReport(**validate_task(stack, name, tables).as_dict())

    # --- endpoints -----------------------------------------------------------------------------

    def list_endpoints(self) -> EndpointList:
        stack = self.stack()
        return EndpointList([Endpoint(name=n, **e.redacted()) for n, e in sorted(stack.endpoints.items())])

    def modify_endpoint(self, name: str, set: Sequence[str] = (), unset: Sequence[str] = ()) -> Endpoint:
        """Change an applied endpoint: ``set`` KEY=VALUE (an endpoint key or
        ``settings.<Name>``), ``unset`` KEY; kept until the next apply of a file declaring it."""
        from conveyor.stack.modify import assignments, modify_endpoint

        if not set and not unset:
            raise ConfigError("nothing to change: give --set KEY=VALUE or --unset KEY")
        changes = assignments(list(set), list(unset))
        stack = modify_endpoint(self.store, name, changes, f"endpoints modify {name}")
        return Endpoint(name=name, **stack.endpoints[name].redacted())

    def test_endpoint(self, name: str) -> ConnectionTest:
        """Connect to the endpoint now and say whether it works, and why not."""
        from conveyor.connectors.registry import open_source, open_target, plays

        config = self.stack().endpoint_config(name)
        try:
            connector = open_source(config) if plays(config.engine, "source") else open_target(config)
            version = connector.check()
        except ConveyorError as exc:
            return ConnectionTest(endpoint=name, status="failed", error=str(exc))
        return ConnectionTest(endpoint=name, status="successful", version=version)

    def _dms(self) -> DatabaseMigration:
        from conveyor.orchestration.integrations_aws import DatabaseMigration

        return DatabaseMigration(self.orchestration.executions)

    def describe_endpoints(self) -> AwsAnswer:
        """The migration service's DescribeEndpoints answer."""
        return AwsAnswer(**self._dms().describe_endpoints({}))

    def test_connection(self, name: str) -> AwsAnswer:
        """TestConnection: the test runs in the background; DescribeConnections tells."""
        return AwsAnswer(**self._dms().test_connection({"EndpointArn": name}))

    def describe_connections(self) -> AwsAnswer:
        return AwsAnswer(**self._dms().describe_connections({}))

    def modify_endpoint_settings(self, name: str, members: Mapping[str, Any]) -> AwsAnswer:
        """ModifyEndpoint with the service's members (S3Settings, ServerName, ...)."""
        return AwsAnswer(**self._dms().modify_endpoint(dict(members) | {"EndpointArn": name}))

    def observations(self) -> Observed:
        """What ``GET /metrics`` reports: each task's status and latest-run statistics,
        executions and statements by status, statement durations."""
        return observe_store(self.store)

    # --- events and rules ----------------------------------------------------------------------

    def events(self, since: str | None = None, limit: int = 100, next_token: str | None = None) -> EventsPage:
        """Stored events, newest first, a page at a time; ``since`` is an ISO 8601
        time or an age (15m, 2h, 7d)."""
        from conveyor.store.event_pages import events_page

        return EventsPage(**events_page(self.store, since, limit, next_token))

    def put_event(self, event: Mapping[str, Any]) -> PutEventsResult:
        """Put an event on the bus; the rules it matches start executions."""
        return PutEventsResult(**self.orchestration.bus.put_event(dict(event)))

    def list_rules(self) -> RuleList:
        from conveyor.orchestration.service import rules_listing

        return RuleList.model_validate(rules_listing(self.orchestration))

    # --- state machines and executions -----------------------------------------------------

    def list_state_machines(self) -> StateMachineList:
        from conveyor.orchestration.service import state_machines_listing

        return StateMachineList.model_validate(state_machines_listing(self.orchestration))

    def start_execution(
        self,
        state_machine: str,
        input: Any = None,
        name: str | None = None,
        wait: bool = False,
    ) -> Execution:
        """Start an execution; with ``wait``, run it here until it ends."""
        run = "inline" if wait else self._background_run
        started = self.orchestration.executions.start(state_machine, input, name=name, run=run)
        if run == "none":
            started["note"] = "recorded; `conveyor serve` runs it"
        return Execution(**started)

    def describe_execution(self, execution: str) -> Execution:
        """Status, input, output, error of one execution (id, ARN or name)."""
        return Execution(**self.orchestration.executions.describe(execution))

    def list_executions(
        self, state_machine: str | None = None, status: str | None = None, limit: int = 100
    ) -> ExecutionList:
        rows = self.orchestration.executions.list(state_machine=state_machine, status=status, limit=limit)
        return ExecutionList.model_validate(rows)

    def get_execution_history(self, execution: str) -> ExecutionHistory:
        return ExecutionHistory(**self.orchestration.executions.history(execution))

    def execution_states(self, execution: str) -> ExecutionStates:
        """The definition the execution ran and, per state, what it took, gave and raised."""
        from conveyor.service.executions import execution_states

        return execution_states(self.orchestration.executions, execution)

    def stop_execution(
        self, execution: str, error: str | None = None, cause: str | None = None
    ) -> StoppedExecution:
        return StoppedExecution(**self.orchestration.executions.stop(execution, error, cause))

    # --- statements ---------------------------------------------------------------------------

    def execute_statement(
        self,
        endpoint: str,
        sql: str,
        database: str | None = None,
        *,
        name: str | None = None,
        parameters: list[dict[str, Any]] | None = None,
        wait: bool = False,
        timeout: float = 3600.0,
    ) -> Statement:
        """Run SQL on an endpoint. Without ``wait`` the answer is ExecuteStatement's
        (``Id``, ``ClusterIdentifier``, ``Database``); with it, DescribeStatement's once
        it ends, and ``Result`` (GetStatementResult's first page) when it has a result set."""
        statements = self.orchestration.statements
        statement_id = statements.execute(endpoint, sql, database, name=name, parameters=parameters)
        if not wait:
            return Statement(Id=statement_id, ClusterIdentifier=endpoint, Database=database)
        described = statements.wait(statement_id, timeout)
        if described["Status"] == "FINISHED" and described["HasResultSet"]:
            described["Result"] = statements.result(described["Id"])
        return Statement(**described)

    def describe_statement(self, statement_id: str) -> Statement:
        return Statement(**self.orchestration.statements.describe(statement_id))

    def get_statement_result(self, statement_id: str, next_token: str | None = None) -> StatementResult:
        return StatementResult(**self.orchestration.statements.result(statement_id, next_token))

    def cancel_statement(self, statement_id: str) -> CancelResult:
        return CancelResult(Status=self.orchestration.statements.cancel(statement_id))

    def list_statements(self, limit: int = 100) -> StatementList:
        return StatementList(Statements=self.orchestration.statements.list(limit))

    # --- the lake ------------------------------------------------------------------------------

    def lake_tables(self, lake: str | None = None) -> LakeTableList:
        """The curation job's controller entries (``lake``: only that lake's)."""
        from conveyor.service import lake as lake_ops

        return lake_ops.lake_tables(self.stack(), lake)

    def curation_runs(self, limit: int = 50) -> CurationRuns:
        """The newest curation commits over every curated lake table."""
        from conveyor.service import lake as lake_ops

        return lake_ops.curation_runs(self.stack(), limit)

    def set_lake_table(
        self, table: str, change: lake_ops.LakeTableChange, lake: str | None = None
    ) -> LakeTable:
        """Edit a table's controller entry (created when the stack has one lake)."""
        from conveyor.service import lake as lake_ops

        return lake_ops.set_lake_table(self.stack(), table, change, lake)

    def lake_process(
        self,
        table: str | None = None,
        lake: str | None = None,
        engine: str | None = None,
        master: str | None = None,
    ) -> LakeProcessResult:
        """Curate the raw files of the active tables (or only ``table``) into Delta tables,
        with the embedded engine or on Spark (``engine="spark"``, ``master``: docs/scale.md);
        by default the lake endpoint's choice."""
        from conveyor.service import lake as lake_ops

        return lake_ops.lake_process(self.stack(), table, lake, engine, master)

    def query(self, sql: str) -> QueryResult:
        """Answer SQL over the curated lake tables (DuckDB), tables named schema.table."""
        from conveyor.service import lake as lake_ops

        return lake_ops.query(self.stack(), sql)
