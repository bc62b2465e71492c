"""An SQLite capture's stream: it polls the change table after its position and, in
the same short read transaction, reads each changed row's current values by key
(``capture_rows``); it acknowledges by deleting the task's change rows, follows the
captured tables' DDL and takes tables added during capture (``add_table``).
See ``capture`` for the guarantees.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from datetime import UTC, datetime

from conveyor.connectors.captured_rows import Captured, gather
from conveyor.connectors.changes import CaptureLost, ChangeEvent, Commit, TableDefinition, TableDropped
from conveyor.connectors.sqlite.capture_rows import PendingChange, row_changes, row_query
from conveyor.connectors.sqlite.capture_triggers import (
    CHANGES,
    REGISTRY,
    create_change_tables,
    create_triggers,
    exists,
    lost_reason,
    missing_trigger,
    resync_required,
    table_problems,
)
from conveyor.connectors.sqlite.source import describe, table_names
from conveyor.core.batch import Checkpoint, Op
from conveyor.core.errors import ConfigError, TransientError
from conveyor.core.schema import TableRef, TableSchema

log = logging.getLogger("conveyor.connectors.sqlite.capture")

ENGINE = "sqlite"
POLL_INTERVAL = 0.2


class SQLiteChangeStream:
    """Polls the change table; see the module docstring for the guarantees."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        task: str,
        tables: Sequence[TableSchema],
        start: int,
        batch_rows: int,
        lost: Mapping[str, str] | None = None,
    ) -> None:
        """``lost``: tables whose capture triggers are gone (name -> the missing
        trigger), reported as ``CaptureLost`` by the first poll."""
        self._conn = conn
        self._task = task
        lost = lost or {}
        self._tables = {t.ref.name: t for t in tables if t.ref.name not in lost}
        self._row_sql = {name: row_query(t) for name, t in self._tables.items()}
        self._position = start
        self._batch_rows = batch_rows
        self._schema_version: int | None = None
        self._lock = threading.Lock()
        self._arrow: dict[TableRef, TableSchema] = {}  # asked (capture_rows)
        # Tables offered to the runner (or captured): any other is offered once.
        self._offered = {t.ref.name for t in tables}
        self._unreported: list[ChangeEvent] = [
            CaptureLost(t.ref, lost_reason(lost[t.ref.name], t.ref.name))
            for t in tables
            if t.ref.name in lost
        ]
        self._set_width(max((len(t.primary_key) for t in tables), default=1))

    def _set_width(self, width: int) -> None:
        """Read ``width`` key columns of each change row."""
        keys = ", ".join(
            [f"old_{i}" for i in range(1, width + 1)] + [f"new_{i}" for i in range(1, width + 1)]
        )
        self._width = width
        self._select = (
            f"SELECT seq, table_name, op, changed_at, {keys} FROM {CHANGES} "
            "WHERE seq > ? AND task = ? ORDER BY seq LIMIT ?"
        )

    @property
    def position(self) -> Checkpoint:
        return Checkpoint(ENGINE, {"seq": self._position})

    def events(self, idle_timeout: float) -> Iterator[ChangeEvent | None]:
        interval = max(0.001, min(idle_timeout, POLL_INTERVAL))
        while True:
            deadline = time.monotonic() + idle_timeout
            while True:
                polled = self._poll()
                remaining = deadline - time.monotonic()
                if polled or remaining <= 0:
                    break
                time.sleep(min(interval, remaining))
            if not polled:
                yield None
            else:
                yield from polled

    def ack(self, position: Checkpoint) -> None:
        seq = int(position.position["seq"])
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                # Releasing change rows is housekeeping: the next ack catches up.
                log.warning("task %r: could not release changes up to %s: %s", self._task, seq, exc)
                return
            try:
                self._conn.execute(f"DELETE FROM {CHANGES} WHERE seq <= ? AND task = ?", (seq, self._task))
                self._conn.execute(
                    f"UPDATE {REGISTRY} SET acked_seq = max(acked_seq, ?) WHERE task = ?", (seq, self._task)
                )
                self._conn.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                self._conn.execute("ROLLBACK")
                if "no such table" in str(exc):
                    raise resync_required(f"task {self._task!r}: capture was ended") from None
                log.warning("task %r: could not release changes up to %s: %s", self._task, seq, exc)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def capture_rows(
        self, tables: Mapping[TableRef, TableSchema], before: AbstractSet[TableRef] = frozenset()
    ) -> None:
        """Whole rows of these tables come as captured ChangeBatches in Arrow
        while the stream reads them with exactly the given shape
        (CapturesRowsInArrow); the others as captured rows one at a time
        (``captured_rows.general_row``). An UPDATE's old row
        is never whole here (the triggers keep its key alone)."""
        with self._lock:
            self._arrow = dict(tables)

    def _in_arrow(self) -> Captured:
        return {
            t.ref: (t, frozenset(t.column_names), False)
            for t in self._tables.values()
            if self._arrow.get(t.ref) == t
        }

    def captures(self, table: TableRef) -> bool:
        """Whether ``table``'s changes are captured now (LosesCapture)."""
        return table.name in self._tables

    def add_table(self, table: TableSchema) -> None:
        """Capture ``table`` from now on (SupportsAddTable), or again after its
        capture was lost (LosesCapture): its triggers are (re)created and it
        joins the task's registry, in one write transaction.
        Rows written before that are in the table, which the runner's load
        reads afterwards; every change after it is logged. A change both logged
        and already loaded is applied again by key, which converges."""
        if not table.primary_key:
            raise ConfigError(
                f"table {table.ref} has no primary key: SQLite capture identifies changed rows by "
                "primary key; add one, then reload the table"
            )
        name = table.ref.name
        width = max(self._width, len(table.primary_key))
        with self._lock:
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise TransientError(f"task {self._task!r}: cannot add table {name!r}: {exc}") from None
            try:
                problems = table_problems(conn, [table])
                if problems:
                    raise ConfigError("; ".join(problems))
                create_change_tables(conn, width)
                create_triggers(conn, self._task, table)
                row = conn.execute(f"SELECT tables FROM {REGISTRY} WHERE task = ?", (self._task,)).fetchone()
                if row is None:
                    raise resync_required(f"task {self._task!r}: capture was ended")
                captured = [n for n in json.loads(row[0]) if n != name] + [name]
                conn.execute(
                    f"UPDATE {REGISTRY} SET tables = ? WHERE task = ?", (json.dumps(captured), self._task)
                )
                conn.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                conn.execute("ROLLBACK")
                raise TransientError(f"task {self._task!r}: cannot add table {name!r}: {exc}") from None
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            self._tables[name] = table
            self._row_sql[name] = row_query(table)
            self._offered.add(name)
            self._set_width(width)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- reading ------------------------------------------------------------

    def _poll(self) -> list[ChangeEvent]:
        with self._lock:
            try:
                self._conn.execute("BEGIN")
                try:
                    return self._read()
                finally:
                    self._conn.execute("ROLLBACK")
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc) or "no such column" in str(exc):
                    raise resync_required(f"task {self._task!r}: {exc}") from None
                raise TransientError(f"task {self._task!r}: reading changes failed: {exc}") from None

    def _read(self) -> list[ChangeEvent]:
        conn = self._conn
        out, self._unreported = self._unreported, []
        version = int(conn.execute("PRAGMA schema_version").fetchone()[0])
        if version != self._schema_version:
            out.extend(self._refresh_schemas())
            self._schema_version = version
        entries = conn.execute(self._select, (self._position, self._task, self._batch_rows)).fetchall()
        if not entries:
            return out
        w = self._width
        # First read every current row, then convert per table and column in bulk.
        pending: list[PendingChange] = []
        for entry in entries:
            table = self._tables.get(entry[1])
            if table is None:  # a table this stream does not follow (left over from an earlier capture)
                continue
            k = len(table.primary_key)
            old, new = tuple(entry[4 : 4 + k]), tuple(entry[4 + w : 4 + w + k])
            row = None
            if entry[2] != Op.DELETE:
                row = conn.execute(self._row_sql[table.ref.name], new).fetchone()
            pending.append((table, entry[2], row, old, new))
        changes = row_changes(self._tables, pending)
        out.extend(gather(changes, self._in_arrow(), {t.ref: t for t in self._tables.values()}))
        last = entries[-1]
        self._position = int(last[0])
        out.append(Commit(self.position, _parse_time(last[3])))
        return out

    def _refresh_schemas(self) -> list[ChangeEvent]:
        out: list[ChangeEvent] = []
        for name, known in list(self._tables.items()):
            if not exists(self._conn, name):
                # Dropped (its triggers went with it): it leaves the capture.
                del self._tables[name], self._row_sql[name]
                self._offered.discard(name)
                out.append(TableDropped(known.ref))
        for name, known in list(self._tables.items()):
            missing = missing_trigger(self._conn, self._task, name)
            if missing is not None:
                # Rebuilt (or a trigger dropped by hand): its changes from here on are unknown.
                del self._tables[name], self._row_sql[name]
                out.append(CaptureLost(known.ref, lost_reason(missing, name)))
        for name, known in list(self._tables.items()):
            now = describe(self._conn, name)
            if now.columns == known.columns:
                continue
            renamed = _renames(known, now)
            key = tuple(next((n for n, o in renamed.items() if o == k), k) for k in known.primary_key)
            if now.primary_key != key:
                raise resync_required(
                    f"task {self._task!r}: the primary key of table {name!r} changed from "
                    f"{known.primary_key} to {now.primary_key}"
                )
            self._tables[name] = now
            self._row_sql[name] = row_query(now)
            out.append(TableDefinition(now, renamed))
        for name in table_names(self._conn):
            if name not in self._offered:
                self._offered.add(name)
                out.append(TableDefinition(describe(self._conn, name), renamed=None))
        return out


def _renames(known: TableSchema, now: TableSchema) -> dict[str, str]:
    """Columns renamed (new name -> old name), told by the catalog: a column at
    the same position (cid) with the same type and a name new to the table,
    where the old name is gone. (A DROP COLUMN of the last column and an ADD
    COLUMN of the same type between two polls look the same.)"""
    old_names, new_names = set(known.column_names), set(now.column_names)
    return {
        new.name: old.name
        for old, new in zip(known.columns, now.columns, strict=False)
        if old.name != new.name
        and old.name not in new_names
        and new.name not in old_names
        and old.type == new.type
    }


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text).replace(tzinfo=UTC)
    except ValueError:
        return None
