"""Stored events (``events``): the EventBridge-shaped documents as published,
numbered in the order they were stored (``seq``, a page's cursor)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select

from conveyor.store import schema as s
from conveyor.store.repository import Repository


class Events(Repository):
    def put(self, event_doc: dict[str, Any]) -> str:
        event_id = str(event_doc.get("id") or uuid.uuid4())
        when = datetime.fromisoformat(str(event_doc["time"]).replace("Z", "+00:00"))
        with self._tx() as conn:
            conn.execute(
                insert(s.events).values(
                    id=event_id,
                    time=when,
                    source=event_doc["source"],
                    detail_type=event_doc["detail-type"],
                    event=event_doc,
                )
            )
        return event_id

    def oldest(self, since: datetime | None = None, limit: int = 1000) -> list[dict[str, Any]]:
        """The oldest ``limit`` events (at or after ``since``), oldest first."""
        query = select(s.events.c.event).order_by(s.events.c.seq).limit(limit)
        if since is not None:
            query = query.where(s.events.c.time >= since)
        with self._tx() as conn:
            return [dict(r[0]) for r in conn.execute(query).all()]

    def page(
        self, since: datetime | None = None, limit: int = 100, before: int | None = None
    ) -> tuple[list[dict[str, Any]], int | None]:
        """Events newest first, at most ``limit``, those at or after ``since``,
        stored before the cursor ``before``; with the cursor of the next (older)
        page, or None when there is none. A page is stable while new events
        arrive: they are newer than any cursor."""
        rows = self.numbered(since, limit + 1, before)
        more = len(rows) > limit
        rows = rows[:limit]
        return [event for _, event in rows], (rows[-1][0] if more and rows else None)

    def numbered(
        self, since: datetime | None = None, limit: int = 100, before: int | None = None
    ) -> list[tuple[int, dict[str, Any]]]:
        """Events newest first with their sequence numbers (a page's cursor is
        the number of its last event: the next page is ``before`` it)."""
        query = select(s.events.c.seq, s.events.c.event).order_by(s.events.c.seq.desc()).limit(limit)
        if since is not None:
            query = query.where(s.events.c.time >= since)
        if before is not None:
            query = query.where(s.events.c.seq < before)
        with self._tx() as conn:
            return [(int(r.seq), dict(r.event)) for r in conn.execute(query).all()]
