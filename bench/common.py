"""What every bench shares: child processes reaped with ``os.wait4`` (so each
child's peak RSS is its own), logging and the printed table. Standard library
only, so a child importing it loads no database driver."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Sequence
from typing import Any

POLL_S = 0.01


class BenchFailure(Exception):
    """A run failed, timed out, or produced a different result than its reference."""


def log(message: str) -> None:
    print(message, flush=True)


def wait_bounded(proc: subprocess.Popen[bytes], timeout_s: float, what: str) -> tuple[int, Any]:
    """Wait for ``proc`` (reaping it with wait4, so its own rusage comes back);
    kill it after ``timeout_s``. Returns (exit code, rusage)."""
    deadline = time.monotonic() + timeout_s
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, usage
        if time.monotonic() > deadline:
            proc.kill()
            os.wait4(proc.pid, 0)
            proc.returncode = -9
            raise BenchFailure(f"{what}: no result within {timeout_s:.0f} s (killed)")
        time.sleep(POLL_S)


def num(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def render_table(header: Sequence[str], rows: Sequence[Sequence[str]], numeric: set[int]) -> str:
    """A plain-text table; the ``numeric`` columns are right-aligned."""
    lines = [tuple(header), *map(tuple, rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for index, line in enumerate(lines):
        cells = [c.rjust(widths[i]) if i in numeric else c.ljust(widths[i]) for i, c in enumerate(line)]
        out.append("  ".join(cells).rstrip())
        if index == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)
