"""The lake as a change target: one change file per table per batch, then the
task's checkpoint.

The applier keeps the change log (``KeepsChangeLog``): a change file holds
every change of the batch, one row each, in commit order, as the service
writes them:

* ``I`` for an INSERT with the new row; ``U`` for an UPDATE with the new row;
  ``D`` for a DELETE with what the source sent of the old row (the key
  columns, or the whole row under REPLICA IDENTITY FULL / a full binlog row
  image), the other columns empty. An UPDATE that changed the primary key
  is written as ``D`` of the old key, then ``U`` of the new row (a reader
  keyed on the primary key would otherwise keep the old row);
* the timestamp column (``TimestampColumnName``) holds the source's commit
  time of the change's transaction; where the source reports none (SQLite),
  or for rows of a transaction handed over before its commit was read (one
  larger than a batch), the time the file was written;
* an UPDATE that left values unsent (unchanged TOASTed values) has those
  columns empty. The file cannot tell "unchanged" from NULL, as the
  service's own files cannot, so those rows and columns are recorded beside
  it (``layout.unchanged_path``, written before the file): curation keeps
  the key's previous value there, never NULL.

``CdcInsertsOnly`` keeps only the ``I`` rows; ``CdcInsertsAndUpdates`` drops
the ``D`` rows. Whether those rows carry an ``Op`` column follows
``IncludeOpForFullLoad`` (see ``layout``). A TRUNCATE has no row form in this
layout: it is recorded beside the batch's file (``layout.truncated_path``: the
row before which the table was emptied), written before the file, and
curation empties the curated table there; with ``CdcInsertsOnly`` or
``CdcInsertsAndUpdates`` (no deletes written) it is logged and not recorded.
``add_columns`` changes nothing on disk: later files simply carry the new
columns.

When files are written (``PacesBatches``). The runner hands a batch over when
its oldest change is ``CdcMaxBatchInterval`` seconds old or one table's rows
reach ``CdcMinFileSize`` KB (estimated from the values' text), whichever comes
first, as the service writes a file; also at a full batch (BatchSplitSize,
50,000 changes by default, which bounds memory), before DDL is applied, for a
reload, and at a stop. A batch is one file per table, then the checkpoint, so
the checkpoint never covers a change that is not in a durable file and the
source is acknowledged only after both.

Crash safety. Before any change file is written, an intent record
``.conveyor/checkpoints/<task>.pending.json`` names the batch's start (the
previous checkpoint), the file-name stamp and the folder. A replay of the
batch after a crash starts from the same checkpoint, finds the intent and
reuses its stamp and folder, so it overwrites the same files (each written
atomically) and removes any file of the crashed attempt it does not rewrite.
Only then is the checkpoint ``.conveyor/checkpoints/<task>.json`` written
(atomically) and the intent removed. So a file is never duplicated and the
checkpoint never runs ahead of durable files.

A batch may end inside a transaction (a full batch, or the interval reached
while a transaction is open): its rows go with the last commit position, and
a replay from there meets them again. Every logged change has an identity,
the commit position it follows and its index since (``LoggedChange``); the
checkpoint records, per table, the last one written after its own position
(``written``), and the replay skips that table's changes up to it (per table:
changes of a table being reloaded are held back, not written, meanwhile). A call whose checkpoint
is the stored one (the runner's next part of such a transaction) writes new
files after the stored batch's. So no change is written twice, keyed or not.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from conveyor.connectors.arrow_rows import batch_rows
from conveyor.connectors.base import EndpointConfig
from conveyor.connectors.changes import RefusedTables
from conveyor.connectors.lake import files as lake_files
from conveyor.connectors.lake import layout as lay
from conveyor.connectors.lake.change_rows import ChangeRows, FileRows, Skip
from conveyor.connectors.lake.filesystem import LakeFS
from conveyor.connectors.lake.settings import lake_config
from conveyor.core.batch import CONTROL, ChangeBatch, Checkpoint, Logged, LoggedRows
from conveyor.core.errors import DataError, TerminalError
from conveyor.core.schema import TableRef, TableSchema

log = logging.getLogger(__name__)


_SAMPLE = 16
"""One change in this many is measured for CdcMinFileSize (after a table's first ones)."""


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


def _anchored_at(position: dict[str, Any] | None) -> Callable[[Checkpoint], bool]:
    """Whether a logged change's anchor is ``position`` (the stored form),
    compared once per distinct anchor object (a batch's changes share few)."""
    seen: dict[int, bool] = {}

    def test(anchor: Checkpoint) -> bool:
        known = seen.get(id(anchor))
        if known is None:
            known = seen[id(anchor)] = position is not None and _same(_position(anchor), position)
        return known

    return test


def _written(
    changes: Sequence[ChangeBatch], target: dict[str, Any] | None, before: dict[str, Any]
) -> dict[str, Any]:
    """Per table, the identity of the last change written after the
    checkpoint's own position (a batch that ended inside a transaction), on
    top of ``before`` (what a part under the same checkpoint keeps). Never
    lower than ``before``'s: a replay's parts may end earlier than the first
    run's, and a lower mark would write the rest of the first run's again."""
    at = _anchored_at(target)
    written = dict(before)
    for table_changes in changes:
        indexes = [
            c.last_index if isinstance(c, LoggedRows) else c.index
            for c in table_changes.log
            if at(c.position)
        ]
        if indexes:
            ref = str(table_changes.table.ref)
            done = written.get(ref)
            last = max(indexes)
            if done is not None and _same(done["at"], target):
                last = max(last, int(done["index"]))
            written[ref] = {"at": target, "index": last}
    return written


class LakeApplier:
    keeps_change_log = True
    takes_logged_rows = True

    def refused_name(self, kind: str, name: str) -> str | None:
        return None if kind == "column" else lay.refused_name(name)

    def __init__(self, config: EndpointConfig) -> None:
        self.config = config
        self.lake = lake_config(config)
        self.started = datetime.now(UTC)
        self.bucket_path = self.lake.render_bucket_path(self.started)
        self.fs = LakeFS(self.lake)
        self.settings = self.lake.settings
        self.layout = lay.file_layout(self.settings, self.lake.data_format, changes=True)
        self.batch_seconds = float(self.settings.cdc_max_batch_interval)
        self.batch_min_bytes = self.settings.cdc_min_file_size * 1024
        self._row_extra = 2 + (27 if self.layout.timestamp else 0)  # Op, timestamp, row delimiter
        self._sizes: dict[TableRef, tuple[int, int]] = {}  # changes seen, last measured size

    def change_bytes(self, table: TableRef, change: Logged) -> int:
        """A change's row in a file, estimated as its CSV text (Parquet files
        are measured the same way: their compressed size is not known ahead).
        A table's first rows are measured, then one in ``_SAMPLE``; the others
        count as the last measured one (measuring each cost ~9 us a change).
        Captured changes count as their first row, measured, times their number."""
        seen, size = self._sizes.get(table, (0, 0))
        count = 1
        if isinstance(change, LoggedRows):
            count = change.rows.num_rows
            if count and (seen < _SAMPLE or seen // _SAMPLE != (seen + count) // _SAMPLE):
                row = change.rows.slice(0, 1)
                [first] = batch_rows(row.drop_columns([n for n in row.schema.names if n in CONTROL]))
                size = self._row_size(first)
        elif seen < _SAMPLE or seen % _SAMPLE == 0:
            size = self._row_size(change.after if change.after is not None else change.before or {})
        self._sizes[table] = (seen + count, size)
        return size * count

    def _row_size(self, row: dict[str, Any]) -> int:
        return self._row_extra + sum(len(str(v)) for v in row.values() if v is not None) + len(row)

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
        # changes a stored batch already wrote (it ended inside a transaction)
        before: dict[str, Any] = (state or {}).get("written") or {}
        planned: list[tuple[str, FileRows]] = []
        refused: dict[TableRef, str] = {}
        exceptions: list[tuple[str, bytes]] = []  # the batch's refused values, written with its files
        for table_changes in changes:
            try:
                # A value capture could not hold: the table is refused (suspended), never
                # written without it; values refused per DataErrorPolicy are logged below.
                table_changes.refuse_unrepresentable()
                done = before.get(str(table_changes.table.ref))
                skip = (_anchored_at(done["at"]), int(done["index"])) if done else None
                rows = self._rows(table_changes, when, skip)
            except DataError as exc:
                refused[table_changes.table.ref] = str(exc)
                continue
            if table_changes.rejected:
                exceptions.append(
                    (
                        lay.exceptions_path(lay.table_folder(folder_root, table_changes.table.ref), stamp),
                        lay.exception_lines(task, table_changes.rejected, when),
                    )
                )
            if rows is None:
                continue
            folder = lay.change_folder(folder_root, self.settings, table_changes.table.ref, when)
            planned.append((f"{folder}/{stamp}.{self.layout.ext}", rows))
        if refused:  # before any file changes: this call must not write part of a batch
            raise RefusedTables(refused)
        files = [rel for rel, _ in planned]
        sidecars = [lay.unchanged_path(rel) for rel, rows in planned if rows.unchanged]
        intent = {
            "start": start,
            "stamp": stamp,
            "bucket_path": folder_root,
            "files": sorted({*files, *stale}),
            "unchanged": sidecars,
        }
        self.fs.write_bytes(lay.pending_path(task), json.dumps(intent).encode())
        for rel, rows in planned:
            # the records beside the file first: curation never sees the file without them
            if rows.unchanged:
                self.fs.write_bytes(lay.unchanged_path(rel), json.dumps({"rows": rows.unchanged}).encode())
            if rows.truncated_at is not None:
                self.fs.write_bytes(lay.truncated_path(rel), json.dumps({"row": rows.truncated_at}).encode())
            elif rel in stale:  # what a crashed attempt of this batch wrote
                self.fs.delete(lay.truncated_path(rel))
            if rows.data is None:
                if rel in stale:
                    self.fs.delete(rel)
                continue
            staged = self.fs.stage(rel)
            try:
                lake_files.write_whole_file(staged.local_path, rows.data, self.layout)
                staged.publish()
            except BaseException:
                staged.discard()
                raise
        for rel, lines in exceptions:  # named by the batch's stamp: a replay rewrites them
            self.fs.write_bytes(rel, lines)
        for rel in stale:
            if rel not in files:
                self.fs.delete(rel)
                self.fs.delete(lay.unchanged_path(rel))
                self.fs.delete(lay.truncated_path(rel))
        document = {
            **(target or {}),
            "start": start,
            "stamp": stamp,
            "bucket_path": folder_root,
            "files": files,
            "written": _written(changes, target, before if _same(stored, target) else {}),
            "updated_at": datetime.now(UTC).isoformat(),
        }
        self.fs.write_bytes(lay.checkpoint_path(task), json.dumps(document, default=str).encode())
        self.fs.delete(lay.pending_path(task))

    def _rows(self, changes: ChangeBatch, when: datetime, skip: Skip | None) -> FileRows | None:
        """The change file's rows (the log's changes after ``skip``: those at
        its anchor up to its index were written already), the unchanged
        columns of its partial updates by row, and where the batch's last
        TRUNCATE emptied the table (None: nothing to write)."""
        settings = self.settings
        rows = ChangeRows(
            changes.table, self.layout, settings.cdc_inserts_only, settings.cdc_inserts_and_updates
        )
        return rows.build(changes, when, skip)

    def add_columns(self, table: TableSchema, columns: Sequence[str]) -> None:
        """Nothing to alter: the next change files carry the new columns."""

    def drop_columns(self, table: TableSchema, columns: Sequence[str]) -> None:
        """Nothing to alter: the next change files no longer carry the columns."""

    def close(self) -> None:
        self.fs.close()
