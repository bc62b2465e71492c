"""DuckDB's memory_limit of one database file in this process, lowered while
full loads only stream rows into it.

A streamed load (``INSERT ... SELECT`` from an Arrow stream) writes its row
groups to the file as it goes; DuckDB keeps the written blocks cached until its
memory_limit is reached, so at the endpoint's 1GB a 5M-row load held its whole
table (200 MB) in memory for nothing. While the only work on the file is such
streams, the limit is lowered to ``stream_limit`` (an eighth of memory_limit, at
least 128MB), so those blocks are dropped and rows waiting for their row group
spill to the file's temp directory. Everything else (building a key, a change
batch, a load checking its rows) needs memory that cannot be evicted, so as
soon as any of it runs the limit is memory_limit again. DuckDB's memory_limit
belongs to the database instance, which every connection of the process to the
file shares: hence one ``MemoryLimit`` per file, whose lock orders the changes.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import duckdb

log = logging.getLogger(__name__)

STREAM_FLOOR = 128 * 2**20
STREAM_SHARE = 8

_UNITS = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}
_SIZE = re.compile(r"(?i)^\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*$")


def size_bytes(text: str) -> int:
    """Bytes of a size as DuckDB reads it (KB = 1000 bytes, KiB = 1024)."""
    match = _SIZE.match(text)
    if match is None or match.group(2).lower() not in _UNITS:
        raise ValueError(f"not a size: {text!r}")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def stream_limit(limit: str) -> int:
    """Bytes DuckDB may use while full loads only stream rows: an eighth of
    ``limit``, at least 128MB, never more than ``limit``."""
    full = size_bytes(limit)
    return min(full, max(full // STREAM_SHARE, STREAM_FLOOR))


def show(size: int) -> str:
    return f"{size / 2**20:.0f}MiB" if size >= 2**20 else f"{size}B"


class MemoryLimit:
    """The limit of one database file: ``limit`` (the endpoint's memory_limit),
    or ``stream_limit(limit)`` while at least one load streams and nothing else
    holds the file (``busy``)."""

    def __init__(self, limit: str, lowers: bool = True) -> None:
        self.limit = limit
        self.lowered = stream_limit(limit) if lowers else size_bytes(limit)
        self._lock = threading.Lock()
        self._busy = 0
        self._streams = 0
        self._low = False

    @property
    def low(self) -> bool:
        """Whether the lowered limit is in effect now."""
        return self._low

    def note(self) -> str:
        """What an out-of-memory error adds to the limit it names: the lowered
        limit, when that is the one in effect now."""
        return f"; {show(self.lowered)} while full loads only stream rows" if self._low else ""

    @contextlib.contextmanager
    def busy(self, cursor: duckdb.DuckDBPyConnection) -> Iterator[None]:
        """Work that needs the whole memory_limit (``cursor`` sets it)."""
        self.enter_busy(cursor)
        try:
            yield
        finally:
            self.leave_busy(cursor)

    def enter_busy(self, cursor: duckdb.DuckDBPyConnection) -> None:
        with self._lock:
            self._busy += 1
            self._settle(cursor)

    def leave_busy(self, cursor: duckdb.DuckDBPyConnection) -> None:
        with self._lock:
            self._busy -= 1
            self._settle(cursor)

    @contextlib.contextmanager
    def streaming(self, cursor: duckdb.DuckDBPyConnection) -> Iterator[None]:
        """A streamed insert of a load that holds the file busy around it:
        for its duration the load counts as a stream, not as busy."""
        with self._lock:
            self._busy -= 1
            self._streams += 1
            self._settle(cursor)
        try:
            yield
        finally:
            with self._lock:
                self._streams -= 1
                self._busy += 1
                self._settle(cursor)

    def _settle(self, cursor: duckdb.DuckDBPyConnection) -> None:
        """Set the limit the counts call for (under ``_lock``)."""
        low = self._streams > 0 and self._busy == 0 and self.lowered < size_bytes(self.limit)
        if low == self._low:
            return
        value = f"{self.lowered}B" if low else self.limit
        try:
            cursor.execute(f"SET GLOBAL memory_limit = '{value}'")
        except duckdb.Error as exc:  # the connection is gone; the next change sets it
            log.warning("DuckDB memory_limit not changed to %s: %s", value, exc)
            return
        self._low = low


_LIMITS: dict[tuple[str, str], MemoryLimit] = {}
_LIMITS_LOCK = threading.Lock()


def memory_limit_of(path: str, limit: str) -> MemoryLimit:
    """The one ``MemoryLimit`` of the database file ``path`` in this process
    (each in-memory database is an instance of its own: its limit stays)."""
    if path == ":memory:":
        return MemoryLimit(limit, lowers=False)
    key = (str(Path(path).resolve()), limit)
    with _LIMITS_LOCK:
        found = _LIMITS.get(key)
        if found is None:
            found = _LIMITS[key] = MemoryLimit(limit)
        return found
