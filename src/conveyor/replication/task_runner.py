"""Running one task of an applied stack: status, statistics and lifecycle events
around the full-load engine."""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from conveyor.connectors.base import Source, Target
from conveyor.connectors.registry import open_source, open_target
from conveyor.core.errors import ConfigError, ConveyorError
from conveyor.events.lifecycle import FAILED, STARTED, STOPPED, task_event
from conveyor.replication.full_load import TABLE_COMPLETED, FullLoad, TablePlan, TableProgress
from conveyor.replication.mappings import TableMappings
from conveyor.replication.validation import VALIDATED, TableValidation, validate_table
from conveyor.stack.model import Stack
from conveyor.store.store import Store

FULL_LOAD_ONLY_FINISHED = "FULL_LOAD_ONLY_FINISHED"


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
    }


def plan_tables(stack: Stack, name: str, source: Source) -> list[TablePlan]:
    """The tables a task loads: the source's tables through the task's mappings."""
    spec = stack.tasks[name]
    mappings = TableMappings.parse(spec.table_mappings, f"tasks.{name}.table_mappings")
    return [TablePlan(m.source, m.target, m.project) for m in mappings.select(source.tables())]


def report_validation(
    store: Store, task: str, run_id: int, progress: TableProgress, check: TableValidation
) -> None:
    document = stats_document(progress) | {"ValidationState": check.state, "Validation": check.as_dict()}
    ref = progress.plan.target.ref
    store.put_table_stats(task, run_id, ref.schema, ref.name, document)


def validate_task(stack: Stack, name: str, batch_rows: int = 10_000) -> list[TableValidation]:
    """Compare every table of the task, source against target, now."""
    spec = stack.tasks[name]
    source: Source = open_source(stack.endpoint_config(spec.source))
    target: Target = open_target(stack.endpoint_config(spec.target))
    snapshot = source.snapshot()
    try:
        return [
            validate_table(snapshot, target, plan, batch_rows) for plan in plan_tables(stack, name, source)
        ]
    finally:
        snapshot.close()
        target.close()
        source.close()


def all_validated(checks: list[TableValidation]) -> bool:
    return all(check.state == VALIDATED for check in checks)


def run_task(store: Store, stack: Stack, name: str) -> str:
    """Run the task to its end in this process; returns the final status."""
    spec = stack.tasks.get(name)
    if spec is None:
        raise ConfigError(f"no task named {name!r}; known: {', '.join(sorted(stack.tasks)) or '-'}")
    if spec.migration_type != "full-load":
        raise ConfigError(
            f"task {name!r}: migration_type {spec.migration_type!r} is not supported by this build yet"
        )
    task_settings = spec.task_settings()
    settings = task_settings.full_load_settings
    run_id = store.start_run(name, os.getpid())
    store.set_task_status(name, "starting", run=run_id)
    try:
        source = open_source(stack.endpoint_config(spec.source))
        target = open_target(stack.endpoint_config(spec.target))
        plans = plan_tables(stack, name, source)
        store.set_task_status(name, "running")
        store.put_event(task_event(STARTED, name))

        def report(progress: TableProgress) -> None:
            ref = progress.plan.target.ref
            store.put_table_stats(name, run_id, ref.schema, ref.name, stats_document(progress))

        snapshot = source.snapshot()
        try:
            loader = FullLoad(
                snapshot,
                target,
                plans,
                settings.target_table_prep_mode,
                batch_rows=settings.commit_rate,
                parallel=settings.max_full_load_sub_tasks,
                on_progress=report,
            )
            results = loader.run()
            if task_settings.validation_settings.enable_validation:
                for progress in results:
                    if progress.state == TABLE_COMPLETED:
                        check = validate_table(snapshot, target, progress.plan, settings.commit_rate)
                        report_validation(store, name, run_id, progress, check)
        finally:
            snapshot.close()
            target.close()
            source.close()
        failed = [p for p in results if p.state != TABLE_COMPLETED]
        if failed:
            reason = "; ".join(f"{p.plan.target.ref}: {p.error}" for p in failed)
            raise ConveyorError(f"{len(failed)} of {len(results)} tables failed: {reason}")
    except ConveyorError as exc:
        store.finish_run(run_id, "failed", None, str(exc))
        store.set_task_status(name, "failed", error=str(exc))
        store.put_event(task_event(FAILED, name, str(exc)))
        return "failed"
    store.finish_run(run_id, "stopped", FULL_LOAD_ONLY_FINISHED, None)
    store.set_task_status(name, "stopped", stop_reason=FULL_LOAD_ONLY_FINISHED)
    store.put_event(task_event(STOPPED, name, FULL_LOAD_ONLY_FINISHED))
    return "stopped"
