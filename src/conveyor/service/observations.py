"""What ``GET /metrics`` reports, read from the store at each scrape: each applied
task's status and latest-run statistics, executions and statements by status, and
statement durations. ``api/metrics.py`` only formats it as metric families."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from conveyor.orchestration.bus import event_sink
from conveyor.replication.worker import reap_stale
from conveyor.stack.model import Stack
from conveyor.store import schema as s
from conveyor.store.observations import (
    DurationHistogram,
    execution_counts,
    statement_counts,
    statement_durations,
)
from conveyor.store.store import Store


@dataclass
class TaskObservation:
    name: str
    source: str
    target: str
    migration_type: str
    status: str
    run_id: int | None
    tables: list[dict[str, Any]]
    capture: dict[str, Any] | None
    capture_updated_at: datetime | None


@dataclass
class Observed:
    """Everything one scrape reports."""

    tasks: list[TaskObservation] = field(default_factory=list)
    state_machines: list[str] = field(default_factory=list)
    executions: dict[tuple[str, str], int] = field(default_factory=dict)
    statements: dict[tuple[str, str], int] = field(default_factory=dict)
    durations: list[DurationHistogram] = field(default_factory=list)


def observe_store(store: Store) -> Observed:
    """The current state, as ``tasks describe`` shows it: each applied task's status
    (a dead worker's run recorded as failed first, as every reader does) and the
    statistics of its latest run; executions and statements from the store."""
    document = store.stack_document()
    observed = Observed(
        executions=execution_counts(store),
        statements=statement_counts(store),
        durations=statement_durations(store),
    )
    if document is None:
        return observed
    stack = Stack.from_store_dict(document)
    observed.state_machines = sorted(stack.state_machines)
    events = event_sink(store)
    reported = _progress_reports(store)
    for name, task in sorted(stack.tasks.items()):
        status = reap_stale(store, name, events)
        run_id = status.get("current_run")
        # Capture progress of an earlier run (a new run still in its full load) is not shown.
        report_run, updated = reported.get(name, (None, None))
        current = report_run is not None and report_run == run_id
        observed.tasks.append(
            TaskObservation(
                name=name,
                source=task.source,
                target=task.target,
                migration_type=task.migration_type,
                status=status["status"],
                run_id=run_id,
                tables=store.table_stats(name),
                capture=store.task_progress(name) if current else None,
                capture_updated_at=updated if current else None,
            )
        )
    return observed


def _progress_reports(store: Store) -> dict[str, tuple[int, datetime]]:
    """Per task: the run whose capture progress is stored, and when it was reported."""
    t = s.task_progress
    query = select(t.c.task, t.c.run_id, t.c.updated_at)
    with store.engine.begin() as conn:
        return {str(task): (int(run), when) for task, run, when in conn.execute(query).all()}
