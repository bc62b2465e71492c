"""Conveyor's connection to a DuckDB file, with its memory capped (endpoint option
``memory_limit``), and running out of that memory as an error a user can act on."""

from __future__ import annotations

import logging
from pathlib import Path

import duckdb

from conveyor.connectors.base import EndpointConfig
from conveyor.core.errors import ConnectionFailed, TerminalError

DEFAULT_MEMORY_LIMIT = "1GB"

log = logging.getLogger(__name__)


def connect(config: EndpointConfig) -> duckdb.DuckDBPyConnection:
    """Conveyor's connection to a DuckDB file. Its memory is capped (endpoint
    option ``memory_limit``, default 1GB): DuckDB spills beyond it, so a load's
    memory does not grow with the table. Every connection of one process to a
    file must use the same settings, hence this one function."""
    assert config.path is not None
    if config.path != ":memory:":
        Path(config.path).parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = duckdb.connect(config.path, config={"memory_limit": memory_limit(config)})
    except duckdb.Error as exc:
        raise ConnectionFailed(f"endpoint {config.name!r}: cannot open {config.path}: {exc}") from None
    row = conn.execute("SELECT current_setting('memory_limit')").fetchone()
    log.info("endpoint %s: DuckDB memory_limit %s", config.name, row[0] if row else "?")
    return conn


def memory_limit(config: EndpointConfig) -> str:
    """The endpoint option ``memory_limit`` in effect (as written, or the default)."""
    return str(config.options.get("memory_limit", DEFAULT_MEMORY_LIMIT))


def out_of_memory(limit: str, exc: duckdb.OutOfMemoryException, note: str = "") -> TerminalError:
    """DuckDB's OutOfMemoryException as the error a user can act on: it names
    the endpoint option ``memory_limit`` and the value in effect (``note``:
    the lowered limit of a streamed load, ``MemoryLimit.note``)."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return TerminalError(
        f"DuckDB ran out of memory at the endpoint option memory_limit ({limit} in effect{note}): {first}; "
        "raise memory_limit in the DuckDB endpoint's settings"
    )
