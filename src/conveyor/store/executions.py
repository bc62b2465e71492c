"""State machine executions (``executions``) and their history (``execution_events``).
A checkpoint replaces the execution's row and appends its events in one transaction;
the owner (the process running it) and the abort are compare-and-sets."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import insert, select, update

from conveyor.store import schema as s
from conveyor.store.repository import Repository, now, row_dict
from conveyor.store.rows import ExecutionEventRow, ExecutionRow


class Executions(Repository):
    def commit(self, execution_id: str, values: dict[str, Any], events: list[dict[str, Any]]) -> bool:
        """Replace the execution's row with ``values`` and append ``events``, in one
        transaction. Writes nothing and returns False when the execution was aborted
        meanwhile (``executions stop`` from any process)."""
        table = s.executions
        with self._tx() as conn:
            current = conn.execute(select(table.c.status).where(table.c.id == execution_id)).scalar()
            if current == "ABORTED":
                return False
            if current is None:
                conn.execute(insert(table).values(id=execution_id, **values, updated_at=now()))
            else:
                conn.execute(
                    update(table).where(table.c.id == execution_id).values(**values, updated_at=now())
                )
            if events:
                conn.execute(
                    insert(s.execution_events),
                    [
                        {
                            "execution_id": execution_id,
                            "event_id": e["id"],
                            "type": e["type"],
                            "timestamp": e["timestamp"],
                            "details": e["details"],
                        }
                        for e in events
                    ],
                )
        return True

    def get(self, execution_id: str) -> ExecutionRow | None:
        with self._tx() as conn:
            row = (
                conn.execute(select(s.executions).where(s.executions.c.id == execution_id)).mappings().first()
            )
        return None if row is None else cast(ExecutionRow, row_dict(row))

    def find(
        self,
        *,
        status: str | None = None,
        state_machine: str | None = None,
        name: str | None = None,
        limit: int = 100,
    ) -> list[ExecutionRow]:
        """Executions, newest first."""
        query = select(s.executions).order_by(s.executions.c.start_time.desc()).limit(limit)
        if status is not None:
            query = query.where(s.executions.c.status == status)
        if state_machine is not None:
            query = query.where(s.executions.c.state_machine == state_machine)
        if name is not None:
            query = query.where(s.executions.c.name == name)
        with self._tx() as conn:
            return [cast(ExecutionRow, row_dict(row)) for row in conn.execute(query).mappings().all()]

    def history(self, execution_id: str) -> list[ExecutionEventRow]:
        """The execution's events, oldest first."""
        t = s.execution_events
        query = select(t.c.event_id, t.c.type, t.c.timestamp, t.c.details)
        query = query.where(t.c.execution_id == execution_id).order_by(t.c.seq)
        with self._tx() as conn:
            return [
                {"id": r.event_id, "type": r.type, "timestamp": r.timestamp, "details": dict(r.details)}
                for r in conn.execute(query).all()
            ]

    def claim(self, execution_id: str, pid: int, expected_owner: int | None) -> bool:
        """Compare-and-set the owner of a RUNNING execution; True if this process has it now."""
        t = s.executions
        where = (t.c.id == execution_id) & (t.c.status == "RUNNING")
        where &= t.c.owner_pid.is_(None) if expected_owner is None else t.c.owner_pid == expected_owner
        with self._tx() as conn:
            return bool(conn.execute(update(t).where(where).values(owner_pid=pid)).rowcount)

    def release(self, execution_id: str, pid: int) -> None:
        t = s.executions
        with self._tx() as conn:
            conn.execute(
                update(t).where((t.c.id == execution_id) & (t.c.owner_pid == pid)).values(owner_pid=None)
            )

    def abort(self, execution_id: str, record: dict[str, Any], event: dict[str, Any]) -> bool:
        """RUNNING -> ABORTED with its ExecutionAborted event; False if it had ended already."""
        t = s.executions
        with self._tx() as conn:
            done = conn.execute(
                update(t)
                .where((t.c.id == execution_id) & (t.c.status == "RUNNING"))
                .values(status="ABORTED", record=record, stop_time=now(), updated_at=now())
            ).rowcount
            if done:
                conn.execute(
                    insert(s.execution_events).values(
                        execution_id=execution_id,
                        event_id=event["id"],
                        type=event["type"],
                        timestamp=event["timestamp"],
                        details=event["details"],
                    )
                )
        return bool(done)
