"""Crash points for the crash tests: ``CONVEYOR_FAULT_POINT=NAME:N`` makes the
N-th pass through the point named NAME kill this process with SIGKILL, the way
an OOM killer or a power cut would. Unset (always, outside tests) it costs one
dictionary lookup."""

from __future__ import annotations

import os
import signal
import threading

ENV = "CONVEYOR_FAULT_POINT"
_lock = threading.Lock()
_hits: dict[str, int] = {}


def fault_point(name: str) -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    wanted, _, count = spec.partition(":")
    if wanted != name:
        return
    with _lock:
        _hits[name] = _hits.get(name, 0) + 1
        if _hits[name] >= int(count or 1):
            os.kill(os.getpid(), signal.SIGKILL)
