"""Change capture on SQLite, by triggers into a change table.

How it works
------------
``begin_capture`` creates, in one write transaction, the change table
``conveyor_changes`` (shared by every task capturing this database), the task
registry ``conveyor_capture`` (one row per task: its tables and how far it has
acknowledged) and three triggers per captured table, ``conveyor_<task>_<table>_ins``,
``_upd`` and ``_del``. Each trigger is one plain INSERT into the change table of
the operation and the row's primary key: the old key (``old_1`` ...) for UPDATE
and DELETE, the new key (``new_1`` ...) for INSERT and UPDATE. The key columns
have no declared type, so SQLite stores every key value exactly as the table
holds it (integers, REAL bit for bit, BLOBs with NUL bytes, any text); nothing
goes through JSON or text.

The stream polls the change table for sequence numbers after its position and,
in the same short read transaction, reads each changed row's *current* values
from the table by its key. Values are converted exactly as the full load
converts them (``source.to_python``), so a row looks the same whether it came
through the full load or through capture.

Guarantees
----------
* **Convergent state, not every intermediate image.** Because rows are read at
  capture time, a row updated three times between two polls is delivered three
  times with its latest values; a row inserted or updated and then deleted (or
  moved to another key) before the poll is delivered as a DELETE of that key.
  Applied in order as upserts and deletes by primary key, the target ends at
  exactly the source's state, but it never sees the intermediate images.
  Consumers that need every historical image (an audit log) cannot get them here.
* **Order and completeness.** SQLite has a single writer, so sequence numbers
  become visible in commit order and a reader never sees a later change before
  an earlier one: polling ``seq > position`` misses nothing. A rolled-back write
  rolls back its change rows too.
* **Transactions.** SQLite has no transaction id: the stream emits one ``Commit``
  per polled group of change rows (at most ``batch_rows``). A large source
  transaction may be split across several ``Commit`` s, and a ``Commit`` may
  cover several source transactions; the target is consistent at every commit
  of the source that is also a batch boundary, and always converges.
* **Full load and capture together.** There is no exported snapshot
  (``snapshot_id`` is None): ``begin_capture`` returns the last sequence number
  assigned when the triggers were created, and the full load, which starts
  afterwards, may already contain some of the changes logged after it.
  Replaying those onto the loaded rows is harmless because every change is
  applied as an upsert or delete by key with the row's current values: no gap
  (everything after the triggers exist is logged), and the overlap converges.
* **Resync.** ``ack`` deletes the task's change rows up to the position and
  records it; opening a stream from a position before the acknowledged one, or
  after capture was ended (``end_capture``), raises TerminalError "resync
  required". A captured table whose triggers vanished while the table stayed
  (rebuilt: create a new table, copy, drop the old one, rename, which is how
  SQLite changes a column's type; or a trigger dropped by hand) is
  ``CaptureLost`` (``LosesCapture``), found by a poll or when the stream is
  opened after a stop or a crash: its change rows are skipped from then on,
  and ``add_table`` (a reload of the table) captures it again.
* **DDL.** Columns added to, dropped from or renamed in a captured table show
  up as a ``TableDefinition`` before that table's next changes (a rename is a
  column at the same position with the same type and a new name); a dropped
  table as ``TableDropped``; a changed primary key requires a resync. A table
  the stream does not capture yet (created during capture, say) is offered
  once as a ``TableDefinition``; when the task's selection takes it, the runner
  calls ``add_table``, which creates its triggers (see there for the hand-over).

Rows that SQLite deletes without firing DELETE triggers are not logged: rows
removed by REPLACE conflict resolution fire no trigger unless ``PRAGMA
recursive_triggers`` is on. When the conflict is on the primary key that is
harmless (the replacing row has the same key and is logged as an upsert); when
it is on another UNIQUE constraint the replaced row stays on the target. Turn
recursive_triggers on in the writing application if it relies on that.

Tables without a primary key are refused (ConfigError from ``preflight`` and
``begin_capture``): a change to them could only be applied at the target by
whole-row content, which this design does not log. Give such a table a primary
key, or leave it out of the CDC task.

Impact on the application writing the database
----------------------------------------------
Capture adds one INSERT into ``conveyor_changes`` per changed row to the
writer's own transaction (and so to its size and duration); it never makes a
write fail. Conveyor's own writes (creating triggers, deleting acknowledged
change rows) are short ``BEGIN IMMEDIATE`` transactions with a busy timeout;
its reads are short read transactions. Use WAL mode (``PRAGMA
journal_mode=WAL``): in rollback-journal mode a poll briefly holds a shared
lock that makes a committing writer wait (within the writer's busy timeout).
Do not drop ``conveyor_changes`` by hand while triggers exist: the writer's
inserts would then fail; ``end_capture`` drops the triggers first.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from conveyor.connectors.arrow_rows import Unrepresentable
from conveyor.connectors.base import EndpointConfig
from conveyor.connectors.changes import (
    CaptureLost,
    CaptureStart,
    ChangeEvent,
    Commit,
    RowChange,
    TableDefinition,
    TableDropped,
)
from conveyor.connectors.sqlite.source import (
    CHANGES_TABLE,
    REGISTRY_TABLE,
    SQLiteSnapshot,
    SQLiteSource,
    describe,
    quote,
    table_names,
    to_python,
)
from conveyor.core.batch import Checkpoint, Op
from conveyor.core.errors import ConfigError, ConnectionFailed, DataError, TerminalError, TransientError
from conveyor.core.schema import Column, TableRef, TableSchema

log = logging.getLogger(__name__)

ENGINE = "sqlite"
CHANGES = CHANGES_TABLE
REGISTRY = REGISTRY_TABLE
BUSY_TIMEOUT = 5.0
POLL_INTERVAL = 0.2
BATCH_ROWS = 1000
_SUFFIXES = {"ins": "INSERT", "upd": "UPDATE", "del": "DELETE"}
_NOW = "strftime('%Y-%m-%d %H:%M:%f', 'now')"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def trigger_name(task: str, table: str, suffix: str) -> str:
    return f"conveyor_{task}_{table}_{suffix}"


def _resync(message: str) -> TerminalError:
    return TerminalError(f"{message}: resync required (reload the tables and begin capture again)")


class SQLiteChangeSource:
    """The ChangeSource of an SQLite file (``config.path``). Options:
    ``busy_timeout`` (seconds, default 5) and ``batch_rows`` (change rows per
    polled group, default 1000)."""

    engine = ENGINE

    def __init__(self, config: EndpointConfig) -> None:
        if not config.path:
            raise ConfigError(f"endpoint {config.name!r}: a sqlite endpoint needs a path")
        self.config = config
        self.path = Path(config.path)
        self.busy_timeout = float(config.options.get("busy_timeout", BUSY_TIMEOUT))
        self.batch_rows = int(config.options.get("batch_rows", BATCH_ROWS))

    # -- connections ------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if not self.path.is_file():
            raise ConnectionFailed(f"endpoint {self.config.name!r}: no SQLite database at {self.path}")
        try:
            conn = sqlite3.connect(
                f"{self.path.resolve().as_uri()}?mode=rw",
                uri=True,
                timeout=self.busy_timeout,
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as exc:
            raise ConnectionFailed(f"endpoint {self.config.name!r}: cannot open {self.path}: {exc}") from None
        try:
            conn.execute("SELECT count(*) FROM sqlite_schema").fetchone()
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise ConnectionFailed(
                f"endpoint {self.config.name!r}: {self.path} is not an SQLite database: {exc}"
            ) from None
        return conn

    def _begin_write(self, conn: sqlite3.Connection) -> None:
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise self._write_error(exc) from None

    def _write_error(self, exc: sqlite3.OperationalError) -> ConfigError | TransientError:
        if "readonly" in str(exc) or "read-only" in str(exc):
            return ConfigError(
                f"endpoint {self.config.name!r}: {self.path} is read-only; capture must create triggers "
                "and a change table in it"
            )
        return TransientError(
            f"endpoint {self.config.name!r}: could not write to {self.path} "
            f"within {self.busy_timeout:g} s: {exc}"
        )

    # -- ChangeSource -----------------------------------------------------

    def preflight(self, tables: Sequence[TableSchema]) -> list[str]:
        problems: list[str] = []
        if not self.path.is_file():
            raise ConfigError(f"endpoint {self.config.name!r}: no SQLite database at {self.path}")
        if not os.access(self.path, os.W_OK):
            problems.append(f"{self.path} is not writable (capture creates triggers and a change table)")
        if not os.access(self.path.parent, os.W_OK):
            problems.append(
                f"the directory {self.path.parent} is not writable (SQLite needs it for its journal)"
            )
        if problems:
            raise ConfigError(f"endpoint {self.config.name!r}: " + "; ".join(problems))
        warnings: list[str] = []
        with closing(self._connect()) as conn:
            self._begin_write(conn)
            try:  # a write that is rolled back: the file, its directory and its mount allow writes
                conn.execute("CREATE TABLE conveyor_preflight_probe (x)")
            except sqlite3.OperationalError as exc:
                raise self._write_error(exc) from None
            finally:
                conn.execute("ROLLBACK")
            problems = _table_problems(conn, tables)
            if problems:
                raise ConfigError(f"endpoint {self.config.name!r}: " + "; ".join(problems))
            mode = str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()
        if mode != "wal":
            warnings.append(
                f"{self.path} is in {mode} journal mode: each poll of the change table briefly makes "
                "writers wait; PRAGMA journal_mode=WAL avoids that"
            )
        warnings.append(
            "capture adds one INSERT into conveyor_changes per changed row to the writing transaction"
        )
        return warnings

    def begin_capture(self, task: str, tables: Sequence[TableSchema], export_snapshot: bool) -> CaptureStart:
        if not task:
            raise ConfigError("a capture needs a task name")
        with closing(self._connect()) as conn:
            self._begin_write(conn)
            try:
                problems = _table_problems(conn, tables)
                if problems:
                    raise ConfigError(f"endpoint {self.config.name!r}: " + "; ".join(problems))
                width = max((len(t.primary_key) for t in tables), default=1)
                _create_change_tables(conn, width)
                row = conn.execute(f"SELECT tables FROM {REGISTRY} WHERE task = ?", (task,)).fetchone()
                previous = set(json.loads(row[0])) if row else set()
                wanted = [t.ref.name for t in tables]
                for name in sorted(previous - set(wanted)):
                    _drop_triggers(conn, task, name)
                for table in tables:
                    _create_triggers(conn, task, table)
                conn.execute(
                    f"INSERT INTO {REGISTRY} (task, acked_seq, tables) VALUES (?, 0, ?) "
                    "ON CONFLICT (task) DO UPDATE SET tables = excluded.tables",
                    (task, json.dumps(wanted)),
                )
                seq = _last_seq(conn)
                conn.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                conn.execute("ROLLBACK")
                raise self._write_error(exc) from None
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return CaptureStart(position=Checkpoint(ENGINE, {"seq": seq}), snapshot_id=None)

    def current_position(self) -> Checkpoint:
        """The change table's last sequence number now."""
        with closing(self._connect()) as conn:
            return Checkpoint(ENGINE, {"seq": _last_seq(conn)})

    def position_reached(self, position: Checkpoint, end: Checkpoint) -> bool:
        return int(position.position["seq"]) >= int(end.position["seq"])

    def capture_snapshot(self, start: CaptureStart) -> SQLiteSnapshot:
        """A read snapshot taken after ``begin_capture``: changes logged after
        ``start`` that it already shows are replayed by key, which converges."""
        return SQLiteSource(self.config).snapshot()

    def open_stream(self, task: str, tables: Sequence[TableSchema], start: Checkpoint) -> SQLiteChangeStream:
        if start.engine != ENGINE or not isinstance(start.position.get("seq"), int):
            raise ConfigError(f"task {task!r}: {start} is not an SQLite change-table position")
        conn = self._connect()
        try:
            registered = conn.execute(
                "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?", (REGISTRY,)
            ).fetchone()
            row = (
                conn.execute(f"SELECT acked_seq, tables FROM {REGISTRY} WHERE task = ?", (task,)).fetchone()
                if registered
                else None
            )
            if row is None:
                raise _resync(f"task {task!r}: capture is not set up on {self.path}")
            acked, captured = int(row[0]), set(json.loads(row[1]))
            if start.position["seq"] < acked:
                raise _resync(
                    f"task {task!r}: changes up to {acked} were already released, the stream cannot "
                    f"resume from {start.position['seq']}"
                )
            missing = [t.ref.name for t in tables if t.ref.name not in captured]
            if missing:
                raise ConfigError(
                    f"task {task!r}: tables {', '.join(map(repr, missing))} are not captured; "
                    "begin capture with them first"
                )
            lost: dict[str, str] = {}
            for table in tables:
                trigger = _missing_trigger(conn, task, table.ref.name)
                # A table that is gone was dropped: the first poll says so (TableDropped).
                if trigger is not None and _exists(conn, table.ref.name):
                    lost[table.ref.name] = trigger
        except BaseException:
            conn.close()
            raise
        return SQLiteChangeStream(conn, task, tables, start.position["seq"], self.batch_rows, lost)

    def end_capture(self, task: str) -> None:
        with closing(self._connect()) as conn:
            self._begin_write(conn)
            try:
                if not _exists(conn, REGISTRY):
                    conn.execute("ROLLBACK")
                    return
                row = conn.execute(f"SELECT tables FROM {REGISTRY} WHERE task = ?", (task,)).fetchone()
                for name in json.loads(row[0]) if row else []:
                    _drop_triggers(conn, task, name)
                conn.execute(f"DELETE FROM {REGISTRY} WHERE task = ?", (task,))
                if _exists(conn, CHANGES):
                    conn.execute(f"DELETE FROM {CHANGES} WHERE task = ?", (task,))
                if conn.execute(f"SELECT count(*) FROM {REGISTRY}").fetchone()[0] == 0:
                    conn.execute(f"DROP TABLE IF EXISTS {CHANGES}")
                    conn.execute(f"DROP TABLE {REGISTRY}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def close(self) -> None:
        pass


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
        self._row_sql = {name: _row_query(t) for name, t in self._tables.items()}
        self._position = start
        self._batch_rows = batch_rows
        self._schema_version: int | None = None
        self._lock = threading.Lock()
        # Tables offered to the runner (or captured): any other is offered once.
        self._offered = {t.ref.name for t in tables}
        self._unreported: list[ChangeEvent] = [
            CaptureLost(t.ref, _lost_reason(lost[t.ref.name], t.ref.name))
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

    def captures(self, table: TableRef) -> bool:
        """Whether ``table``'s changes are captured now (LosesCapture)."""
        return table.name in self._tables

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
                    raise _resync(f"task {self._task!r}: capture was ended") from None
                log.warning("task %r: could not release changes up to %s: %s", self._task, seq, exc)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

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
                problems = _table_problems(conn, [table])
                if problems:
                    raise ConfigError("; ".join(problems))
                _create_change_tables(conn, width)
                _create_triggers(conn, self._task, table)
                row = conn.execute(f"SELECT tables FROM {REGISTRY} WHERE task = ?", (self._task,)).fetchone()
                if row is None:
                    raise _resync(f"task {self._task!r}: capture was ended")
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
            self._row_sql[name] = _row_query(table)
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
                    raise _resync(f"task {self._task!r}: {exc}") from None
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
        pending: list[tuple[TableSchema, str, tuple[Any, ...] | None, tuple[Any, ...], tuple[Any, ...]]] = []
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
        out.extend(self._changes(pending))
        last = entries[-1]
        self._position = int(last[0])
        out.append(Commit(self.position, _parse_time(last[3])))
        return out

    def _changes(
        self,
        pending: list[tuple[TableSchema, str, tuple[Any, ...] | None, tuple[Any, ...], tuple[Any, ...]]],
    ) -> list[RowChange]:
        rows: dict[str, list[tuple[Any, ...]]] = {}
        keys: dict[str, list[tuple[Any, ...]]] = {}
        for table, _op, row, old, new in pending:
            name = table.ref.name
            if row is not None:
                rows.setdefault(name, []).append(row)
            keys.setdefault(name, []).extend((old, new))
        values = {
            name: iter(_convert(self._tables[name], self._tables[name].columns, r))
            for name, r in rows.items()
        }
        converted_keys = {
            name: iter(
                _convert(
                    self._tables[name],
                    [self._tables[name].column(c) for c in self._tables[name].primary_key],
                    k,
                )
            )
            for name, k in keys.items()
        }
        out: list[RowChange] = []
        for table, op, row, old, new in pending:
            name = table.ref.name
            old_key, new_key = next(converted_keys[name]), next(converted_keys[name])
            image = next(values[name]) if row is not None else None
            if op == Op.DELETE:
                out.append(RowChange(table.ref, Op.DELETE, {}, old_key=old_key))
            elif op == Op.INSERT:
                if image is None:  # deleted (or moved) since: a later change row says so too
                    out.append(RowChange(table.ref, Op.DELETE, {}, old_key=new_key))
                else:
                    out.append(RowChange(table.ref, Op.INSERT, image))
            else:
                moved = old != new
                if image is None:
                    out.append(RowChange(table.ref, Op.DELETE, {}, old_key=old_key if moved else new_key))
                else:
                    out.append(RowChange(table.ref, Op.UPDATE, image, old_key=old_key if moved else None))
        return out

    def _refresh_schemas(self) -> list[ChangeEvent]:
        out: list[ChangeEvent] = []
        for name, known in list(self._tables.items()):
            if not _exists(self._conn, name):
                # Dropped (its triggers went with it): it leaves the capture.
                del self._tables[name], self._row_sql[name]
                self._offered.discard(name)
                out.append(TableDropped(known.ref))
        for name, known in list(self._tables.items()):
            missing = _missing_trigger(self._conn, self._task, name)
            if missing is not None:
                # Rebuilt (or a trigger dropped by hand): its changes from here on are unknown.
                del self._tables[name], self._row_sql[name]
                out.append(CaptureLost(known.ref, _lost_reason(missing, name)))
        for name, known in list(self._tables.items()):
            now = describe(self._conn, name)
            if now.columns == known.columns:
                continue
            renamed = _renames(known, now)
            key = tuple(next((n for n, o in renamed.items() if o == k), k) for k in known.primary_key)
            if now.primary_key != key:
                raise _resync(
                    f"task {self._task!r}: the primary key of table {name!r} changed from "
                    f"{known.primary_key} to {now.primary_key}"
                )
            self._tables[name] = now
            self._row_sql[name] = _row_query(now)
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


# -- helpers ------------------------------------------------------------------


def _convert(
    table: TableSchema, columns: Sequence[Column], rows: list[tuple[Any, ...]]
) -> list[dict[str, Any]]:
    if not rows:
        return []
    names = [c.name for c in columns]
    converted = [
        _column_values(table, c, list(v)) for c, v in zip(columns, zip(*rows, strict=True), strict=True)
    ]
    return [dict(zip(names, values, strict=True)) for values in zip(*converted, strict=True)]


def _column_values(table: TableSchema, column: Column, values: list[Any]) -> list[Any]:
    """A column's captured values; one the full load would refuse becomes
    ``Unrepresentable``, so the applier refuses it by column (its table
    suspended) instead of the stream failing the task."""
    try:
        return to_python(table, column, values)
    except DataError:
        found: list[Any] = []
        for value in values:
            try:
                found.extend(to_python(table, column, [value]))
            except DataError as exc:
                found.append(Unrepresentable(repr(value), str(exc)))
        return found


def _row_query(table: TableSchema) -> str:
    cols = ", ".join(quote(c) for c in table.column_names)
    where = " AND ".join(f"{quote(k)} IS ?" for k in table.primary_key)
    return f"SELECT {cols} FROM {quote(table.ref.name)} WHERE {where}"


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text).replace(tzinfo=UTC)
    except ValueError:
        return None


def _exists(conn: sqlite3.Connection, name: str, kind: str = "table") -> bool:
    row = conn.execute("SELECT 1 FROM sqlite_schema WHERE type = ? AND name = ?", (kind, name)).fetchone()
    return row is not None


def _last_seq(conn: sqlite3.Connection) -> int:
    row = conn.execute(
        f"SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = '{CHANGES}'), "
        f"(SELECT max(seq) FROM {CHANGES}), 0)"
    ).fetchone()
    return int(row[0])


def _table_problems(conn: sqlite3.Connection, tables: Sequence[TableSchema]) -> list[str]:
    problems: list[str] = []
    for table in tables:
        actual = describe(conn, table.ref.name)
        if not actual.columns:
            problems.append(f"table {table.ref.name!r} does not exist")
        elif not actual.primary_key:
            problems.append(
                f"table {table.ref.name!r} has no primary key: SQLite capture identifies changed rows by "
                "primary key; add one or leave the table out of the CDC task"
            )
        elif actual.primary_key != table.primary_key:
            problems.append(
                f"table {table.ref.name!r} has primary key {actual.primary_key}, "
                f"not {table.primary_key} as listed; list the tables again"
            )
    return problems


def _create_change_tables(conn: sqlite3.Connection, width: int) -> None:
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {CHANGES} (seq INTEGER PRIMARY KEY AUTOINCREMENT, task TEXT NOT NULL, "
        "table_name TEXT NOT NULL, op TEXT NOT NULL, changed_at TEXT NOT NULL, old_1, new_1)"
    )
    conn.execute(
        f"CREATE TABLE IF NOT EXISTS {REGISTRY} (task TEXT PRIMARY KEY, acked_seq INTEGER NOT NULL, "
        "tables TEXT NOT NULL)"
    )
    have = {r[0] for r in conn.execute("SELECT name FROM pragma_table_info(?)", (CHANGES,))}
    for i in range(2, width + 1):
        for col in (f"old_{i}", f"new_{i}"):
            if col not in have:
                # No declared type: key values are stored exactly as the table holds them.
                conn.execute(f"ALTER TABLE {CHANGES} ADD COLUMN {col}")


def _trigger_table(conn: sqlite3.Connection, name: str) -> str | None:
    row = conn.execute(
        "SELECT tbl_name FROM sqlite_schema WHERE type = 'trigger' AND name = ?", (name,)
    ).fetchone()
    return None if row is None else str(row[0])


def _drop_triggers(conn: sqlite3.Connection, task: str, table: str) -> None:
    for suffix in _SUFFIXES:
        name = trigger_name(task, table, suffix)
        if _trigger_table(conn, name) == table:
            conn.execute(f"DROP TRIGGER {quote(name)}")


def _create_triggers(conn: sqlite3.Connection, task: str, table: TableSchema) -> None:
    key = table.primary_key
    n = len(key)
    head = f"INSERT INTO {CHANGES} (task, table_name, op, changed_at"
    fixed = f"{_literal(task)}, {_literal(table.ref.name)}"
    olds = ", ".join(f"old_{i}" for i in range(1, n + 1))
    news = ", ".join(f"new_{i}" for i in range(1, n + 1))
    old_values = ", ".join(f"OLD.{quote(k)}" for k in key)
    new_values = ", ".join(f"NEW.{quote(k)}" for k in key)
    bodies = {
        "ins": f"{head}, {news}) VALUES ({fixed}, '{Op.INSERT.value}', {_NOW}, {new_values});",
        "upd": (
            f"{head}, {olds}, {news}) VALUES ({fixed}, '{Op.UPDATE.value}', {_NOW}, "
            f"{old_values}, {new_values});"
        ),
        "del": f"{head}, {olds}) VALUES ({fixed}, '{Op.DELETE.value}', {_NOW}, {old_values});",
    }
    for suffix, event in _SUFFIXES.items():
        name = trigger_name(task, table.ref.name, suffix)
        owner = _trigger_table(conn, name)
        if owner is not None and owner != table.ref.name:
            raise ConfigError(
                f"task {task!r}: trigger {name!r} already exists on table {owner!r}; choose another task name"
            )
        if owner is not None:
            conn.execute(f"DROP TRIGGER {quote(name)}")
        conn.execute(
            f"CREATE TRIGGER {quote(name)} AFTER {event} ON {quote(table.ref.name)} FOR EACH ROW "
            f"BEGIN {bodies[suffix]} END"
        )


def _missing_trigger(conn: sqlite3.Connection, task: str, table: str) -> str | None:
    """The first of ``table``'s capture triggers that is not on it, if any."""
    for suffix in _SUFFIXES:
        name = trigger_name(task, table, suffix)
        if _trigger_table(conn, name) != table:
            return name
    return None


def _lost_reason(trigger: str, table: str) -> str:
    return (
        f"capture trigger {trigger!r} on table {table!r} is missing (a table rebuild, as SQLite "
        "changes a column's type, drops them with the old table): its changes are no longer "
        "captured; resync required"
    )
