"""What MariaDB/MySQL change capture's parts share: the binlog position and
GTID queries, the server's error codes, a replica's server id, and the
ordinary connection a stream keeps beside its binlog dump."""

from __future__ import annotations

import zlib
from contextlib import suppress
from typing import TYPE_CHECKING, Any

import pymysql

from conveyor.connectors.base import EndpointConfig
from conveyor.connectors.mysql import connection
from conveyor.connectors.mysql.connection import text
from conveyor.core.errors import ConfigError

if TYPE_CHECKING:
    from typing import TypeAlias

    Connection: TypeAlias = pymysql.connections.Connection[pymysql.cursors.Cursor]

# Replica server ids for capture streams: a high range unlikely to collide with
# real replicas (MySQL server ids are 32-bit).
_SERVER_ID_BASE = 0x60000000
_SERVER_ID_SPAN = 0x1FFFFFFF

ER_BINLOG_FATAL = 1236  # ER_MASTER_FATAL_ERROR_READING_BINLOG: purged, missing, corrupt
LOST = frozenset({2003, 2006, 2013, 2055})
ACCESS_DENIED = frozenset({1044, 1045, 1142, 1227})


def server_id_for(task: str) -> int:
    """A replica server id for the task's stream: stable, in a high range."""
    return _SERVER_ID_BASE + zlib.crc32(task.encode()) % _SERVER_ID_SPAN


def is_mariadb(conn: Any) -> bool:
    """Whether the server is MariaDB (``conn``: any driver's connection with ``cursor()``)."""
    with conn.cursor() as cur:
        cur.execute("SELECT VERSION()")
        row = cur.fetchone()
    return row is not None and "mariadb" in text(row[0]).lower()


def binlog_status(cur: pymysql.cursors.Cursor) -> tuple[str, int]:
    """The current binlog file and position (SHOW BINARY LOG STATUS on MySQL 8.2+)."""
    try:
        cur.execute("SHOW BINARY LOG STATUS")
    except pymysql.err.ProgrammingError:
        cur.execute("SHOW MASTER STATUS")
    row = cur.fetchone()
    if row is None:
        raise ConfigError("the server writes no binary log (log_bin is OFF)")
    return text(row[0]), int(row[1])


def gtid_position(cur: pymysql.cursors.Cursor, mariadb: bool, file: str, pos: int) -> str:
    """The GTID position at ``file:pos`` (MariaDB: exactly; MySQL: gtid_executed)."""
    if mariadb:
        cur.execute("SELECT BINLOG_GTID_POS(%s, %s)", (file, pos))
    else:
        cur.execute("SELECT @@global.gtid_executed")
    row = cur.fetchone()
    return "" if row is None or row[0] is None else " ".join(text(row[0]).split())


class ControlConnection:
    """A stream's ordinary connection beside its binlog dump (re-reading the
    catalog, spelling geometries), opened when first needed."""

    def __init__(self, config: EndpointConfig) -> None:
        self._config = config
        self._conn: Connection | None = None

    def get(self) -> Connection:
        if self._conn is None:
            self._conn = connection.connect(self._config)
        return self._conn

    def close(self) -> None:
        """Close it (a later ``get`` opens a new one); errors closing are ignored."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with suppress(Exception):
                conn.close()
