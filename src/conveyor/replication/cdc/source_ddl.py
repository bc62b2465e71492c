"""The source's DDL met during capture, applied: a table's new shape to its
target per ChangeProcessingDdlHandlingPolicy (the plan is ``ddl``'s), a
table dropped on the source, one the source no longer captures. Never
ignored: what cannot be applied exactly suspends the table until a reload."""

from __future__ import annotations

import functools
import logging
from typing import Protocol

from conveyor.connectors.changes import (
    CaptureLost,
    ChangeStream,
    DropsTables,
    LosesCapture,
    RenamesColumns,
    TableDefinition,
)
from conveyor.core.errors import ConnectionFailed, TransientError
from conveyor.core.schema import TableRef, TableSchema
from conveyor.replication.cdc.capture_table import CaptureTable
from conveyor.replication.cdc.ddl import RELOAD_HINT, ShapeChange, plan_shape_change
from conveyor.replication.cdc.lookups import with_carried
from conveyor.replication.cdc.reload import ReloadingCapture
from conveyor.replication.mapped_table import MappedTable
from conveyor.replication.mappings import TableMappings
from conveyor.replication.settings import ChangeProcessingDdlHandlingPolicy

log = logging.getLogger(__name__)


class DdlCapture(ReloadingCapture, Protocol):
    """What applying the source's DDL needs of the capture (the runner's
    ChangeCapture)."""

    mappings: TableMappings
    stream: ChangeStream
    ddl: ChangeProcessingDdlHandlingPolicy

    def on_dropped(self, table: CaptureTable, dropped: bool) -> None: ...

    def is_suspended(self, target_ref: TableRef) -> bool: ...

    def add_table(self, mapped: MappedTable) -> None: ...


def on_definition(capture: DdlCapture, event: TableDefinition) -> None:
    """A table's shape as the source now has it: renames, added and dropped
    columns are applied to the target per ChangeProcessingDdlHandlingPolicy
    (HandleSourceTableAltered); what cannot be applied exactly (a type change,
    an ambiguous shape, the policy off) suspends the table. A selected table
    the capture does not know yet is added (created during capture)."""
    schema = event.schema
    table = capture.tables.get(schema.ref)
    if table is not None:
        schema = with_carried(schema, table.mapped.source)
    selected = capture.mappings.select([schema], allow_empty=True)
    if table is None and selected:
        capture.add_table(selected[0])
        return
    if table is None or table.suspended is not None or not selected:
        return  # not captured by this task
    mapped = selected[0]
    added = _generated_added(event, table.mapped.source)
    if added:
        # The source computed them for every row it has: the target's rows
        # would have none. Only a reload of the table fills them.
        capture.suspend(
            mapped.target.ref,
            f"source DDL: generated column(s) {', '.join(added)} added; {RELOAD_HINT}",
        )
        return
    change = plan_shape_change(table.mapped, mapped, event.renamed, capture.ddl.handle_source_table_altered)
    if (
        change.empty
        and mapped.columns == table.mapped.columns
        and mapped.target.primary_key == table.mapped.target.primary_key
    ):
        return
    ref = mapped.target.ref
    if table.reloading:
        # The reload reads the shape it began with: it must start again.
        capture.suspend(ref, f"source DDL while the table was being reloaded; {RELOAD_HINT}")
        return
    capture.settle()
    if capture.is_suspended(ref):
        # Suspended by the batch just applied (values it could not look up
        # from the source, the column already gone there): the target keeps
        # its shape until the table's reload.
        return
    if change.renames and not isinstance(capture.applier, RenamesColumns):
        capture.suspend(ref, f"source DDL: columns renamed, which this target cannot do; {RELOAD_HINT}")
        return
    if change.suspend is not None:
        capture.suspend(ref, change.suspend)
        return
    try:
        _alter_target(capture, table, mapped, change)
    except (TransientError, ConnectionFailed):
        raise  # only while stopping: the checkpoint is before the DDL
    except Exception as exc:  # the target refused the DDL: the table waits for a reload
        capture.suspend(ref, f"source DDL could not be applied to the target: {exc}; {RELOAD_HINT}")
        return
    if not change.empty:
        table.ddls += 1
        log.info(
            "task %s: table %s: dropped %s, renamed %s, added %s",
            capture.task,
            ref,
            change.dropped,
            change.renames,
            change.added,
        )
    table.renew(mapped)
    capture.request_row_forms()


def _alter_target(capture: DdlCapture, table: CaptureTable, mapped: MappedTable, change: ShapeChange) -> None:
    applier = capture.applier
    if change.dropped:
        capture.request(lambda: applier.drop_columns(table.mapped.target, change.dropped))
    for old, new in change.renames:
        assert isinstance(applier, RenamesColumns)
        capture.request(functools.partial(applier.rename_column, table.mapped.target, old, new))
    if change.added:
        capture.request(lambda: applier.add_columns(mapped.target, change.added))


def on_dropped(capture: DdlCapture, source_ref: TableRef) -> None:
    """The source table was dropped: its changes so far are applied, the
    target table is dropped or left per HandleSourceTableDropped, and the
    table leaves the capture."""
    table = capture.tables.get(source_ref)
    if table is None:
        return
    capture.settle()
    dropped = False
    applier = capture.applier
    if capture.ddl.handle_source_table_dropped and isinstance(applier, DropsTables):
        capture.request(lambda: applier.drop_table(table.mapped.target))
        dropped = True
    del capture.tables[source_ref]
    log.warning(
        "task %s: source table %s dropped; target table %s %s",
        capture.task,
        source_ref,
        table.mapped.target.ref,
        "dropped" if dropped else "left as it is",
    )
    capture.on_dropped(table, dropped)
    capture.request_row_forms()


def on_capture_lost(capture: DdlCapture, event: CaptureLost) -> None:
    """The source no longer captures the table (its triggers went with a
    table rebuild): it is suspended until a reload, which captures it
    again (``ChangeCapture.recapture``). One already suspended keeps its reason."""
    table = capture.tables.get(event.table)
    if table is None or table.suspended is not None:
        return
    if isinstance(capture.stream, LosesCapture) and capture.stream.captures(event.table):
        return  # captured again since the loss was read: a reload began after it
    capture.suspend(table.mapped.target.ref, f"{event.reason}; {RELOAD_HINT}")


def _generated_added(event: TableDefinition, source: TableSchema) -> list[str]:
    """Generated columns the source has now and the captured table had not
    (the stream tells them apart from its view, which never has them)."""
    if event.generated is None:
        return []
    had = {c.name for c in source.columns if c.generated is not None}
    return sorted(event.generated - had)
