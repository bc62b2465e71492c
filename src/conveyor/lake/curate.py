"""``conveyor lake process``: raw LOAD and change files into curated Delta tables.

For each active controller entry:

1. Recover: when the curated table has a newer commit of this job than the
   entry's ``TableVersion`` (a crash after the commit, before the controller
   was written), the entry takes the values recorded in that commit.
2. Full load: the newest full load of the table (the LOAD files of one
   ``<bucket_path>/<schema>/<table>/`` folder, dated by the time the load
   committed, as recorded in ``.conveyor/tables/``) replaces the curated
   table's state when it is later than LastFullLoadDate.
3. Changes: the change files, wherever ``bucket_path``, ``CdcPath`` and date
   partitions put them, whose names sort after LastIncrementalFile, in
   file-name and row order. Files written before the full load the table
   stands on are covered by it and skipped. With a primary key the last
   operation per key wins (``D`` removes the row); without one, ``I`` and
   ``U`` rows are appended and ``D`` rows ignored. A TRUNCATE recorded among
   them (``truncates``) empties the table: only the changes after the last
   one are applied, to an empty table.
4. One Delta commit per table: an overwrite when a full load was taken (or
   the table is new, or its PartitionKey changed). Otherwise the partitions
   the changes touch are read, the changes applied in memory and written back
   with an overwrite whose predicate names those partitions; or, when a few
   keys change in partitions of many files, a merge whose predicate names
   only those partitions (see ``delta_write.prefer_rewrite``). The commit carries the
   new controller values; the controller file is written after it.

A file in a table's raw folder that is neither a LOAD nor a change file, or
that cannot be read, is skipped and reported; a table that fails is reported
and the other tables go on.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable, write_deltalake

from conveyor.connectors.lake import layout as lay
from conveyor.core.arrow_memory import prefer_jemalloc
from conveyor.core.errors import TerminalError
from conveyor.core.faults import fault_point
from conveyor.core.schema import TableRef, TableSchema
from conveyor.lake import delta_stats, unchanged
from conveyor.lake.change_rows import OP, SEQ, apply_in_memory, last_per_key
from conveyor.lake.controller import Controller, ControllerEntry, Lake, format_time, parse_time
from conveyor.lake.delta_commits import METADATA_KEY, open_delta, recover
from conveyor.lake.delta_types import delta_ready
from conveyor.lake.delta_write import conform, merge, rewrite
from conveyor.lake.raw_index import ChangeFile, FullLoad, RawIndex, TableFiles
from conveyor.lake.raw_read import current_rows, read_changes, read_full_load, short_error
from conveyor.lake.truncates import last_truncate

log = logging.getLogger(__name__)

FAULT_BEFORE_CONTROLLER = "lake-before-controller"


# --- the run ----------------------------------------------------------------------------


@dataclass
class TableResult:
    table: str
    lake: str
    status: str = "unchanged"
    """processed, unchanged, inactive or failed."""
    full_load: str | None = None
    change_files: list[str] = field(default_factory=list)
    covered_files: int = 0
    change_rows: int = 0
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    version: int | None = None
    files_rewritten: int = 0
    recovered: bool = False
    skipped: list[dict[str, str]] = field(default_factory=list)
    truncated: bool = False
    """A TRUNCATE among the change files emptied the table first."""
    error: str | None = None
    engine: str | None = None
    """Which engine did the table's work (None: no work)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "lake": self.lake,
            "status": self.status,
            "full_load": self.full_load,
            "change_files": len(self.change_files),
            "covered_files": self.covered_files,
            "change_rows": self.change_rows,
            "inserted": self.inserted,
            "updated": self.updated,
            "deleted": self.deleted,
            "version": self.version,
            "files_rewritten": self.files_rewritten,
            "recovered": self.recovered,
            "skipped": self.skipped,
            "truncated": self.truncated,
            "error": self.error,
            "engine": self.engine,
        }


class Engine(Protocol):
    """How a table's planned work is carried out: the embedded engine below,
    or ``spark_engine.SparkEngine``. Called once per table that has work;
    it makes the one Delta commit carrying ``plan.commit`` (crash-safe: the
    controller is written by ``finish`` after it)."""

    def run(self, lake: Lake, plan: TablePlan, result: TableResult) -> None: ...


@dataclass
class TablePlan:
    """What a run does for one table, decided from the controller entry and
    the raw listing (see the module docstring)."""

    entry: ControllerEntry
    uri: str
    options: dict[str, str] | None
    dt: DeltaTable | None
    full_load: FullLoad | None
    """The full load being taken (None: the table stands on the one it has)."""
    current: list[ChangeFile]
    """The change files to apply, in order (those not covered by a full load)."""
    schema: TableSchema | None
    key: list[str]
    part: list[str]
    new_date: str | None
    new_last: str | None
    marked: set[str]
    truncated: set[str]
    """Change files a TRUNCATE was recorded for (``RawIndex.truncated``)."""

    @property
    def commit(self) -> CommitProperties:
        values = {"LastFullLoadDate": self.new_date, "LastIncrementalFile": self.new_last}
        return CommitProperties(custom_metadata={METADATA_KEY: json.dumps(values)})

    @property
    def repartition(self) -> bool:
        return self.dt is not None and list(self.dt.metadata().partition_columns) != self.part


def process(
    lake: Lake,
    controller: Controller,
    tables: Iterable[str] | None = None,
    engine: Engine | None = None,
) -> list[TableResult]:
    """Curate the active tables of ``lake`` (or only ``tables``)."""
    prefer_jemalloc()
    wanted = set(tables) if tables is not None else None
    index = RawIndex(lake)
    results = []
    for name in sorted(controller.entries):
        if wanted is not None and name not in wanted:
            continue
        entry = controller.entries[name]
        result = TableResult(name, lake.name)
        if not entry.active:
            result.status = "inactive"
            results.append(result)
            continue
        try:
            plan = plan_table(lake, controller, entry, index, result)
            if plan is not None:
                (engine or EMBEDDED).run(lake, plan, result)
                finish(lake, controller, plan, result)
        except Exception as exc:
            log.exception("curating %s failed", name)
            result.status = "failed"
            result.error = short_error(exc)
            controller.load()  # drop this table's unsaved changes
        results.append(result)
    return results


def plan_table(
    lake: Lake, controller: Controller, entry: ControllerEntry, index: RawIndex, result: TableResult
) -> TablePlan | None:
    """Recover the entry, list the table's files and decide the work (None:
    nothing new for the table)."""
    ref = TableRef(entry.schema_name, entry.table_name)
    uri = lake.table_uri(entry.table)
    options = lake.storage_options()
    dt = open_delta(lake, entry.table)
    if recover(lake, entry, dt):
        result.recovered = True
        controller.save()
    files = index.table_files(ref)
    result.skipped.extend(
        {"file": lake.raw.location(rel), "reason": "not a LOAD or change file"} for rel in files.foreign
    )
    result.skipped.extend({"file": where, "reason": why} for where, why in files.problems)

    last_date = entry.full_load_time()
    full_load = files.full_loads[-1] if files.full_loads else None
    take_load = full_load is not None and (last_date is None or full_load.when > last_date)
    new_date = format_time(full_load.when) if take_load and full_load else entry.last_full_load_date
    stands_on = parse_time(new_date)
    if stands_on is not None:  # change-file names count milliseconds
        stands_on = stands_on.replace(microsecond=stands_on.microsecond // 1000 * 1000)

    after = entry.last_incremental_file
    pending = [c for c in files.changes if after is None or c.name > after]
    current: list[ChangeFile] = []
    for change in pending:
        if stands_on is not None and lay.stamp_time(change.name) < stands_on:
            result.covered_files += 1
        else:
            current.append(change)
    new_last = pending[-1].name if pending else after

    if not take_load and not pending:
        result.version = None if dt is None else dt.version()
        return None

    schema = full_load.schema if take_load and full_load else _newest_schema(files)
    key = list(entry.primary_key)
    part = list(entry.partition_key)
    if schema is not None:
        _check_columns(schema.column_names, key, part, schema.ref)
    return TablePlan(
        entry=entry,
        uri=uri,
        options=options,
        dt=dt,
        full_load=full_load if take_load else None,
        current=current,
        schema=schema,
        key=key,
        part=part,
        new_date=new_date,
        new_last=new_last,
        marked=index.marked,
        truncated=index.truncated,
    )


def finish(lake: Lake, controller: Controller, plan: TablePlan, result: TableResult) -> None:
    """After the table's commit: the controller takes its values."""
    dt = DeltaTable(plan.uri, storage_options=plan.options)
    fault_point(FAULT_BEFORE_CONTROLLER)
    entry = plan.entry
    entry.last_full_load_date = plan.new_date
    entry.last_incremental_file = plan.new_last
    entry.table_version = dt.version()
    controller.save()
    result.version = entry.table_version
    result.status = "processed"


class EmbeddedEngine:
    """Arrow and deltalake in this process (the default)."""

    def run(self, lake: Lake, plan: TablePlan, result: TableResult) -> None:
        result.engine = result.engine or "embedded"
        ref = TableRef(plan.entry.schema_name, plan.entry.table_name)
        uri, options, dt, schema = plan.uri, plan.options, plan.dt, plan.schema
        key, part, current, full_load = plan.key, plan.part, plan.current, plan.full_load
        take_load = full_load is not None
        reduced = None
        if current:
            truncate = last_truncate(lake, current, plan.truncated)
            result.truncated = truncate is not None
            first, row = truncate or (0, 0)
            unread = len(result.skipped)
            changes = read_changes(lake, current[first:], schema, result.skipped, plan.marked)
            if row and any(
                s["file"] == lake.raw.location(current[first].rel) for s in result.skipped[unread:]
            ):
                raise TerminalError(
                    f"{lake.raw.location(current[first].rel)} holds a TRUNCATE and cannot be read"
                )
            if row:  # without the rows of the TRUNCATE's own file before it
                changes = changes.slice(row).set_column(
                    changes.schema.get_field_index(SEQ),
                    SEQ,
                    pa.array(range(changes.num_rows - row), pa.int64()),
                )
            if schema is None and changes.num_rows:
                _check_columns([n for n in changes.column_names if n not in (OP, SEQ)], key, part, ref)
            result.change_files = [c.rel for c in current if c.written]
            result.change_rows = changes.num_rows
            rows_before = _no_rows if truncate else current_rows(lake, dt, full_load, key, result.skipped)
            changes = unchanged.fill(changes, key, OP, SEQ, rows_before)
            reduced = last_per_key(changes, key) if changes.num_rows else None
        commit = plan.commit

        if result.truncated or take_load or dt is None or plan.repartition:
            if take_load and full_load is not None:
                result.full_load = lake.raw.location(full_load.folder)
            if result.truncated:  # what stood before the last TRUNCATE is gone
                base = _emptied(full_load, dt, schema, reduced)
            elif take_load and full_load is not None:
                base = read_full_load(lake, full_load, result.skipped)
            elif dt is not None:
                base = dt.to_pyarrow_table()
            elif schema is not None:
                base = schema.arrow_schema().empty_table()
            elif reduced is not None:  # a CDC-only table: the change files' columns
                base = reduced.drop_columns([OP, SEQ]).schema.empty_table()
            else:
                raise TerminalError("none of the table's files could be read")
            if reduced is not None:
                reduced = conform(reduced, base.schema)
                ops = reduced.column(OP)
                result.deleted = int(pc.sum(pc.equal(ops, "D")).as_py() or 0) if key else 0
                result.inserted = reduced.num_rows - result.deleted
                base = apply_in_memory(base, reduced, key)
            data = delta_ready(base)
            if dt is not None:
                delta_stats.ensure(dt, data.schema, replace=True)
            write_deltalake(
                uri,
                data,
                mode="overwrite",
                partition_by=part or None,
                schema_mode="overwrite",
                storage_options=options,
                commit_properties=commit,
                configuration=delta_stats.configuration(data.schema),
            )
        elif reduced is None or reduced.num_rows == 0:
            # only covered or unreadable files: record the progress in an empty commit
            write_deltalake(
                uri,
                _empty_like(dt),
                mode="append",
                storage_options=options,
                commit_properties=commit,
            )
        elif not key:
            upserts = reduced.filter(pc.not_equal(reduced.column(OP), "D"))
            upserts = delta_ready(upserts.drop_columns([OP, SEQ]))
            delta_stats.ensure(dt, upserts.schema)
            result.inserted = upserts.num_rows
            write_deltalake(
                uri,
                upserts,
                mode="append",
                partition_by=part or None,
                schema_mode="merge",
                storage_options=options,
                commit_properties=commit,
            )
        else:
            delta_stats.ensure(dt, reduced.schema, skip=(OP, SEQ))
            metrics = rewrite(dt, reduced, key, part, commit) or merge(dt, reduced, key, part, commit)
            result.inserted = int(metrics.get("num_target_rows_inserted", 0))
            result.updated = int(metrics.get("num_target_rows_updated", 0))
            result.deleted = int(metrics.get("num_target_rows_deleted", 0))
            result.files_rewritten = int(metrics.get("num_target_files_removed", 0))


EMBEDDED = EmbeddedEngine()


def _no_rows(keys: pa.Table) -> pa.Table:
    """The rows of a table a TRUNCATE emptied (for partial updates after it)."""
    return keys.slice(0, 0)


def _emptied(
    full_load: FullLoad | None, dt: DeltaTable | None, schema: TableSchema | None, reduced: pa.Table | None
) -> pa.Table:
    """The table's state right after a TRUNCATE: no rows, in the shape the
    overwrite would otherwise start from."""
    if full_load is not None:
        return full_load.schema.arrow_schema().empty_table()
    if dt is not None:
        return _empty_like(dt)
    if schema is not None:
        return schema.arrow_schema().empty_table()
    if reduced is not None:
        return reduced.drop_columns([OP, SEQ]).schema.empty_table()
    raise TerminalError("none of the table's files could be read")


def _empty_like(dt: DeltaTable) -> pa.Table:
    schema = pa.schema(dt.schema().to_arrow())
    return schema.empty_table()


def _newest_schema(files: TableFiles) -> TableSchema | None:
    """The shape of the newest full load: change files are read with it."""
    return files.full_loads[-1].schema if files.full_loads else None


def _check_columns(names: Sequence[str], key: Sequence[str], part: Sequence[str], ref: TableRef) -> None:
    known = set(names)
    for label, columns in (("PrimaryKey", key), ("PartitionKey", part)):
        missing = [c for c in columns if c not in known]
        if missing:
            raise TerminalError(
                f"{label} names {', '.join(missing)}, not a column of {ref} (columns: {', '.join(names)})"
            )
