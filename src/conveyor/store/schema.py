"""The metadata store's tables (SQLAlchemy Core) and their versions."""

from __future__ import annotations

from sqlalchemy import JSON, Column, DateTime, Integer, MetaData, String, Table, Text, UniqueConstraint

# 1: stacks, tasks, runs, table_stats, events
# 2: task_progress (the running task's change-capture position and latencies)
SCHEMA_VERSION = 2

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
