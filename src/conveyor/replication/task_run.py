"""One run of a task as its parts see it: statuses and stop reasons, the
``TaskRun`` context (store, declarations, stop event, event sink), and the full
load of its tables. ``task_runner`` (full-load tasks) and ``cdc.task``
(change-capture tasks) both build on it, so neither imports the other's module
back."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import cached_property
from typing import Any

from conveyor.connectors.base import EndpointConfig, NamesItsSource, Snapshot, Target
from conveyor.core.errors import ConveyorError
from conveyor.core.schema import TableSchema
from conveyor.events.lifecycle import NO_TABLES_CAPTURED, STARTED, EventSink, task_event
from conveyor.events.lifecycle import TABLE_ERROR as TABLE_ERROR_EVENT
from conveyor.replication.control_tables import FULL_LOAD as FULL_LOAD_PHASE
from conveyor.replication.control_tables import ControlTables, with_control_schema
from conveyor.replication.declarations import Declarations, TaskDeclaration
from conveyor.replication.full_load import FullLoad
from conveyor.replication.mapped_table import MappedTable
from conveyor.replication.mappings import TableMappings
from conveyor.replication.segment_load import StoreSegments
from conveyor.replication.segment_plan import table_segments
from conveyor.replication.settings import SegmentWorkers, TaskSettings
from conveyor.replication.table_plan import (
    TABLE_COMPLETED,
    TABLE_ERROR,
    ProgressCallback,
    TablePlan,
    TableProgress,
)
from conveyor.replication.task_states import (
    RUNNING,
    STARTING,
)
from conveyor.replication.validation import TableValidation, ValidationRun, validate_tables
from conveyor.store.segments import SegmentQueue
from conveyor.store.store import Store

log = logging.getLogger(__name__)


def stats_document(progress: TableProgress) -> dict[str, Any]:
    """Per-table statistics under the migration service's names."""

    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "SchemaName": progress.plan.target.ref.schema,
        "TableName": progress.plan.target.ref.name,
        "TableState": progress.state,
        "FullLoadRows": progress.rows,
        "FullLoadErrorRows": progress.error_rows,
        "FullLoadStartTime": iso(progress.started),
        "FullLoadEndTime": iso(progress.ended),
        "RowsPerSecond": round(progress.rows_per_second or 0.0, 1),
        "Error": progress.error,
        "Drift": progress.drift,
        "GeneratedColumns": [{"Column": c, "Handling": h} for c, h in progress.generated.items()],
    }


def report_validation(
    store: Store, task: str, run_id: int, progress: TableProgress, check: TableValidation
) -> None:
    document = stats_document(progress) | {
        "ValidationState": check.state,
        "ValidationStateDetails": check.reason,
        "ValidationFailedRecords": check.failed_records,
        "Validation": check.as_dict(),
    }
    ref = progress.plan.target.ref
    store.put_table_stats(task, run_id, ref.schema, ref.name, document)


class _LoadStop(threading.Event):
    """The event FullLoad checks between batches: set by the load itself (a data
    error whose policy stops the task: a failure) or through ``user`` (a stop the
    user asked for). Keeping the two apart tells a failure from a user stop."""

    def __init__(self, user: threading.Event) -> None:
        super().__init__()
        self.user = user

    def is_set(self) -> bool:
        return super().is_set() or self.user.is_set()


@dataclass
class TaskRun:
    """One run of a task in this process, as its parts (full load, change
    capture) see it. Lifecycle events go to ``events``."""

    store: Store
    stack: Declarations
    name: str
    run_id: int
    stop: threading.Event
    events: EventSink
    on_progress: ProgressCallback | None = None
    control: ControlTables | None = None
    """The run's control tables (ControlTablesSettings), when it keeps any."""

    @property
    def spec(self) -> TaskDeclaration:
        return self.stack.tasks[self.name]

    @property
    def target_config(self) -> EndpointConfig:
        """The task's target endpoint, with its ControlSchema (``control_tables``)."""
        config = self.stack.endpoint_config(self.spec.target)
        return with_control_schema(config, self.settings.control_tables_settings)

    @cached_property
    def settings(self) -> TaskSettings:
        return self.spec.task_settings()

    def mark_running(self) -> None:
        # Only from starting: a stop requested meanwhile must stay visible.
        self.store.transition_task(self.name, [STARTING], RUNNING, expected_run=self.run_id)
        self.store.set_run(self.run_id, status=RUNNING)
        self.events(task_event(STARTED, self.name))

    def report(self, progress: TableProgress) -> None:
        ref = progress.plan.target.ref
        if self.control is not None:
            self.control.observe_table_rows(ref.schema, ref.name, progress.rows)
        self.store.put_table_stats(self.name, self.run_id, ref.schema, ref.name, stats_document(progress))
        if self.on_progress is not None:
            self.on_progress(progress)


def tell_source(connector: object, run: TaskRun) -> None:
    """Name the task and its source to a target that puts them in its output."""
    if isinstance(connector, NamesItsSource):
        connector.describe_source(run.name, run.stack.endpoint_config(run.spec.source))


def load_tables(
    run: TaskRun, snapshot: Snapshot, target: Target, plans: list[TablePlan]
) -> list[TableProgress]:
    """The full load of ``plans`` from ``snapshot``, validated when the settings
    say so. Raises when a table failed (unless the user stopped the run)."""
    settings = run.settings.full_load_settings
    if run.control is not None:
        run.control.phase(FULL_LOAD_PHASE)
    tell_source(target, run)
    segmented = run.settings.segmented_load_settings
    plans = [replace(p, segments=table_segments(p, snapshot, segmented)) for p in plans]
    by_workers = None
    if segmented.workers is SegmentWorkers.STORE:
        queue = SegmentQueue(run.store)
        by_workers = StoreSegments(queue, run.name, run.run_id, snapshot, target, segmented)
    loader = FullLoad(
        snapshot,
        target,
        plans,
        settings.target_table_prep_mode,
        batch_rows=settings.commit_rate,
        parallel=settings.max_full_load_sub_tasks,
        on_progress=run.report,
        stop=_LoadStop(run.stop),
        task=run.name,
        errors=run.settings.error_behavior,
        key_after_load=settings.create_pk_after_full_load,
        segmented=by_workers,
    )
    results = loader.run()
    unfinished = [p for p in results if p.state != TABLE_COMPLETED]
    if run.stop.is_set() and (unfinished or not results):
        return results
    if run.settings.validation_settings.enable_validation:
        completed = [p for p in results if p.state == TABLE_COMPLETED]
        checks = validate_tables(
            snapshot,
            target,
            [p.plan for p in completed],
            ValidationRun(run.name, run.settings.validation_settings),
        )
        for progress, check in zip(completed, checks, strict=True):
            report_validation(run.store, run.name, run.run_id, progress, check)
    if unfinished:
        failed = [p for p in unfinished if p.state == TABLE_ERROR]
        for progress in failed:
            run.events(
                task_event(TABLE_ERROR_EVENT, run.name, f"{progress.plan.target.ref}: {progress.error}")
            )
        reason = "; ".join(f"{p.plan.target.ref}: {p.error}" for p in failed)
        left = len(unfinished) - len(failed)
        if left:
            reason += f"; {left} other table{'s' if left != 1 else ''} not loaded"
        raise ConveyorError(f"{len(failed)} of {len(results)} tables failed: {reason}")
    return results


def validate_only(
    run: TaskRun, snapshot: Snapshot, target: Target, plans: list[TablePlan]
) -> list[TableProgress]:
    """ValidationOnly: compare the tables without loading anything. The run
    finishes as a full load does; each table's statistics carry its validation
    state (as the migration service's validation-only tasks do)."""
    checks = validate_tables(
        snapshot, target, plans, ValidationRun(run.name, run.settings.validation_settings)
    )
    results = []
    for plan, check in zip(plans, checks, strict=True):
        progress = TableProgress(plan, state=TABLE_COMPLETED)
        report_validation(run.store, run.name, run.run_id, progress, check)
        results.append(progress)
    return results


def table_plan(mapped: MappedTable) -> TablePlan:
    """The full load's plan of a mapped table."""
    return TablePlan(
        mapped.source,
        mapped.target,
        mapped.project,
        tuple(c.source for c in mapped.columns),
        row_filter=mapped.row_filter,
        raw_copy=not mapped.masks and not mapped.converts,
        segments=mapped.segments,
        partitions_auto=mapped.partitions_auto,
        partitions_named=mapped.partitions_named,
        uncompared=tuple(name for name, _ in mapped.before_images),
    )


def task_mappings(stack: Declarations, name: str) -> TableMappings:
    """The task's table mappings, with its TargetMetadata (schema, LOBs)."""
    spec = stack.tasks[name]
    mappings = TableMappings.parse(spec.table_mappings, f"tasks.{name}.table_mappings")
    return mappings.for_task(spec.task_settings().target_metadata)


def select_tables(stack: Declarations, name: str, tables: Sequence[TableSchema]) -> list[MappedTable]:
    """The source ``tables`` the task's mappings select. Selecting none fails the
    task unless ErrorBehavior.FailOnNoTablesCaptured is false."""
    allow_empty = not stack.tasks[name].task_settings().error_behavior.fail_on_no_tables_captured
    return task_mappings(stack, name).select(tables, allow_empty=allow_empty)


def report_no_tables(run: TaskRun) -> None:
    """The task selected no table and FailOnNoTablesCaptured is false: it ends
    without failing, and says so (log and event)."""
    reason = "the selection rules match no source table (FailOnNoTablesCaptured is false)"
    log.warning("task %s: %s", run.name, reason)
    run.events(task_event(NO_TABLES_CAPTURED, run.name, reason))
