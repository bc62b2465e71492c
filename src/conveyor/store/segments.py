"""Segments of full loads as work items in the metadata store, claimed with
leases by ``conveyor worker`` processes on any host sharing the store.

A claim picks the oldest segment that is pending, or running with an expired
lease (its worker is gone or stuck), and takes it with a compare-and-set on
its ``attempt``: on PostgreSQL the candidate row is first locked with
``SELECT ... FOR UPDATE SKIP LOCKED`` so concurrent claimers pass over it
instead of waiting; on SQLite (one host) the compare-and-set alone decides.
Renewing the lease, finishing and failing are compare-and-sets on the same
``attempt``: once a segment has been taken over, its former worker can change
nothing. Lease times are the claiming host's clock (keep hosts in NTP sync;
the lease is much longer than any sane skew)."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.exc import OperationalError

from conveyor.store import schema as s
from conveyor.store.repository import now
from conveyor.store.store import Store

PENDING = "pending"
RUNNING = "running"
DONE = "done"
FAILED = "failed"
CANCELLED = "cancelled"


def worker_name() -> str:
    """This process as a segment owner: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class Claim:
    """A segment this worker holds: renew, finish or fail it with ``attempt``."""

    id: int
    task: str
    run_id: int
    schema_name: str
    table_name: str
    seq: int
    snapshot_id: str | None
    spec: dict[str, Any]
    attempt: int


class SegmentQueue:
    """The ``load_segments`` table of a store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.engine = store.engine

    def publish(
        self,
        task: str,
        run_id: int,
        table: tuple[str, str],
        snapshot_id: str | None,
        specs: Sequence[dict[str, Any]],
    ) -> None:
        """The segments of one table's load, pending (replacing any of this
        run and table left from an earlier attempt)."""
        schema_name, table_name = table
        key = self._table_key(run_id, schema_name, table_name)
        stamp = now()
        rows: list[dict[str, Any]] = [
            {
                "task": task,
                "run_id": run_id,
                "schema_name": schema_name,
                "table_name": table_name,
                "seq": seq,
                "snapshot_id": snapshot_id,
                "spec": spec,
                "state": PENDING,
                "attempt": 0,
                "claims": [],
                "updated_at": stamp,
            }
            for seq, spec in enumerate(specs)
        ]
        with self.engine.begin() as conn:
            conn.execute(s.load_segments.delete().where(key))
            if rows:
                conn.execute(insert(s.load_segments), rows)

    def claim(self, owner: str, lease: timedelta) -> Claim | None:
        """Take the oldest claimable segment for its spec's ``lease_seconds``
        (else ``lease``); None when there is none."""
        t = s.load_segments.c
        for _ in range(20):  # a lost race retries with the next candidate
            stamp = now()
            claimable = or_(t.state == PENDING, and_(t.state == RUNNING, t.lease_until < stamp))
            try:
                row, taken = self._try_claim(owner, lease, stamp, claimable)
            except OperationalError:
                if self.engine.dialect.name != "sqlite":
                    raise
                # SQLite: another claimer wrote since this transaction read (a
                # busy snapshot): the claim is lost, try again.
                time.sleep(0.05)
                continue
            if row is None:
                return None
            if taken:
                return Claim(
                    int(row["id"]),
                    row["task"],
                    int(row["run_id"]),
                    row["schema_name"],
                    row["table_name"],
                    int(row["seq"]),
                    row["snapshot_id"],
                    dict(row["spec"]),
                    int(row["attempt"]) + 1,
                )
        return None

    def _try_claim(self, owner: str, lease: timedelta, stamp: datetime, claimable: Any) -> tuple[Any, bool]:
        """The candidate row (None: nothing claimable) and whether it was taken."""
        t = s.load_segments.c
        with self.engine.begin() as conn:
            query = select(s.load_segments).where(claimable).order_by(t.id).limit(1)
            if self.engine.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            row = conn.execute(query).mappings().first()
            if row is None:
                return None, False
            seconds = row["spec"].get("lease_seconds")
            held = timedelta(seconds=seconds) if seconds else lease
            taken = conn.execute(
                update(s.load_segments)
                .where((t.id == row["id"]) & (t.attempt == row["attempt"]) & claimable)
                .values(
                    state=RUNNING,
                    owner=owner,
                    lease_until=stamp + held,
                    attempt=int(row["attempt"]) + 1,
                    claims=[*row["claims"], owner],
                    updated_at=stamp,
                )
            ).rowcount
        return row, bool(taken)

    def renew(self, claim: Claim, lease: timedelta) -> bool:
        """Extend the lease; False when the segment is no longer this claim's
        (taken over after the lease expired, or cancelled)."""
        return self._settle(claim, {"lease_until": now() + lease})

    def finish(self, claim: Claim, rows: int) -> bool:
        return self._settle(claim, {"state": DONE, "rows": rows, "lease_until": None})

    def fail(self, claim: Claim, error: str) -> bool:
        return self._settle(claim, {"state": FAILED, "error": error, "lease_until": None})

    def release(self, claim: Claim) -> bool:
        """Give the segment back (a worker stopping): another worker takes it."""
        return self._settle(claim, {"state": PENDING, "owner": None, "lease_until": None})

    def _settle(self, claim: Claim, values: dict[str, Any]) -> bool:
        t = s.load_segments.c
        where = (t.id == claim.id) & (t.attempt == claim.attempt) & (t.state == RUNNING)
        with self.engine.begin() as conn:
            return bool(
                conn.execute(update(s.load_segments).where(where).values(**values, updated_at=now())).rowcount
            )

    def cancel(self, run_id: int, table: tuple[str, str]) -> None:
        """The run gave the table up: no worker takes its segments any more, and
        a worker loading one loses its lease at its next renewal."""
        t = s.load_segments.c
        where = self._table_key(run_id, *table) & t.state.in_([PENDING, RUNNING])
        with self.engine.begin() as conn:
            conn.execute(
                update(s.load_segments)
                .where(where)
                .values(state=CANCELLED, lease_until=None, updated_at=now())
            )

    def segments(self, run_id: int, table: tuple[str, str] | None = None) -> list[dict[str, Any]]:
        """The segments of a run (of one of its tables), in order."""
        t = s.load_segments.c
        where = t.run_id == run_id if table is None else self._table_key(run_id, *table)
        with self.engine.begin() as conn:
            rows = conn.execute(select(s.load_segments).where(where).order_by(t.id)).mappings().all()
        return [{k: _aware(v) for k, v in row.items()} for row in rows]

    @staticmethod
    def _table_key(run_id: int, schema_name: str, table_name: str) -> Any:
        t = s.load_segments.c
        return (t.run_id == run_id) & (t.schema_name == schema_name) & (t.table_name == table_name)


def _aware(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value
