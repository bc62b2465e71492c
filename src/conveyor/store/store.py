"""The metadata store: the applied stack, task status, runs, table statistics,
events, executions, statements... SQLite under CONVEYOR_HOME by default,
PostgreSQL when CONVEYOR_STORE_URL is set. Several processes may use it at once;
every call is one short transaction.

``Store`` opens the engine, migrates the schema and holds one repository per noun
(store/repository.py: ``store.tasks``, ``store.runs``, ``store.executions`` ...),
each answering typed rows (store/rows.py). Its methods are the names callers
use, each handing over to its repository."""

from __future__ import annotations

import os
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

from conveyor.store import migrate
from conveyor.store.connections import Connections
from conveyor.store.events import Events
from conveyor.store.executions import Executions
from conveyor.store.job_runs import JobRuns
from conveyor.store.progress import TaskProgress
from conveyor.store.repository import aware, row_dict
from conveyor.store.rows import (
    ConnectionRow,
    ExecutionEventRow,
    ExecutionRow,
    JobRunRow,
    RunRow,
    StatementRow,
    StatementSummaryRow,
    SuspensionRow,
    TaskSampleRow,
    TaskStatusRow,
    TaskTokenRow,
)
from conveyor.store.runs import Runs
from conveyor.store.schedules import Schedules
from conveyor.store.stacks import Stacks
from conveyor.store.statements import Statements
from conveyor.store.suspensions import Suspensions
from conveyor.store.table_stats import TableStats
from conveyor.store.task_tokens import TaskTokens
from conveyor.store.tasks import Tasks
from conveyor.store.validation_keys import ValidationKeys

DEFAULT_HOME = ".conveyor"


_aware, _run_dict = aware, row_dict  # for a method not yet in a repository


class Store:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        # repositories, one per noun (store/repository.py); the methods below hand over
        self.stacks = Stacks(engine)
        self.tokens = TaskTokens(engine)
        self.jobs = JobRuns(engine)
        self.tasks = Tasks(engine)
        self.runs = Runs(engine)
        self.progress = TaskProgress(engine)
        self.statistics = TableStats(engine)
        self.suspended = Suspensions(engine)
        self.events = Events(engine)
        self.statements = Statements(engine)
        self.executions = Executions(engine)
        self.endpoints = Connections(engine)
        self.schedules = Schedules(engine)
        self.validation_keys = ValidationKeys(engine)  # validation during change capture
        try:
            self._migrate()
        except BaseException:
            engine.dispose()
            raise

    @classmethod
    def open(cls, home: Path | None = None, url: str | None = None) -> Store:
        url = url or os.environ.get("CONVEYOR_STORE_URL")
        if url:
            parsed = make_url(url)
            if parsed.drivername in {"postgresql", "postgres"}:
                parsed = parsed.set(drivername="postgresql+psycopg")
            return cls(create_engine(parsed, pool_pre_ping=True))
        home = home or Path(os.environ.get("CONVEYOR_HOME", DEFAULT_HOME))
        home.mkdir(parents=True, exist_ok=True)
        engine = create_engine(f"sqlite:///{home / 'conveyor.db'}", connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return cls(engine)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    def _migrate(self) -> None:
        migrate.upgrade(self.engine)

    # the applied stack: store/stacks.py
    def stack_document(self) -> dict[str, Any] | None:
        return self.stacks.document()

    def stack_applied_at(self) -> datetime | None:
        """When the applied stack was applied (None before the first apply)."""
        return self.stacks.applied_at()

    def put_stack_document(self, document: dict[str, Any]) -> None:
        self.stacks.put(document)

    # tasks: store/tasks.py
    def ensure_task(self, name: str) -> None:
        self.tasks.ensure(name)

    def task_status(self, name: str) -> TaskStatusRow:
        return self.tasks.status(name)

    def set_task_status(
        self,
        name: str,
        status: str,
        stop_reason: str | None = None,
        error: str | None = None,
        run: int | None = None,
    ) -> None:
        self.tasks.set_status(name, status, stop_reason, error, run)

    def transition_task(
        self,
        name: str,
        expected: Collection[str],
        status: str,
        *,
        expected_run: int | None = None,
        run: int | None = None,
        clear: bool = False,
    ) -> bool:
        """A compare-and-set of the task's status (Tasks.transition)."""
        return self.tasks.transition(name, expected, status, expected_run=expected_run, run=run, clear=clear)

    # runs: store/runs.py
    def start_run(self, task: str, pid: int | None, status: str = "running") -> int:
        return self.runs.start(task, pid, status)

    def finish_run(self, run_id: int, status: str, stop_reason: str | None, error: str | None) -> None:
        self.runs.finish(run_id, status, stop_reason, error)

    def set_run(self, run_id: int, *, pid: int | None = None, status: str | None = None) -> None:
        self.runs.set(run_id, pid=pid, status=status)

    def discard_run(self, run_id: int) -> None:
        """Forget a run that never started (its start lost a race)."""
        self.runs.discard(run_id)

    def run(self, run_id: int) -> RunRow | None:
        return self.runs.get(run_id)

    def list_runs(self, task: str, limit: int = 10) -> list[RunRow]:
        """The task's runs, newest first."""
        return self.runs.of_task(task, limit)

    # the running task's progress (change capture position, latencies): store/progress.py
    def put_task_progress(self, task: str, run_id: int, detail: dict[str, Any]) -> None:
        """Keep the task's latest progress, and a sample of it for the charts."""
        self.progress.put(task, run_id, detail)

    def task_samples(
        self, task: str, since: datetime | None = None, limit: int = 3600
    ) -> list[TaskSampleRow]:
        """The task's progress samples, oldest first (the newest ``limit`` of them)."""
        return self.progress.samples(task, since, limit)

    def task_progress(self, task: str) -> dict[str, Any] | None:
        return self.progress.get(task)

    # per-table statistics: store/table_stats.py
    def put_table_stats(
        self, task: str, run_id: int, schema_name: str, table: str, stats: dict[str, Any]
    ) -> None:
        self.statistics.put(task, run_id, schema_name, table, stats)

    def table_stats(self, task: str, run_id: int | None = None) -> list[dict[str, Any]]:
        return self.statistics.of_run(task, run_id)

    # suspended tables of change-capture tasks (kept across runs): store/suspensions.py
    def put_suspension(
        self, task: str, source: tuple[str, str], target: tuple[str, str], reason: str, position: Any
    ) -> None:
        """Record ``source`` (schema, table) as suspended with ``reason``."""
        self.suspended.put(task, source, target, reason, position)

    def suspensions(self, task: str) -> list[SuspensionRow]:
        return self.suspended.of_task(task)

    def request_table_reload(self, task: str, schema_name: str, table: str, target: tuple[str, str]) -> None:
        """Mark the table for reload; a run of the task reloads it (suspended or not)."""
        self.suspended.request_reload(task, schema_name, table, target)

    def clear_suspension(self, task: str, schema_name: str | None = None, table: str | None = None) -> None:
        """Forget one table's suspension, or (no table given) every one of the task."""
        self.suspended.clear(task, schema_name, table)

    # events: store/events.py
    def put_event(self, event_doc: dict[str, Any]) -> str:
        return self.events.put(event_doc)

    def list_events(self, since: datetime | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """The oldest ``limit`` events (at or after ``since``), oldest first."""
        return self.events.oldest(since, limit)

    def events_page(
        self, since: datetime | None = None, limit: int = 100, before: int | None = None
    ) -> tuple[list[dict[str, Any]], int | None]:
        """Events newest first, a page at a time (Events.page)."""
        return self.events.page(since, limit, before)

    def numbered_events(
        self, since: datetime | None = None, limit: int = 100, before: int | None = None
    ) -> list[tuple[int, dict[str, Any]]]:
        """Events newest first with their sequence numbers (Events.numbered)."""
        return self.events.numbered(since, limit, before)

    # --- orchestration (schema version 3) ------------------------------------------

    # statements: store/statements.py
    def put_statement(self, values: dict[str, Any]) -> None:
        self.statements.put(values)

    def update_statement(
        self, statement_id: str, expected: Collection[str] | None = None, **values: Any
    ) -> bool:
        """Update a statement; with ``expected``, only while its status is one of them."""
        return self.statements.update(statement_id, expected, **values)

    def statement(self, statement_id: str) -> StatementRow | None:
        return self.statements.get(statement_id)

    def list_statements(self, limit: int = 100) -> list[StatementSummaryRow]:
        return self.statements.newest(limit)

    # executions and their history: store/executions.py
    def commit_execution(
        self, execution_id: str, values: dict[str, Any], events: list[dict[str, Any]]
    ) -> bool:
        """Replace the execution's row and append ``events`` in one transaction; False
        (nothing written) when the execution was aborted meanwhile."""
        return self.executions.commit(execution_id, values, events)

    def execution(self, execution_id: str) -> ExecutionRow | None:
        return self.executions.get(execution_id)

    def find_executions(
        self,
        *,
        status: str | None = None,
        state_machine: str | None = None,
        name: str | None = None,
        limit: int = 100,
    ) -> list[ExecutionRow]:
        """Executions, newest first."""
        return self.executions.find(status=status, state_machine=state_machine, name=name, limit=limit)

    def execution_events(self, execution_id: str) -> list[ExecutionEventRow]:
        return self.executions.history(execution_id)

    def claim_execution(self, execution_id: str, pid: int, expected_owner: int | None) -> bool:
        """Compare-and-set the owner of a RUNNING execution; True if this process has it now."""
        return self.executions.claim(execution_id, pid, expected_owner)

    def release_execution(self, execution_id: str, pid: int) -> None:
        self.executions.release(execution_id, pid)

    def abort_execution(self, execution_id: str, record: dict[str, Any], event: dict[str, Any]) -> bool:
        """RUNNING -> ABORTED with its ExecutionAborted event; False if it had ended already."""
        return self.executions.abort(execution_id, record, event)

    # task tokens (.waitForTaskToken): store/task_tokens.py
    def put_task_token(self, token: str, execution_id: str, state: str, issued_at: datetime) -> None:
        self.tokens.put(token, execution_id, state, issued_at)

    def task_token(self, token: str) -> TaskTokenRow | None:
        return self.tokens.get(token)

    def answer_task_token(
        self, token: str, status: str, output: Any = None, error: str | None = None, cause: str | None = None
    ) -> bool:
        return self.tokens.answer(token, status, output, error, cause)

    def heartbeat_task_token(self, token: str) -> bool:
        return self.tokens.heartbeat(token)

    # curation job runs (Glue's JobRun): store/job_runs.py
    def put_job_run(self, values: dict[str, Any]) -> None:
        self.jobs.put(values)

    def update_job_run(self, run_id: str, values: dict[str, Any]) -> None:
        self.jobs.update(run_id, values)

    def job_run(self, run_id: str) -> JobRunRow | None:
        return self.jobs.get(run_id)

    def job_runs(self, job_name: str, limit: int = 100) -> list[JobRunRow]:
        """Runs of a job, newest first."""
        return self.jobs.of_job(job_name, limit)

    # endpoint connection tests: store/connections.py
    def set_connection(self, endpoint: str, status: str, message: str | None = None) -> None:
        self.endpoints.set(endpoint, status, message)

    def connections(self) -> list[ConnectionRow]:
        return self.endpoints.all()

    # schedules: store/schedules.py
    def schedule_last_fire(self, rule: str) -> datetime | None:
        return self.schedules.last_fire(rule)

    def set_schedule_last_fire(self, rule: str, when: datetime) -> None:
        self.schedules.set_last_fire(rule, when)
