"""The lake as a change target: one change file per table per applied batch,
then the task's checkpoint.

Rows of a change file, in this order (the batch is already reduced to one
final change per key, so the order between keys carries no meaning):

* ``D`` rows for ``deletes``: the key columns, every other column null;
* ``upserts``: ``U`` for a table with a primary key (the reduced batch no longer
  says whether the final image came from an INSERT or an UPDATE; ``U`` with
  the whole row is right for a last-operation-wins consumer either way), ``I``
  for a table without one (rows are only ever appended there);
* ``partial`` updates: ``U`` with the columns the source did not send (unchanged
  TOASTed values) null. The file cannot tell "unchanged" from NULL, as the
  service's own files cannot, so those rows and columns are recorded beside it
  (``layout.unchanged_path``, written before the file): curation keeps the
  current value there, never NULL.

``CdcInsertsOnly`` keeps only the upserts (written as inserts); it drops
deletes and partial updates. ``CdcInsertsAndUpdates`` drops deletes. Whether
those rows carry an ``Op`` column follows ``IncludeOpForFullLoad`` (see
``layout``). A TRUNCATE has no row form in this layout: it is logged and not
written. ``add_columns`` changes nothing on disk: later files simply carry the
new columns.

Crash safety. Before any change file is written, an intent record
``.conveyor/checkpoints/<task>.pending.json`` names the batch's start (the
previous checkpoint), the file-name stamp and the folder. A replay of the
batch after a crash starts from the same checkpoint, finds the intent and
reuses its stamp and folder, so it overwrites the same files (each written
atomically) and removes any file of the crashed attempt it does not rewrite.
Only then is the checkpoint ``.conveyor/checkpoints/<task>.json`` written
(atomically) and the intent removed. So a file is never duplicated and the
checkpoint never runs ahead of durable files.

A call whose checkpoint is the stored one is a part of a large transaction
(the runner applies those under the previous checkpoint): it writes new files
after the stored batch's and leaves those in place. After a crash within a
large transaction, its parts are applied again from the checkpoint: the parts
written before the crash stay, so their changes appear twice, in order (a
keyed table converges; a keyless one holds those rows twice). Rewriting the
stored batch's files instead would drop the stored batch's rows.

``CdcMaxBatchInterval`` and ``CdcMinFileSize`` are accepted but do not delay
files: the runner's batching decides when a change file is written, because
the checkpoint may only advance once the rows are in a visible file.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa

from conveyor.connectors.base import EndpointConfig
from conveyor.connectors.changes import RefusedTables
from conveyor.connectors.lake import layout as lay
from conveyor.connectors.lake.filesystem import LakeFS
from conveyor.connectors.lake.settings import lake_config
from conveyor.core.batch import ChangeBatch, Checkpoint
from conveyor.core.errors import DataError, TerminalError
from conveyor.core.schema import TableRef, TableSchema

log = logging.getLogger(__name__)


_Marks = list[tuple[int, list[str]]]
"""Rows of a change file (by index) and the columns they left unchanged."""


def _position(checkpoint: Checkpoint | None) -> dict[str, Any] | None:
    if checkpoint is None:
        return None
    return {"engine": checkpoint.engine, "position": checkpoint.position}


def _next_stamp(*after: str | None) -> str:
    """Now's file-name stamp, or 1 ms after the latest of ``after`` when now is not later."""
    now = datetime.now(UTC)
    latest = max((a for a in after if a is not None), default=None)
    if latest is not None and lay.change_stamp(now) <= latest:
        now = lay.stamp_time(latest) + timedelta(milliseconds=1)
    return lay.change_stamp(now)


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


class LakeApplier:
    def __init__(self, config: EndpointConfig) -> None:
        self.config = config
        self.lake = lake_config(config)
        self.started = datetime.now(UTC)
        self.bucket_path = self.lake.render_bucket_path(self.started)
        self.fs = LakeFS(self.lake)
        self.settings = self.lake.settings
        self.layout = lay.file_layout(self.settings, self.lake.data_format, changes=True)

    # --- checkpoint -------------------------------------------------------------

    def _read_json(self, rel: str) -> dict[str, Any] | None:
        data = self.fs.read_bytes(rel)
        if data is None:
            return None
        try:
            document = json.loads(data)
        except ValueError:
            raise TerminalError(f"{self.fs.location(rel)} is not valid JSON") from None
        if not isinstance(document, dict):
            raise TerminalError(f"{self.fs.location(rel)} is not a JSON object")
        return document

    def read_checkpoint(self, task: str) -> Checkpoint | None:
        document = self._read_json(lay.checkpoint_path(task))
        if document is None:
            return None
        return Checkpoint(document["engine"], document["position"])

    # --- applying ----------------------------------------------------------------

    def apply_changes(self, task: str, changes: Sequence[ChangeBatch], checkpoint: Checkpoint) -> None:
        state = self._read_json(lay.checkpoint_path(task))
        pending = self._read_json(lay.pending_path(task))
        stored = None if state is None else {"engine": state["engine"], "position": state["position"]}
        target = _position(checkpoint)
        stale: list[str] = []
        if state is not None and _same(stored, target):
            # a part of a large transaction, under the stored checkpoint: files
            # after the stored batch's (which stay: the checkpoint covers them);
            # those of a crashed attempt from this checkpoint are dropped
            start, folder_root = stored, state["bucket_path"]
            crashed = pending if pending is not None and _same(pending.get("start"), stored) else None
            stale = list(crashed.get("files", [])) if crashed else []
            stamp = _next_stamp(state["stamp"], crashed["stamp"] if crashed else None)
        elif pending is not None and _same(pending.get("start"), stored):
            # a replay after a crash between the change files and the checkpoint
            start, stamp, folder_root = pending["start"], pending["stamp"], pending["bucket_path"]
            stale = list(pending.get("files", []))
        else:
            start, folder_root = stored, self.bucket_path
            stamp = _next_stamp(state["stamp"] if state is not None else None, None)
        when = lay.stamp_time(stamp)
        planned: list[tuple[str, pa.Table, _Marks]] = []
        refused: dict[TableRef, str] = {}
        for table_changes in changes:
            try:
                rows = self._rows(table_changes, when)
            except DataError as exc:
                refused[table_changes.table.ref] = str(exc)
                continue
            if rows is None:
                continue
            folder = lay.change_folder(folder_root, self.settings, table_changes.table.ref, when)
            planned.append((f"{folder}/{stamp}.{self.layout.ext}", *rows))
        if refused:  # before any file changes: this call must not write part of a batch
            raise RefusedTables(refused)
        files = [rel for rel, _, _ in planned]
        sidecars = [lay.unchanged_path(rel) for rel, _, unchanged in planned if unchanged]
        intent = {
            "start": start,
            "stamp": stamp,
            "bucket_path": folder_root,
            "files": sorted({*files, *stale}),
            "unchanged": sidecars,
        }
        self.fs.write_bytes(lay.pending_path(task), json.dumps(intent).encode())
        for rel, data, unchanged in planned:
            if unchanged:  # before the file: curation never sees the file without it
                self.fs.write_bytes(lay.unchanged_path(rel), json.dumps({"rows": unchanged}).encode())
            staged = self.fs.stage(rel)
            try:
                lay.write_whole_file(staged.local_path, data, self.layout)
                staged.publish()
            except BaseException:
                staged.discard()
                raise
        for rel in stale:
            if rel not in files:
                self.fs.delete(rel)
                self.fs.delete(lay.unchanged_path(rel))
        document = {
            **(target or {}),
            "start": start,
            "stamp": stamp,
            "bucket_path": folder_root,
            "files": files,
            "updated_at": datetime.now(UTC).isoformat(),
        }
        self.fs.write_bytes(lay.checkpoint_path(task), json.dumps(document, default=str).encode())
        self.fs.delete(lay.pending_path(task))

    def _rows(
        self, changes: ChangeBatch, when: datetime
    ) -> tuple[pa.Table, list[tuple[int, list[str]]]] | None:
        """The change file's rows, and the unchanged columns of its partial
        updates by row."""
        table = changes.table
        changes.refuse_unrepresentable()
        settings = self.settings
        if changes.truncate:
            log.warning(
                "lake: TRUNCATE of %s is not written (the raw layout has no row form for it)", table.ref
            )
        parts: list[tuple[str, pa.RecordBatch, list[str]]] = []
        inserts_only = settings.cdc_inserts_only
        if changes.deletes.num_rows and not (inserts_only or settings.cdc_inserts_and_updates):
            parts.append(("D", changes.deletes, []))
        if changes.upserts.num_rows:
            op = "I" if inserts_only or not table.primary_key else "U"
            parts.append((op, changes.upserts, []))
        if not inserts_only:
            for columns, rows in changes.partial.items():
                parts.append(("U", rows, sorted(c for c in columns if c in table.column_names)))
        total = sum(rows.num_rows for _, rows, _ in parts)
        if total == 0:
            return None
        ops: list[str] = []
        marks: _Marks = []
        for op, rows, unchanged in parts:
            if unchanged:
                marks.extend((len(ops) + i, unchanged) for i in range(rows.num_rows))
            ops.extend([op] * rows.num_rows)
        batch = pa.Table.from_batches([_widened(table, rows) for _, rows, _ in parts]).combine_chunks()
        stamp = lay.format_timestamp(when, self.layout.millis) if self.layout.timestamp else None
        return lay.frame(batch.to_batches()[0], self.layout, pa.array(ops, pa.string()), stamp), marks

    def add_columns(self, table: TableSchema, columns: Sequence[str]) -> None:
        """Nothing to alter: the next change files carry the new columns."""

    def drop_columns(self, table: TableSchema, columns: Sequence[str]) -> None:
        """Nothing to alter: the next change files no longer carry the columns."""

    def close(self) -> None:
        self.fs.close()


def _widened(table: TableSchema, rows: pa.RecordBatch) -> pa.RecordBatch:
    """``rows`` with every column of ``table``, those it lacks null."""
    arrays = [
        rows.column(c) if c in rows.schema.names else pa.nulls(rows.num_rows, table.column(c).type.arrow())
        for c in table.column_names
    ]
    fields = [pa.field(c, table.column(c).type.arrow()) for c in table.column_names]
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))
