"""Runs of tasks (``runs``): one row per start, its process and how it ended."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import delete, insert, select, update

from conveyor.store import schema as s
from conveyor.store.repository import Repository, now, row_dict
from conveyor.store.rows import RunRow


class Runs(Repository):
    def start(self, task: str, pid: int | None, status: str = "running") -> int:
        with self._tx() as conn:
            result = conn.execute(insert(s.runs).values(task=task, pid=pid, status=status, started_at=now()))
            key = result.inserted_primary_key
            assert key is not None
            return int(key[0])

    def finish(self, run_id: int, status: str, stop_reason: str | None, error: str | None) -> None:
        with self._tx() as conn:
            conn.execute(
                update(s.runs)
                .where(s.runs.c.id == run_id)
                .values(status=status, stop_reason=stop_reason, error=error, stopped_at=now())
            )

    def set(self, run_id: int, *, pid: int | None = None, status: str | None = None) -> None:
        values: dict[str, Any] = {}
        if pid is not None:
            values["pid"] = pid
        if status is not None:
            values["status"] = status
        if values:
            with self._tx() as conn:
                conn.execute(update(s.runs).where(s.runs.c.id == run_id).values(**values))

    def discard(self, run_id: int) -> None:
        """Forget a run that never started (its start lost a race), with its statistics."""
        with self._tx() as conn:
            conn.execute(delete(s.table_stats).where(s.table_stats.c.run_id == run_id))
            conn.execute(delete(s.runs).where(s.runs.c.id == run_id))

    def get(self, run_id: int) -> RunRow | None:
        with self._tx() as conn:
            row = conn.execute(select(s.runs).where(s.runs.c.id == run_id)).mappings().first()
        return None if row is None else cast(RunRow, row_dict(row))

    def of_task(self, task: str, limit: int = 10) -> list[RunRow]:
        """The task's runs, newest first."""
        query = select(s.runs).where(s.runs.c.task == task).order_by(s.runs.c.id.desc()).limit(limit)
        with self._tx() as conn:
            return [cast(RunRow, row_dict(row)) for row in conn.execute(query).mappings().all()]
