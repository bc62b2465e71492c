"""Tasks and their status (``tasks``): one row per task, its status changed by
compare-and-set so two processes cannot both start or stop it."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, cast

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from conveyor.store import schema as s
from conveyor.store.repository import Repository, now, row_dict
from conveyor.store.rows import TaskStatusRow


class Tasks(Repository):
    def ensure(self, name: str) -> None:
        with self._tx() as conn:
            if conn.execute(select(s.tasks.c.name).where(s.tasks.c.name == name)).first() is not None:
                return
        try:
            with self._tx() as conn:
                conn.execute(insert(s.tasks).values(name=name, status="ready", updated_at=now()))
        except IntegrityError:  # another process created it first
            return

    def status(self, name: str) -> TaskStatusRow:
        with self._tx() as conn:
            row = conn.execute(select(s.tasks).where(s.tasks.c.name == name)).mappings().first()
        if row is None:
            return {
                "name": name,
                "status": "ready",
                "stop_reason": None,
                "last_error": None,
                "current_run": None,
            }
        return cast(TaskStatusRow, row_dict(row))

    def set_status(
        self,
        name: str,
        status: str,
        stop_reason: str | None = None,
        error: str | None = None,
        run: int | None = None,
    ) -> None:
        values: dict[str, Any] = {
            "status": status,
            "stop_reason": stop_reason,
            "last_error": error,
            "updated_at": now(),
        }
        if run is not None:
            values["current_run"] = run
        self.ensure(name)
        with self._tx() as conn:
            conn.execute(update(s.tasks).where(s.tasks.c.name == name).values(**values))

    def transition(
        self,
        name: str,
        expected: Collection[str],
        status: str,
        *,
        expected_run: int | None = None,
        run: int | None = None,
        clear: bool = False,
    ) -> bool:
        """Set ``status`` only if the task's status is one of ``expected`` (and, when
        ``expected_run`` is given, its current run is that one): a compare-and-set, so
        two processes cannot both win. ``clear`` resets stop reason and last error;
        ``run`` makes that run the current one. Returns whether it was set."""
        values: dict[str, Any] = {"status": status, "updated_at": now()}
        if clear:
            values |= {"stop_reason": None, "last_error": None}
        if run is not None:
            values["current_run"] = run
        where = (s.tasks.c.name == name) & s.tasks.c.status.in_(list(expected))
        if expected_run is not None:
            where &= s.tasks.c.current_run == expected_run
        self.ensure(name)
        with self._tx() as conn:
            return bool(conn.execute(update(s.tasks).where(where).values(**values)).rowcount)
