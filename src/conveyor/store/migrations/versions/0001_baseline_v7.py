"""Baseline: the store's schema as Conveyor's own migrations left it at version 7.

A store made by an older Conveyor (schema_version 1..7, no alembic_version) has the
tables of its version and none of the later ones: each table is created only where it
is missing, so such a store reaches the baseline with nothing it holds touched. Frozen:
a later change to the schema is a later revision, never an edit here.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision: str | None = None
branch_labels = None
depends_on = None

LEGACY_VERSION = 7
"""What the legacy ``schema_version`` table says at this revision (Conveyors from
before Alembic open a store only when it is at most their own version)."""


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())

    def table(name: str, *elements: Any, indexes: tuple[tuple[str, list[str]], ...] = ()) -> None:
        if name in existing:
            return
        op.create_table(name, *elements)
        for index, columns in indexes:
            op.create_index(index, name, columns, unique=False)

    # version 1: the applied stack, tasks, runs, per-table statistics, events
    table("schema_version", sa.Column("version", sa.Integer(), nullable=False))
    table(
        "stacks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    table(
        "tasks",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("stop_reason", sa.Text(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("current_run", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    table(
        "runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("task", sa.String(length=200), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("stop_reason", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        indexes=(("ix_runs_task", ["task"]),),
    )
    table(
        "table_stats",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("task", sa.String(length=200), nullable=False),
        sa.Column("schema_name", sa.String(length=200), nullable=False),
        sa.Column("table_name", sa.String(length=200), nullable=False),
        sa.Column("stats", sa.JSON(), nullable=False),
        sa.UniqueConstraint("run_id", "schema_name", "table_name"),
    )
    table(
        "events",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("detail_type", sa.String(length=200), nullable=False),
        sa.Column("event", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        sa.UniqueConstraint("id"),
        indexes=(("ix_events_time", ["time"]),),
    )
    # version 2: the running task's change-capture position and latencies
    table(
        "task_progress",
        sa.Column("task", sa.String(length=200), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("task"),
    )
    # version 3: orchestration
    table(
        "statements",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("endpoint", sa.String(length=200), nullable=False),
        sa.Column("database", sa.String(length=200), nullable=True),
        sa.Column("statement_name", sa.String(length=500), nullable=True),
        sa.Column("query", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("duration_ns", sa.BigInteger(), nullable=True),
        sa.Column("result_rows", sa.BigInteger(), nullable=True),
        sa.Column("has_result_set", sa.Boolean(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.Column("backend_pid", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        indexes=(("ix_statements_status", ["status"]),),
    )
    table(
        "executions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("state_machine", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.Column("start_time", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stop_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("owner_pid", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        indexes=(("ix_executions_state_machine", ["state_machine"]), ("ix_executions_status", ["status"])),
    )
    table(
        "execution_events",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("execution_id", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(length=60), nullable=False),
        sa.Column("timestamp", sa.String(length=40), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("seq"),
        indexes=(("ix_execution_events_execution_id", ["execution_id"]),),
    )
    table(
        "endpoint_connections",
        sa.Column("endpoint", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("endpoint"),
    )
    table(
        "schedule_state",
        sa.Column("rule", sa.String(length=200), nullable=False),
        sa.Column("last_fire", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("rule"),
    )
    # version 4: suspended change-capture tables, kept across runs
    table(
        "table_suspensions",
        sa.Column("task", sa.String(length=200), nullable=False),
        sa.Column("schema_name", sa.String(length=200), nullable=False),
        sa.Column("table_name", sa.String(length=200), nullable=False),
        sa.Column("target_schema", sa.String(length=200), nullable=False),
        sa.Column("target_table", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("position", sa.JSON(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("task", "schema_name", "table_name"),
    )
    # version 5: task tokens (.waitForTaskToken) and curation job runs
    table(
        "task_tokens",
        sa.Column("token", sa.String(length=200), nullable=False),
        sa.Column("execution_id", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("output", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("cause", sa.Text(), nullable=True),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("token"),
        indexes=(("ix_task_tokens_execution_id", ["execution_id"]),),
    )
    table(
        "job_runs",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("job_name", sa.String(length=255), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("arguments", sa.JSON(), nullable=False),
        sa.Column("started_on", sa.DateTime(timezone=True), nullable=False),
        sa.Column("completed_on", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("tables", sa.JSON(), nullable=True),
        sa.Column("pid", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        indexes=(("ix_job_runs_job_name", ["job_name"]),),
    )
    # version 6: segments of a full load, claimed by `conveyor worker` processes
    table(
        "load_segments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("task", sa.String(length=200), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("schema_name", sa.String(length=200), nullable=False),
        sa.Column("table_name", sa.String(length=200), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("snapshot_id", sa.String(length=200), nullable=True),
        sa.Column("spec", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("owner", sa.String(length=300), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("claims", sa.JSON(), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "schema_name", "table_name", "seq"),
        indexes=(("ix_load_segments_run_id", ["run_id"]), ("ix_load_segments_state", ["state"])),
    )
    # version 7: change-capture latency and retained WAL over time (the console's charts)
    table(
        "task_samples",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("task", sa.String(length=200), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("latency_source", sa.Float(), nullable=True),
        sa.Column("latency_target", sa.Float(), nullable=True),
        sa.Column("retained_wal_bytes", sa.BigInteger(), nullable=True),
        sa.Column("applied_changes", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("seq"),
        indexes=(("ix_task_samples_task_at", ["task", "at"]),),
    )

    bind = op.get_bind()
    version = bind.execute(sa.text("SELECT max(version) FROM schema_version")).scalar()
    if version is None:
        bind.execute(sa.text("INSERT INTO schema_version (version) VALUES (:v)"), {"v": LEGACY_VERSION})
    else:
        bind.execute(sa.text("UPDATE schema_version SET version = :v"), {"v": LEGACY_VERSION})


def downgrade() -> None:
    raise NotImplementedError("a metadata store is only upgraded")
