"""Whether a recorded process (a worker, a statement's or an execution's owner) is
still running."""

from __future__ import annotations

import os
from pathlib import Path


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
