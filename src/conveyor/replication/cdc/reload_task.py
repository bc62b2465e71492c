"""The task's side of single-table reloads (see cdc/reload.py): requests come
from the metadata store (`conveyor tasks reload NAME --table S.T`), the load is
the task's full load of one table from a fresh source snapshot."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from conveyor.connectors.changes import ChangeApplier
from conveyor.connectors.registry import open_source, open_target
from conveyor.core.errors import ConveyorError
from conveyor.core.schema import TableRef
from conveyor.replication.cdc.lookups import captured_sources
from conveyor.replication.mapped_table import MappedTable
from conveyor.replication.mappings import TableMappings
from conveyor.replication.table_plan import TABLE_COMPLETED, TablePlan
from conveyor.replication.task_run import TaskRun, load_tables, stats_document

if TYPE_CHECKING:
    from conveyor.replication.cdc.capture_table import CaptureTable

RELOAD = "reload"


class TaskTableReloader:
    """``TableReloader`` for a task run. ``loaded`` is the run's full-load
    statistics per target table, which a finished reload replaces."""

    def __init__(
        self,
        run: TaskRun,
        mappings: TableMappings,
        loaded: dict[tuple[str, str], Any],
        applier: ChangeApplier | None = None,
    ) -> None:
        self.run, self.mappings, self.loaded = run, mappings, loaded
        self.applier = applier
        self._documents: dict[TableRef, dict[str, Any]] = {}

    def requested(self) -> list[TableRef]:
        rows = self.run.store.suspensions(self.run.name)
        return [TableRef(r["schema_name"], r["table_name"]) for r in rows if r["state"] == RELOAD]

    def describe(self, ref: TableRef) -> MappedTable | None:
        source = open_source(self.run.stack.endpoint_config(self.run.spec.source))
        try:
            tables = [t for t in source.tables() if t.ref == ref]
        finally:
            source.close()
        selected = self.mappings.select(tables, allow_empty=True)
        if not selected or self.applier is None:
            return selected[0] if selected else None
        # What capture carries (as capture_task selects it): generated columns
        # only where the target does not compute them.
        captured = self.mappings.select(captured_sources(selected, self.applier), allow_empty=True)
        return captured[0] if captured else None

    def begin(self, mapped: MappedTable) -> None:
        source, target = mapped.source.ref, mapped.target.ref
        self.run.store.request_table_reload(
            self.run.name, source.schema, source.name, (target.schema, target.name)
        )

    def load(self, mapped: MappedTable) -> None:
        run = self.run
        source = open_source(run.stack.endpoint_config(run.spec.source))
        try:
            found = self.mappings.select(
                [t for t in source.tables() if t.ref == mapped.source.ref], allow_empty=True
            )
            if not found:
                raise ConveyorError(f"table {mapped.source.ref} is no longer on the source")
            m = found[0]  # the full load's mapping (generated columns included, as in a full load)
            target = open_target(run.target_config)
            try:
                snapshot = source.snapshot()
                try:
                    plan = TablePlan(m.source, m.target, m.project, tuple(c.source for c in m.columns))
                    results = load_tables(run, snapshot, target, [plan])
                finally:
                    snapshot.close()
            finally:
                target.close()
        finally:
            source.close()
        if not results or results[0].state != TABLE_COMPLETED:
            raise ConveyorError("the reload was stopped before it finished")
        self._documents[mapped.source.ref] = stats_document(results[0])

    def done(self, table: CaptureTable) -> None:
        source, target = table.mapped.source.ref, table.mapped.target.ref
        self.run.store.clear_suspension(self.run.name, source.schema, source.name)
        document = self._documents.pop(source, None)
        if document is not None:
            self.loaded[(target.schema, target.name)] = document
