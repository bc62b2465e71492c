"""When each scheduled rule last fired (``schedule_state``), so a restarted
scheduler neither repeats nor skips a firing."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select, update

from conveyor.store import schema as s
from conveyor.store.repository import Repository, aware


class Schedules(Repository):
    def last_fire(self, rule: str) -> datetime | None:
        t = s.schedule_state
        with self._tx() as conn:
            return aware(conn.execute(select(t.c.last_fire).where(t.c.rule == rule)).scalar())

    def set_last_fire(self, rule: str, when: datetime) -> None:
        t = s.schedule_state
        with self._tx() as conn:
            if not conn.execute(update(t).where(t.c.rule == rule).values(last_fire=when)).rowcount:
                conn.execute(insert(t).values(rule=rule, last_fire=when))
