"""Whether a recorded worker is still running: a process that has exited but is
not reaped yet (a zombie, as a detached worker is until its new parent reaps it)
is not; the run's log is complete once its run ended and its worker is gone."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from conveyor.core.processes import pid_alive
from conveyor.replication.run_logs import run_ended
from conveyor.store.store import Store


def _zombie() -> subprocess.Popen[bytes]:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # exited, not reaped: its /proc state is Z
        state = Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state == "Z":
            return child
        time.sleep(0.01)
    raise AssertionError("the child did not exit")


def test_a_zombie_is_not_alive() -> None:
    child = _zombie()
    try:
        assert not pid_alive(child.pid)
    finally:
        child.wait()
    assert pid_alive(os.getpid())
    assert not pid_alive(None) and not pid_alive(0)


def test_a_run_whose_worker_is_a_zombie_has_ended(tmp_path: Path) -> None:
    store = Store.open(home=tmp_path)
    child = _zombie()
    try:
        store.ensure_task("t")
        run = store.start_run("t", child.pid)
        store.finish_run(run, "stopped", "NORMAL", None)
        assert run_ended(store, run)  # within EXIT_GRACE, yet its worker is gone
    finally:
        child.wait()
        store.close()
