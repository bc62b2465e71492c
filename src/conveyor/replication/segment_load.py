"""The task's side of a load split across workers (``SegmentedLoadSettings.
Workers: store``): each segment of a table becomes a work item in the metadata
store, naming the source snapshot every segment reads (exported by this
task's snapshot, which stays open until the table is in) and the staging table
it is loaded into. ``conveyor worker`` processes (``segment_worker``) claim
them; this side waits until every segment is done, then the target takes the
rows from the staging tables inside the table's own load transaction, so the
table commits once, whole, and its TableState says "Table is being loaded"
until then."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from conveyor.connectors.base import (
    Snapshot,
    SupportsPartitions,
    SupportsRowFilter,
    SupportsSegmentMerge,
    SupportsSharedSnapshot,
    Target,
)
from conveyor.core.errors import ConveyorError
from conveyor.core.schema import TableRef
from conveyor.replication.segment_plan import encode_filter
from conveyor.replication.settings import SegmentedLoadSettings
from conveyor.replication.table_plan import TablePlan, TableProgress, partition_names
from conveyor.store.segments import DONE, FAILED, SegmentQueue

log = logging.getLogger(__name__)

_POLL_S = 0.5
_NOBODY_WARNING_S = 30.0


def staging_ref(target: TableRef, run_id: int, seq: int) -> TableRef:
    """The staging table of a segment: beside the target table, named by the
    run, a digest of the table's name and the segment (within 63 bytes)."""
    digest = hashlib.blake2b(str(target).encode(), digest_size=4).hexdigest()
    return TableRef(target.schema, f"_cv_seg_{run_id}_{digest}_{seq}")


@dataclass
class StoreSegments:
    """``FullLoad``'s SegmentedLoader on the metadata store's segment queue."""

    queue: SegmentQueue
    task: str
    run_id: int
    snapshot: Snapshot
    target: Target
    settings: SegmentedLoadSettings
    _staging: dict[TableRef, list[TableRef]] = field(default_factory=dict, init=False)
    _partitions: dict[TableRef, list[TableRef]] = field(default_factory=dict, init=False)

    def takes(self, plan: TablePlan) -> bool:
        if plan.partitions_auto and not plan.segments and isinstance(self.snapshot, SupportsPartitions):
            partitions = plan.ordered_partitions(self.snapshot.partitions(plan.source))
            if partitions:
                self._partitions[plan.source.ref] = partitions
            else:
                log.info("table %s: partitions-auto, but the table has no partitions", plan.source.ref)
        elif plan.partitions_named:
            plan.check_partitions(partition_names(self.snapshot, plan.source))
        if not plan.segments and plan.source.ref not in self._partitions:
            return False
        reasons = []
        if not isinstance(self.snapshot, SupportsSharedSnapshot):
            reasons.append("its source cannot share a snapshot with other processes")
        if not isinstance(self.target, SupportsSegmentMerge):
            reasons.append("its target cannot take a table from staging tables")
        if not isinstance(self.snapshot, SupportsRowFilter) or not all(
            self.snapshot.pushes_down(plan.source, s) for s in plan.segments
        ):
            reasons.append("its source cannot read the segments' ranges")
        if reasons:
            log.warning(
                "table %s: segments read in this process, not by workers: %s",
                plan.source.ref,
                "; ".join(reasons),
            )
            return False
        return True

    def load(
        self, plan: TablePlan, progress: TableProgress, stop: threading.Event, report: Callable[[], None]
    ) -> list[TableRef] | None:
        assert isinstance(self.snapshot, SupportsSharedSnapshot)
        source = (plan.source.ref.schema, plan.source.ref.name)
        parts: list[dict[str, Any]]
        if plan.segments:
            parts = [{"filter": encode_filter(segment)} for segment in plan.segments]
        else:  # partitions-auto: each partition read as a table, with the table's filters
            where = None if plan.row_filter is None else encode_filter(plan.row_filter)
            partitions = self._partitions[plan.source.ref]
            parts = [{"relation": [p.schema, p.name], "filter": where} for p in partitions]
        staging = [staging_ref(plan.target.ref, self.run_id, i) for i in range(len(parts))]
        self._staging[plan.source.ref] = staging
        specs = [
            part | {"staging": [ref.schema, ref.name], "lease_seconds": self.settings.lease_seconds}
            for part, ref in zip(parts, staging, strict=True)
        ]
        self.queue.publish(self.task, self.run_id, source, self.snapshot.snapshot_id, specs)
        log.info(
            "table %s: %d segments published for `conveyor worker` processes", plan.source.ref, len(specs)
        )
        began = last_report = time.monotonic()
        warned = False
        while not stop.wait(_POLL_S):
            rows = self.queue.segments(self.run_id, source)
            failed = [r for r in rows if r["state"] == FAILED]
            if failed:
                first = failed[0]
                which = f"segment {first['seq'] + 1} of {len(rows)}"
                raise ConveyorError(f"table {plan.source.ref}: {which} failed: {first['error']}")
            done = [r for r in rows if r["state"] == DONE]
            progress.rows = sum(int(r["rows"] or 0) for r in done)
            if len(done) == len(rows):
                return staging
            if (
                not warned
                and time.monotonic() - began > _NOBODY_WARNING_S
                and not any(r["claims"] for r in rows)
            ):
                warned = True
                log.warning(
                    "table %s: no worker has claimed a segment yet; start `conveyor worker` "
                    "with this task's store (see docs/scale-workers.md)",
                    plan.source.ref,
                )
            if time.monotonic() - last_report >= 1.0:
                last_report = time.monotonic()
                report()
        return None

    def abandon(self, plan: TablePlan) -> None:
        """Cancel the segments (a worker loading one loses its lease at its next
        renewal and gives up) and drop the staging tables written so far."""
        self.queue.cancel(self.run_id, (plan.source.ref.schema, plan.source.ref.name))
        assert isinstance(self.target, SupportsSegmentMerge)
        for ref in self._staging.pop(plan.source.ref, []):
            try:
                self.target.drop_staging(ref)
            except Exception as exc:  # best effort: the load's own failure is what matters
                log.warning("table %s: staging table %s not dropped: %s", plan.source.ref, ref, exc)
