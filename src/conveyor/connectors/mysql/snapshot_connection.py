"""The connection a MySQL/MariaDB snapshot reads on, behind one small surface,
with two drivers.

A full load spends most of its time parsing the server's result packets.
PyMySQL does that in Python, a call per value; MySQL Connector/Python's C
extension (``conveyor[mysql-fast]``) parses them in C, about six times less
CPU for the same rows (bench/profiles/README.md). Where the C extension loads,
snapshots read through it; else through PyMySQL, as every other MySQL
connection does. ``CONVEYOR_MYSQL_DRIVER=pymysql`` keeps PyMySQL.

Either way a streamed result's values arrive as the server's text: ``str`` or
``bytes`` (the C extension's are all bytes), which ``read_values`` and the
validation spellers take alike.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import TYPE_CHECKING, Any, Protocol, cast

import pymysql
from pymysql.converters import escape_string
from pymysql.cursors import SSCursor

from conveyor.connectors.base import EndpointConfig
from conveyor.connectors.mysql import connection
from conveyor.connectors.mysql.connection import error_code, error_reason
from conveyor.core.errors import ConnectionFailed

if TYPE_CHECKING:
    from pymysql.connections import Connection

log = logging.getLogger(__name__)

DRIVER_VARIABLE = "CONVEYOR_MYSQL_DRIVER"
_LOST_CONNECTION = frozenset({2006, 2013, 2055})
_FETCH_WAIT_S = 5.0


class RowStream(Protocol):
    """An unbuffered result: ``description`` as DB-API gives it (the type code second)."""

    @property
    def description(self) -> Sequence[Sequence[Any]]: ...

    def fetchmany(self, size: int) -> Sequence[tuple[Any, ...]]: ...

    def close(self) -> None: ...


class SnapshotConnection(Protocol):
    """What a snapshot does with its connection."""

    driver: str

    def cursor(self) -> Any:
        """A DB-API cursor (a context manager) for a small statement."""
        ...

    def query(self, statement: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a statement; its rows (none for a statement without a result)."""
        ...

    def stream(self, statement: str) -> RowStream:
        """An unbuffered result whose values are the server's text, unconverted."""
        ...

    def escape(self, text: str) -> str:
        """``text`` as a quoted string literal, as this session's sql_mode reads it."""
        ...

    def failure(self, exc: BaseException) -> tuple[bool, str] | None:
        """For one of this driver's errors: whether it lost the connection, and
        the server's words; None for an exception of another kind."""
        ...

    def close(self) -> None:
        """Close, also with a result still streaming (its rows are not drained)."""
        ...


class PyMySQLConnection:
    """A snapshot on a PyMySQL connection (``connection.connect``)."""

    driver = "pymysql"

    def __init__(self, conn: Connection[Any]) -> None:
        self.conn = conn

    def cursor(self) -> Any:
        return self.conn.cursor()

    def query(self, statement: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.conn.cursor() as cur:
            cur.execute(statement, tuple(args) or None)
            return list(cur.fetchall())

    def stream(self, statement: str) -> RowStream:
        cursor = self.conn.cursor(SSCursor)
        decoders = self.conn.decoders
        try:
            self.conn.decoders = {}  # the result's converters are fixed when it starts
            try:
                cursor.execute(statement)
            finally:
                self.conn.decoders = decoders
        except BaseException:
            with suppress(Exception):
                cursor.close()
            raise
        return cursor

    def escape(self, text: str) -> str:
        return self.conn.escape(text)

    def failure(self, exc: BaseException) -> tuple[bool, str] | None:
        if not isinstance(exc, pymysql.err.MySQLError):
            return None
        lost = isinstance(exc, pymysql.err.OperationalError) and error_code(exc) in _LOST_CONNECTION
        return lost, error_reason(exc)

    def close(self) -> None:
        # A result still streaming (a read suspended in another frame) must not
        # try to drain itself from the closed socket later (PyMySQL would, on
        # cursor close or garbage collection).
        result = getattr(self.conn, "_result", None)
        if getattr(result, "unbuffered_active", False):
            result.unbuffered_active = False  # type: ignore[union-attr]
        with suppress(pymysql.err.Error, OSError):
            self.conn.close()


class _Stream:
    """A streamed result that tells its connection when it is closed. A close
    while a fetch is still running in another thread (a read-ahead thread the
    server keeps waiting) leaves the result and its connection to that
    thread: the C client must not be used by two threads at once."""

    def __init__(self, cursor: Any, ended: Callable[[], None]) -> None:
        self._cursor = cursor
        self._ended: Callable[[], None] | None = ended
        self._fetching = threading.Lock()
        self.description = cursor.description

    def fetchmany(self, size: int) -> Sequence[tuple[Any, ...]]:
        with self._fetching:
            return self._cursor.fetchmany(size)  # type: ignore[no-any-return]

    def close(self) -> None:
        if not self._fetching.acquire(timeout=_FETCH_WAIT_S):
            raise ConnectionFailed("a fetch of the streamed result did not end: the connection is abandoned")
        try:
            self._cursor.close()  # drains the rows not read (consume_results)
        finally:
            self._fetching.release()
            ended, self._ended = self._ended, None
            if ended is not None:
                ended()


class ConnectorConnection:
    """A snapshot on MySQL Connector/Python's C extension.

    Unlike PyMySQL's socket, the C client must not be closed while another
    thread reads through it (a read-ahead thread may be inside a fetch): a
    close during a streamed result is done when that result is closed."""

    driver = "mysql-connector (C extension)"

    def __init__(self, conn: Any, errors: Any) -> None:
        self.conn = conn
        self._errors = errors
        self._no_backslash_escapes: bool | None = None
        self._lock = threading.Lock()
        self._streaming = 0
        self._closing = False

    def cursor(self) -> Any:
        return self.conn.cursor()

    def query(self, statement: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cur = self.conn.cursor()
        try:
            cur.execute(statement, tuple(args) or None)
            return list(cur.fetchall()) if cur.description else []
        finally:
            cur.close()

    def stream(self, statement: str) -> RowStream:
        cursor = self.conn.cursor(raw=True)
        try:
            cursor.execute(statement)
        except BaseException:
            with suppress(Exception):
                cursor.close()
            raise
        with self._lock:
            self._streaming += 1
        return cast(RowStream, _Stream(cursor, self._stream_ended))

    def _stream_ended(self) -> None:
        with self._lock:
            self._streaming -= 1
            close_now = self._closing and not self._streaming
        if close_now:
            self._close()

    def escape(self, text: str) -> str:
        if self._no_backslash_escapes is None:
            [(mode,)] = self.query("SELECT @@SESSION.sql_mode")
            self._no_backslash_escapes = "NO_BACKSLASH_ESCAPES" in connection.text(mode).upper().split(",")
        if self._no_backslash_escapes:
            return "'" + text.replace("'", "''") + "'"
        return "'" + escape_string(text) + "'"

    def failure(self, exc: BaseException) -> tuple[bool, str] | None:
        if not isinstance(exc, self._errors.Error):
            return None
        reason = error_reason(exc)
        # errno -1 or none: the client's own "connection not available".
        unavailable = exc.errno in (None, -1) and isinstance(
            exc, self._errors.OperationalError | self._errors.InterfaceError
        )
        return exc.errno in _LOST_CONNECTION or unavailable, reason

    def close(self) -> None:
        with self._lock:
            self._closing = True
            if self._streaming:
                return  # closed when the streamed result is (_stream_ended)
        self._close()

    def _close(self) -> None:
        with suppress(Exception):
            self.conn.close()


def _connector() -> tuple[Any, Any] | None:
    """MySQL Connector/Python's module and its errors when its C extension
    loads here; None otherwise, or when the user asked for PyMySQL."""
    if os.environ.get(DRIVER_VARIABLE, "").strip().lower() == "pymysql":
        return None
    return _c_extension()


@functools.cache
def _c_extension() -> tuple[Any, Any] | None:
    """Probed once per process: the module and its errors, or None when it is
    not installed or a library it needs does not load (said in the log)."""
    try:
        import _mysql_connector  # type: ignore[import-not-found]  # noqa: F401  (the C extension)
    except ImportError as exc:
        if "_mysql_connector" not in str(exc):
            log.info("MySQL Connector/Python's C extension does not load (%s): reading through PyMySQL", exc)
        return None
    import mysql.connector
    from mysql.connector import errors

    return mysql.connector, errors


def open_snapshot_connection(config: EndpointConfig) -> SnapshotConnection:
    """A connection to the endpoint's database in a UTC session, autocommit
    off, through the C extension where it loads."""
    found = _connector()
    if found is None:
        return PyMySQLConnection(connection.connect(config))
    module, errors = found
    p = connection.params(config)
    try:
        conn = module.connect(
            host=p.host,
            port=p.port,
            user=p.user or "",
            password=p.password or "",
            database=p.database,
            charset="utf8mb4",
            connection_timeout=connection.CONNECT_TIMEOUT_S,
            autocommit=False,
            use_pure=False,
            # A read stopped early drains the rest, as PyMySQL's does.
            consume_results=True,
        )
    except errors.Error as exc:
        raise ConnectionFailed(connection.describe_failure(config, p, _as_args(exc))) from None
    wrapped = ConnectorConnection(conn, errors)
    try:
        for statement in connection.SESSION_STATEMENTS:
            wrapped.query(statement)
    except errors.Error as exc:
        wrapped.close()
        raise ConnectionFailed(connection.describe_failure(config, p, _as_args(exc))) from None
    return wrapped


def _as_args(exc: Any) -> BaseException:
    """A Connector/Python error as PyMySQL's shape, ``(code, message)``, which
    ``connection.describe_failure`` reads."""
    return Exception(exc.errno, exc.msg or str(exc))
