"""``GET /metrics``: Conveyor's state in the Prometheus text format.

Tasks run in their own worker processes and write their statistics to the store;
so nothing here counts in memory. At each scrape :class:`StoreCollector` reads the
current state through the service layer (``Conveyor.observations``, which knows
where the numbers come from: ``service/observations.py``) and turns it into metric
families. The metric list
is in ``docs/observability.md``.

Per-run numbers (rows loaded, changes applied) start again at 0 with each run of a
task: the changes are Prometheus counters (``rate()`` treats a new run as a counter
reset), rows loaded a gauge. Capture latencies and retained WAL are the values the
worker last reported (``conveyor_task_progress_updated_timestamp_seconds`` says when).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from conveyor import __version__
from conveyor.replication.cdc.task import TABLE_DROPPED_STATE, TABLE_RELOADING
from conveyor.replication.table_plan import TABLE_COMPLETED, TABLE_ERROR, TABLE_LOADING, TABLE_QUEUED
from conveyor.replication.task_states import FAILED_STATUS, READY, RUNNING, STARTING, STOPPED_STATUS, STOPPING
from conveyor.service import Conveyor
from conveyor.service.observations import Observed, TaskObservation
from conveyor.store.observations import DURATION_BUCKETS

TASK_STATUSES = (READY, STARTING, RUNNING, STOPPING, STOPPED_STATUS, FAILED_STATUS)
TABLE_STATES = (
    TABLE_QUEUED,
    TABLE_LOADING,
    TABLE_COMPLETED,
    TABLE_ERROR,
    TABLE_RELOADING,
    TABLE_DROPPED_STATE,
)
EXECUTION_STATUSES = ("RUNNING", "SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED")
# Per-table change counters in the store's statistics, and their `operation` label.
OPERATIONS = {"Inserts": "insert", "Updates": "update", "Deletes": "delete", "Ddls": "ddl"}


def observe(conveyor: Conveyor) -> Observed:
    """What one scrape reports, from the service layer."""
    return conveyor.observations()


class StoreCollector(Collector):
    """Metric families built at scrape time from ``read()`` (default: :func:`observe`)."""

    def __init__(self, read: Callable[[], Observed]) -> None:
        self.read = read

    def collect(self) -> Iterable[Metric]:
        observed = self.read()
        info = GaugeMetricFamily("conveyor_info", "The Conveyor version serving.", labels=["version"])
        info.add_metric([__version__], 1)
        yield info
        yield from _task_metrics(observed.tasks)
        yield from _table_metrics(observed.tasks)
        yield from _capture_metrics(observed.tasks)
        yield from _orchestration_metrics(observed)


def _task_metrics(tasks: list[TaskObservation]) -> Iterator[Metric]:
    info = GaugeMetricFamily(
        "conveyor_task_info",
        "Each applied task (always 1), with its endpoints and migration type.",
        labels=["task", "source", "target", "migration_type"],
    )
    status = GaugeMetricFamily(
        "conveyor_task_status",
        "1 for the task's current status, 0 for the others.",
        labels=["task", "status"],
    )
    run = GaugeMetricFamily(
        "conveyor_task_run", "The id of the task's current (or last) run.", labels=["task"]
    )
    for t in tasks:
        info.add_metric([t.name, t.source, t.target, t.migration_type], 1)
        for value in (*TASK_STATUSES, *([t.status] if t.status not in TASK_STATUSES else [])):
            status.add_metric([t.name, value], 1 if value == t.status else 0)
        if t.run_id is not None:
            run.add_metric([t.name], t.run_id)
    yield from (info, status, run)


def _table_metrics(tasks: list[TaskObservation]) -> Iterator[Metric]:
    labels = ["task", "schema", "table"]
    rows = GaugeMetricFamily(
        "conveyor_table_full_load_rows", "Rows loaded by the latest run's full load.", labels=labels
    )
    error_rows = GaugeMetricFamily(
        "conveyor_table_full_load_error_rows",
        "Rows the latest run's full load refused (to the apply-exceptions table).",
        labels=labels,
    )
    changes = CounterMetricFamily(
        "conveyor_table_changes_applied",
        "Captured changes applied to the target in the latest run, by operation.",
        labels=[*labels, "operation"],
    )
    state = GaugeMetricFamily(
        "conveyor_table_state",
        "1 for the table's current TableState, 0 for the others.",
        labels=[*labels, "state"],
    )
    failed = GaugeMetricFamily(
        "conveyor_table_validation_failed_records",
        "Records the latest validation found different.",
        labels=labels,
    )
    for t in tasks:
        for table in t.tables:
            key = [t.name, str(table.get("SchemaName")), str(table.get("TableName"))]
            rows.add_metric(key, float(table.get("FullLoadRows") or 0))
            error_rows.add_metric(key, float(table.get("FullLoadErrorRows") or 0))
            if any(k in table for k in OPERATIONS):
                for stat, operation in OPERATIONS.items():
                    changes.add_metric([*key, operation], float(table.get(stat) or 0))
            current = str(table.get("TableState"))
            for value in (*TABLE_STATES, *([current] if current not in TABLE_STATES else [])):
                state.add_metric([*key, value], 1 if value == current else 0)
            if table.get("ValidationFailedRecords") is not None:
                failed.add_metric(key, float(table["ValidationFailedRecords"]))
    yield from (rows, error_rows, changes, state, failed)


def _capture_metrics(tasks: list[TaskObservation]) -> Iterator[Metric]:
    gauges = {
        "CDCLatencySource": GaugeMetricFamily(
            "conveyor_task_cdc_latency_source_seconds",
            "Seconds between the source's commit of the newest change read and the worker's last report.",
            labels=["task"],
        ),
        "CDCLatencyTarget": GaugeMetricFamily(
            "conveyor_task_cdc_latency_target_seconds",
            "Seconds between the source's commit of the newest change applied and the worker's last report.",
            labels=["task"],
        ),
        "RetainedWalBytes": GaugeMetricFamily(
            "conveyor_task_retained_wal_bytes",
            "WAL the PostgreSQL source keeps for the task's replication slot.",
            labels=["task"],
        ),
    }
    counters = {
        "AppliedChanges": CounterMetricFamily(
            "conveyor_task_cdc_applied_changes", "Changes applied by the capture's run.", labels=["task"]
        ),
        "AppliedBatches": CounterMetricFamily(
            "conveyor_task_cdc_applied_batches", "Batches applied by the capture's run.", labels=["task"]
        ),
    }
    updated = GaugeMetricFamily(
        "conveyor_task_progress_updated_timestamp_seconds",
        "When the worker last reported the capture's progress (Unix time).",
        labels=["task"],
    )
    for t in tasks:
        capture = t.capture or {}
        families: dict[str, GaugeMetricFamily | CounterMetricFamily] = {**gauges, **counters}
        for key, family in families.items():
            if capture.get(key) is not None:
                family.add_metric([t.name], float(capture[key]))
        if t.capture_updated_at is not None:
            updated.add_metric([t.name], t.capture_updated_at.timestamp())
    yield from (*gauges.values(), *counters.values(), updated)


def _orchestration_metrics(observed: Observed) -> Iterator[Metric]:
    executions = GaugeMetricFamily(
        "conveyor_executions", "State machine executions by status.", labels=["state_machine", "status"]
    )
    machines = sorted({*observed.state_machines, *(m for m, _ in observed.executions)})
    statuses = sorted({*EXECUTION_STATUSES, *(st for _, st in observed.executions)})
    for machine in machines:
        for status in statuses:
            executions.add_metric([machine, status], observed.executions.get((machine, status), 0))
    statements = GaugeMetricFamily(
        "conveyor_statements",
        "Statements (ExecuteStatement) by endpoint and status.",
        labels=["endpoint", "status"],
    )
    for (endpoint, status), count in sorted(observed.statements.items()):
        statements.add_metric([endpoint, status], count)
    durations = HistogramMetricFamily(
        "conveyor_statement_duration_seconds",
        "How long statements that ended took to run.",
        labels=["endpoint", "status"],
    )
    for h in observed.durations:
        buckets = [(_bound(b), float(n)) for b, n in zip(DURATION_BUCKETS, h.buckets, strict=True)]
        durations.add_metric(
            [h.endpoint, h.status], [*buckets, ("+Inf", float(h.count))], sum_value=h.sum_seconds
        )
    yield from (executions, statements, durations)


def _bound(value: float) -> str:
    return repr(float(value))


def metrics_router(conveyor: Conveyor) -> APIRouter:
    """The ``/metrics`` route, asking ``conveyor`` at each scrape. It sits behind the
    API's bearer token like every other route."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(lambda: observe(conveyor)))
    router = APIRouter()

    @router.get("/metrics", tags=["service"], summary="Prometheus metrics (text exposition format)")
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router
