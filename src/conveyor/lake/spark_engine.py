"""The curation job's Spark engine: Spark reads, merges and writes; Conveyor commits.

Spark has no Delta (nor s3a) without jars fetched from Maven, so the work is
split where it can run offline:

- Spark's executors read the raw LOAD and change files with Conveyor's own
  readers (``mapInArrow``), so typing, CSV settings and partial-update marks
  are exactly the embedded engine's; they read the curated table's Parquet
  files the same way.
- Spark keeps the last operation per key (``__file``, ``__row`` order), fills
  partial updates' unchanged columns (see ``lake.unchanged``), finds the
  partitions the changes touch and writes those partitions' new Parquet files
  into a fresh ``spark-<id>/`` folder of the table.
- Conveyor commits exactly those files to Delta with deltalake, in one
  transaction that adds them and removes the touched partitions' old files,
  carrying the controller values (see ``curate``). Files written before a
  crash and never committed are not part of the table; a rerun writes anew.

Raw files and tables on S3 go through a local staging folder (s3a's jars are
not in pyspark): the files Spark reads are downloaded, the files it writes
uploaded. The staging folder must be visible to the executors (one host, or a
shared mount). Table shapes the engine does not cover (a CDC-only table with
no recorded full load, a changed PartitionKey, a run with only covered files)
are carried out by the embedded engine and reported so.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from deltalake import DeltaTable, write_deltalake
from deltalake.transaction import AddAction, RemoveAction

from conveyor.connectors.lake import files as lake_files
from conveyor.connectors.lake import layout as lay
from conveyor.core.errors import ConveyorError, TerminalError
from conveyor.core.faults import fault_point
from conveyor.core.schema import TableSchema
from conveyor.lake import delta_stats, delta_types, delta_write, raw_read, spark_session, unchanged
from conveyor.lake.change_rows import OP
from conveyor.lake.controller import Lake, open_lake
from conveyor.lake.curate import EmbeddedEngine, TablePlan, TableResult
from conveyor.lake.unchanged import UNCHANGED

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

FAULT_BEFORE_COMMIT = "lake-spark-before-commit"
FILE = "__file"
ROW = "__row"
ERROR = "__error"
HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"


@dataclass(frozen=True)
class _Source:
    """What an executor needs to read one kind of file (pickled to it)."""

    config: Any
    """The lake's config, rooted where the executors find the raw files."""
    schema: TableSchema
    columns: pa.Schema
    """The table's columns as Delta stores them (``delta_types.delta_ready``)."""
    marked: frozenset[str]
    layout: Any = None
    """The LOAD files' layout (for ``_read_load``)."""


def _read_changes(source: _Source, tasks: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Executor side: change files to rows of ``__op``, the columns,
    ``__unchanged``, ``__file``, ``__row`` (one ``__error`` row per
    unreadable file)."""
    lake = open_lake(source.config)
    base = lay.file_layout(lake.config.settings, lake.config.data_format, changes=True)
    out = _out_schema(source.columns)
    for batch in tasks:
        for index, rel in zip(batch.column(0).to_pylist(), batch.column(1).to_pylist(), strict=True):
            try:
                data = raw_read.read_with_op(lake, rel, source.schema, raw_read.file_layout(base, rel))
                if rel in source.marked:
                    marks = unchanged.marks(lake, rel, data.num_rows)
                else:
                    marks = pa.nulls(data.num_rows, pa.string())
                ready = delta_types.delta_ready(data.drop_columns([OP]))
            except Exception as exc:
                yield _error_row(out, index, raw_read.short_error(exc))
                continue
            yield from _framed(out, ready, data.column(OP), marks, index)


def _read_load(source: _Source, tasks: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Executor side: LOAD files to rows of the table's columns."""
    lake = open_lake(source.config)
    out = _out_schema(source.columns)
    for batch in tasks:
        for index, rel in zip(batch.column(0).to_pylist(), batch.column(1).to_pylist(), strict=True):
            try:
                data = delta_types.delta_ready(
                    lake_files.read_file(lake.raw, rel, source.schema, source.layout)
                )
            except Exception as exc:
                yield _error_row(out, index, raw_read.short_error(exc))
                continue
            ops = pa.array(["I"] * data.num_rows, pa.string())
            yield from _framed(out, data, ops, pa.nulls(data.num_rows, pa.string()), index)


def _read_table_files(
    columns: pa.Schema, partitions: dict[str, dict[str, Any]], tasks: Iterator[pa.RecordBatch]
) -> Iterator[pa.RecordBatch]:
    """Executor side: the curated table's Parquet files (partition columns from
    their Delta add actions) to rows of the table's columns."""
    out = _out_schema(columns)
    for batch in tasks:
        for index, path in zip(batch.column(0).to_pylist(), batch.column(1).to_pylist(), strict=True):
            data = pq.read_table(path)
            values = partitions.get(path, {})
            arrays = []
            for f in columns:
                if f.name in values:
                    arrays.append(pa.array([values[f.name]] * data.num_rows, f.type))
                else:
                    arrays.append(data.column(f.name).cast(f.type))
            ready = pa.Table.from_arrays(arrays, schema=columns)
            ops = pa.array(["I"] * ready.num_rows, pa.string())
            yield from _framed(out, ready, ops, pa.nulls(ready.num_rows, pa.string()), index)


def _out_schema(columns: pa.Schema) -> pa.Schema:
    return pa.schema(
        [
            pa.field(OP, pa.string()),
            *columns,
            pa.field(UNCHANGED, pa.string()),
            pa.field(FILE, pa.int32()),
            pa.field(ROW, pa.int64()),
            pa.field(ERROR, pa.string()),
        ]
    )


def _framed(
    out: pa.Schema, data: pa.Table, ops: Any, marks: pa.Array, index: int
) -> Iterator[pa.RecordBatch]:
    n = data.num_rows
    arrays = [
        ops,
        *(data.column(f.name).cast(f.type) for f in out if f.name in data.column_names),
        marks,
        pa.array([index] * n, pa.int32()),
        pa.array(range(n), pa.int64()),
        pa.nulls(n, pa.string()),
    ]
    table = pa.Table.from_arrays(arrays, schema=out)
    yield from table.to_batches(max_chunksize=65536)


def _error_row(out: pa.Schema, index: int, message: str) -> pa.RecordBatch:
    arrays = [pa.nulls(1, f.type) for f in out]
    arrays[out.get_field_index(FILE)] = pa.array([index], pa.int32())
    arrays[out.get_field_index(ERROR)] = pa.array([message], pa.string())
    return pa.RecordBatch.from_arrays(arrays, schema=out)


# --- the driver ---------------------------------------------------------------------------


class SparkEngine:
    """Carries out a table's plan on a Spark cluster (see the module docstring)."""

    def __init__(self, master: str, conf: dict[str, str] | None = None) -> None:
        self.master = master
        self.conf = conf or {}
        self._spark: SparkSession | None = None
        self.embedded = EmbeddedEngine()

    @property
    def spark(self) -> SparkSession:
        if self._spark is None:
            self._spark = spark_session.start(self.master, self.conf)
        return self._spark

    def close(self) -> None:
        if self._spark is not None:
            self._spark.stop()
            self._spark = None

    def run(self, lake: Lake, plan: TablePlan, result: TableResult) -> None:
        why = _not_for_spark(plan)
        if why is not None:
            result.engine = f"embedded ({why})"
            self.embedded.run(lake, plan, result)
            return
        result.engine = "spark"
        log.info("curating %s on Spark at %s", plan.entry.table, self.master)
        with tempfile.TemporaryDirectory(prefix="conveyor-spark-") as staging:
            try:
                _Run(self.spark, lake, plan, result, Path(staging)).execute()
            except ConveyorError:
                raise
            except Exception as exc:
                if type(exc).__module__.startswith(("pyspark", "py4j")):
                    raise TerminalError(f"Spark: {spark_session.message(exc)}") from exc
                raise


def _not_for_spark(plan: TablePlan) -> str | None:
    if plan.schema is None:
        return "no full load recorded the table's columns"
    if plan.repartition:
        return "the PartitionKey changed"
    if not plan.current and plan.full_load is None:
        return "only covered change files"
    if any(c.rel in plan.truncated for c in plan.current):
        return "a TRUNCATE among the change files"
    return None


class _Run:
    """One table's run on Spark."""

    def __init__(
        self, spark: SparkSession, lake: Lake, plan: TablePlan, result: TableResult, staging: Path
    ) -> None:
        assert plan.schema is not None
        self.spark = spark
        self.lake = lake
        self.plan = plan
        self.result = result
        self.staging = staging
        self.schema: TableSchema = plan.schema
        self.columns = delta_types.delta_ready(plan.schema.arrow_schema().empty_table()).schema
        self.remote = lake.config.is_s3
        self.run_id = f"spark-{uuid.uuid4().hex[:16]}"
        schema_name, table_name = plan.entry.table.split(".", 1)
        self.table_rel = f"{schema_name}/{table_name}"
        self.table_dir = staging / "table" if self.remote else Path(plan.uri)
        self.raw_config = replace(lake.config, root=str(staging / "raw")) if self.remote else lake.config

    # -- reading -------------------------------------------------------------------------

    def _raw(self, rels: Sequence[str]) -> None:
        """Download raw files (and their partial-update marks) for the executors."""
        if not self.remote:
            return
        local = pafs.LocalFileSystem()
        for rel in rels:
            for one in (rel, lay.unchanged_path(rel)):
                if one != rel and rel not in self.plan.marked:
                    continue
                target = self.staging / "raw" / one
                target.parent.mkdir(parents=True, exist_ok=True)
                pafs.copy_files(
                    self.lake.raw.full(one),
                    str(target),
                    source_filesystem=self.lake.raw.fs,
                    destination_filesystem=local,
                )

    def _spark_schema(self) -> Any:
        from pyspark.sql.pandas.types import from_arrow_schema

        return from_arrow_schema(_out_schema(self.columns), prefer_timestamp_ntz=True)

    def _tasks(self, rows: list[tuple[Any, ...]], names: list[str]) -> DataFrame:
        from pyspark.sql.types import IntegerType, StringType, StructField, StructType

        fields = [StructField(names[0], IntegerType())] + [StructField(n, StringType()) for n in names[1:]]
        slices = max(1, min(len(rows), 64))
        return self.spark.createDataFrame(rows, StructType(fields)).repartition(slices)

    def _checked(self, frame: DataFrame, files: Sequence[str]) -> DataFrame:
        """``frame`` cached, its unreadable files reported as skipped."""
        from pyspark.sql import functions as F

        frame = frame.cache()
        for row in frame.filter(F.col(ERROR).isNotNull()).select(FILE, ERROR).collect():
            where = self.lake.raw.location(files[row[FILE]])
            self.result.skipped.append({"file": where, "reason": f"unreadable: {row[ERROR]}"})
        return frame.filter(F.col(ERROR).isNull())

    def changes(self) -> DataFrame:
        rels = [c.rel for c in self.plan.current]
        self._raw(rels)
        source = _Source(self.raw_config, self.schema, self.columns, frozenset(self.plan.marked))

        def read(tasks: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            return _read_changes(source, tasks)

        tasks = self._tasks([(i, rel) for i, rel in enumerate(rels)], [FILE, "rel"])
        return self._checked(tasks.mapInArrow(read, self._spark_schema()), rels)

    def full_load_rows(self) -> DataFrame:
        load = self.plan.full_load
        assert load is not None
        rels = list(load.files)
        self._raw(rels)
        source = _Source(self.raw_config, load.schema, self.columns, frozenset(), load.layout)

        def read(tasks: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            return _read_load(source, tasks)

        tasks = self._tasks([(i, rel) for i, rel in enumerate(rels)], [FILE, "rel"])
        return self._checked(tasks.mapInArrow(read, self._spark_schema()), rels)

    def table_rows(self, actions: pa.Table) -> DataFrame:
        """The rows of the table files listed in ``actions`` (add actions)."""
        paths = actions.column("path").to_pylist()
        part = self.plan.part
        local_paths = []
        partitions: dict[str, dict[str, Any]] = {}
        local = pafs.LocalFileSystem()
        for i, rel in enumerate(paths):
            target = self.table_dir / unquote(rel)
            if self.remote:
                target.parent.mkdir(parents=True, exist_ok=True)
                pafs.copy_files(
                    self.lake.curated.full(f"{self.table_rel}/{unquote(rel)}"),
                    str(target),
                    source_filesystem=self.lake.curated.fs,
                    destination_filesystem=local,
                )
            local_paths.append(str(target))
            partitions[str(target)] = {n: actions.column(f"partition.{n}")[i].as_py() for n in part}
        columns = self.columns

        def read(tasks: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
            return _read_table_files(columns, partitions, tasks)

        tasks = self._tasks(list(enumerate(local_paths)), [FILE, "path"])
        return tasks.mapInArrow(read, self._spark_schema())

    # -- the run --------------------------------------------------------------------------

    def execute(self) -> None:
        from pyspark.sql import functions as F

        plan, result = self.plan, self.result
        key, part = plan.key, plan.part
        names = self.columns.names
        dt = plan.dt
        changes = None
        if plan.current:
            changes = self.changes()
            result.change_files = [c.rel for c in plan.current]
            result.change_rows = changes.count()
            if not result.change_rows:
                changes = None
        if plan.full_load is not None or dt is None:
            if plan.full_load is not None:
                base = self.full_load_rows()
                result.full_load = self.lake.raw.location(plan.full_load.folder)
            else:
                base = self.spark.createDataFrame([], self._spark_schema())
            if changes is not None:
                reduced = self._last_per_key(self._fill_unchanged(changes, base))
                counts = _op_counts(reduced)
                result.deleted = counts.get("D", 0) if key else 0
                result.inserted = sum(counts.values()) - result.deleted
                base = _apply(base, reduced, key)
            self._write_and_commit(base.select(*names), [], overwrite=True)
            return
        if changes is None:  # every change file unreadable: record the progress
            write_deltalake(
                plan.uri,
                pa.schema(dt.schema().to_arrow()).empty_table(),
                mode="append",
                storage_options=plan.options,
                commit_properties=plan.commit,
            )
            return
        delta_stats.ensure(dt, self.columns)
        if not key:
            self._fill_unchanged(changes, changes)  # refuses partial updates without a key
            upserts = changes.filter(F.col(OP) != "D")
            result.inserted = upserts.count()
            self._write_and_commit(upserts.select(*names), [], overwrite=False)
            return
        actions = pa.table(dt.get_add_actions(flatten=True))
        current = self.table_rows(actions)
        reduced = self._last_per_key(self._fill_unchanged(changes, current)).cache()
        hits = current.select(*key).withColumn("__hit", F.lit(True))
        tally = reduced.join(hits, on=key, how="left").groupBy(OP, "__hit").count().collect()
        matched = {r[OP]: r["count"] for r in tally if r["__hit"]}
        result.deleted = matched.get("D", 0)
        result.updated = sum(matched.values()) - result.deleted
        result.inserted = sum(r["count"] for r in tally if r[OP] != "D") - result.updated
        touched = self._touched(actions, current, reduced)
        if touched is not None:
            mask = [_partition_key(row, part) in touched for row in _partition_rows(actions, part)]
            actions = actions.filter(pa.array(mask, pa.bool_()))
            current = self.table_rows(actions)
        result.files_rewritten = actions.num_rows
        kept = current.join(reduced.select(*key), on=key, how="left_anti")
        upserts = reduced.filter(F.col(OP) != "D")
        data = kept.select(*names).unionByName(upserts.select(*names))
        removes = actions.column("path").to_pylist()
        self._write_and_commit(data, removes, overwrite=False)

    def _last_per_key(self, changes: DataFrame) -> DataFrame:
        from pyspark.sql import Window
        from pyspark.sql import functions as F

        if not self.plan.key:
            return changes
        window = Window.partitionBy(*self.plan.key).orderBy(F.col(FILE).desc(), F.col(ROW).desc())
        return changes.withColumn("__n", F.row_number().over(window)).filter(F.col("__n") == 1).drop("__n")

    def _touched(
        self, actions: pa.Table, current: DataFrame, reduced: DataFrame
    ) -> set[tuple[Any, ...]] | None:
        """The partitions the changes touch (None: all of them, or no partitions)."""
        from pyspark.sql import functions as F

        part = self.plan.part
        if not part:
            return None
        existing = {_partition_key(row, part) for row in _partition_rows(actions, part)}
        new = reduced.filter(F.col(OP) != "D").select(*part)
        moved = current.join(reduced.select(*self.plan.key), on=self.plan.key, how="left_semi").select(*part)
        touched = {_partition_key(row.asDict(), part) for row in new.union(moved).distinct().collect()}
        return None if existing <= touched else touched

    def _fill_unchanged(self, changes: DataFrame, base: DataFrame) -> DataFrame:
        """``lake.unchanged.fill`` on Spark: a partial update's unchanged column
        takes the value of the key's previous change (a delete there is an
        error), else the row's value in ``base`` (none there is an error)."""
        from pyspark.sql import Window
        from pyspark.sql import functions as F
        from pyspark.sql.types import ArrayType, StringType

        if not any(c.rel in self.plan.marked for c in self.plan.current):
            return changes
        marks = F.from_json(F.col(UNCHANGED), ArrayType(StringType()))
        named = changes.filter(F.col(UNCHANGED).isNotNull()).select(F.explode(marks).alias("c")).distinct()
        wanted = sorted({row["c"] for row in named.collect()} & set(self.columns.names))
        if not wanted:
            return changes
        key = self.plan.key
        if not key:
            raise TerminalError(
                "a keyless table has partial updates (unchanged columns); they cannot be placed"
            )
        lookup = base.select(
            *key, *[F.col(c).alias(f"__base_{c}") for c in wanted], F.lit(True).alias("__has_base")
        )
        data = changes.join(lookup, on=key, how="left")
        before = Window.partitionBy(*key).orderBy(FILE, ROW).rowsBetween(Window.unboundedPreceding, -1)
        problems = []
        for c in wanted:
            dtype = changes.schema[c].dataType
            unchanged = (F.col(OP) != "D") & F.coalesce(F.array_contains(marks, c), F.lit(False))
            source = F.when(
                F.col(OP) == "D", F.struct(F.lit(True).alias("d"), F.lit(None).cast(dtype).alias("v"))
            ).when(~unchanged, F.struct(F.lit(False).alias("d"), F.col(c).alias("v")))
            data = data.withColumn(f"__src_{c}", F.last(source, ignorenulls=True).over(before))
            prev = F.col(f"__src_{c}")
            key_text = F.to_json(F.struct(*key))
            problems.append(
                F.when(
                    unchanged & prev.isNotNull() & prev["d"],
                    F.concat(
                        F.lit(f"column {c!r}: an update of deleted key "),
                        key_text,
                        F.lit(" left it unchanged"),
                    ),
                ).when(
                    unchanged & prev.isNull() & F.col("__has_base").isNull(),
                    F.concat(
                        F.lit(f"column {c!r}: an update of key "),
                        key_text,
                        F.lit(
                            " left it unchanged (an unchanged TOASTed value), and the curated table has"
                            " no row for that key to keep it from; reload the table"
                        ),
                    ),
                )
            )
            data = data.withColumn(
                c,
                F.when(unchanged, F.when(prev.isNull(), F.col(f"__base_{c}")).otherwise(prev["v"])).otherwise(
                    F.col(c)
                ),
            )
        data = data.withColumn("__problem", F.coalesce(*problems)).cache()
        bad = data.filter(F.col("__problem").isNotNull()).select("__problem").limit(1).collect()
        if bad:
            raise TerminalError(bad[0]["__problem"])
        return data.select(*changes.columns)

    # -- writing and the commit ---------------------------------------------------------------

    def _write_and_commit(self, data: DataFrame, removes: list[str], overwrite: bool) -> None:
        plan = self.plan
        out = self.staging / "out" if self.remote else self.table_dir / self.run_id
        writer = data.write.mode("errorifexists")
        if plan.part:
            writer = writer.partitionBy(*plan.part)
        writer.parquet(str(out))
        adds = self._adds(out)
        fault_point(FAULT_BEFORE_COMMIT)
        schema = self.columns
        if plan.dt is None:
            DeltaTable.create(
                plan.uri,
                schema,
                partition_by=plan.part or None,
                configuration=delta_stats.configuration(schema),
                storage_options=plan.options,
            )
        dt = DeltaTable(plan.uri, storage_options=plan.options)
        if overwrite:
            delta_stats.ensure(dt, schema, replace=True)
            dt.create_write_transaction(
                adds,
                mode="overwrite",
                schema=schema,
                partition_by=plan.part or None,
                commit_properties=plan.commit,
            )
            return
        now = int(time.time() * 1000)
        gone: list[AddAction | RemoveAction] = [RemoveAction(path, True, now, None, None) for path in removes]
        dt.create_write_transaction(
            [*adds, *gone],
            mode="append",
            schema=pa.schema(dt.schema().to_arrow()),
            partition_by=plan.part or None,
            commit_properties=plan.commit,
        )

    def _adds(self, out: Path) -> list[AddAction | RemoveAction]:
        """Add actions for the Parquet files Spark wrote under ``out`` (uploaded
        into the table's folder when the table is on S3)."""
        adds: list[AddAction | RemoveAction] = []
        now = int(time.time() * 1000)
        local = pafs.LocalFileSystem()
        for path in sorted(out.rglob("*.parquet")):
            inside = path.relative_to(out)
            values: dict[str, str | None] = {}
            for folder in inside.parts[:-1]:
                name, _, text = folder.partition("=")
                value = unquote(text)
                values[unquote(name)] = None if value == HIVE_NULL else value
            rel = f"{self.run_id}/{inside.as_posix()}"
            rows = pq.read_metadata(path).num_rows
            if self.remote:
                pafs.copy_files(
                    str(path),
                    self.lake.curated.full(f"{self.table_rel}/{rel}"),
                    source_filesystem=local,
                    destination_filesystem=self.lake.curated.fs,
                )
            stats = json.dumps({"numRecords": rows})
            adds.append(AddAction(rel, path.stat().st_size, values, now, True, stats))
        return adds


def _op_counts(reduced: DataFrame) -> dict[str, int]:
    return {row[OP]: row["count"] for row in reduced.groupBy(OP).count().collect()}


def _apply(base: DataFrame, reduced: DataFrame, key: Sequence[str]) -> DataFrame:
    """``change_rows.apply_in_memory`` on Spark."""
    from pyspark.sql import functions as F

    names = list(base.columns)
    upserts = reduced.filter(F.col(OP) != "D").select(*names)
    if key:
        base = base.join(reduced.select(*key), on=list(key), how="left_anti").select(*names)
    return base.unionByName(upserts)


def _partition_rows(actions: pa.Table, part: Sequence[str]) -> Iterator[dict[str, Any]]:
    columns = [actions.column(f"partition.{n}").to_pylist() for n in part]
    for values in zip(*columns, strict=True):
        yield dict(zip(part, values, strict=True))


def _partition_key(row: dict[str, Any], part: Sequence[str]) -> tuple[str | None, ...]:
    return tuple(delta_write.partition_text(row[n]) for n in part)
