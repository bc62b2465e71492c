"""A .waitForTaskToken Task's tokens and their answers (``task_tokens``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import insert, select, update

from conveyor.store import schema as s
from conveyor.store.repository import Repository, now, row_dict
from conveyor.store.rows import TaskTokenRow


class TaskTokens(Repository):
    def put(self, token: str, execution_id: str, state: str, issued_at: datetime) -> None:
        values = {"token": token, "execution_id": execution_id, "state": state, "issued_at": issued_at}
        with self._tx() as conn:
            conn.execute(insert(s.task_tokens).values(**values, status="waiting"))

    def get(self, token: str) -> TaskTokenRow | None:
        t = s.task_tokens
        with self._tx() as conn:
            row = conn.execute(select(t).where(t.c.token == token)).mappings().first()
        return None if row is None else cast(TaskTokenRow, row_dict(row))

    def answer(
        self, token: str, status: str, output: Any = None, error: str | None = None, cause: str | None = None
    ) -> bool:
        """A waiting token's answer (succeeded | failed) or its end (closed); False
        when the token is not waiting any more."""
        t = s.task_tokens
        where = (t.c.token == token) & (t.c.status == "waiting")
        with self._tx() as conn:
            values = {"status": status, "output": output, "error": error, "cause": cause}
            return bool(conn.execute(update(t).where(where).values(**values)).rowcount)

    def heartbeat(self, token: str) -> bool:
        t = s.task_tokens
        where = (t.c.token == token) & (t.c.status == "waiting")
        with self._tx() as conn:
            return bool(conn.execute(update(t).where(where).values(heartbeat_at=now())).rowcount)
