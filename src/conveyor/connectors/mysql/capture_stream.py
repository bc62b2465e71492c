"""The MariaDB/MySQL binlog stream: a replica connection (``COM_BINLOG_DUMP``
through pymysqlreplication) read from a binlog file and position, as change
events in commit order.

It polls the binlog's end (the non-blocking dump ends there; the next poll
reconnects), reopens a lost dump itself, with backoff, from the last commit it
delivered (the rows of a transaction cut off midway that were already produced
are skipped when the server sends it again, so each change arrives once), and
turns the server's errors into transient, terminal and configuration errors.
Row images become captured ChangeBatches of runs of each table's rows in a
transaction (``captured_rows.RowRuns``): whole rows for the tables the runner
asks to have so (``capture_rows``), read straight from the images, and
RowChanges (:mod:`capture_rows`) in a run of their own form otherwise; DDL
updates the tables' shapes in :mod:`capture_tables`.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from contextlib import suppress
from typing import TYPE_CHECKING, Any

import pymysql
from pymysqlreplication import BinLogStreamReader  # type: ignore[import-untyped]
from pymysqlreplication.event import (  # type: ignore[import-untyped]
    GtidEvent,
    MariadbGtidEvent,
    QueryEvent,
    RotateEvent,
    XidEvent,
)
from pymysqlreplication.row_event import (  # type: ignore[import-untyped]
    DeleteRowsEvent,
    UpdateRowsEvent,
    WriteRowsEvent,
)

from conveyor.connectors.base import EndpointConfig
from conveyor.connectors.captured_rows import RowRuns
from conveyor.connectors.changes import ChangeEvent, Commit
from conveyor.connectors.mysql import connection
from conveyor.connectors.mysql.capture_binlog import (
    ACCESS_DENIED,
    ER_BINLOG_FATAL,
    LOST,
    ControlConnection,
    server_id_for,
)
from conveyor.connectors.mysql.capture_rows import RowChanges
from conveyor.connectors.mysql.capture_tables import TableShapes
from conveyor.connectors.mysql.capture_values import geometry_text
from conveyor.connectors.mysql.connection import error_code, error_reason, text
from conveyor.connectors.mysql.source import ENGINE
from conveyor.core.batch import Checkpoint
from conveyor.core.errors import ConfigError, TerminalError, TransientError
from conveyor.core.schema import TableRef, TableSchema

if TYPE_CHECKING:
    from conveyor.connectors.mysql.capture_binlog import Connection

# The stream logs as part of capture (the SOURCE_CAPTURE log component).
log = logging.getLogger("conveyor.connectors.mysql.capture")

# Idle polling: the non-blocking dump ends at the end of the binlog; the next
# poll reconnects from the position reached. The wait between polls grows while
# idle (so changes arrive within _POLL_MAX_S of their commit).
_POLL_MIN_S = 0.05
_POLL_MAX_S = 1.0
# A position that only passed other tables' transactions is handed on as a
# Commit when the stream goes idle, or after this many of them, so the
# checkpoint does not stay in a binlog file the server may purge.
_EMPTY_COMMITS_FLUSH = 1000
# A dump that sends nothing for this long is taken as a dead connection.
_READ_TIMEOUT_S = 300
# A lost stream (the source restarted, say) is reopened from the last commit
# delivered, after a wait that doubles from the first to the second value.
RECONNECT_MIN_S = 0.5
RECONNECT_MAX_S = 5.0


def _pymysql_connect(**settings: Any) -> Connection:
    """pymysql.connect for pymysqlreplication, which still passes the deprecated
    ``db``/``passwd`` spellings (a DeprecationWarning each)."""
    if "db" in settings:
        settings["database"] = settings.pop("db")
    if "passwd" in settings:
        settings["password"] = settings.pop("passwd")
    return pymysql.connect(**settings)


class MySQLChangeStream:
    """Row changes of the selected tables from a binlog position on, in commit
    order, each transaction closed by a Commit holding the position after it."""

    def __init__(
        self, config: EndpointConfig, task: str, tables: Sequence[TableSchema], file: str, pos: int
    ) -> None:
        self.config = config
        self.task = task
        self.database = connection.params(config).database
        self.acked: Checkpoint | None = None
        self._start = (file, pos)
        self._file, self._pos = file, pos
        self._gtid = ""
        self._in_transaction = False  # rows of the current transaction were yielded
        self._empty_commit: Checkpoint | None = None
        self._pending: deque[ChangeEvent] = deque()
        self._next_poll = 0.0  # monotonic time of the next read from the server
        self._poll_wait = _POLL_MIN_S
        self._empty_commits = 0
        self._control = ControlConnection(config)
        self._row_changes = RowChanges(lambda value: geometry_text(self._control.get(), value))
        self._shapes = TableShapes(
            config.name, self.database, tables, self._control, self._row_changes.forget
        )
        # Reconnection state: rows of the transaction in flight already produced
        # (a replay after a lost connection skips that many), rows of it seen on
        # the current connection, and when the next connection may be tried.
        self._txn_delivered = 0
        self._txn_seen = 0
        # Tables whose rows come in Arrow (``capture_rows``), and the run of rows being gathered.
        self._in_arrow: dict[TableRef, TableSchema] = {}
        self._before: frozenset[TableRef] = frozenset()  # their whole old rows too (BEFORE)
        self._runs = RowRuns()
        self._retry_at = 0.0
        self._retry_delay = RECONNECT_MIN_S
        self._reader = self._open_reader(file, pos)

    @property
    def tables(self) -> dict[TableRef, TableSchema]:
        """The captured tables by name, with the shape last read from the catalog."""
        return self._shapes.tables

    def _open_reader(self, file: str, pos: int) -> Any:
        """A binlog dump from ``file:pos`` (connected on its first read)."""
        p = connection.params(self.config)
        settings = {
            "host": p.host,
            "port": p.port,
            "user": p.user or "",
            "password": p.password or "",
            "charset": "utf8mb4",
            "connect_timeout": connection.CONNECT_TIMEOUT_S,
            "read_timeout": _READ_TIMEOUT_S,
        }
        return BinLogStreamReader(
            connection_settings=settings,
            server_id=server_id_for(self.task),
            resume_stream=True,
            blocking=False,
            log_file=file,
            log_pos=pos,
            only_schemas=[self.database],
            only_tables=sorted(ref.name for ref in self.tables),
            only_events=[
                MariadbGtidEvent,
                GtidEvent,
                QueryEvent,
                RotateEvent,
                XidEvent,
                WriteRowsEvent,
                UpdateRowsEvent,
                DeleteRowsEvent,
            ],
            enable_logging=False,
            # A table's map is parsed once per table id, not before every rows
            # event (most of the per-change cost otherwise). ALTER TABLE gives
            # the table a new id, so a changed shape is still read afresh; ids
            # start again after a server restart, so the maps are dropped at
            # every binlog rotation (a restart always begins a new file).
            freeze_schema=True,
            pymysql_wrapper=_pymysql_connect,
        )

    # -- ChangeStream --------------------------------------------------------

    def events(self, idle_timeout: float) -> Iterator[ChangeEvent | None]:
        deadline = time.monotonic() + idle_timeout
        while True:
            if self._pending:
                # Buffered, so a consumer that closes this generator and asks
                # again loses nothing.
                yield self._pending.popleft()
                deadline = time.monotonic() + idle_timeout
                continue
            if time.monotonic() >= max(self._next_poll, self._retry_at):
                try:
                    event = self._fetch()
                    if event is not None:
                        self._poll_wait, self._next_poll = _POLL_MIN_S, 0.0
                        self._pending.extend(self._handle(event))
                        self._retry_delay = RECONNECT_MIN_S
                        continue
                except TransientError as exc:
                    self._lost(exc)
                    continue
                # The end of the binlog: the next poll reconnects, less often while idle.
                if self._runs.pending:
                    self._pending.extend(self._runs.flush())
                    continue
                self._next_poll = time.monotonic() + self._poll_wait
                self._poll_wait = min(self._poll_wait * 2, _POLL_MAX_S)
                if self._empty_commit is not None and not self._in_transaction:
                    self._pending.append(self._flush_empty_commit())
                    continue
            now = time.monotonic()
            if now >= deadline:
                yield None
                deadline = time.monotonic() + idle_timeout
                continue
            time.sleep(max(0.0, min(max(self._next_poll, self._retry_at), deadline) - now))

    def _lost(self, error: TransientError) -> None:
        """The dump connection failed: read again, after a wait, from the last
        commit delivered. The transaction in flight is sent again from its start;
        the rows of it already produced are skipped, so each arrives once."""
        log.warning("endpoint %r: %s: reconnecting in %.1f s", self.config.name, error, self._retry_delay)
        with suppress(Exception):
            self._reader.close()
        self._txn_seen = 0
        self._reader = self._open_reader(self._file, self._pos)
        self._retry_at = time.monotonic() + self._retry_delay
        self._retry_delay = min(self._retry_delay * 2, RECONNECT_MAX_S)

    def ack(self, position: Checkpoint) -> None:
        """Nothing to release: the server purges binlogs by its own policy."""
        self.acked = position

    def close(self) -> None:
        with suppress(Exception):
            self._reader.close()
        self._control.close()

    # -- reading -------------------------------------------------------------

    def _fetch(self) -> Any:
        try:
            return self._reader.fetchone()
        except pymysql.err.MySQLError as exc:
            with suppress(Exception):
                self._reader.close()
            code, reason = error_code(exc), error_reason(exc)
            where = f"{self._file}:{self._pos}"
            if code == ER_BINLOG_FATAL:
                raise TerminalError(
                    f"endpoint {self.config.name!r}: the binlog from {where} is no longer available "
                    f"({reason}): resync required (reload the tables; the server purged binlogs "
                    "this task had not read — keep binlogs longer, e.g. binlog_expire_logs_seconds)"
                ) from None
            if code in ACCESS_DENIED:
                raise ConfigError(
                    f"endpoint {self.config.name!r}: cannot read the binlog: {reason} "
                    "(the user needs REPLICATION SLAVE and REPLICATION CLIENT / BINLOG MONITOR)"
                ) from None
            if code in LOST or isinstance(exc, pymysql.err.OperationalError):
                raise TransientError(
                    f"endpoint {self.config.name!r}: lost the binlog stream at {where}: {reason}"
                ) from None
            raise TerminalError(
                f"endpoint {self.config.name!r}: reading the binlog at {where} failed: {reason}"
            ) from None
        except OSError as exc:
            with suppress(Exception):
                self._reader.close()
            raise TransientError(
                f"endpoint {self.config.name!r}: lost the binlog stream at {self._file}:{self._pos}: {exc}"
            ) from None

    def _before_start(self, file: str, end: int) -> bool:
        """Whether an event ending at ``file:end`` lies at or before the start."""
        start_file, start_pos = self._start
        return (file, end) <= (start_file, start_pos)

    def capture_rows(
        self, tables: Mapping[TableRef, TableSchema], before: AbstractSet[TableRef] = frozenset()
    ) -> None:
        """Deliver these tables' whole rows as captured ChangeBatches from now
        on, while their shape is the one given; those of the tables in
        ``before`` with their whole old rows: an UPDATE's before image, a
        DELETE's row (CapturesRowsInArrow)."""
        self._pending.extend(self._runs.flush())
        self._in_arrow = dict(tables)
        self._before = frozenset(before)

    def _handle(self, event: Any) -> Iterator[ChangeEvent]:
        if not isinstance(event, WriteRowsEvent | UpdateRowsEvent | DeleteRowsEvent):
            yield from self._runs.flush()  # rows before whatever comes next
        if isinstance(event, RotateEvent):
            self._reader.table_map.clear()  # table ids of another file may mean other tables
            return
        file, end = str(self._reader.log_file), int(self._reader.log_pos or 0)
        if end and self._before_start(file, end):
            return
        if isinstance(event, MariadbGtidEvent | GtidEvent):
            self._gtid = str(event.gtid)
            return
        if isinstance(event, XidEvent):
            yield from self._commit(file, end, event.timestamp)
            return
        if isinstance(event, QueryEvent):
            yield from self._query(event, file, end)
            return
        if isinstance(event, WriteRowsEvent | UpdateRowsEvent | DeleteRowsEvent):
            ref = TableRef(text(event.schema), text(event.table))
            if ref not in self.tables:
                return
            yield from self._rows(ref, event)

    def _position(self, file: str, end: int) -> Checkpoint:
        self._file, self._pos = file, end
        return Checkpoint(ENGINE, {"file": file, "pos": end, "gtid": self._gtid})

    def _commit(self, file: str, end: int, timestamp: int) -> Iterator[ChangeEvent]:
        position = self._position(file, end)
        self._txn_delivered = self._txn_seen = 0
        if not self._in_transaction:
            # Only other tables' changes: hand the position on later, in bulk.
            self._empty_commit = position
            self._empty_commits += 1
            if self._empty_commits >= _EMPTY_COMMITS_FLUSH:
                yield self._flush_empty_commit()
            return
        self._in_transaction = False
        self._empty_commit, self._empty_commits = None, 0
        yield Commit(position, dt.datetime.fromtimestamp(timestamp, dt.UTC) if timestamp else None)

    def _flush_empty_commit(self) -> Commit:
        position = self._empty_commit
        assert position is not None
        self._empty_commit, self._empty_commits = None, 0
        return Commit(position)

    def _query(self, event: Any, file: str, end: int) -> Iterator[ChangeEvent]:
        query = text(event.query).strip()
        upper = query.upper()
        if upper in {"COMMIT", "COMMIT;"}:
            # Non-transactional tables end their row events with a COMMIT query.
            yield from self._commit(file, end, event.timestamp)
            return
        emitted = self._shapes.ddl(query, text(event.schema))
        if not emitted:
            return
        yield from emitted
        # DDL commits implicitly, as its own transaction.
        self._in_transaction = True
        yield from self._commit(file, end, event.timestamp)

    def add_table(self, table: TableSchema) -> None:
        """Capture ``table`` from now on (SupportsAddTable). The runner calls it
        on the TableDefinition of the table's CREATE, before reading on: the
        binlog is read again from the end of that statement with the table among
        those whose row events are decoded, so every row written to it since
        its creation is read (the load's later snapshot holds some of them too;
        applied by key, they converge)."""
        self._shapes.add(table)
        with suppress(Exception):
            self._reader.close()
        self._txn_seen = 0
        self._reader = self._open_reader(self._file, self._pos)

    def _rows(self, ref: TableRef, event: Any) -> Iterator[ChangeEvent]:
        rows = self._row_changes.decode(event)
        names = {c.name for c in event.columns or ()}
        table = self.tables[ref]
        if names and names != set(table.column_names):
            # The binlog's shape differs from the one known: a DDL this stream
            # did not see (or not yet parsed) — the catalog says what it is now.
            yield from self._runs.flush()
            yield from self._shapes.refresh(only=ref)
            table = self.tables[ref]
        self._in_transaction = True
        in_arrow = self._in_arrow.get(ref) == table
        for row in rows:
            self._txn_seen += 1
            if self._txn_seen <= self._txn_delivered:
                continue  # produced before the connection was lost
            self._txn_delivered += 1
            whole = self._row_changes.whole_row(table, event, row, ref in self._before) if in_arrow else None
            if whole is None:  # in a run of its own form, after the table's rows before it
                yield from self._runs.add(self._row_changes.change(table, event, row), table)
            else:
                yield from self._runs.add_row(table, *whole)
