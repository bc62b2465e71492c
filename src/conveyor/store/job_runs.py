"""Curation job runs (Glue's JobRun, ``job_runs``)."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import insert, select, update

from conveyor.store import schema as s
from conveyor.store.repository import Repository, row_dict
from conveyor.store.rows import JobRunRow


class JobRuns(Repository):
    def put(self, values: dict[str, Any]) -> None:
        with self._tx() as conn:
            conn.execute(insert(s.job_runs).values(**values))

    def update(self, run_id: str, values: dict[str, Any]) -> None:
        with self._tx() as conn:
            conn.execute(update(s.job_runs).where(s.job_runs.c.id == run_id).values(**values))

    def get(self, run_id: str) -> JobRunRow | None:
        t = s.job_runs
        with self._tx() as conn:
            row = conn.execute(select(t).where(t.c.id == run_id)).mappings().first()
        return None if row is None else cast(JobRunRow, row_dict(row))

    def of_job(self, job_name: str, limit: int = 100) -> list[JobRunRow]:
        """Runs of a job, newest first."""
        t = s.job_runs
        query = select(t).where(t.c.job_name == job_name).order_by(t.c.started_on.desc()).limit(limit)
        with self._tx() as conn:
            return [cast(JobRunRow, row_dict(row)) for row in conn.execute(query).mappings().all()]
