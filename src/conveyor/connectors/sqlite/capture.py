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
import os
import sqlite3
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path

from conveyor.connectors.base import EndpointConfig
from conveyor.connectors.changes import CaptureStart
from conveyor.connectors.sqlite.capture_stream import ENGINE, SQLiteChangeStream
from conveyor.connectors.sqlite.capture_triggers import (
    CHANGES,
    REGISTRY,
    create_change_tables,
    create_triggers,
    drop_triggers,
    exists,
    last_seq,
    missing_trigger,
    resync_required,
    table_problems,
)
from conveyor.connectors.sqlite.source import SQLiteSnapshot, SQLiteSource
from conveyor.core.batch import Checkpoint
from conveyor.core.errors import ConfigError, ConnectionFailed, TransientError
from conveyor.core.schema import TableSchema

BUSY_TIMEOUT = 5.0
BATCH_ROWS = 1000


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
            problems = table_problems(conn, tables)
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
                problems = table_problems(conn, tables)
                if problems:
                    raise ConfigError(f"endpoint {self.config.name!r}: " + "; ".join(problems))
                width = max((len(t.primary_key) for t in tables), default=1)
                create_change_tables(conn, width)
                row = conn.execute(f"SELECT tables FROM {REGISTRY} WHERE task = ?", (task,)).fetchone()
                previous = set(json.loads(row[0])) if row else set()
                wanted = [t.ref.name for t in tables]
                for name in sorted(previous - set(wanted)):
                    drop_triggers(conn, task, name)
                for table in tables:
                    create_triggers(conn, task, table)
                conn.execute(
                    f"INSERT INTO {REGISTRY} (task, acked_seq, tables) VALUES (?, 0, ?) "
                    "ON CONFLICT (task) DO UPDATE SET tables = excluded.tables",
                    (task, json.dumps(wanted)),
                )
                seq = last_seq(conn)
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
            return Checkpoint(ENGINE, {"seq": last_seq(conn)})

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
                raise resync_required(f"task {task!r}: capture is not set up on {self.path}")
            acked, captured = int(row[0]), set(json.loads(row[1]))
            if start.position["seq"] < acked:
                raise resync_required(
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
                trigger = missing_trigger(conn, task, table.ref.name)
                # A table that is gone was dropped: the first poll says so (TableDropped).
                if trigger is not None and exists(conn, table.ref.name):
                    lost[table.ref.name] = trigger
        except BaseException:
            conn.close()
            raise
        return SQLiteChangeStream(conn, task, tables, start.position["seq"], self.batch_rows, lost)

    def end_capture(self, task: str) -> None:
        with closing(self._connect()) as conn:
            self._begin_write(conn)
            try:
                if not exists(conn, REGISTRY):
                    conn.execute("ROLLBACK")
                    return
                row = conn.execute(f"SELECT tables FROM {REGISTRY} WHERE task = ?", (task,)).fetchone()
                for name in json.loads(row[0]) if row else []:
                    drop_triggers(conn, task, name)
                conn.execute(f"DELETE FROM {REGISTRY} WHERE task = ?", (task,))
                if exists(conn, CHANGES):
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
