"""Whether a recorded process (a worker, a statement's or an execution's owner) is
still running, and stopping this one between batches on a signal."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

log = logging.getLogger(__name__)


def pid_alive(pid: int | None) -> bool:
    """Whether ``pid`` is a live process that could be a Conveyor worker: not gone,
    not a zombie, and (where /proc tells) a Python process, not a reused pid."""
    if pid is None or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path("/proc") / str(pid)
    try:
        stat = (proc / "stat").read_text()
        # The state follows the parenthesised command name, which may itself hold ")".
        # A zombie is gone once its last thread is: until then it still holds its
        # files (and their locks), as a killed worker's threads wind down.
        if stat[stat.rindex(")") + 2 :].startswith(("Z", "X")) and len(os.listdir(proc / "task")) <= 1:
            return False
        cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (OSError, ValueError):
        return True  # no /proc here: trust the signal
    return "python" in cmdline or "conveyor" in cmdline


@contextmanager
def stop_on_signals(stop: threading.Event, *signums: signal.Signals) -> Iterator[None]:
    """While inside, the given signals set ``stop`` instead of ending the process
    (a second SIGINT ends it the usual way). Only in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set() and signum == signal.SIGINT:  # a second Ctrl-C: stop now
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        log.warning("%s: stopping between batches", signal.Signals(signum).name)
        stop.set()

    previous = {signum: signal.signal(signum, handler) for signum in signums}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
