"""Aggregates of the store for monitoring (``GET /metrics``): counted and
bucketed by the database, so a scrape costs the same with ten statements or a
million. Read-only; each call is one short transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import case, func, select

from conveyor.store import schema as s
from conveyor.store.store import Store

# Upper bounds (seconds) of the statement-duration histogram's buckets.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


def execution_counts(store: Store) -> dict[tuple[str, str], int]:
    """How many executions each state machine has per status: ``(machine, status) -> n``."""
    t = s.executions
    query = select(t.c.state_machine, t.c.status, func.count()).group_by(t.c.state_machine, t.c.status)
    with store.engine.begin() as conn:
        return {(str(m), str(st)): int(n) for m, st, n in conn.execute(query).all()}


def statement_counts(store: Store) -> dict[tuple[str, str], int]:
    """How many statements each endpoint has per status: ``(endpoint, status) -> n``."""
    t = s.statements
    query = select(t.c.endpoint, t.c.status, func.count()).group_by(t.c.endpoint, t.c.status)
    with store.engine.begin() as conn:
        return {(str(e), str(st)): int(n) for e, st, n in conn.execute(query).all()}


@dataclass(frozen=True)
class DurationHistogram:
    """Cumulative counts of statements at or under each bound of ``DURATION_BUCKETS``,
    their count and their summed duration in seconds."""

    endpoint: str
    status: str
    buckets: Sequence[int]
    count: int
    sum_seconds: float


def statement_durations(store: Store) -> list[DurationHistogram]:
    """Durations of the statements that ended (finished or failed), per endpoint and status."""
    t = s.statements
    ended = t.c.duration_ns >= 0
    bucket_columns = [
        func.sum(case((t.c.duration_ns <= int(bound * 1e9), 1), else_=0)) for bound in DURATION_BUCKETS
    ]
    query = (
        select(t.c.endpoint, t.c.status, func.count(), func.sum(t.c.duration_ns), *bucket_columns)
        .where(ended)
        .group_by(t.c.endpoint, t.c.status)
        .order_by(t.c.endpoint, t.c.status)
    )
    with store.engine.begin() as conn:
        rows = conn.execute(query).all()
    return [
        DurationHistogram(
            endpoint=str(row[0]),
            status=str(row[1]),
            buckets=[int(n or 0) for n in row[4:]],
            count=int(row[2]),
            sum_seconds=int(row[3] or 0) / 1e9,
        )
        for row in rows
    ]
