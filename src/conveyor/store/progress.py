"""A running task's progress (``task_progress``: the latest change-capture position
and latencies) and its samples over time (``task_samples``: the console's charts)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Connection, delete, func, insert, select, update

from conveyor.store import schema as s
from conveyor.store.repository import Repository, aware, now, row_dict
from conveyor.store.rows import TaskSampleRow

SAMPLE_SECONDS = 1.0
"""At most one progress sample per task this often (the console's charts)."""
SAMPLE_RETENTION = timedelta(hours=24)
"""Samples older than this are deleted as new ones arrive."""


class TaskProgress(Repository):
    def put(self, task: str, run_id: int, detail: dict[str, Any]) -> None:
        """Keep the task's latest progress, and a sample of it for the charts (at most
        every SAMPLE_SECONDS; samples older than SAMPLE_RETENTION are dropped)."""
        when = now()
        with self._tx() as conn:
            values = {"run_id": run_id, "detail": detail, "updated_at": when}
            changed = conn.execute(
                update(s.task_progress).where(s.task_progress.c.task == task).values(**values)
            ).rowcount
            if not changed:
                conn.execute(insert(s.task_progress).values(task=task, **values))
            _sample(conn, task, run_id, detail, when)

    def get(self, task: str) -> dict[str, Any] | None:
        """The latest progress detail, as the task reported it."""
        with self._tx() as conn:
            row = conn.execute(select(s.task_progress.c.detail).where(s.task_progress.c.task == task)).first()
        return dict(row[0]) if row else None

    def samples(self, task: str, since: datetime | None = None, limit: int = 3600) -> list[TaskSampleRow]:
        """The task's progress samples, oldest first (the newest ``limit`` of them)."""
        t = s.task_samples
        query = select(t).where(t.c.task == task).order_by(t.c.at.desc()).limit(limit)
        if since is not None:
            query = query.where(t.c.at >= since)
        with self._tx() as conn:
            rows = [cast(TaskSampleRow, row_dict(row)) for row in conn.execute(query).mappings().all()]
        rows.reverse()
        return rows


def _sample(conn: Connection, task: str, run_id: int, detail: dict[str, Any], when: datetime) -> None:
    t = s.task_samples
    last = aware(conn.execute(select(func.max(t.c.at)).where(t.c.task == task)).scalar())
    if last is not None and (when - last).total_seconds() < SAMPLE_SECONDS:
        return

    def number(key: str) -> Any:
        value = detail.get(key)
        return value if isinstance(value, int | float) and not isinstance(value, bool) else None

    conn.execute(
        insert(t).values(
            task=task,
            run_id=run_id,
            at=when,
            latency_source=number("CDCLatencySource"),
            latency_target=number("CDCLatencyTarget"),
            retained_wal_bytes=number("RetainedWalBytes"),
            applied_changes=number("AppliedChanges"),
        )
    )
    conn.execute(delete(t).where((t.c.task == task) & (t.c.at < when - SAMPLE_RETENTION)))
