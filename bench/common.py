"""What every bench shares: child processes reaped with ``os.wait4`` (so each
child's peak RSS is its own), logging and the printed table. Standard library
only, so a child importing it loads no database driver."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

POLL_S = 0.01
REPO = Path(__file__).resolve().parent.parent
LOG_TAIL_LINES = 30


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


@dataclass
class Child:
    """A child process that writes its result as JSON to ``result_file``
    (the ``--result`` option it is given) and its output to ``log_file``."""

    proc: subprocess.Popen[bytes]
    result_file: Path
    log_file: Path
    began: float
    what: str


@dataclass
class ChildOutput:
    result: dict[str, Any]
    process_seconds: float  # wall time from start to reaping
    peak_rss_mb: float  # the child's own ru_maxrss (the largest of it and the children it reaped)
    cpu_seconds: float = 0.0  # user + system CPU of the child and the children it reaped


def start_child(
    command: Sequence[str], workdir: Path, name: str, what: str, env: Mapping[str, str] | None = None
) -> Child:
    """Start ``command --result <workdir>/<name>.result.json`` in the repository,
    its output to ``<workdir>/<name>.log``; ``what`` names it in errors; ``env``
    (None: this process's)."""
    result_file = workdir / f"{name}.result.json"
    log_file = workdir / f"{name}.log"
    result_file.unlink(missing_ok=True)
    began = time.perf_counter()
    with log_file.open("wb") as out:
        proc = subprocess.Popen(
            [*command, "--result", str(result_file)],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            env=None if env is None else dict(env),
        )
    return Child(proc, result_file, log_file, began, what)


def finish_child(child: Child, timeout_s: float) -> ChildOutput:
    """Reap ``child`` (killed after ``timeout_s``); its result, or BenchFailure
    with the tail of its log."""
    code, usage = wait_bounded(child.proc, timeout_s, child.what)
    process_seconds = time.perf_counter() - child.began
    if code != 0 or not child.result_file.exists():
        tail = "\n".join(child.log_file.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:])
        raise BenchFailure(f"{child.what} exited with {code}:\n{tail}")
    result = json.loads(child.result_file.read_text())
    cpu = usage.ru_utime + usage.ru_stime
    return ChildOutput(result, process_seconds, usage.ru_maxrss / 1024, cpu)  # KiB on Linux


def run_child(command: Sequence[str], workdir: Path, name: str, what: str, timeout_s: float) -> ChildOutput:
    return finish_child(start_child(command, workdir, name, what), timeout_s)


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
