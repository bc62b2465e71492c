"""Suspended tables of change-capture tasks (``table_suspensions``), kept across
runs until a reload: "suspended" with its reason, or "reload" (requested or under way)."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import delete, insert, select, update

from conveyor.store import schema as s
from conveyor.store.repository import Repository, now, row_dict
from conveyor.store.rows import SuspensionRow


class Suspensions(Repository):
    def put(
        self, task: str, source: tuple[str, str], target: tuple[str, str], reason: str, position: Any
    ) -> None:
        """Record ``source`` (schema, table) as suspended with ``reason``."""
        key = _key(task, *source)
        values: dict[str, Any] = {"target_schema": target[0], "target_table": target[1], "state": "suspended"}
        values |= {"reason": reason, "position": position, "updated_at": now()}
        with self._tx() as conn:
            if not conn.execute(update(s.table_suspensions).where(key).values(**values)).rowcount:
                row = {"task": task, "schema_name": source[0], "table_name": source[1]}
                conn.execute(insert(s.table_suspensions).values(**row, **values))

    def of_task(self, task: str) -> list[SuspensionRow]:
        query = select(s.table_suspensions).where(s.table_suspensions.c.task == task)
        with self._tx() as conn:
            rows = conn.execute(query.order_by(s.table_suspensions.c.schema_name)).mappings().all()
        return [cast(SuspensionRow, row_dict(row)) for row in rows]

    def request_reload(self, task: str, schema_name: str, table: str, target: tuple[str, str]) -> None:
        """Mark the table for reload; a run of the task reloads it (suspended or not)."""
        key = _key(task, schema_name, table)
        values: dict[str, Any] = {"state": "reload", "updated_at": now()}
        with self._tx() as conn:
            if not conn.execute(update(s.table_suspensions).where(key).values(**values)).rowcount:
                row = {"task": task, "schema_name": schema_name, "table_name": table, "reason": "reload"}
                target_row = {"target_schema": target[0], "target_table": target[1]}
                conn.execute(insert(s.table_suspensions).values(**row, **target_row, **values))

    def clear(self, task: str, schema_name: str | None = None, table: str | None = None) -> None:
        """Forget one table's suspension, or (no table given) every one of the task."""
        where = s.table_suspensions.c.task == task
        if schema_name is not None and table is not None:
            where = _key(task, schema_name, table)
        with self._tx() as conn:
            conn.execute(delete(s.table_suspensions).where(where))


def _key(task: str, schema_name: str, table: str) -> Any:
    c = s.table_suspensions.c
    return (c.task == task) & (c.schema_name == schema_name) & (c.table_name == table)
