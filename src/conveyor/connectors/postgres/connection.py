"""Connecting to PostgreSQL: conninfo from an endpoint, errors without secrets."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from conveyor.connectors.base import EndpointConfig
from conveyor.core.errors import ConfigError, ConnectionFailed, ConveyorError, TerminalError, TransientError

CONNECT_TIMEOUT_S = 10


def conninfo(config: EndpointConfig) -> str:
    """A libpq conninfo string for the endpoint, with the resolved password."""
    if not config.url:
        raise ConfigError(f"endpoint {config.name!r}: a postgres endpoint needs a url")
    scheme = urlsplit(config.url).scheme
    if scheme not in {"postgresql", "postgres"}:
        raise ConfigError(f"endpoint {config.name!r}: url scheme {scheme!r} is not postgresql://")
    params: dict[str, str | int | None] = {
        "connect_timeout": CONNECT_TIMEOUT_S,
        "application_name": "conveyor",
    }
    if config.password is not None:
        params["password"] = config.password
    return make_conninfo(config.url, **params)


def adbc_uri(config: EndpointConfig) -> str:
    """The same endpoint as a URI for the ADBC driver (which takes no separate password)."""
    parts = conninfo_to_dict(conninfo(config))
    return make_conninfo("", **parts)


def connect(config: EndpointConfig, *, autocommit: bool = False) -> psycopg.Connection[tuple[Any, ...]]:
    try:
        return psycopg.connect(conninfo(config), autocommit=autocommit)
    except psycopg.OperationalError as exc:
        raise ConnectionFailed(describe_failure(config, exc)) from None


_TRANSIENT_STATES = frozenset({"57P01", "57P02", "57P03", "40001", "40P01", "53300"})
"""Shut down by an administrator or a crash, starting up, a serialization failure or
deadlock, too many connections: the same work may succeed a moment later."""


def is_transient(exc: psycopg.Error) -> bool:
    """Whether the server (or the connection to it) failed in a way a retry can get past."""
    state = exc.sqlstate
    if state is None:
        return isinstance(exc, psycopg.OperationalError)  # the connection broke: no server answer
    return state.startswith("08") or state in _TRANSIENT_STATES


def failure(what: str, exc: psycopg.Error) -> ConveyorError:
    """``exc`` as Conveyor's error: TransientError when a retry can get past it
    (the full load then loads the table again, core/retry.py), else TerminalError."""
    text = f"{what}: {' '.join(str(exc).split())}"
    return TransientError(text) if is_transient(exc) else TerminalError(text)


def describe_failure(config: EndpointConfig, exc: BaseException) -> str:
    """Why a connection failed, in one line, with any secret removed."""
    text = " ".join(str(exc).split())
    if config.password:
        text = text.replace(config.password, "***")
    parts = urlsplit(config.url or "")
    where = f"{parts.hostname or 'localhost'}:{parts.port or 5432}"
    if "password authentication failed" in text:
        reason = f"password authentication failed for user {parts.username!r}"
    elif "Connection refused" in text:
        reason = f"connection refused at {where} (is the server running and listening there?)"
    elif "timeout expired" in text:
        reason = f"no answer from {where} within {CONNECT_TIMEOUT_S} s"
    elif "does not exist" in text:
        reason = text.split("FATAL:")[-1].strip()
    else:
        reason = text
    return f"endpoint {config.name!r}: cannot connect to PostgreSQL at {where}: {reason}"
