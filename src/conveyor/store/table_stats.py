"""Per-table statistics of each run (``table_stats``): the DMS TableStatistics
document of every table, kept per run."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, insert, select, update

from conveyor.store import schema as s
from conveyor.store.repository import Repository


class TableStats(Repository):
    def put(self, task: str, run_id: int, schema_name: str, table: str, stats: dict[str, Any]) -> None:
        key = (s.table_stats.c.run_id == run_id) & (s.table_stats.c.schema_name == schema_name)
        key &= s.table_stats.c.table_name == table
        with self._tx() as conn:
            done = conn.execute(update(s.table_stats).where(key).values(stats=stats)).rowcount
            if not done:
                conn.execute(
                    insert(s.table_stats).values(
                        run_id=run_id, task=task, schema_name=schema_name, table_name=table, stats=stats
                    )
                )

    def of_run(self, task: str, run_id: int | None = None) -> list[dict[str, Any]]:
        """The run's statistics documents (the task's newest run when none is named),
        in schema and table order."""
        with self._tx() as conn:
            if run_id is None:
                run_id = conn.execute(select(func.max(s.runs.c.id)).where(s.runs.c.task == task)).scalar()
            rows = conn.execute(
                select(s.table_stats.c.stats)
                .where(s.table_stats.c.run_id == run_id)
                .order_by(s.table_stats.c.schema_name, s.table_stats.c.table_name)
            ).all()
        return [dict(r[0]) for r in rows]
