"""Endpoint connection tests (``endpoint_connections``, DMS TestConnection): the
latest result per endpoint."""

from __future__ import annotations

from typing import cast

from sqlalchemy import insert, select, update

from conveyor.store import schema as s
from conveyor.store.repository import Repository, now, row_dict
from conveyor.store.rows import ConnectionRow


class Connections(Repository):
    def set(self, endpoint: str, status: str, message: str | None = None) -> None:
        t = s.endpoint_connections
        with self._tx() as conn:
            values = {"status": status, "message": message, "updated_at": now()}
            if not conn.execute(update(t).where(t.c.endpoint == endpoint).values(**values)).rowcount:
                conn.execute(insert(t).values(endpoint=endpoint, **values))

    def all(self) -> list[ConnectionRow]:
        with self._tx() as conn:
            rows = conn.execute(select(s.endpoint_connections)).mappings().all()
        return [cast(ConnectionRow, row_dict(row)) for row in rows]
