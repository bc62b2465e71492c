"""The applied stack (``stacks``): every apply appends the stack's document (secret
references only); the newest is the one in force."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert, select

from conveyor.store import schema as s
from conveyor.store.repository import Repository, aware, now


class Stacks(Repository):
    def document(self) -> dict[str, Any] | None:
        with self._tx() as conn:
            row = conn.execute(select(s.stacks.c.document).order_by(s.stacks.c.id.desc()).limit(1)).first()
        return dict(row[0]) if row else None

    def applied_at(self) -> datetime | None:
        """When the applied stack was applied (None before the first apply)."""
        with self._tx() as conn:
            row = conn.execute(select(s.stacks.c.applied_at).order_by(s.stacks.c.id.desc()).limit(1)).first()
        return None if row is None else aware(row[0])

    def put(self, document: dict[str, Any]) -> None:
        with self._tx() as conn:
            conn.execute(insert(s.stacks).values(document=document, applied_at=now()))
