"""What validation during change capture still has to compare (``validation_keys``),
kept across stop, resume and crashes: each table's mode ("whole" or "keys") and
its "pending" and "differing" keys (see schema.py)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, delete, insert, select

from conveyor.store import schema as s
from conveyor.store.repository import Repository

TABLE_ROW = ""
"""The ``key`` of a table's own row."""
_CHUNK = 500


@dataclass(frozen=True)
class KeyRow:
    schema_name: str
    table_name: str
    key: str
    state: str
    since: float | None = None


class ValidationKeys(Repository):
    def of_task(self, task: str) -> list[KeyRow]:
        c = s.validation_keys.c
        query = select(c.schema_name, c.table_name, c.key, c.state, c.since).where(c.task == task)
        with self._tx() as conn:
            return [KeyRow(*row) for row in conn.execute(query)]

    def put(self, task: str, rows: Sequence[KeyRow], new: Sequence[KeyRow] = ()) -> None:
        """Set ``rows`` (replacing the same keys') and add ``new`` (keys the store
        does not hold: nothing to replace), in one transaction."""
        if not rows and not new:
            return
        with self._tx() as conn:
            for (schema_name, table), keys in _by_table(rows).items():
                self._delete(conn, task, schema_name, table, keys)
            conn.execute(
                insert(s.validation_keys),
                [
                    {
                        "task": task,
                        "schema_name": r.schema_name,
                        "table_name": r.table_name,
                        "key": r.key,
                        "state": r.state,
                        "since": r.since,
                    }
                    for r in [*rows, *new]
                ],
            )

    def drop(self, task: str, schema_name: str, table: str, keys: Iterable[str]) -> None:
        with self._tx() as conn:
            self._delete(conn, task, schema_name, table, list(keys))

    def clear(self, task: str, schema_name: str | None = None, table: str | None = None) -> None:
        """Forget one table's rows, or (no table given) every one of the task."""
        c = s.validation_keys.c
        where = c.task == task
        if schema_name is not None and table is not None:
            where = where & (c.schema_name == schema_name) & (c.table_name == table)
        with self._tx() as conn:
            conn.execute(delete(s.validation_keys).where(where))

    @staticmethod
    def _delete(conn: Connection, task: str, schema_name: str, table: str, keys: list[str]) -> None:
        c = s.validation_keys.c
        for at in range(0, len(keys), _CHUNK):
            where = (c.task == task) & (c.schema_name == schema_name) & (c.table_name == table)
            conn.execute(delete(s.validation_keys).where(where & c.key.in_(keys[at : at + _CHUNK])))


def _by_table(rows: Sequence[KeyRow]) -> dict[tuple[str, str], list[str]]:
    found: dict[tuple[str, str], list[str]] = {}
    for r in rows:
        found.setdefault((r.schema_name, r.table_name), []).append(r.key)
    return found
