"""MariaDB and MySQL change capture from the binary log.

The stream is a replica connection (``COM_BINLOG_DUMP`` through
pymysqlreplication) resuming from a binlog file and position. It needs
``log_bin`` on, ``binlog_format=ROW``, ``binlog_row_image=FULL`` and
``binlog_row_metadata=FULL`` (row events then carry column names), and a user
with REPLICATION SLAVE and REPLICATION CLIENT (MariaDB: BINLOG MONITOR).

Positions are ``Checkpoint("mysql", {"file", "pos", "gtid"})``: ``file``/``pos``
is where the next transaction starts and is what a stream resumes from;
``gtid`` is informational (MariaDB ``domain-server-seq``, MySQL ``uuid:n``
of the transaction, or the server's GTID position at capture start).

A full load that must match the capture start reads the snapshot
:meth:`MySQLChangeSource.begin_capture` opened (``export_snapshot=True``), taken
over with :meth:`MySQLChangeSource.capture_snapshot`. On MariaDB that snapshot and
its binlog position come lock-free from ``START TRANSACTION WITH CONSISTENT
SNAPSHOT`` and the ``binlog_snapshot_file``/``binlog_snapshot_position``
status; on MySQL a short ``FLUSH TABLES WITH READ LOCK`` (or, without the
RELOAD privilege, ``LOCK TABLES ... READ`` on the selected tables) holds
commits while the snapshot starts and the position is read.

A lost dump connection (the source restarted, say) is reopened by the stream
itself, with backoff, from the last commit it delivered; the rows of a
transaction cut off midway that were already produced are skipped when the
server sends it again, so each change arrives once (as PostgreSQL's stream does).

Row values arrive decoded by pymysqlreplication and are converted to exactly
the values the full load (:mod:`conveyor.connectors.mysql.source`) produces for
the same column, so validation compares them equal.

This module is the source (preflight, capture start and the snapshot hand-over,
opening streams). Its parts: ``capture_preflight`` (binlog settings and
privileges), ``capture_binlog`` (positions, error codes, server ids),
``capture_stream`` (the dump: polling, reconnects, commits), ``capture_tables``
(table shapes through DDL), ``capture_rows`` (rows events as RowChanges) and
``capture_values`` (binlog values as the full load's).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import suppress
from typing import TYPE_CHECKING

import pymysql

from conveyor.connectors.base import EndpointConfig
from conveyor.connectors.changes import CaptureStart, ChangeSource, ChangeStream
from conveyor.connectors.mysql import connection
from conveyor.connectors.mysql.capture_binlog import (
    ACCESS_DENIED,
    binlog_status,
    gtid_position,
    is_mariadb,
    server_id_for,
)
from conveyor.connectors.mysql.capture_preflight import (
    capture_problems_message,
    grant_problems,
    setting_problems,
)
from conveyor.connectors.mysql.capture_stream import MySQLChangeStream
from conveyor.connectors.mysql.connection import error_code, error_reason, text
from conveyor.connectors.mysql.snapshot_connection import SnapshotConnection, open_snapshot_connection
from conveyor.connectors.mysql.source import ENGINE, MySQLSnapshot, MySQLSource, begin_snapshot, qualified
from conveyor.core.batch import Checkpoint
from conveyor.core.errors import ConfigError, ConnectionFailed, TerminalError
from conveyor.core.schema import TableSchema


class MySQLChangeSource(MySQLSource):
    """A MySQL/MariaDB source that also captures changes from the binlog.

    Full-load-and-CDC handover: ``begin_capture(task, tables, export_snapshot=True)``
    opens a consistent snapshot at exactly the returned position (its
    ``snapshot_id`` is ``"file:pos"``); ``capture_snapshot(start)`` (alias
    ``snapshot_for``) hands that snapshot, a :class:`MySQLSnapshot`, to the full
    load, which owns and closes it. ``snapshot()`` stays a fresh, unrelated
    snapshot; ``close()`` closes snapshots never taken.
    """

    def __init__(self, config: EndpointConfig) -> None:
        super().__init__(config)
        self._snapshots: dict[str, MySQLSnapshot] = {}

    # -- preflight ---------------------------------------------------------

    def preflight(self, tables: Sequence[TableSchema]) -> list[str]:
        conn = connection.connect(self.config)
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "SHOW VARIABLES WHERE Variable_name IN "
                    "('log_bin', 'binlog_format', 'binlog_row_image', 'binlog_row_metadata')"
                )
                variables = {text(name): text(value) for name, value in cur.fetchall()}
                grants: list[str] = []
                with suppress(pymysql.err.MySQLError):
                    cur.execute("SHOW GRANTS")
                    grants = [text(row[0]) for row in cur.fetchall()]
        except pymysql.err.MySQLError as exc:
            raise ConnectionFailed(
                f"endpoint {self.config.name!r}: cannot check the binlog settings: {error_reason(exc)}"
            ) from None
        finally:
            conn.close()
        problems = setting_problems(variables)
        if grants:
            problems += grant_problems(grants)
        if problems:
            raise ConfigError(capture_problems_message(self.config.name, problems))
        return [
            f"table {table.ref} has no primary key: its updates and deletes cannot be matched "
            "to target rows exactly"
            for table in tables
            if not table.primary_key
        ]

    # -- capture start and the full load's snapshot --------------------------

    def begin_capture(self, task: str, tables: Sequence[TableSchema], export_snapshot: bool) -> CaptureStart:
        if not export_snapshot:
            return CaptureStart(self.current_position())
        conn = open_snapshot_connection(self.config)
        try:
            if is_mariadb(conn):
                file, pos, gtid = self._mariadb_snapshot(conn)
            else:
                file, pos, gtid = self._locked_snapshot(conn, tables)
        except Exception as exc:
            conn.close()
            if conn.failure(exc) is None and not isinstance(exc, pymysql.err.MySQLError):
                raise
            raise self._start_failure(exc) from None
        except BaseException:
            conn.close()
            raise
        snapshot_id = f"{file}:{pos}"
        previous = self._snapshots.pop(snapshot_id, None)
        if previous is not None:
            previous.close()
        self._snapshots[snapshot_id] = MySQLSnapshot(self.config, conn=conn)
        position = Checkpoint(ENGINE, {"file": file, "pos": pos, "gtid": gtid})
        return CaptureStart(position, snapshot_id=snapshot_id)

    def current_position(self) -> Checkpoint:
        """The binlog's end now (the stream delivers a ``Commit`` there once it
        has read up to it, even with nothing captured in between)."""
        conn = connection.connect(self.config)
        try:
            with conn.cursor() as cur:
                file, pos = binlog_status(cur)
                gtid = gtid_position(cur, is_mariadb(conn), file, pos)
        except pymysql.err.MySQLError as exc:
            raise self._start_failure(exc) from None
        finally:
            conn.close()
        return Checkpoint(ENGINE, {"file": file, "pos": pos, "gtid": gtid})

    def position_reached(self, position: Checkpoint, end: Checkpoint) -> bool:
        here, there = position.position, end.position
        return (str(here["file"]), int(here["pos"])) >= (str(there["file"]), int(there["pos"]))

    def capture_snapshot(self, start: CaptureStart) -> MySQLSnapshot:
        """The snapshot ``begin_capture(..., export_snapshot=True)`` opened at
        ``start.position``; the caller owns it from now on (and closes it). It
        can be taken once, in the process that began the capture."""
        snapshot = self._snapshots.pop(start.snapshot_id or "", None)
        if snapshot is None:
            raise TerminalError(
                f"endpoint {self.config.name!r}: no snapshot was opened for capture start "
                f"{start.snapshot_id!r} in this process (begin_capture with export_snapshot first)"
            )
        return snapshot

    snapshot_for = capture_snapshot

    def _mariadb_snapshot(self, conn: SnapshotConnection) -> tuple[str, int, str]:
        """MariaDB: the binlog position of a consistent snapshot, without a lock."""
        begin_snapshot(conn)
        with conn.cursor() as cur:
            cur.execute("SHOW STATUS LIKE 'binlog_snapshot_%'")
            status = {text(k).lower(): text(v) for k, v in cur.fetchall()}
            file, pos = status.get("binlog_snapshot_file"), status.get("binlog_snapshot_position")
            if not file or pos is None:
                raise ConfigError(
                    f"endpoint {self.config.name!r}: the server reports no binlog snapshot position "
                    "(is log_bin ON?)"
                )
            gtid = gtid_position(cur, True, file, int(pos))
        return file, int(pos), gtid

    def _locked_snapshot(
        self, conn: SnapshotConnection, tables: Sequence[TableSchema]
    ) -> tuple[str, int, str]:
        """MySQL: hold commits while the snapshot starts and the position is read."""
        lock = connection.connect(self.config)
        try:
            with lock.cursor() as lcur:
                try:
                    lcur.execute("FLUSH TABLES WITH READ LOCK")
                except pymysql.err.MySQLError as exc:
                    if error_code(exc) not in ACCESS_DENIED or not tables:
                        raise
                    # Without RELOAD: lock only the selected tables (other tables'
                    # commits do not matter to this capture).
                    lcur.execute("LOCK TABLES " + ", ".join(f"{qualified(t.ref)} READ" for t in tables))
                try:
                    begin_snapshot(conn)
                    file, pos = binlog_status(lcur)
                    gtid = gtid_position(lcur, False, file, pos)
                finally:
                    lcur.execute("UNLOCK TABLES")
        finally:
            lock.close()
        return file, pos, gtid

    def _start_failure(self, exc: Exception) -> Exception:
        if error_code(exc) in ACCESS_DENIED:
            return ConfigError(
                f"endpoint {self.config.name!r}: cannot read the binlog position: {error_reason(exc)} "
                "(the user needs REPLICATION CLIENT, on MariaDB BINLOG MONITOR)"
            )
        return ConnectionFailed(f"endpoint {self.config.name!r}: cannot start capture: {error_reason(exc)}")

    # -- the stream ----------------------------------------------------------

    def open_stream(self, task: str, tables: Sequence[TableSchema], start: Checkpoint) -> MySQLChangeStream:
        position = start.position
        if start.engine != ENGINE or "file" not in position or "pos" not in position:
            raise TerminalError(
                f"endpoint {self.config.name!r}: checkpoint {start.position!r} is not a binlog position: "
                "resync required"
            )
        return MySQLChangeStream(self.config, task, tables, str(position["file"]), int(position["pos"]))

    def end_capture(self, task: str) -> None:
        """Nothing to remove: the binlog is the server's, purged by its own policy."""

    def close(self) -> None:
        snapshots, self._snapshots = list(self._snapshots.values()), {}
        for snapshot in snapshots:
            snapshot.close()
        super().close()


if TYPE_CHECKING:

    def _conforms(source: MySQLChangeSource, stream: MySQLChangeStream) -> tuple[ChangeSource, ChangeStream]:
        return source, stream


__all__ = [
    "MySQLChangeSource",
    "MySQLChangeStream",
    "capture_problems_message",
    "grant_problems",
    "server_id_for",
    "setting_problems",
]
