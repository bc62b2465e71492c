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

Row values arrive decoded by pymysqlreplication and are converted here to
exactly the values the full load (:mod:`conveyor.connectors.mysql.source`)
produces for the same column, so validation compares them equal.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import time
import uuid
import zlib
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import suppress
from decimal import Decimal
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

from conveyor.connectors.arrow_rows import Unrepresentable
from conveyor.connectors.base import EndpointConfig
from conveyor.connectors.changes import (
    CaptureStart,
    ChangeEvent,
    ChangeSource,
    ChangeStream,
    Commit,
    RowChange,
    TableDefinition,
    TableDropped,
    Truncate,
)
from conveyor.connectors.mysql import connection
from conveyor.connectors.mysql.ddl import (
    AlteredColumns,
    altered_columns,
    created_tables,
    dropped_tables,
    renamed_away,
)
from conveyor.connectors.mysql.row_images import RowImageDecoder
from conveyor.connectors.mysql.source import ENGINE, MySQLSnapshot, MySQLSource, qualified, read_tables
from conveyor.connectors.mysql.types import SPATIAL, enum_labels
from conveyor.core.batch import Checkpoint, Op
from conveyor.core.errors import ConfigError, ConnectionFailed, TerminalError, TransientError
from conveyor.core.schema import Column, TableRef, TableSchema
from conveyor.core.types import Kind

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from typing import TypeAlias

    Connection: TypeAlias = pymysql.connections.Connection[pymysql.cursors.Cursor]

# Binlog settings capture needs: variable -> required value. binlog_row_metadata
# exists from MariaDB 10.5 / MySQL 8.0.1 and is only checked where it exists.
REQUIRED_SETTINGS: dict[str, str] = {
    "log_bin": "ON",
    "binlog_format": "ROW",
    "binlog_row_image": "FULL",
    "binlog_row_metadata": "FULL",
}
_OPTIONAL_SETTINGS = frozenset({"binlog_row_metadata"})
# How each setting is changed: log_bin only at server start; the others at run
# time too (new sessions), and in the configuration file to outlive a restart.
_HOW_TO_SET: dict[str, str] = {
    "log_bin": "log_bin under [mysqld] in the server's configuration, then restart the server",
    "binlog_format": "SET GLOBAL binlog_format = 'ROW', and binlog_format=ROW under [mysqld]",
    "binlog_row_image": "SET GLOBAL binlog_row_image = 'FULL', and binlog_row_image=FULL under [mysqld]",
    "binlog_row_metadata": (
        "SET GLOBAL binlog_row_metadata = 'FULL', and binlog_row_metadata=FULL under [mysqld]"
    ),
}

# Replica server ids for capture streams: a high range unlikely to collide with
# real replicas (MySQL server ids are 32-bit).
_SERVER_ID_BASE = 0x60000000
_SERVER_ID_SPAN = 0x1FFFFFFF

_ER_BINLOG_FATAL = 1236  # ER_MASTER_FATAL_ERROR_READING_BINLOG: purged, missing, corrupt
_LOST = frozenset({2003, 2006, 2013, 2055})
_ACCESS_DENIED = frozenset({1044, 1045, 1142, 1227})

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

_DDL = re.compile(r"^\s*(?:/\*.*?\*/\s*)*(ALTER|CREATE|DROP|RENAME|TRUNCATE)\b", re.IGNORECASE | re.DOTALL)
_NAME = r"(?:`(?:[^`]|``)+`|[\w$]+)"
_TRUNCATE = re.compile(
    rf"^\s*(?:/\*.*?\*/\s*)*TRUNCATE\s+(?:TABLE\s+)?({_NAME})(?:\s*\.\s*({_NAME}))?\s*;?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_EPOCH = dt.datetime(1970, 1, 1)  # pymysqlreplication gives TIMESTAMPs as naive UTC
_ONE_DAY = dt.timedelta(days=1)
_SIZE = re.compile(r"\(\s*(\d+)\s*\)")
_UUID_BYTES = 16


def server_id_for(task: str) -> int:
    """A replica server id for the task's stream: stable, in a high range."""
    return _SERVER_ID_BASE + zlib.crc32(task.encode()) % _SERVER_ID_SPAN


def setting_problems(variables: Mapping[str, str]) -> list[str]:
    """Each binlog setting that prevents capture, with its current and required
    value. ``variables`` is SHOW VARIABLES as a dict (names in any case)."""
    values = {name.lower(): str(value) for name, value in variables.items()}
    problems = []
    for name, required in REQUIRED_SETTINGS.items():
        current = values.get(name)
        if current is None:
            if name in _OPTIONAL_SETTINGS:
                continue
            problems.append(f"{name} is not set (needs {required}: {_HOW_TO_SET[name]})")
        elif current.upper() != required and not (required == "ON" and current == "1"):
            problems.append(f"{name} is {current} (needs {required}: {_HOW_TO_SET[name]})")
    return problems


def grant_problems(grants: Sequence[str]) -> list[str]:
    """The replication privileges SHOW GRANTS lacks, or [] when they are there or
    cannot be told (privileges granted through a role)."""
    on_all = [g.upper() for g in grants if re.search(r"\bON\s+\*\.\*\s+TO\b", g, re.IGNORECASE)]
    if any("ALL PRIVILEGES" in g for g in on_all):
        return []
    if any(re.match(r"^\s*GRANT\s+[`'\"]", g) for g in grants):
        return []  # a role: its privileges are not listed here
    text = " ".join(on_all)
    problems = []
    if not re.search(r"\bREPLICATION (SLAVE|REPLICA)\b", text):
        problems.append("the user lacks REPLICATION SLAVE (GRANT REPLICATION SLAVE ON *.* TO ...)")
    if not re.search(r"\b(REPLICATION CLIENT|BINLOG MONITOR|SUPER)\b", text):
        problems.append(
            "the user lacks REPLICATION CLIENT (MariaDB: BINLOG MONITOR) (GRANT ... ON *.* TO ...)"
        )
    return problems


def capture_problems_message(endpoint: str, problems: Sequence[str]) -> str:
    return f"endpoint {endpoint!r}: the binlog cannot be captured: " + "; ".join(problems)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes | bytearray) else str(value)


def _unquote(name: str) -> str:
    return name[1:-1].replace("``", "`") if name.startswith("`") else name


def _is_mariadb(conn: Connection) -> bool:
    with conn.cursor() as cur:
        cur.execute("SELECT VERSION()")
        row = cur.fetchone()
    return row is not None and "mariadb" in _text(row[0]).lower()


def _binlog_status(cur: pymysql.cursors.Cursor) -> tuple[str, int]:
    """The current binlog file and position (SHOW BINARY LOG STATUS on MySQL 8.2+)."""
    try:
        cur.execute("SHOW BINARY LOG STATUS")
    except pymysql.err.ProgrammingError:
        cur.execute("SHOW MASTER STATUS")
    row = cur.fetchone()
    if row is None:
        raise ConfigError("the server writes no binary log (log_bin is OFF)")
    return _text(row[0]), int(row[1])


def _gtid_position(cur: pymysql.cursors.Cursor, mariadb: bool, file: str, pos: int) -> str:
    """The GTID position at ``file:pos`` (MariaDB: exactly; MySQL: gtid_executed)."""
    if mariadb:
        cur.execute("SELECT BINLOG_GTID_POS(%s, %s)", (file, pos))
    else:
        cur.execute("SELECT @@global.gtid_executed")
    row = cur.fetchone()
    return "" if row is None or row[0] is None else " ".join(_text(row[0]).split())


class _Unrepresentable(Exception):
    def __init__(self, value: Any, why: str) -> None:
        super().__init__(why)
        self.value = value
        self.why = why


Convert = Callable[[Any, str], Any]  # (binlog value, its none-source) -> in-flight value


def _base(native: str | None) -> str:
    return (native or "").split("(")[0].strip().split(" ")[0].lower()


class _Converters:
    """Per column: how pymysqlreplication's value becomes the in-flight value the
    full load gives for the column."""

    def __init__(self, wkt: Callable[[bytes], str]) -> None:
        self._wkt = wkt

    def for_column(self, column: Column) -> Convert:
        kind, native, base = column.type.kind, column.type.native, _base(column.type.native)
        if base == "bit":
            if kind is Kind.BOOLEAN:
                return lambda v, _s: _bits(v) != 0
            if kind is Kind.DECIMAL:
                return lambda v, _s: Decimal(_bits(v))
            return lambda v, _s: _bits(v)
        if base == "set":
            order = {label: i for i, label in enumerate(enum_labels(native or ""))}
            return lambda v, s: _set_text(v, s, order)
        if base == "year":
            # The binlog's byte is the year minus 1900, and 0 is year 0000:
            # pymysqlreplication reads it as 1900, a year a YEAR column cannot hold.
            return lambda v, _s: 0 if v == 1900 else v
        if base in SPATIAL and kind is Kind.TEXT:
            return lambda v, s: None if v is None else self._wkt(v)
        if kind is Kind.DECIMAL:
            return lambda v, _s: None if v is None else Decimal(v)
        if kind is Kind.NUMERIC:
            return lambda v, _s: None if v is None else format(Decimal(v), "f")
        if kind is Kind.DATE:
            return _date
        if kind is Kind.TIMESTAMP:
            return _datetime
        if kind is Kind.TIMESTAMPTZ:
            return _timestamp
        if kind is Kind.TIME:
            return _time
        if kind is Kind.JSON:
            return lambda v, _s: None if v is None else _json_text(v)
        if kind is Kind.UUID:
            return lambda v, _s: None if v is None else _uuid(v)
        if kind in {Kind.TEXT, Kind.ENUM}:
            return lambda v, _s: None if v is None else _string(v)
        if kind is Kind.BYTES:
            width = _fixed_binary_width(native)
            return lambda v, _s: None if v is None else _bytes(v, width)
        return lambda v, _s: v


def _bits(value: Any) -> int:
    if isinstance(value, str):
        return int(value, 2) if value else 0
    if isinstance(value, bytes | bytearray):
        return int.from_bytes(value, "big")
    return int(value)


def _set_text(value: Any, source: str, order: Mapping[str, int]) -> str | None:
    if value is None:
        # pymysqlreplication gives None for the empty set too (none-source "empty set").
        return "" if source == "empty set" else None
    if isinstance(value, str):
        return value
    members = sorted((_string(m) for m in value), key=lambda m: (order.get(m, len(order)), m))
    return ",".join(members)


def _string(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        try:
            return bytes(value).decode()
        except UnicodeDecodeError:
            raise _Unrepresentable(value, "it is not UTF-8 text") from None
    return str(value)


def _uuid(value: Any) -> str:
    if isinstance(value, str):
        try:
            return str(uuid.UUID(value))
        except ValueError:
            value = value.encode()  # its bytes, decoded as text ('' for the all-zero uuid)
    if isinstance(value, bytes | bytearray):
        # MariaDB's uuid arrives as its 16 bytes, trailing zero bytes stripped.
        if len(value) > _UUID_BYTES:
            raise _Unrepresentable(value, "it is not a 16-byte uuid")
        return str(uuid.UUID(bytes=bytes(value).ljust(_UUID_BYTES, b"\0")))
    return _string(value).lower()


def _bytes(value: Any, width: int | None) -> bytes:
    data = value.encode() if isinstance(value, str) else bytes(value)
    # binary(n) arrives without its trailing zero padding; the full load reads it padded.
    if width is not None and len(data) < width:
        data += b"\0" * (width - len(data))
    return data


def _fixed_binary_width(native: str | None) -> int | None:
    if _base(native) != "binary":
        return None
    m = _SIZE.search(native or "")
    return int(m.group(1)) if m else 1


def _date(value: Any, source: str) -> dt.date | None:
    if value is None:
        if source.startswith("out of"):
            raise _Unrepresentable("0000-00-00", "a date with a zero year, month or day has no calendar day")
        return None
    return value  # type: ignore[no-any-return]


def _datetime(value: Any, source: str) -> dt.datetime | None:
    if value is None:
        if source.startswith("out of"):
            raise _Unrepresentable(
                "0000-00-00 00:00:00", "a date with a zero year, month or day has no calendar day"
            )
        return None
    return value  # type: ignore[no-any-return]


def _timestamp(value: Any, _source: str) -> dt.datetime | None:
    if value is None:
        return None
    if value == _EPOCH:
        # TIMESTAMP's range starts one second after the epoch: 0 is the zero value.
        raise _Unrepresentable(
            "0000-00-00 00:00:00", "a date with a zero year, month or day has no calendar day"
        )
    return value.replace(tzinfo=dt.UTC)  # type: ignore[no-any-return]


def _time(value: Any, _source: str) -> dt.time | None:
    if value is None:
        return None
    if isinstance(value, dt.timedelta):
        if dt.timedelta(0) <= value < _ONE_DAY:
            micros = value // dt.timedelta(microseconds=1)
            seconds, micro = divmod(micros, 1_000_000)
            return dt.time(seconds // 3600, seconds // 60 % 60, seconds % 60, micro)
        raise _Unrepresentable(str(value), "a time of day must lie within 00:00:00..23:59:59.999999")
    raise _Unrepresentable(value, "it is not a time of day")


def _json_text(value: Any) -> str:
    """MariaDB's json is longtext (a str as stored). MySQL's binary JSON arrives
    parsed: spell it as MySQL prints it."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        return _string(value)
    return json.dumps(_json_plain(value), ensure_ascii=False, separators=(", ", ": "))


def _json_plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {_string(k): _json_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_plain(v) for v in value]
    if isinstance(value, bytes | bytearray):
        return _string(value)
    if isinstance(value, Decimal):
        return float(value)
    return value


def _pymysql_connect(**settings: Any) -> Connection:
    """pymysql.connect for pymysqlreplication, which still passes the deprecated
    ``db``/``passwd`` spellings (a DeprecationWarning each)."""
    if "db" in settings:
        settings["database"] = settings.pop("db")
    if "passwd" in settings:
        settings["password"] = settings.pop("passwd")
    return pymysql.connect(**settings)


def _code(exc: BaseException) -> int | None:
    return exc.args[0] if exc.args and isinstance(exc.args[0], int) else None


def _reason(exc: BaseException) -> str:
    return " ".join(str(exc.args[-1] if exc.args else exc).split())


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
                variables = {_text(name): _text(value) for name, value in cur.fetchall()}
                grants: list[str] = []
                with suppress(pymysql.err.MySQLError):
                    cur.execute("SHOW GRANTS")
                    grants = [_text(row[0]) for row in cur.fetchall()]
        except pymysql.err.MySQLError as exc:
            raise ConnectionFailed(
                f"endpoint {self.config.name!r}: cannot check the binlog settings: {_reason(exc)}"
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
        conn = connection.connect(self.config)
        try:
            mariadb = _is_mariadb(conn)
            if not export_snapshot:
                try:
                    with conn.cursor() as cur:
                        file, pos = _binlog_status(cur)
                        gtid = _gtid_position(cur, mariadb, file, pos)
                except pymysql.err.MySQLError as exc:
                    raise self._start_failure(exc) from None
                finally:
                    conn.close()
                return CaptureStart(Checkpoint(ENGINE, {"file": file, "pos": pos, "gtid": gtid}))
            try:
                if mariadb:
                    file, pos, gtid = self._mariadb_snapshot(conn)
                else:
                    file, pos, gtid = self._locked_snapshot(conn, tables)
            except pymysql.err.MySQLError as exc:
                conn.close()
                raise self._start_failure(exc) from None
        except BaseException:
            with suppress(Exception):
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
                file, pos = _binlog_status(cur)
                gtid = _gtid_position(cur, _is_mariadb(conn), file, pos)
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

    @staticmethod
    def _begin_snapshot(cur: pymysql.cursors.Cursor) -> None:
        cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")

    def _mariadb_snapshot(self, conn: Connection) -> tuple[str, int, str]:
        """MariaDB: the binlog position of a consistent snapshot, without a lock."""
        with conn.cursor() as cur:
            self._begin_snapshot(cur)
            cur.execute("SHOW STATUS LIKE 'binlog_snapshot_%'")
            status = {_text(k).lower(): _text(v) for k, v in cur.fetchall()}
            file, pos = status.get("binlog_snapshot_file"), status.get("binlog_snapshot_position")
            if not file or pos is None:
                raise ConfigError(
                    f"endpoint {self.config.name!r}: the server reports no binlog snapshot position "
                    "(is log_bin ON?)"
                )
            gtid = _gtid_position(cur, True, file, int(pos))
        return file, int(pos), gtid

    def _locked_snapshot(self, conn: Connection, tables: Sequence[TableSchema]) -> tuple[str, int, str]:
        """MySQL: hold commits while the snapshot starts and the position is read."""
        lock = connection.connect(self.config)
        try:
            with lock.cursor() as lcur:
                try:
                    lcur.execute("FLUSH TABLES WITH READ LOCK")
                except pymysql.err.MySQLError as exc:
                    if _code(exc) not in _ACCESS_DENIED or not tables:
                        raise
                    # Without RELOAD: lock only the selected tables (other tables'
                    # commits do not matter to this capture).
                    lcur.execute("LOCK TABLES " + ", ".join(f"{qualified(t.ref)} READ" for t in tables))
                try:
                    with conn.cursor() as cur:
                        self._begin_snapshot(cur)
                    file, pos = _binlog_status(lcur)
                    gtid = _gtid_position(lcur, False, file, pos)
                finally:
                    lcur.execute("UNLOCK TABLES")
        finally:
            lock.close()
        return file, pos, gtid

    def _start_failure(self, exc: pymysql.err.MySQLError) -> Exception:
        if _code(exc) in _ACCESS_DENIED:
            return ConfigError(
                f"endpoint {self.config.name!r}: cannot read the binlog position: {_reason(exc)} "
                "(the user needs REPLICATION CLIENT, on MariaDB BINLOG MONITOR)"
            )
        return ConnectionFailed(f"endpoint {self.config.name!r}: cannot start capture: {_reason(exc)}")

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


class MySQLChangeStream:
    """Row changes of the selected tables from a binlog position on, in commit
    order, each transaction closed by a Commit holding the position after it."""

    def __init__(
        self, config: EndpointConfig, task: str, tables: Sequence[TableSchema], file: str, pos: int
    ) -> None:
        self.config = config
        self.task = task
        self.database = connection.params(config).database
        self.tables: dict[TableRef, TableSchema] = {t.ref: t for t in tables}
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
        self._ctl: Connection | None = None
        self._converters = _Converters(self._wkt)
        self._converter_cache: dict[TableRef, tuple[TableSchema, dict[str, Convert]]] = {}
        self._decoder = RowImageDecoder()  # row images straight from the event's bytes
        # Reconnection state: rows of the transaction in flight already produced
        # (a replay after a lost connection skips that many), rows of it seen on
        # the current connection, and when the next connection may be tried.
        self._txn_delivered = 0
        self._txn_seen = 0
        self._retry_at = 0.0
        self._retry_delay = RECONNECT_MIN_S
        self._reader = self._open_reader(file, pos)

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
        ctl, self._ctl = self._ctl, None
        if ctl is not None:
            with suppress(Exception):
                ctl.close()

    # -- reading -------------------------------------------------------------

    def _fetch(self) -> Any:
        try:
            return self._reader.fetchone()
        except pymysql.err.MySQLError as exc:
            with suppress(Exception):
                self._reader.close()
            code, reason = _code(exc), _reason(exc)
            where = f"{self._file}:{self._pos}"
            if code == _ER_BINLOG_FATAL:
                raise TerminalError(
                    f"endpoint {self.config.name!r}: the binlog from {where} is no longer available "
                    f"({reason}): resync required (reload the tables; the server purged binlogs "
                    "this task had not read — keep binlogs longer, e.g. binlog_expire_logs_seconds)"
                ) from None
            if code in _ACCESS_DENIED:
                raise ConfigError(
                    f"endpoint {self.config.name!r}: cannot read the binlog: {reason} "
                    "(the user needs REPLICATION SLAVE and REPLICATION CLIENT / BINLOG MONITOR)"
                ) from None
            if code in _LOST or isinstance(exc, pymysql.err.OperationalError):
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

    def _handle(self, event: Any) -> Iterator[ChangeEvent]:
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
            ref = TableRef(_text(event.schema), _text(event.table))
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
        query = _text(event.query).strip()
        upper = query.upper()
        if upper in {"COMMIT", "COMMIT;"}:
            # Non-transactional tables end their row events with a COMMIT query.
            yield from self._commit(file, end, event.timestamp)
            return
        m = _DDL.match(query)
        if m is None:
            return
        default_schema = _text(event.schema)
        emitted: list[ChangeEvent] = []
        if m.group(1).upper() == "TRUNCATE":
            t = _TRUNCATE.match(query)
            if t is not None:
                first, second = _unquote(t.group(1)), t.group(2)
                ref = TableRef(first, _unquote(second)) if second else TableRef(default_schema, first)
                if ref in self.tables:
                    emitted.append(Truncate((ref,)))
        else:
            for ref in dropped_tables(query, default_schema) + renamed_away(query, default_schema):
                if self.tables.pop(ref, None) is not None:
                    self._converter_cache.pop(ref, None)
                    emitted.append(TableDropped(ref))
            emitted.extend(
                self._refresh_definitions(
                    altered=altered_columns(query, default_schema),
                    created=created_tables(query, default_schema),
                )
            )
        if not emitted:
            return
        yield from emitted
        # DDL commits implicitly, as its own transaction.
        self._in_transaction = True
        yield from self._commit(file, end, event.timestamp)

    def _refresh_definitions(
        self,
        only: TableRef | None = None,
        altered: AlteredColumns | None = None,
        created: Sequence[TableRef] = (),
    ) -> list[ChangeEvent]:
        """TableDefinitions for selected tables whose catalog shape changed. The
        columns renamed are those of the ALTER statement ``altered`` when it
        explains the catalog's new column names exactly; otherwise (the catalog
        is already past a later DDL, say) they are not known, and the runner
        suspends a table whose change could be a rename. Tables ``created`` by
        the statement and not captured yet come too: the runner decides whether
        the task's selection takes them (``add_table``)."""
        current = {t.ref: t for t in self._catalog()}
        changed: list[ChangeEvent] = [
            TableDefinition(current[ref], renamed=None)
            for ref in created
            if ref in current and ref not in self.tables
        ]
        for ref, known in list(self.tables.items()):
            if only is not None and ref != only:
                continue
            now = current.get(ref)
            if now is None or now == known:
                continue
            self.tables[ref] = now
            self._converter_cache.pop(ref, None)
            explained = (
                altered is not None
                and altered.table == ref
                and set(now.column_names) == altered.names_after(known.column_names)
            )
            changed.append(
                TableDefinition(now, altered.renamed if altered is not None and explained else None)
            )
        return changed

    def add_table(self, table: TableSchema) -> None:
        """Capture ``table`` from now on (SupportsAddTable). The runner calls it
        on the TableDefinition of the table's CREATE, before reading on: the
        binlog is read again from the end of that statement with the table among
        those whose row events are decoded, so every row written to it since
        its creation is read (the load's later snapshot holds some of them too;
        applied by key, they converge)."""
        if not table.primary_key:
            raise ConfigError(
                f"table {table.ref} has no primary key: the rows its load and its capture both "
                "hold would be applied twice; add one, then reload the table"
            )
        self.tables[table.ref] = table
        self._converter_cache.pop(table.ref, None)
        with suppress(Exception):
            self._reader.close()
        self._txn_seen = 0
        self._reader = self._open_reader(self._file, self._pos)

    def _catalog(self) -> list[TableSchema]:
        conn = self._control()
        try:
            tables = read_tables(conn, self.database)
            conn.rollback()
        except pymysql.err.MySQLError as exc:
            self._ctl = None
            with suppress(Exception):
                conn.close()
            raise TransientError(
                f"endpoint {self.config.name!r}: cannot re-read the table definitions: {_reason(exc)}"
            ) from None
        return tables

    def _control(self) -> Connection:
        if self._ctl is None:
            self._ctl = connection.connect(self.config)
        return self._ctl

    def _wkt(self, value: bytes) -> str:
        """A geometry in MySQL's internal form (4-byte SRID + WKB) as the WKT text
        the full load selects."""
        conn = self._control()
        try:
            with conn.cursor() as cur:
                srid = int.from_bytes(value[:4], "little")
                cur.execute("SELECT ST_AsText(ST_GeomFromWKB(%s, %s))", (bytes(value[4:]), srid))
                row = cur.fetchone()
            conn.rollback()
        except pymysql.err.MySQLError as exc:
            why = f"the server cannot read it as a geometry: {_reason(exc)}"
            raise _Unrepresentable(value, why) from None
        if row is None or row[0] is None:
            raise _Unrepresentable(value, "the server cannot read it as a geometry")
        return _text(row[0])

    def _table_converters(self, ref: TableRef) -> tuple[TableSchema, dict[str, Convert]]:
        cached = self._converter_cache.get(ref)
        table = self.tables[ref]
        if cached is None or cached[0] is not table:
            cached = (table, {c.name: self._converters.for_column(c) for c in table.columns})
            self._converter_cache[ref] = cached
        return cached

    def _rows(self, ref: TableRef, event: Any) -> Iterator[ChangeEvent]:
        rows = self._decoder.rows(event)
        names = {c.name for c in event.columns or ()}
        table = self.tables[ref]
        if names and names != set(table.column_names):
            # The binlog's shape differs from the one known: a DDL this stream
            # did not see (or not yet parsed) — the catalog says what it is now.
            yield from self._refresh_definitions(only=ref)
            table = self.tables[ref]
        self._in_transaction = True
        for row in rows:
            self._txn_seen += 1
            if self._txn_seen <= self._txn_delivered:
                continue  # produced before the connection was lost
            self._txn_delivered += 1
            if isinstance(event, WriteRowsEvent):
                values = self._values(table, row["values"], row.get("none_sources", {}))
                yield RowChange(ref, Op.INSERT, values, unchanged=self._missing(table, values))
            elif isinstance(event, DeleteRowsEvent):
                values = self._values(table, row["values"], row.get("none_sources", {}))
                yield RowChange(ref, Op.DELETE, values, old_key=self._key(table, values))
            else:
                before = self._values(table, row["before_values"], row.get("before_none_sources", {}))
                after = self._values(table, row["after_values"], row.get("after_none_sources", {}))
                old_key = self._key(table, before)
                new_key = self._key(table, after)
                yield RowChange(
                    ref,
                    Op.UPDATE,
                    after,
                    old_key=old_key if old_key != new_key else None,
                    unchanged=self._missing(table, after),
                )

    @staticmethod
    def _key(table: TableSchema, values: dict[str, Any]) -> dict[str, Any]:
        names = table.primary_key or tuple(values)
        return {k: values[k] for k in names if k in values}

    @staticmethod
    def _missing(table: TableSchema, values: dict[str, Any]) -> frozenset[str]:
        """Columns the row event did not carry (a shape older than the catalog's)."""
        return frozenset(c.name for c in table.columns if c.name not in values)

    def _values(
        self, table: TableSchema, raw: Mapping[str, Any], sources: Mapping[str, str]
    ) -> dict[str, Any]:
        _, converters = self._table_converters(table.ref)
        values: dict[str, Any] = {}
        for name, value in raw.items():
            convert = converters.get(name)
            if convert is None:
                continue  # a column the known shape lacks
            source = sources.get(name, "null") if value is None else ""
            if source == "null":
                values[name] = None
                continue
            if source == "cols bitmap":
                continue  # not in a MINIMAL row image: reported as unchanged
            try:
                values[name] = convert(value, source)
            except _Unrepresentable as exc:
                # Refused by the applier per DataErrorPolicy, as the full load's row.
                column = table.column(name)
                values[name] = Unrepresentable(
                    str(exc.value), f"not a {column.type.describe()} value: {exc.why}"
                )
            except (ArithmeticError, ValueError, TypeError) as exc:
                column = table.column(name)
                values[name] = Unrepresentable(str(value), f"not a {column.type.describe()} value: {exc}")
        return values


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
