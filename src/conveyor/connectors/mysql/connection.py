"""Connecting to MySQL and MariaDB: connection parameters from an endpoint, errors
without secrets."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import pymysql

from conveyor.connectors.base import EndpointConfig
from conveyor.core.errors import ConfigError, ConnectionFailed

CONNECT_TIMEOUT_S = 10
DEFAULT_PORT = 3306
SCHEMES = frozenset({"mysql", "mariadb"})

# A streaming (unbuffered) read leaves the server waiting while the consumer
# writes each batch to the target; the default net_write_timeout (60 s) would
# cut the connection during a slow target write.
NET_TIMEOUT_S = 3600
SESSION_STATEMENTS = (
    # TIMESTAMP values then come back as UTC wall-clock times.
    "SET SESSION time_zone = '+00:00'",
    f"SET SESSION net_write_timeout = {NET_TIMEOUT_S}",
    f"SET SESSION net_read_timeout = {NET_TIMEOUT_S}",
)

_ER_ACCESS_DENIED = 1045
_ER_DBACCESS_DENIED = 1044
_ER_BAD_DB = 1049
_CR_CONN_HOST_ERROR = 2003


@dataclass(frozen=True)
class ConnectParams:
    """Where and as whom to connect. ``password`` never appears in ``repr``."""

    host: str
    port: int
    user: str | None
    database: str
    password: str | None = field(default=None, repr=False)

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"


def text(value: Any) -> str:
    """A value a driver gave as bytes or str, as str (UTF-8)."""
    return value.decode() if isinstance(value, bytes | bytearray) else str(value)


def error_code(exc: BaseException) -> int | None:
    """A driver error's server error number (PyMySQL's first argument)."""
    return exc.args[0] if exc.args and isinstance(exc.args[0], int) else None


def error_reason(exc: BaseException) -> str:
    message = getattr(exc, "msg", None)  # MySQL Connector/Python's errors: (errno, msg, sqlstate)
    return " ".join(str(message or (exc.args[-1] if exc.args else exc)).split())


def quote(name: str) -> str:
    """A MySQL identifier in backticks, embedded backticks doubled."""
    return "`" + name.replace("`", "``") + "`"


def params(config: EndpointConfig) -> ConnectParams:
    """The endpoint's url (``mysql://user@host:port/db`` or ``mariadb://...``) as
    connection parameters, with the resolved password."""
    if not config.url:
        raise ConfigError(f"endpoint {config.name!r}: a mysql endpoint needs a url")
    try:
        parts = urlsplit(config.url)
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise ConfigError(f"endpoint {config.name!r}: the url is not mysql://user@host:port/db") from None
    if parts.scheme not in SCHEMES:
        raise ConfigError(
            f"endpoint {config.name!r}: url scheme {parts.scheme!r} is not mysql:// (or mariadb://)"
        )
    database = unquote(parts.path.lstrip("/"))
    if not database or "/" in database:
        raise ConfigError(
            f"endpoint {config.name!r}: the url must name one database (mysql://user@host:port/db)"
        )
    password = config.password
    if password is None and parts.password is not None:
        password = unquote(parts.password)
    return ConnectParams(
        host=parts.hostname or "localhost",
        port=port,
        user=unquote(parts.username) if parts.username else None,
        database=database,
        password=password,
    )


def connect(config: EndpointConfig) -> pymysql.connections.Connection[pymysql.cursors.Cursor]:
    """An open connection to the endpoint's database, in UTC, autocommit off."""
    p = params(config)
    try:
        conn = pymysql.connect(
            host=p.host,
            port=p.port,
            user=p.user,
            password=p.password or "",
            database=p.database,
            charset="utf8mb4",
            connect_timeout=CONNECT_TIMEOUT_S,
            autocommit=False,
        )
    except pymysql.err.MySQLError as exc:
        raise ConnectionFailed(describe_failure(config, p, exc)) from None
    try:
        with conn.cursor() as cur:
            for statement in SESSION_STATEMENTS:
                cur.execute(statement)
    except pymysql.err.MySQLError as exc:
        conn.close()
        raise ConnectionFailed(describe_failure(config, p, exc)) from None
    return conn


def describe_failure(config: EndpointConfig, p: ConnectParams, exc: BaseException) -> str:
    """Why a connection failed, in one line, with any secret removed."""
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    text = " ".join(str(exc.args[1] if len(exc.args) > 1 else exc).split())
    if p.password:
        text = text.replace(p.password, "***")
    if code == _ER_ACCESS_DENIED:
        reason = f"access denied for user {p.user!r} (wrong password, or the user may not connect from here)"
    elif code == _ER_DBACCESS_DENIED:
        reason = f"user {p.user!r} may not use database {p.database!r}"
    elif code == _ER_BAD_DB:
        reason = f"unknown database {p.database!r}"
    elif "Connection refused" in text:
        reason = f"connection refused at {p.where} (is the server running and listening there?)"
    elif "timed out" in text:
        reason = f"no answer from {p.where} within {CONNECT_TIMEOUT_S} s"
    elif code == _CR_CONN_HOST_ERROR:
        reason = f"cannot reach {p.where}: {text}"
    else:
        reason = text
    return f"endpoint {config.name!r}: cannot connect to MySQL at {p.where}: {reason}"
