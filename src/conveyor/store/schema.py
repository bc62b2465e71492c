"""The metadata store's tables (SQLAlchemy Core), as of the newest revision."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

# The schema's history is in store/migrations/versions (Alembic): a change here
# needs a revision there (see store/migrate.py). The legacy table below is kept as a
# guard for Conveyors from before Alembic (versions 1..7 of their own migrations).

metadata = MetaData()

schema_version = Table("schema_version", metadata, Column("version", Integer, nullable=False))

stacks = Table(
    "stacks",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("document", JSON, nullable=False),  # Stack.to_store_dict(): secret references only
    Column("applied_at", DateTime(timezone=True), nullable=False),
)

tasks = Table(
    "tasks",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("status", String(20), nullable=False),
    Column("stop_reason", Text),
    Column("last_error", Text),
    Column("current_run", Integer),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("task", String(200), nullable=False, index=True),
    Column("pid", Integer),
    Column("status", String(20), nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("stopped_at", DateTime(timezone=True)),
    Column("stop_reason", Text),
    Column("error", Text),
)

table_stats = Table(
    "table_stats",
    metadata,
    Column("run_id", Integer, nullable=False),
    Column("task", String(200), nullable=False),
    Column("schema_name", String(200), nullable=False),
    Column("table_name", String(200), nullable=False),
    Column("stats", JSON, nullable=False),
    UniqueConstraint("run_id", "schema_name", "table_name"),
)

events = Table(
    "events",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False, unique=True),
    Column("time", DateTime(timezone=True), nullable=False, index=True),
    Column("source", String(200), nullable=False),
    Column("detail_type", String(200), nullable=False),
    Column("event", JSON, nullable=False),
)

task_progress = Table(
    "task_progress",
    metadata,
    Column("task", String(200), primary_key=True),
    Column("run_id", Integer, nullable=False),
    Column("detail", JSON, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# The capture's latencies and retained WAL over time: a sample at most every few
# seconds per task from the progress reports, kept for a bounded time (the
# console draws them as charts).
task_samples = Table(
    "task_samples",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("task", String(200), nullable=False),
    Column("run_id", Integer, nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("latency_source", Float),
    Column("latency_target", Float),
    Column("retained_wal_bytes", BigInteger),
    Column("applied_changes", BigInteger),
    Index("ix_task_samples_task_at", "task", "at"),  # the newest sample, a window, the retention
)

# A captured table that stopped receiving changes (a type change, a refused value ...),
# kept across stop, resume and crashes until `conveyor tasks reload NAME --table S.T`
# reloads it. Keyed by the source table; state "suspended" or "reload" (requested or
# under way: a run that finds it reloads the table).
table_suspensions = Table(
    "table_suspensions",
    metadata,
    Column("task", String(200), nullable=False),
    Column("schema_name", String(200), nullable=False),
    Column("table_name", String(200), nullable=False),
    Column("target_schema", String(200), nullable=False),
    Column("target_table", String(200), nullable=False),
    Column("state", String(20), nullable=False),
    Column("reason", Text, nullable=False),
    Column("position", JSON),  # the capture's checkpoint when it was suspended
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("task", "schema_name", "table_name"),
)

# One segment of a table's full load, a work item claimed by `conveyor worker`
# processes (see store/segments.py): pending -> running (leased) -> done | failed,
# or cancelled by the run that published it. ``attempt`` counts claims; a claim,
# a renewal or a finish is a compare-and-set on it, so a worker whose lease was
# taken over can no longer change the row.
load_segments = Table(
    "load_segments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("task", String(200), nullable=False),
    Column("run_id", Integer, nullable=False, index=True),
    Column("schema_name", String(200), nullable=False),  # the source table
    Column("table_name", String(200), nullable=False),
    Column("seq", Integer, nullable=False),  # the segment's place in its table (0-based)
    Column("snapshot_id", String(200)),  # the source snapshot every segment reads
    Column("spec", JSON, nullable=False),  # the row filter and the staging table
    Column("state", String(20), nullable=False, index=True),
    Column("owner", String(300)),  # host:pid of the worker holding the lease
    Column("lease_until", DateTime(timezone=True)),
    Column("attempt", Integer, nullable=False),
    Column("claims", JSON, nullable=False),  # every owner that claimed it, in order
    Column("rows", BigInteger),
    Column("error", Text),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("run_id", "schema_name", "table_name", "seq"),
)

# --- orchestration (version 3) ---------------------------------------------------------

statements = Table(
    "statements",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("endpoint", String(200), nullable=False),
    Column("database", String(200)),
    Column("statement_name", String(500)),
    Column("query", Text, nullable=False),
    Column("status", String(20), nullable=False, index=True),
    Column("error", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True)),
    Column("duration_ns", BigInteger),
    Column("result_rows", BigInteger),
    Column("has_result_set", Boolean),
    Column("result", JSON),  # {"ColumnMetadata": [...], "Records": [...]} when HasResultSet
    Column("pid", Integer),  # the Conveyor process running it
    Column("backend_pid", Integer),  # the database session running it (for cancel)
)

executions = Table(
    "executions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("state_machine", String(200), nullable=False, index=True),
    Column("status", String(20), nullable=False, index=True),
    Column("record", JSON, nullable=False),  # the engine's ExecutionRecord (cursor included)
    Column("start_time", DateTime(timezone=True), nullable=False),
    Column("stop_time", DateTime(timezone=True)),
    Column("owner_pid", Integer),  # the process running it; NULL = waiting for `conveyor serve`
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

execution_events = Table(
    "execution_events",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("execution_id", String(64), nullable=False, index=True),
    Column("event_id", Integer, nullable=False),
    Column("type", String(60), nullable=False),
    Column("timestamp", String(40), nullable=False),
    Column("details", JSON, nullable=False),
)

endpoint_connections = Table(
    "endpoint_connections",
    metadata,
    Column("endpoint", String(200), primary_key=True),
    Column("status", String(20), nullable=False),  # testing | successful | failed
    Column("message", Text),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

schedule_state = Table(
    "schedule_state",
    metadata,
    Column("rule", String(200), primary_key=True),
    Column("last_fire", DateTime(timezone=True), nullable=False),
)

# --- version 5 ----------------------------------------------------------------------------

task_tokens = Table(
    "task_tokens",
    metadata,
    Column("token", String(200), primary_key=True),
    Column("execution_id", String(64), nullable=False, index=True),
    Column("state", String(200), nullable=False),
    Column("status", String(20), nullable=False),  # waiting | succeeded | failed | closed
    Column("output", JSON),
    Column("error", Text),
    Column("cause", Text),
    Column("issued_at", DateTime(timezone=True), nullable=False),
    Column("heartbeat_at", DateTime(timezone=True)),
)

job_runs = Table(
    "job_runs",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("job_name", String(255), nullable=False, index=True),
    Column("state", String(20), nullable=False),  # RUNNING | SUCCEEDED | FAILED
    Column("arguments", JSON, nullable=False),
    Column("started_on", DateTime(timezone=True), nullable=False),
    Column("completed_on", DateTime(timezone=True)),
    Column("error", Text),
    Column("tables", JSON),  # each table's result (lake.jobs.TableResult.as_dict)
    Column("pid", Integer),
)

# Validation during change capture (replication/cdc/validation.py): the rows a
# running CDC task still has to compare, kept across stop, resume and crashes.
# One row per target table with ``key`` '' (state "whole": the table is to be
# compared whole; "keys": its first comparison is done, changed keys only from
# then on), and one per key (its texts as a JSON list) that is "pending"
# (changed, not yet compared) or "differing" (found different at ``since``,
# seconds since the epoch, and not changed since; confirmed once it has
# differed for the confirmation delay).
validation_keys = Table(
    "validation_keys",
    metadata,
    Column("task", String(200), nullable=False),
    Column("schema_name", String(200), nullable=False),
    Column("table_name", String(200), nullable=False),
    Column("key", Text, nullable=False),
    Column("state", String(20), nullable=False),
    Column("since", Float),
    UniqueConstraint("task", "schema_name", "table_name", "key"),
)
