"""What PostgreSQL change capture's parts share: positions (LSNs), the
replication connection's DSN, its errors, and the stream's timings."""

from __future__ import annotations

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from conveyor.connectors.base import EndpointConfig
from conveyor.connectors.postgres import connection
from conveyor.connectors.postgres.pgoutput import format_lsn, parse_lsn
from conveyor.connectors.postgres.text_values import SESSION_OPTIONS
from conveyor.core.batch import Checkpoint
from conveyor.core.errors import ConfigError

ENGINE = "postgres"
HEARTBEAT_PREFIX = "conveyor_heartbeat"
DEFAULT_HEARTBEAT_SECONDS = 60.0
FEEDBACK_INTERVAL_S = 10
# A lost replication connection (a source restart, a network cut) is reopened
# by the stream itself, waiting this long between attempts, doubling.
RECONNECT_MIN_S = 0.5
RECONNECT_MAX_S = 5.0
ENCODED_CHUNK_ROWS = 1000  # encoded rows delivered together (one captured ChangeBatch) at most
SLOT_GONE = ("does not exist", "can no longer get changes", "has been invalidated", "was invalidated")


def lsn_of(position: Checkpoint) -> int:
    if position.engine != ENGINE or "lsn" not in position.position:
        raise ConfigError(f"position {position} is not a PostgreSQL LSN position")
    return parse_lsn(str(position.position["lsn"]))


def lsn_position(lsn: int) -> Checkpoint:
    return Checkpoint(ENGINE, {"lsn": format_lsn(lsn)})


def replication_dsn(config: EndpointConfig, client_encoding: str | None = None) -> str:
    """The replication connection's DSN, with the session settings the text of
    pgoutput's values is read by. pgoutput converts that text to the session's
    client encoding, which ``client_encoding`` pins (to the server's: so a
    PGCLIENTENCODING in the environment cannot change the bytes)."""
    params = conninfo_to_dict(connection.conninfo(config))
    options = str(params.get("options") or "")
    params["options"] = f"{options} {SESSION_OPTIONS}".strip()
    if client_encoding is not None:
        params["client_encoding"] = client_encoding
    return make_conninfo("", **params)


def slot_gone(exc: BaseException) -> bool:
    text = str(exc)
    return "replication slot" in text and any(marker in text for marker in SLOT_GONE)


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())
