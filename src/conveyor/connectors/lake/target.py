"""The lake as a full-load target: LOAD files per table, published at commit.

A table load writes its LOAD files as batches arrive, each under a staged name
(a hidden temporary file in the table's folder, or a local spool file for S3),
rolling to the next file at ``MaxFileSize``. Nothing is visible until
``commit``: it first removes the folder's earlier LOAD files (DROP_AND_CREATE
and TRUNCATE_BEFORE_LOAD), then publishes every staged file atomically under
its ``LOADnnnnnnnn`` name, then records the table's shape under
``.conveyor/tables/``. ``abort`` (or a killed process) leaves the visible
files as they were; a later load of the table sweeps stale local temporaries.
DO_NOTHING keeps earlier LOAD files and numbers the new ones after them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from conveyor.connectors.base import EndpointConfig, PrepMode, RejectedValue
from conveyor.connectors.lake import files as lake_files
from conveyor.connectors.lake import layout as lay
from conveyor.connectors.lake.filesystem import LakeFS, Staged
from conveyor.connectors.lake.settings import LakeConfig, lake_config
from conveyor.core.errors import TerminalError
from conveyor.core.schema import TableRef, TableSchema


class LakeTarget:
    """A lake endpoint written as the migration service's S3 target. The
    bucket path template is rendered once, when the target is opened (the
    start of the task run), so every table of one load lands in one folder."""

    engine = "lake"

    def refused_name(self, kind: str, name: str) -> str | None:
        return None if kind == "column" else lay.refused_name(name)

    def __init__(self, config: EndpointConfig) -> None:
        self.config = config
        self.lake: LakeConfig = lake_config(config)
        self.started = datetime.now(UTC)
        self.bucket_path = self.lake.render_bucket_path(self.started)
        self.fs = LakeFS(self.lake)
        self.layout = lay.file_layout(self.lake.settings, self.lake.data_format, changes=False)

    def check(self) -> str:
        return self.fs.check()

    def _state(self, ref: TableRef) -> tuple[TableSchema, lay.FileLayout, list[str]] | None:
        data = self.fs.read_bytes(lay.table_state_path(self.bucket_path, ref))
        return None if data is None else lay.parse_table_state(data)

    def describe(self, ref: TableRef) -> TableSchema | None:
        state = self._state(ref)
        return None if state is None else state[0]

    def load_files(self, ref: TableRef) -> list[str]:
        """The table's visible LOAD files, in counter order."""
        folder = lay.table_folder(self.bucket_path, ref)
        names = [name for name in self.fs.list_files(folder) if lay.load_number(name) is not None]
        return sorted(names, key=lambda name: lay.load_number(name) or 0)

    def begin_load(self, table: TableSchema, mode: PrepMode) -> LakeTableLoad:
        folder = lay.table_folder(self.bucket_path, table.ref)
        self.fs.remove_stale_temporaries(folder)
        existing = self.load_files(table.ref)
        first = 1
        if mode is PrepMode.DO_NOTHING and existing:
            first = max(lay.load_number(name) or 0 for name in existing) + 1
            state = self._state(table.ref)
            if state is not None and state[0].column_names != table.column_names:
                raise TerminalError(
                    f"lake table {table.ref} has LOAD files with other columns; "
                    "use DROP_AND_CREATE or TRUNCATE_BEFORE_LOAD"
                )
        replace = existing if mode is not PrepMode.DO_NOTHING else []
        return LakeTableLoad(self, table, folder, first, replace, keep=[] if replace else existing)

    def read(
        self, table: TableSchema, batch_rows: int, order_by_key: bool = False
    ) -> Iterator[pa.RecordBatch]:
        state = self._state(table.ref)
        file_layout = state[1] if state is not None else self.layout
        folder = lay.table_folder(self.bucket_path, table.ref)
        parts = [
            lake_files.read_file(self.fs, f"{folder}/{name}", table, file_layout)
            for name in self.load_files(table.ref)
        ]
        data = pa.concat_tables(parts) if parts else table.arrow_schema().empty_table()
        if order_by_key and table.primary_key:
            data = data.sort_by([(k, "ascending") for k in table.primary_key])
        yield from data.to_batches(max_chunksize=max(1, batch_rows))

    def count(self, ref: TableRef) -> int:
        state = self._state(ref)
        if state is None:
            return 0
        schema, file_layout, _ = state
        folder = lay.table_folder(self.bucket_path, ref)
        total = 0
        for name in self.load_files(ref):
            if file_layout.data_format == "parquet":
                with self.fs.open_input(f"{folder}/{name}") as handle:
                    total += pq.ParquetFile(handle).metadata.num_rows
            else:
                total += lake_files.read_file(self.fs, f"{folder}/{name}", schema, file_layout).num_rows
        return total

    def close(self) -> None:
        self.fs.close()


class LakeTableLoad:
    def __init__(
        self,
        target: LakeTarget,
        table: TableSchema,
        folder: str,
        first: int,
        replace: list[str],
        keep: list[str],
    ) -> None:
        self.target = target
        self.table = table
        self.folder = folder
        self.layout = target.layout
        self.settings = target.lake.settings
        self._next = first
        self._replace = replace
        self._keep = keep
        self._staged: list[Staged] = []
        self._csv: lake_files.CsvFileWriter | None = None
        self._parquet: lake_files.ParquetFileWriter | None = None
        self._rejections: list[bytes] = []
        self._header: bytes | None = None
        self._closed = False

    # --- files ---------------------------------------------------------------

    def _new_file(self) -> Staged:
        name = lay.load_file_name(self._next, self.layout.ext)
        self._next += 1
        staged = self.target.fs.stage(f"{self.folder}/{name}")
        self._staged.append(staged)
        return staged

    def _finish_file(self) -> None:
        if self._csv is not None:
            self._csv.close()
            self._csv = None
        if self._parquet is not None:
            self._parquet.close()
            self._parquet = None

    def _stamp(self) -> str | None:
        if not self.layout.timestamp:
            return None
        when = (
            self.target.started
            if self.settings.use_task_start_time_for_full_load_timestamp
            else datetime.now(UTC)
        )
        return lay.format_timestamp(when, self.layout.millis)

    def write(self, records: pa.RecordBatch) -> None:
        if records.num_rows == 0:
            return
        data = lay.frame(records, self.layout, "I", self._stamp())
        if self.layout.data_format == "parquet":
            self._write_parquet(data)
        else:
            self._write_csv(data)

    def _write_csv(self, data: pa.Table) -> None:
        limit = self.settings.max_file_bytes
        if self._header is None and self.layout.header:
            self._header = lake_files.header_bytes(data.schema.names, self.layout)
        buffer, offsets = lake_files.csv_rows(data, self.layout)
        n = data.num_rows
        i = 0
        while i < n:
            if self._csv is None:
                self._csv = lake_files.CsvFileWriter(self._new_file().local_path, self.layout, self._header)
            room = limit - self._csv.size
            j = int(np.searchsorted(offsets, offsets[i] + room, side="right")) - 1
            j = min(j, n)
            if j <= i and self._csv.rows == 0:
                j = i + 1  # one row larger than the limit gets a file of its own
            if j > i:
                self._csv.write(buffer[int(offsets[i]) : int(offsets[j])], j - i)
                i = j
            if i < n:
                self._finish_file()

    def _write_parquet(self, data: pa.Table) -> None:
        limit = self.settings.max_file_bytes
        row_bytes = max(1, data.nbytes // max(1, data.num_rows))
        chunk = max(1, min(data.num_rows, limit // row_bytes))
        for start in range(0, data.num_rows, chunk):
            part = data.slice(start, chunk)
            if self._parquet is None:
                self._parquet = lake_files.ParquetFileWriter(
                    self._new_file().local_path, self.layout, lake_files.parquet_schema(part)
                )
            self._parquet.write(part)
            if self._parquet.size >= limit:
                self._finish_file()

    def record_rejections(self, task: str, rejected: Sequence[RejectedValue]) -> None:
        if rejected:
            self._rejections.append(lay.exception_lines(task, rejected, datetime.now(UTC)))

    # --- outcome -------------------------------------------------------------

    def commit(self) -> None:
        if self._closed:
            return
        fs = self.target.fs
        try:
            self._finish_file()
            published = [s.rel.rsplit("/", 1)[-1] for s in self._staged]
            for name in self._replace:
                if name not in published:
                    fs.delete(f"{self.folder}/{name}")
            for staged in self._staged:
                staged.publish()
            if self._rejections:
                stamp = lay.change_stamp(datetime.now(UTC))
                fs.write_bytes(lay.exceptions_path(self.folder, stamp), b"".join(self._rejections))
            fs.write_bytes(
                lay.table_state_path(self.target.bucket_path, self.table.ref),
                lay.table_state(self.table, self.layout, [*self._keep, *published]),
            )
        except BaseException:
            self.abort()
            raise
        self._closed = True

    def abort(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._finish_file()
        finally:
            for staged in self._staged:
                staged.discard()
