"""Statements of the Data API (``statements``): the query, its status (changed by
compare-and-set on the expected statuses) and its result."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, cast

from sqlalchemy import insert, select, update

from conveyor.store import schema as s
from conveyor.store.repository import Repository, now, row_dict
from conveyor.store.rows import StatementRow, StatementSummaryRow


class Statements(Repository):
    def put(self, values: dict[str, Any]) -> None:
        with self._tx() as conn:
            conn.execute(insert(s.statements).values(**values, created_at=now(), updated_at=now()))

    def update(self, statement_id: str, expected: Collection[str] | None = None, **values: Any) -> bool:
        """Update a statement; with ``expected``, only while its status is one of them."""
        where = s.statements.c.id == statement_id
        if expected is not None:
            where &= s.statements.c.status.in_(list(expected))
        with self._tx() as conn:
            return bool(
                conn.execute(update(s.statements).where(where).values(**values, updated_at=now())).rowcount
            )

    def get(self, statement_id: str) -> StatementRow | None:
        with self._tx() as conn:
            row = (
                conn.execute(select(s.statements).where(s.statements.c.id == statement_id)).mappings().first()
            )
        return None if row is None else cast(StatementRow, row_dict(row))

    def newest(self, limit: int = 100) -> list[StatementSummaryRow]:
        """The newest statements first, without their results."""
        columns = [c for c in s.statements.c if c.name != "result"]
        query = select(*columns).order_by(s.statements.c.created_at.desc()).limit(limit)
        with self._tx() as conn:
            return [cast(StatementSummaryRow, row_dict(row)) for row in conn.execute(query).mappings().all()]
