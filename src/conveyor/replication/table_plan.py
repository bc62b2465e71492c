"""A table of a full load: what to load and how (``TablePlan``), how far its
load is (``TableProgress`` and the service's TableState values), the segmented
loader that may take it, and how its generated columns are handled."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import pyarrow as pa

from conveyor.connectors.base import (
    ListsPartitionNames,
    Snapshot,
    SupportsPartitions,
    SupportsRawCopyIn,
    SupportsRowFilter,
    TableLoad,
)
from conveyor.core.errors import ConveyorError
from conveyor.core.row_filter import RowFilter
from conveyor.core.schema import TableRef, TableSchema
from conveyor.replication.identifiers import TargetNames
from conveyor.replication.segments import read_partitions, read_segments, reads_concurrently

log = logging.getLogger(__name__)

# TableState values as the migration service reports them.
TABLE_LOADING = "Table is being loaded"
TABLE_COMPLETED = "Table completed"
TABLE_ERROR = "Table error"
TABLE_QUEUED = "Before load"


@dataclass(frozen=True)
class TablePlan:
    """One table to load: as the source has it, and as the target gets it.
    ``project`` turns a source batch into a target batch (table mappings)."""

    source: TableSchema
    target: TableSchema
    project: Callable[[pa.RecordBatch], pa.RecordBatch] = field(default=lambda batch: batch)
    # The source column each target column is read from, in target order; None
    # when a target column has no source column (added by a mapping).
    source_columns: tuple[str | None, ...] | None = None
    # Source rows to load (selection rule filters); None: every row.
    row_filter: RowFilter | None = None
    # Whether target values are the source's own (no masking): a raw copy may carry them.
    raw_copy: bool = True
    # parallel-load ranges: filters reading the table segment by segment.
    segments: tuple[RowFilter, ...] = ()
    # parallel-load partitions-auto: `conveyor worker`s load each partition as a
    # segment (in process, the table is read in one piece).
    partitions_auto: bool = False
    partitions_named: tuple[str, ...] = ()  # partitions-list: checked, then loaded first
    # Target columns validation cannot compare: before-image columns hold a
    # value from before a row's last UPDATE, which the source no longer has.
    uncompared: tuple[str, ...] = ()

    def check_partitions(self, names: list[str] | None) -> None:
        """Refuse partitions-list names that are not among the table's leaf
        partitions ``names`` (None: the source cannot list them): ConveyorError,
        the table fails; the names are never ignored."""
        if not self.partitions_named:
            return
        where = f"table {self.source.ref}: parallel-load partitions-list"
        if names is None:
            raise ConveyorError(f"{where}: its source cannot list the table's partitions")
        unknown = [n for n in self.partitions_named if n not in names]
        if unknown:
            known = ", ".join(sorted(names)) or "none: the table is not partitioned"
            raise ConveyorError(
                f"{where} names {', '.join(map(repr, unknown))}, not a leaf partition of the table "
                f"(its leaf partitions: {known})"
            )

    def ordered_partitions(self, partitions: list[TableRef]) -> list[TableRef]:
        """The table's leaf partitions with partitions-list's named ones first,
        in the rule's order (checked: ``check_partitions``); the others follow,
        so the table is loaded whole."""
        self.check_partitions([p.name for p in partitions])
        by_name = {p.name: p for p in partitions}
        first = [by_name[n] for n in self.partitions_named]
        return first + [p for p in partitions if p.name not in self.partitions_named]

    def names(self) -> TargetNames:
        """The names the target gets (for ``identifiers.collisions``)."""
        sources = self.source_columns or tuple(self.target.column_names)
        return TargetNames(
            self.source.ref, self.target.ref, tuple(zip(sources, self.target.column_names, strict=True))
        )

    def raw_columns(self, filtered: bool = False) -> list[str] | None:
        """Source columns for a raw same-engine copy, or None when the mapping
        adds columns, filters rows (unless the copy can: ``filtered``) or masks
        values (a raw copy cannot)."""
        if not self.raw_copy or (self.row_filter is not None and not filtered) or self.segments:
            return None
        if self.source_columns is None:
            return self.target.column_names
        if any(name is None for name in self.source_columns):
            return None
        return [name for name in self.source_columns if name is not None]


def partition_names(snapshot: Snapshot, table: TableSchema) -> list[str] | None:
    """The names of the table's leaf partitions, or None when the source
    cannot list them."""
    if isinstance(snapshot, SupportsPartitions):
        return [p.name for p in snapshot.partitions(table)]
    if isinstance(snapshot, ListsPartitionNames):
        return snapshot.partition_names(table)
    return None


def partition_reads(snapshot: Snapshot, plan: TablePlan) -> list[TableRef] | None:
    """The leaf partitions to read the plan's table by, in this process
    (parallel-load partitions-auto or partitions-list, named ones first): None
    unless the source lists them, reads them at once and can push the table's
    filter into each read."""
    if not plan.partitions_auto or plan.segments or not reads_concurrently(snapshot):
        return None
    if not isinstance(snapshot, SupportsPartitions):
        return None
    where = plan.row_filter
    if where is not None and not (
        isinstance(snapshot, SupportsRowFilter) and snapshot.pushes_down(plan.source, where)
    ):
        return None
    return plan.ordered_partitions(snapshot.partitions(plan.source)) or None


def read_source(
    snapshot: Snapshot, plan: TablePlan, batch_rows: int, order_by_key: bool = False
) -> Iterator[pa.RecordBatch]:
    """The plan's source rows: the filter pushed down into the source's query
    where the snapshot can, else applied to each batch read. A plan with
    segments (parallel-load ranges) is read segment by segment in the same
    snapshot (see :mod:`conveyor.replication.segments`) when the source can
    push them down (in key order, for validation, as one read)."""
    if plan.segments and not order_by_key:
        if isinstance(snapshot, SupportsRowFilter) and all(
            snapshot.pushes_down(plan.source, s) for s in plan.segments
        ):
            return read_segments(snapshot, plan.source, batch_rows, plan.segments)
        log.info("table %s: the source cannot read range segments: one read of the table", plan.source.ref)
    where = plan.row_filter
    partitions = None if order_by_key else partition_reads(snapshot, plan)
    if partitions:
        log.info("table %s: read by its %d leaf partitions", plan.source.ref, len(partitions))
        return read_partitions(snapshot, plan.source, batch_rows, partitions, where)
    if where is None:
        return snapshot.read(plan.source, batch_rows, order_by_key)
    if isinstance(snapshot, SupportsRowFilter) and snapshot.pushes_down(plan.source, where):
        return snapshot.read_where(plan.source, batch_rows, where, order_by_key)
    filtered = (where.apply(b) for b in snapshot.read(plan.source, batch_rows, order_by_key))
    return (b for b in filtered if b.num_rows)


@dataclass
class TableProgress:
    plan: TablePlan
    state: str = TABLE_QUEUED
    rows: int = 0
    error_rows: int = 0
    started: datetime | None = None
    ended: datetime | None = None
    error: str | None = None
    drift: list[str] = field(default_factory=list)
    # Generated source columns (target name) and how the target gets them.
    generated: dict[str, str] = field(default_factory=dict)

    @property
    def rows_per_second(self) -> float | None:
        if self.started is None:
            return None
        end = self.ended or datetime.now(UTC)
        seconds = (end - self.started).total_seconds()
        return self.rows / seconds if seconds > 0 else None


ProgressCallback = Callable[[TableProgress], None]


class SegmentedLoader(Protocol):
    """Loads a table's segments elsewhere (``conveyor worker`` processes, see
    ``replication.segment_load``) into staging tables the target takes the
    table's rows from at the end, in the table's own load transaction."""

    def takes(self, plan: TablePlan) -> bool:
        """Whether this plan's segments go to the workers (else read here)."""
        ...

    def load(
        self, plan: TablePlan, progress: TableProgress, stop: threading.Event, report: Callable[[], None]
    ) -> list[TableRef] | None:
        """Publish the segments and wait until every one is in; return their
        staging tables, or None when ``stop`` was set (everything given up).
        Raises ConveyorError when a segment failed (the others given up)."""
        ...

    def abandon(self, plan: TablePlan) -> None:
        """Give the table's segments up and drop their staging tables."""
        ...


def generated_handling(plan: TablePlan, load: TableLoad) -> dict[str, str]:
    """For each generated source column (by target name), how the target gets it."""
    computed = load.computed if isinstance(load, SupportsRawCopyIn) else frozenset()
    sources = plan.source_columns or tuple(plan.target.column_names)
    by_name = {c.name: c for c in plan.source.columns}
    handling = {}
    for target_name, source_name in zip(plan.target.column_names, sources, strict=True):
        column = by_name.get(source_name) if source_name is not None else None
        if column is None or column.generated is None:
            continue
        if target_name in computed:
            handling[target_name] = (
                f"computed by the target (GENERATED ALWAYS AS ({column.generated}) STORED)"
            )
        else:
            handling[target_name] = (
                f"copied as a plain column (the source computes it as {column.generated}); "
                "change capture looks it up from the source by key (a table with a primary key)"
            )
    return handling
