"""``conveyor worker``: claim segments of full loads from the metadata store and
load each into its staging table on the target, on any host sharing the store.

One segment at a time, per process (run more processes for more parallelism):

1. claim the oldest pending segment (or one whose lease expired: its worker
   died) with a lease; a heartbeat thread renews the lease every third of it;
2. open the task's source and target from the applied stack in the store,
   attach to the snapshot the task exported, and load the segment's rows into
   its staging table with the full-load engine, in one target transaction that
   first drops whatever an earlier attempt left there (a replaced segment,
   never a duplicated one: every attempt reads the same rows of the same
   snapshot);
3. commit only while still holding the lease, then mark the segment done (or
   failed, with the reason the task reports).

A worker that loses its lease (it stalled past it, or the task cancelled the
table) stops its load between batches and rolls it back. Killed outright, its
open target transaction dies with its connection and the segment is claimed
again once its lease expires."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import timedelta

from conveyor.connectors.base import PrepMode, SupportsSnapshotAttach
from conveyor.connectors.registry import open_source, open_target
from conveyor.core.errors import ConveyorError
from conveyor.core.schema import TableRef, TableSchema
from conveyor.replication.control_tables import with_control_schema
from conveyor.replication.declarations import Declarations
from conveyor.replication.full_load import FullLoad
from conveyor.replication.segment_plan import decode_filter
from conveyor.replication.table_plan import TABLE_COMPLETED, TablePlan
from conveyor.replication.task_run import select_tables, table_plan
from conveyor.store.segments import Claim, SegmentQueue, worker_name

log = logging.getLogger(__name__)

DEFAULT_LEASE = timedelta(seconds=30)
_IDLE_POLL_S = 0.5


class _Either(threading.Event):
    """Set when either event is (the worker stopping, or the lease lost)."""

    def __init__(self, *events: threading.Event) -> None:
        super().__init__()
        self.events = events

    def is_set(self) -> bool:
        return super().is_set() or any(e.is_set() for e in self.events)


class _Heartbeat:
    """Renews a claim's lease every third of it; sets ``lost`` when it cannot."""

    def __init__(self, queue: SegmentQueue, claim: Claim, lease: timedelta) -> None:
        self.queue, self.claim, self.lease = queue, claim, lease
        self.lost = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"lease-{claim.id}", daemon=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(timeout=10)

    def _beat(self) -> None:
        while not self._done.wait(self.lease.total_seconds() / 3):
            if not self.holds():
                return

    def holds(self) -> bool:
        """Renew now; False (and ``lost`` set) when the segment is no longer ours."""
        if self.lost.is_set():
            return False
        try:
            if self.queue.renew(self.claim, self.lease):
                return True
        except Exception as exc:  # the store unreachable: the lease may lapse, so stop
            log.warning("segment %d: cannot renew its lease: %s", self.claim.id, exc)
        log.warning("segment %d: lease lost; giving the segment up", self.claim.id)
        self.lost.set()
        return False


def run_worker(
    queue: SegmentQueue,
    load_stack: Callable[[], Declarations],
    stop: threading.Event,
    *,
    idle_exit: float | None = None,
    owner: str | None = None,
) -> int:
    """Claim and load segments until ``stop`` is set (or, with ``idle_exit``,
    until nothing was claimable for that many seconds). Returns the segments done."""
    owner = owner or worker_name()
    done = 0
    idle_since = time.monotonic()
    log.info("worker %s: waiting for segments", owner)
    while not stop.is_set():
        claim = queue.claim(owner, DEFAULT_LEASE)
        if claim is None:
            if idle_exit is not None and time.monotonic() - idle_since >= idle_exit:
                break
            stop.wait(_IDLE_POLL_S)
            continue
        if load_segment(queue, claim, load_stack, stop):
            done += 1
        idle_since = time.monotonic()
    log.info("worker %s: %d segments loaded", owner, done)
    return done


def load_segment(
    queue: SegmentQueue, claim: Claim, load_stack: Callable[[], Declarations], stop: threading.Event
) -> bool:
    """Load one claimed segment into its staging table; whether it is done."""
    seconds = claim.spec.get("lease_seconds")
    lease = timedelta(seconds=seconds) if seconds else DEFAULT_LEASE
    where = f"task {claim.task}, table {claim.schema_name}.{claim.table_name}, segment {claim.seq + 1}"
    log.info("%s: claimed (attempt %d)", where, claim.attempt)
    with _Heartbeat(queue, claim, lease) as heartbeat:
        try:
            rows, error = _load(claim, load_stack, _Either(stop, heartbeat.lost), heartbeat.holds)
        except Exception as exc:  # anything that stops this segment is its failure, not the worker's
            rows, error = (
                None,
                f"{type(exc).__name__}: {exc}" if not isinstance(exc, ConveyorError) else str(exc),
            )
        if heartbeat.lost.is_set():
            return False
        if rows is not None:
            finished = queue.finish(claim, rows)
            log.info("%s: %d rows%s", where, rows, "" if finished else " (but the segment was taken over)")
            return finished
        if stop.is_set():
            queue.release(claim)
            log.info("%s: given back (the worker is stopping)", where)
            return False
        log.error("%s: failed: %s", where, error)
        queue.fail(claim, error or "failed")
        return False


def _load(
    claim: Claim, load_stack: Callable[[], Declarations], stop: threading.Event, holds: Callable[[], bool]
) -> tuple[int | None, str | None]:
    """(rows, None) when the segment is in its staging table, else (None, why)."""
    stack = load_stack()
    if claim.task not in stack.tasks:
        return None, f"task {claim.task} is no longer in the applied stack"
    spec = stack.tasks[claim.task]
    settings = spec.task_settings()
    if claim.snapshot_id is None:
        return None, "the segment names no source snapshot"
    source = open_source(stack.endpoint_config(spec.source))
    try:
        target = open_target(
            with_control_schema(stack.endpoint_config(spec.target), settings.control_tables_settings)
        )
        try:
            if not isinstance(source, SupportsSnapshotAttach):
                return None, f"a {stack.endpoints[spec.source].engine} source cannot share its snapshot"
            plan = _segment_plan(stack, claim, source.tables())
            snapshot = source.attach_snapshot(claim.snapshot_id)
            try:
                loader = FullLoad(
                    snapshot,
                    target,
                    [plan],
                    PrepMode.DROP_AND_CREATE,
                    batch_rows=settings.full_load_settings.commit_rate,
                    stop=stop,
                    task=claim.task,
                    errors=settings.error_behavior,
                    commit_check=holds,
                )
                (progress,) = loader.run()
            finally:
                snapshot.close()
        finally:
            target.close()
    finally:
        source.close()
    if progress.state == TABLE_COMPLETED:
        return progress.rows, None
    return None, progress.error or progress.state


def _segment_plan(stack: Declarations, claim: Claim, tables: Sequence[TableSchema]) -> TablePlan:
    """The task's plan of the segment's table, reading only the segment's rows
    into its staging table (the target table's columns, without its key)."""
    plans = [table_plan(m) for m in select_tables(stack, claim.task, tables)]
    ref = TableRef(claim.schema_name, claim.table_name)
    plan = next((p for p in plans if p.source.ref == ref), None)
    if plan is None:
        raise ConveyorError(f"the task's mappings no longer select table {ref}")
    schema_name, table_name = claim.spec["staging"]
    staging = replace(plan.target, ref=TableRef(schema_name, table_name), primary_key=())
    where = claim.spec.get("filter")
    plan = replace(
        plan,
        target=staging,
        row_filter=None if where is None else decode_filter(where),
        segments=(),
        partitions_auto=False,
        partitions_named=(),
    )
    relation = claim.spec.get("relation")
    if relation is not None:  # partitions-auto: the partition read as a table of the same columns
        plan = replace(plan, source=replace(plan.source, ref=TableRef(*relation)))
    return plan
