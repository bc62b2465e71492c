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
   ``U`` rows are appended and ``D`` rows ignored.
4. One Delta commit per table: an overwrite when a full load was taken (or
   the table is new, or its PartitionKey changed). Otherwise the partitions
   the changes touch are read, the changes applied in memory and written back
   with an overwrite whose predicate names those partitions; or, when a few
   keys change in partitions of many files, a merge whose predicate names
   only those partitions (see ``_prefer_rewrite``). The commit carries the
   new controller values; the controller file is written after it.

A file in a table's raw folder that is neither a LOAD nor a change file, or
that cannot be read, is skipped and reported; a table that fails is reported
and the other tables go on.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from deltalake import CommitProperties, DeltaTable, write_deltalake
from deltalake.exceptions import TableNotFoundError

from conveyor.connectors.lake import layout as lay
from conveyor.core import types as t
from conveyor.core.errors import ConveyorError, TerminalError
from conveyor.core.faults import fault_point
from conveyor.core.schema import Column, TableRef, TableSchema
from conveyor.core.types import Kind
from conveyor.lake import delta_stats, unchanged
from conveyor.lake.controller import Controller, ControllerEntry, Lake, format_time, parse_time
from conveyor.lake.unchanged import UNCHANGED

log = logging.getLogger(__name__)

METADATA_KEY = "conveyor.curation"
FAULT_BEFORE_CONTROLLER = "lake-before-controller"
OP = "__op"
SEQ = "__seq"
MAX_PRUNE_VALUES = 1000
HISTORY_DEPTH = 50
"""How many of a table's newest commits recovery looks through for this job's."""
REWRITE_SHARE = 20
"""Rewrite the touched partitions (instead of merging) when the changed keys
are at least 1/REWRITE_SHARE of their rows, or when they hold one file each."""
_DATE_CHARS = frozenset("0123456789-_")


# --- what the raw area holds ---------------------------------------------------------


@dataclass(frozen=True)
class FullLoad:
    bucket_path: str
    when: datetime
    schema: TableSchema
    layout: lay.FileLayout
    files: tuple[str, ...]
    """Relative paths of the LOAD files, in counter order."""

    @property
    def folder(self) -> str:
        return lay.table_folder(self.bucket_path, self.schema.ref)


@dataclass(frozen=True)
class ChangeFile:
    name: str
    rel: str


@dataclass
class TableFiles:
    full_loads: list[FullLoad] = field(default_factory=list)
    changes: list[ChangeFile] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)


class RawIndex:
    """One listing of a lake's raw area, shared by the tables of a run."""

    def __init__(self, lake: Lake) -> None:
        self.lake = lake
        skip = lake.curated_rel.strip("/") + "/" if lake.curated_rel else None
        self.tree = [rel for rel in lake.raw.list_tree("") if skip is None or not rel.startswith(skip)]
        state_dir = lay.join(lay.STATE_DIR, "tables")
        self.states = [
            lay.join(state_dir, rel)
            for rel in lake.raw.list_tree(state_dir)
            if rel.endswith(".json") and rel.count("/") >= 1
        ]
        unchanged_dir = lay.join(lay.STATE_DIR, "unchanged")
        self.marked = {rel.removesuffix(".json") for rel in lake.raw.list_tree(unchanged_dir)}
        """Change files with partial updates (``layout.unchanged_path``)."""

    def table_files(self, ref: TableRef) -> TableFiles:
        found = TableFiles()
        state_dir = lay.join(lay.STATE_DIR, "tables")
        for rel in self.states:
            parts = rel.removeprefix(state_dir + "/").split("/")
            if parts[-2:] != [ref.schema, f"{ref.name}.json"]:
                continue
            bucket_path = "/".join(parts[:-2])
            try:
                found.full_loads.append(self._full_load(rel, bucket_path))
            except (ConveyorError, ValueError, KeyError, TypeError) as exc:
                found.problems.append((self.lake.raw.location(rel), f"unreadable load record: {exc}"))
        load_files = {f for load in found.full_loads for f in load.files}
        for rel in self.tree:
            parts = rel.split("/")
            rest = _after_table(parts, ref)
            if rest is None:
                continue
            name = rest[-1]
            if lay.CHANGE_RE.match(name):
                found.changes.append(ChangeFile(name, rel))
            elif lay.LOAD_RE.match(name) and len(rest) == 1:
                if rel not in load_files and not any(
                    rel.startswith(f.folder + "/") for f in found.full_loads
                ):
                    found.foreign.append(rel)  # LOAD files with no load record
            else:
                found.foreign.append(rel)
        found.changes.sort(key=lambda c: (c.name, c.rel))
        found.full_loads.sort(key=lambda f: (f.when, f.bucket_path))
        return found

    def _full_load(self, state_rel: str, bucket_path: str) -> FullLoad:
        data = self.lake.raw.read_bytes(state_rel)
        if data is None:
            raise TerminalError("disappeared")
        schema, layout, files = lay.parse_table_state(data)
        when = parse_time(json.loads(data).get("written_at"))
        if when is None:
            raise TerminalError("no written_at")
        folder = lay.table_folder(bucket_path, schema.ref)
        ordered = sorted(files, key=lambda name: lay.load_number(name) or 0)
        return FullLoad(bucket_path, when, schema, layout, tuple(f"{folder}/{name}" for name in ordered))


def _after_table(parts: list[str], ref: TableRef) -> list[str] | None:
    """What follows ``<schema>/<table>/`` in a path (optional date-partition
    folders and the file name), or None when the path is not the table's."""
    for i in range(len(parts) - 2):
        if parts[i] == ref.schema and parts[i + 1] == ref.name:
            rest = parts[i + 2 :]
            if all(set(p) <= _DATE_CHARS for p in rest[:-1]):
                return rest
    return None


# --- reading -------------------------------------------------------------------------


def _file_layout(base: lay.FileLayout, rel: str) -> lay.FileLayout:
    if rel.endswith(".parquet"):
        return replace(base, data_format="parquet")
    return replace(base, data_format="csv", compression="GZIP" if rel.endswith(".gz") else "NONE")


def read_changes(
    lake: Lake,
    files: Sequence[ChangeFile],
    schema: TableSchema | None,
    skipped: list[dict[str, str]],
    marked: set[str] | None = None,
) -> pa.Table:
    """The change rows of ``files`` in file and row order: ``__op``, the
    table's columns, ``__unchanged`` (see ``unchanged``; files with partial
    updates are in ``marked``, all are looked for without it) and ``__seq``
    (the row's position). Without a recorded
    table shape (a CDC-only table) Parquet files and CSV files with a header
    row describe themselves. Unreadable files are skipped into ``skipped``."""
    base = lay.file_layout(lake.config.settings, lake.config.data_format, changes=True)
    parts: list[pa.Table] = []
    for change in files:
        layout = _file_layout(base, change.rel)
        try:
            if schema is not None:
                data = _read_with_op(lake, change.rel, schema, layout)
            else:
                data = _read_self_described(lake, change.rel, layout)
        except Exception as exc:
            skipped.append({"file": lake.raw.location(change.rel), "reason": f"unreadable: {_short(exc)}"})
            continue
        if marked is None or change.rel in marked:
            data = data.append_column(UNCHANGED, unchanged.marks(lake, change.rel, data.num_rows))
        else:
            data = data.append_column(UNCHANGED, pa.nulls(data.num_rows, pa.string()))
        parts.append(data)
    if parts:
        data = pa.concat_tables(parts, promote_options="permissive" if schema is None else "none")
    elif schema is not None:
        data = pa.schema([pa.field(OP, pa.string()), *schema.arrow_schema()]).empty_table()
    else:
        data = pa.schema([pa.field(OP, pa.string())]).empty_table()
    return data.append_column(SEQ, pa.array(range(data.num_rows), pa.int64()))


def _current_rows(
    lake: Lake,
    dt: DeltaTable | None,
    load: FullLoad | None,
    key: Sequence[str],
    skipped: list[dict[str, str]],
) -> unchanged.Lookup:
    """The current rows of given keys: from the full load being taken, else
    the curated table (for partial updates' unchanged columns)."""

    def lookup(keys: pa.Table) -> pa.Table:
        if load is not None:
            rows = read_full_load(lake, load, skipped)
        elif dt is not None:
            first = keys.column(key[0])
            rows = dt.to_pyarrow_dataset().to_table(filter=pc.field(key[0]).isin(first.to_pylist()))
        else:
            return keys.slice(0, 0)
        cast_keys = keys.cast(rows.select(list(key)).schema, safe=False)
        return rows.join(cast_keys, keys=list(key), join_type="left semi", use_threads=False)

    return lookup


def _read_self_described(lake: Lake, rel: str, layout: lay.FileLayout) -> pa.Table:
    """A change file read by its own column names (Parquet, or CSV with a
    header row; CSV values are typed by inference)."""
    if layout.data_format == "parquet":
        with lake.raw.open_input(rel) as handle:
            raw = pq.read_table(handle)
    elif layout.header:
        data = lake.raw.read_bytes(rel)
        if data is None:
            raise TerminalError("disappeared while being read")
        if rel.endswith(".gz"):
            data = gzip.decompress(data)
        raw = pacsv.read_csv(
            io.BytesIO(data),
            parse_options=pacsv.ParseOptions(
                delimiter=layout.delimiter,
                quote_char='"' if layout.rfc4180 else False,
                newlines_in_values=True,
            ),
            convert_options=pacsv.ConvertOptions(
                null_values=[layout.null_value], strings_can_be_null=True, quoted_strings_can_be_null=False
            ),
        )
    else:
        raise TerminalError("a headerless CSV change file, and no full load recorded the table's columns")
    if layout.op:
        if lay.OP_COLUMN not in raw.column_names:
            raise TerminalError("no Op column")
        ops = raw.column(lay.OP_COLUMN).combine_chunks().cast(pa.string())
    else:
        ops = pa.array(["I"] * raw.num_rows, pa.string())
    _check_ops(ops)
    extra = {lay.OP_COLUMN, layout.timestamp}
    return raw.select([n for n in raw.column_names if n not in extra]).add_column(0, OP, ops)


def _check_ops(ops: pa.Array) -> None:
    bad = pc.sum(pc.invert(pc.fill_null(pc.is_in(ops, pa.array(["I", "U", "D"])), False))).as_py()
    if bad:
        raise TerminalError(f"{bad} row(s) with an Op other than I, U or D")


def _read_with_op(lake: Lake, rel: str, schema: TableSchema, layout: lay.FileLayout) -> pa.Table:
    """A change file with its ``Op`` column (all ``I`` when the files have none):
    the extra columns are read as text columns in front of the table's."""
    text = t.simple(Kind.TEXT)
    extra = [Column(lay.OP_COLUMN, text)] if layout.op else []
    if layout.timestamp:
        extra.append(Column(layout.timestamp, text))
    # Change capture carries no generated columns: a change file leaves them
    # out (NULL here, as the task's start warned).
    captured = schema.without_generated()
    wide = TableSchema(schema.ref, (*extra, *captured.columns), schema.primary_key)
    data = lay.read_file(lake.raw, rel, wide, replace(layout, op=False, timestamp=None))
    if layout.op:
        ops = data.column(lay.OP_COLUMN).combine_chunks()
    else:
        ops = pa.array(["I"] * data.num_rows, pa.string())
    _check_ops(ops)
    columns = [
        data.column(c.name) if c.name in captured.column_names else pa.nulls(data.num_rows, c.type.arrow())
        for c in schema.columns
    ]
    return pa.Table.from_arrays(columns, schema=schema.arrow_schema()).add_column(0, OP, ops)


def read_full_load(lake: Lake, load: FullLoad, skipped: list[dict[str, str]]) -> pa.Table:
    parts = []
    for rel in load.files:
        try:
            parts.append(lay.read_file(lake.raw, rel, load.schema, load.layout))
        except Exception as exc:
            skipped.append({"file": lake.raw.location(rel), "reason": f"unreadable: {_short(exc)}"})
    if not parts:
        return load.schema.arrow_schema().empty_table()
    return pa.concat_tables(parts)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _short(exc: BaseException) -> str:
    """The first line of ``exc``, with the causes deltalake's storage errors
    list below it (``Generic S3 error`` / ``↳ Error performing GET ... in 60s,
    after 2 retries``) joined on."""
    lines = [line.strip() for line in _ANSI.sub("", str(exc)).strip().splitlines()]
    if not lines:
        return type(exc).__name__
    text = lines[0]
    for line in lines[1:]:
        if not line.startswith("↳"):
            break
        text += ": " + line.removeprefix("↳").strip()
    return text[:600]


# --- last operation wins ---------------------------------------------------------------


def last_per_key(changes: pa.Table, key: Sequence[str]) -> pa.Table:
    """The last row (highest ``__seq``) of every key, in ``__seq`` order."""
    if changes.num_rows == 0 or not key:
        return changes
    last = changes.group_by(list(key), use_threads=False).aggregate([(SEQ, "max")])
    positions = pc.sort_indices(last.column(f"{SEQ}_max"))
    return changes.take(pc.take(last.column(f"{SEQ}_max"), positions))


def apply_in_memory(base: pa.Table, reduced: pa.Table, key: Sequence[str]) -> pa.Table:
    """``base`` with the reduced changes applied: with a key, rows of changed
    keys are replaced by the upserts (deleted ones dropped); without one, the
    non-delete rows are appended."""
    upserts = reduced.filter(pc.not_equal(reduced.column(OP), "D"))
    upserts = upserts.select(list(base.column_names))
    if key and base.num_rows and reduced.num_rows:
        if len(key) == 1:  # a hash-set lookup keeps the base's row order
            column = base.column(key[0])
            changed = reduced.column(key[0]).cast(column.type, safe=False).combine_chunks()
            base = base.filter(pc.invert(pc.is_in(column, value_set=changed)))
        else:
            changed_keys = reduced.select(list(key)).cast(base.select(list(key)).schema, safe=False)
            base = base.join(changed_keys, keys=list(key), join_type="left anti", use_threads=True)
            base = base.select(upserts.column_names)
    return pa.concat_tables([base, upserts.cast(base.schema)])


# --- Delta types -------------------------------------------------------------------------


def _delta_type(dtype: pa.DataType) -> pa.DataType | None:
    """The type a column is stored as in Delta (None: as it is)."""
    if pa.types.is_timestamp(dtype):
        return pa.timestamp("us", "UTC" if dtype.tz else None)
    if pa.types.is_time(dtype) or dtype == pa.month_day_nano_interval() or pa.types.is_null(dtype):
        return pa.string()
    if pa.types.is_unsigned_integer(dtype):
        return {8: pa.int16(), 16: pa.int32(), 32: pa.int64()}.get(dtype.bit_width, pa.decimal128(20, 0))
    if pa.types.is_float16(dtype):
        return pa.float32()
    if pa.types.is_date64(dtype):
        return pa.date32()
    if pa.types.is_dictionary(dtype):
        return _delta_type(dtype.value_type) or dtype.value_type
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
        inner = _delta_type(dtype.value_type)
        return None if inner is None else pa.list_(inner)
    return None


def delta_ready(data: pa.Table) -> pa.Table:
    arrays = []
    fields = []
    for read, given in zip(data.schema, data.columns, strict=True):
        f, column = read, given
        if pa.types.is_list(f.type) and lay.text_intervals_type(f.type) != f.type:
            column = pa.chunked_array([lay.intervals_as_text(given.combine_chunks())])
            f = pa.field(f.name, column.type)
        target = _delta_type(f.type)
        if target is None:
            arrays.append(column)
            fields.append(pa.field(f.name, f.type, nullable=True))
            continue
        if target == pa.string() and not pa.types.is_null(f.type):
            converted: pa.Array | pa.ChunkedArray = lay.text_column(column.combine_chunks())
        else:
            converted = column.cast(target, safe=False)
        arrays.append(converted)
        fields.append(pa.field(f.name, target, nullable=True))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


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
            "error": self.error,
            "engine": self.engine,
        }


def open_delta(lake: Lake, table: str) -> DeltaTable | None:
    try:
        return DeltaTable(lake.table_uri(table), storage_options=lake.storage_options())
    except TableNotFoundError:
        return None


def commit_values(lake: Lake, table: str, dt: DeltaTable) -> tuple[int, dict[str, Any]] | None:
    """The newest commit of this job among the table's last HISTORY_DEPTH
    commits: its version and the controller values it carries.

    The commits' ``commitInfo`` is read from the ``_delta_log`` JSON files
    through the lake's own file system, not with ``DeltaTable.history()``:
    deltalake 1.6's ``history()`` holds the Python GIL for the whole of its
    S3 requests (its other calls used here release it). That stalls every
    other thread of the process meanwhile; when a thread of this process is
    what answers S3 (moto in the tests) nothing answers until the requests
    time out."""
    schema, name = table.split(".", 1)
    newest = dt.version()
    for version in range(newest, max(newest - HISTORY_DEPTH, -1), -1):
        data = lake.curated.read_bytes(f"{schema}/{name}/_delta_log/{version:020d}.json")
        if data is None:  # removed by log cleanup (older commits live in a checkpoint)
            return None
        for line in data.splitlines():
            if not line.strip():
                continue
            info = json.loads(line).get("commitInfo")
            if info is None:
                continue
            raw = info.get(METADATA_KEY)
            if raw is not None:
                return version, json.loads(raw)
            break
    return None


def recover(lake: Lake, entry: ControllerEntry, dt: DeltaTable | None) -> bool:
    """Bring the entry up to the table's newest commit of this job."""
    if dt is None:
        if entry.table_version is not None:  # the curated table was removed: start afresh
            entry.last_full_load_date = None
            entry.last_incremental_file = None
            entry.table_version = None
            return True
        return False
    found = commit_values(lake, entry.table, dt)
    if found is None:
        return False
    version, values = found
    if entry.table_version is not None and version <= entry.table_version:
        return False
    entry.last_full_load_date = values.get("LastFullLoadDate")
    entry.last_incremental_file = values.get("LastIncrementalFile")
    entry.table_version = version
    return True


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
            result.error = _short(exc)
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
            changes = read_changes(lake, current, schema, result.skipped, plan.marked)
            if schema is None and changes.num_rows:
                _check_columns([n for n in changes.column_names if n not in (OP, SEQ)], key, part, ref)
            result.change_files = [c.rel for c in current]
            result.change_rows = changes.num_rows
            changes = unchanged.fill(
                changes, key, OP, SEQ, _current_rows(lake, dt, full_load, key, result.skipped)
            )
            reduced = last_per_key(changes, key) if changes.num_rows else None
        commit = plan.commit

        if take_load or dt is None or plan.repartition:
            if take_load and full_load is not None:
                base = read_full_load(lake, full_load, result.skipped)
                result.full_load = lake.raw.location(full_load.folder)
            elif dt is not None:
                base = dt.to_pyarrow_table()
            elif schema is not None:
                base = schema.arrow_schema().empty_table()
            elif reduced is not None:  # a CDC-only table: the change files' columns
                base = reduced.drop_columns([OP, SEQ]).schema.empty_table()
            else:
                raise TerminalError("none of the table's files could be read")
            if reduced is not None:
                reduced = _conform(reduced, base.schema)
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
            metrics = _rewrite(dt, reduced, key, part, commit) or _merge(dt, reduced, key, part, commit)
            result.inserted = int(metrics.get("num_target_rows_inserted", 0))
            result.updated = int(metrics.get("num_target_rows_updated", 0))
            result.deleted = int(metrics.get("num_target_rows_deleted", 0))
            result.files_rewritten = int(metrics.get("num_target_files_removed", 0))


EMBEDDED = EmbeddedEngine()


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


def _conform(reduced: pa.Table, schema: pa.Schema) -> pa.Table:
    """The reduced changes with the base's columns (missing ones null)."""
    arrays = [reduced.column(OP), reduced.column(SEQ)]
    fields = [pa.field(OP, pa.string()), pa.field(SEQ, pa.int64())]
    for f in schema:
        if f.name in reduced.column_names:
            arrays.append(reduced.column(f.name).cast(f.type, safe=False))
        else:
            arrays.append(pa.nulls(reduced.num_rows, f.type))
        fields.append(f)
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(value: Any, dtype: pa.DataType) -> str | None:
    if value is None:
        return None
    if pa.types.is_boolean(dtype):
        return "true" if value else "false"
    if pa.types.is_integer(dtype):
        return str(int(value))
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        return "'" + str(value).replace("'", "''") + "'"
    if pa.types.is_date32(dtype):
        return f"'{value.isoformat()}'"
    return "?"


def _partition_text(value: Any) -> str | None:
    """A partition value as Delta's log writes it."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _touched_partitions(
    dt: DeltaTable, reduced: pa.Table, key: Sequence[str], part: Sequence[str]
) -> pa.Table | None:
    """The partition values the changes touch: the new images' partitions and
    the current partitions of the changed keys, one row per combination of
    ``part`` (typed as the table's partition columns). None when they are all
    of the table's partitions (or the table has no partition columns)."""
    if not part:
        return None
    new = reduced.filter(pc.not_equal(reduced.column(OP), "D")).select(list(part))
    existing = {tuple(values.get(name) for name in part) for values in dt.partitions()}
    touched = {
        tuple(_partition_text(row[name]) for name in part)
        for row in new.group_by(list(part), use_threads=False).aggregate([]).to_pylist()
    }
    if existing <= touched:  # every partition gets new rows: no scan for the old ones
        return None
    current = dt.to_pyarrow_dataset().to_table(columns=[*key, *part])
    changed = reduced.select(list(key)).cast(current.select(list(key)).schema, safe=False)
    hit = current.join(changed, keys=list(key), join_type="left semi", use_threads=False).select(list(part))
    both = pa.concat_tables([hit, new.cast(hit.schema, safe=False)])
    return both.group_by(list(part), use_threads=False).aggregate([])


def _partition_predicate(combos: pa.Table, part: Sequence[str], prefix: str = "") -> str | None:
    """A SQL predicate naming the partitions of ``combos`` (None when it cannot
    be written)."""
    if combos.num_rows == 0:
        return "false"
    if combos.num_rows > MAX_PRUNE_VALUES:
        return None
    terms = []
    for row in combos.to_pylist():
        conds = []
        for name in part:
            lit = _literal(row[name], combos.schema.field(name).type)
            if lit == "?":
                return None
            column = f"{prefix}{_ident(name)}"
            conds.append(f"{column} IS NULL" if lit is None else f"{column} = {lit}")
        terms.append("(" + " AND ".join(conds) + ")")
    return "(" + " OR ".join(terms) + ")"


def _partition_filter(
    dt: DeltaTable, reduced: pa.Table, key: Sequence[str], part: Sequence[str]
) -> str | None:
    """A predicate on the merge target (alias ``t``) naming the partitions the
    changes touch. None when it cannot be written or names every partition
    (then the merge considers every file)."""
    combos = _touched_partitions(dt, reduced, key, part)
    return None if combos is None else _partition_predicate(combos, part, "t.")


def _merge(
    dt: DeltaTable, reduced: pa.Table, key: Sequence[str], part: Sequence[str], commit: CommitProperties
) -> dict[str, Any]:
    target_schema = pa.schema(dt.schema().to_arrow())
    source = _conform(reduced, pa.schema([f for f in reduced.schema if f.name not in (OP, SEQ)]))
    source = pa.Table.from_arrays(
        [source.column(OP), *delta_ready(source.drop_columns([OP, SEQ])).columns],
        names=[OP, *[n for n in source.column_names if n not in (OP, SEQ)]],
    ).combine_chunks()
    predicate = " AND ".join(f"t.{_ident(k)} = s.{_ident(k)}" for k in key)
    pruning = _partition_filter(dt, reduced, key, part)
    if pruning is not None:
        predicate = f"{predicate} AND {pruning}"
    columns = [n for n in source.column_names if n != OP]
    updates = {_ident(c): f"s.{_ident(c)}" for c in columns}
    merge_schema = any(c not in target_schema.names for c in columns)
    metrics: dict[str, Any] = (
        dt.merge(
            source,
            predicate=predicate,
            source_alias="s",
            target_alias="t",
            merge_schema=merge_schema,
            error_on_type_mismatch=False,
            commit_properties=commit,
        )
        .when_matched_delete(predicate=f"s.{OP} = 'D'")
        .when_matched_update(updates=updates)
        .when_not_matched_insert(updates=updates, predicate=f"s.{OP} <> 'D'")
        .execute()
    )
    return metrics


def _partition_expression(combos: pa.Table, part: Sequence[str]) -> Any:
    """The pyarrow dataset filter selecting the partitions of ``combos``."""
    terms = []
    for row in combos.to_pylist():
        conds = [
            pc.field(name).is_null() if row[name] is None else pc.field(name) == row[name] for name in part
        ]
        term = conds[0]
        for cond in conds[1:]:
            term = term & cond
        terms.append(term)
    expression = terms[0]
    for term in terms[1:]:
        expression = expression | term
    return expression


def _prefer_rewrite(dt: DeltaTable, combos: pa.Table | None, part: Sequence[str], changed: int) -> bool:
    """Whether rewriting the touched partitions beats merging into them. A
    merge rewrites only the files holding a matched row, after scanning the
    touched partitions for the keys; a rewrite reads and writes every file
    of them but skips the merge's join and its per-file bookkeeping. So:
    rewrite when each touched partition is one file (a merge with any match
    there rewrites it too) or when the changed keys are at least
    1/REWRITE_SHARE of the touched rows (then nearly every file holds one);
    otherwise (a few keys in partitions of many files) merge."""
    actions = pa.table(dt.get_add_actions(flatten=True))
    if combos is not None:
        wanted = {tuple(_partition_text(v) for v in row.values()) for row in combos.to_pylist()}
        values = zip(*(actions.column(f"partition.{name}").to_pylist() for name in part), strict=True)
        mask = [tuple(_partition_text(v) for v in row) in wanted for row in values]
        actions = actions.filter(pa.array(mask, pa.bool_()))
    files = actions.num_rows
    partitions = len(set(zip(*(actions.column(f"partition.{n}").to_pylist() for n in part), strict=True)))
    rows = int(pc.sum(actions.column("num_records")).as_py() or 0)
    return files <= max(partitions, 1) or changed * REWRITE_SHARE >= rows


def _rewrite(
    dt: DeltaTable,
    reduced: pa.Table,
    key: Sequence[str],
    part: Sequence[str],
    commit: CommitProperties,
    storage_options: dict[str, str] | None = None,
) -> dict[str, int] | None:
    """Apply the reduced changes by rewriting the partitions they touch: those
    partitions are read to Arrow, the changes applied in memory (changed keys
    dropped, the new images added) and written back in one overwrite commit
    whose predicate names those partitions (replaceWhere), carrying ``commit``.
    Returns merge-like counts, or None when the changes cannot be applied this
    way (new columns, or a type the partition predicate cannot name): then
    the caller merges."""
    target_schema = pa.schema(dt.schema().to_arrow())
    columns = [n for n in reduced.column_names if n not in (OP, SEQ)]
    if any(c not in target_schema.names for c in columns):
        return None
    combos = _touched_partitions(dt, reduced, key, part)
    predicate = None
    if combos is not None:
        predicate = _partition_predicate(combos, part)
        if predicate is None or combos.num_rows == 0:
            return None
    if not _prefer_rewrite(dt, combos, part, reduced.num_rows):
        return None
    images = delta_ready(reduced.select(columns))
    try:
        arrays = [reduced.column(OP), reduced.column(SEQ)]
        for f in target_schema:
            if f.name in images.column_names:
                arrays.append(images.column(f.name).cast(f.type, safe=False))
            else:
                arrays.append(pa.nulls(reduced.num_rows, f.type))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    source = pa.Table.from_arrays(arrays, names=[OP, SEQ, *target_schema.names])
    if combos is None:
        base = dt.to_pyarrow_table()
        files = len(dt.file_uris())
    else:
        dataset = dt.to_pyarrow_dataset()
        expression = _partition_expression(combos, part)
        base = dataset.to_table(filter=expression)
        files = sum(1 for _ in dataset.get_fragments(filter=expression))
    base = base.cast(target_schema)
    deletes = pc.equal(source.column(OP), "D")
    if len(key) == 1:  # one hash-set lookup gives both the rows to drop and the matched keys
        column = base.column(key[0])
        dropped = pc.is_in(column, value_set=source.column(key[0]).combine_chunks())
        matched = pc.is_in(source.column(key[0]), value_set=column.filter(dropped).combine_chunks())
        hits = source.filter(matched).column(OP)
        upserts = source.filter(pc.invert(deletes)).select(list(base.column_names))
        data = pa.concat_tables([base.filter(pc.invert(dropped)), upserts.cast(base.schema)])
    else:
        hits = (
            source.select([*key, OP])
            .join(base.select(list(key)), keys=list(key), join_type="left semi", use_threads=True)
            .column(OP)
        )
        data = apply_in_memory(base, source, key)
    deleted = int(pc.sum(pc.equal(hits, "D")).as_py() or 0)
    updated = len(hits) - deleted
    inserted = source.num_rows - int(pc.sum(deletes).as_py() or 0) - updated
    write_deltalake(
        dt,
        data,
        mode="overwrite",
        predicate=predicate,
        storage_options=storage_options,
        commit_properties=commit,
    )
    return {
        "num_target_rows_inserted": inserted,
        "num_target_rows_updated": updated,
        "num_target_rows_deleted": deleted,
        "num_target_files_removed": files,
    }
