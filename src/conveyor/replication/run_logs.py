"""Each detached worker run's log: ``CONVEYOR_HOME/logs/TASK/RUN.log``.

The spawner points the worker's stdout and stderr at the file (so a crash's last
words land there too); the worker logs into it through :class:`RunLogHandler`,
which keeps it bounded: past ``max_bytes`` the file moves to ``RUN.log.1`` (the
one before is dropped) and the worker's stdout and stderr follow to the new file.
A task keeps the logs of its last :data:`KEEP_RUNS` runs. Readers
(``conveyor tasks logs``, ``GET /tasks/NAME/logs``) read by byte offset."""

from __future__ import annotations

import logging.handlers
import os
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from conveyor.core.errors import NotFoundError
from conveyor.core.processes import pid_alive
from conveyor.store.store import DEFAULT_HOME, Store

MAX_BYTES_ENV = "CONVEYOR_WORKER_LOG_MAX_BYTES"
DEFAULT_MAX_BYTES = 10 * 1024 * 1024
KEEP_RUNS = 20
READ_LIMIT = 1024 * 1024  # the most one read returns
EXIT_GRACE = 10.0  # seconds a worker may take to exit after its run is recorded as ended


def logs_home(home: Path | None = None) -> Path:
    return (home or Path(os.environ.get("CONVEYOR_HOME", DEFAULT_HOME))) / "logs"


def task_log_dir(task: str, home: Path | None = None) -> Path:
    return logs_home(home) / re.sub(r"[^A-Za-z0-9._-]", "_", task)


def run_log_path(task: str, run_id: int, home: Path | None = None) -> Path:
    return task_log_dir(task, home) / f"{run_id}.log"


def max_bytes() -> int:
    value = os.environ.get(MAX_BYTES_ENV, "").strip()
    return max(int(value), 4096) if value.isdigit() else DEFAULT_MAX_BYTES


def logged_runs(task: str, home: Path | None = None) -> list[int]:
    """The runs of ``task`` that have a log, oldest first."""
    folder = task_log_dir(task, home)
    if not folder.is_dir():
        return []
    return sorted(int(p.stem) for p in folder.glob("*.log") if p.stem.isdigit())


def prune_run_logs(task: str, keep: int = KEEP_RUNS, home: Path | None = None) -> None:
    """Delete the logs of all but the task's last ``keep`` runs."""
    runs = logged_runs(task, home)
    for run_id in runs[: max(len(runs) - keep, 0)]:
        for path in (run_log_path(task, run_id, home), _older(run_log_path(task, run_id, home))):
            path.unlink(missing_ok=True)


def _older(path: Path) -> Path:
    return path.with_name(path.name + ".1")


class RunLogHandler(logging.handlers.RotatingFileHandler):
    """The worker's log handler: a size-bounded file with one older part kept.
    After a rollover the process's stdout and stderr (file descriptors 1 and 2)
    are pointed at the new file, so output not written through logging (a
    faulthandler dump, a C library's message) stays in the current part."""

    def __init__(self, path: Path, limit: int | None = None) -> None:
        super().__init__(path, maxBytes=limit or max_bytes(), backupCount=1, encoding="utf-8")

    def doRollover(self) -> None:
        super().doRollover()
        if self.stream is not None:
            self.stream.flush()
            for fd in (1, 2):
                os.dup2(self.stream.fileno(), fd)


@dataclass(frozen=True)
class LogChunk:
    """Bytes ``offset`` to ``next_offset`` of a run's current log file, as text.
    ``rotated`` says the file was rolled over since ``offset`` was taken (the
    reader starts again from 0 of the new part)."""

    text: str
    offset: int
    next_offset: int
    size: int
    rotated: bool = False


def read_log(path: Path, offset: int | None = None, limit: int = READ_LIMIT) -> LogChunk:
    """Up to ``limit`` bytes of ``path`` from ``offset``; with no offset, its last
    ``limit`` bytes (from a line start). An offset past the end means the file was
    rotated: read from 0."""
    limit = max(1, min(limit, READ_LIMIT))
    try:
        with path.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            rotated = offset is not None and offset > size
            start = max(size - limit, 0) if offset is None else (0 if rotated else offset)
            f.seek(start)
            data = f.read(limit)
    except FileNotFoundError:
        return LogChunk("", offset or 0, offset or 0, 0)
    if offset is None and start > 0:
        cut = data.find(b"\n")
        data, start = (data[cut + 1 :], start + cut + 1) if cut >= 0 else (data, start)
    # Stop at the last whole line unless the chunk is all one long line.
    end = data.rfind(b"\n")
    if 0 <= end < len(data) - 1 and len(data) == limit:
        data = data[: end + 1]
    return LogChunk(data.decode("utf-8", errors="replace"), start, start + len(data), size, rotated)


def whole_log(path: Path, piece: int = 1 << 16) -> Iterator[str]:
    """A run's whole log (its older part first) as text pieces of up to ``piece``
    characters; nothing when the run has no log."""
    for part in (_older(path), path):
        if part.exists():
            with part.open(encoding="utf-8", errors="replace") as f:
                while text := f.read(piece):
                    yield text


def logged_run(store: Store, task: str, run_id: int | None = None, home: Path | None = None) -> int:
    """``run_id``, else the task's newest run that has a log. Raises NotFoundError
    when there is none (a run in the foreground, ``tasks start --wait``, logs to
    its terminal, not to a file)."""
    if run_id is not None:
        run = store.run(run_id)
        if run is None or run["task"] != task:
            raise NotFoundError(f"task {task} has no run {run_id}")
        if not run_log_path(task, run_id, home).exists():
            raise NotFoundError(f"run {run_id} of task {task} has no log (it ran in the foreground?)")
        return run_id
    runs = logged_runs(task, home)
    if not runs:
        raise NotFoundError(f"task {task} has no worker log yet (a run with --wait logs to its terminal)")
    return runs[-1]


def run_ended(store: Store, run_id: int) -> bool:
    """Whether the run is over and its worker gone, so its log is complete. A run
    recorded as ended whose worker still writes its last lines is not, for up to
    :data:`EXIT_GRACE` seconds."""
    run = store.run(run_id)
    if run is None:
        return True
    stopped, pid = run["stopped_at"], run["pid"]
    if stopped is None:
        return False
    lingering = datetime.now(UTC) - stopped < timedelta(seconds=EXIT_GRACE)
    return not (pid is not None and lingering and pid_alive(int(pid)))


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def follow_log(
    path: Path, ended: Callable[[], bool], poll: float = 0.25, stop: threading.Event | None = None
) -> Iterator[str]:
    """The log's text from its start, then what is appended, until ``ended()``
    says the run is over (and what it wrote last is read) or ``stop`` is set.
    A rollover (``RunLogHandler``) is followed into the new part."""
    older = _older(path)
    if older.exists():
        yield older.read_text(encoding="utf-8", errors="replace")
    offset = 0
    stop = stop or threading.Event()
    while not stop.is_set():
        over = ended()  # asked before reading, so the last read sees all it wrote
        if offset and _size(path) < offset:  # rolled over: the rest of the old part first
            while True:
                rest = read_log(older, offset)
                yield rest.text
                offset = rest.next_offset
                if not rest.text or offset >= rest.size:
                    break
            offset = 0
        chunk = read_log(path, offset)
        if chunk.text:
            yield chunk.text
        offset = chunk.next_offset
        if chunk.next_offset < chunk.size:
            continue
        if over:
            return
        stop.wait(poll)
