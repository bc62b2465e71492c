"""Waiting on a task: its description read in this process through the Python API.

A poll of ``conveyor tasks describe`` starts a Python process (about a second of
CPU), and a loop of them takes a core from the worker the test waits for. The
API answers what the CLI prints (test_python_api compares the two), so the waits
read it here; what a test asserts on can still come from the CLI."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from conveyor import Conveyor
from conveyor.service.models import to_json
from support.cli import conveyor


def wait_until(
    check: Callable[[], bool], what: str, seconds: float = 30.0, debug: Callable[[], Any] | None = None
) -> None:
    """Until ``check()`` holds, every 0.1 s, at most ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {seconds} s waiting for {what}: {debug() if debug else ''}")


def described(home: Path, task: str) -> dict[str, Any]:
    """``conveyor tasks describe TASK --json`` of the store under ``home``, read in this process."""
    with Conveyor(home=home) as api:
        answer: dict[str, Any] = to_json(api.describe_task(task))
    return answer


def kill_worker(home: Path, task: str) -> None:
    """A test that fails must not leave a worker behind (it would hold the servers)."""
    pid = described(home, task).get("pid")
    if pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def wait_for(
    home: Path, task: str, until: Callable[[dict[str, Any]], bool], seconds: float = 60
) -> dict[str, Any]:
    """Poll ``task``'s description until ``until`` holds (at most ``seconds``); the last one."""
    return wait_for_all(home, [task], until, f"{task} to get there", seconds=seconds)[task]


def wait_for_all(
    home: Path,
    tasks: list[str],
    until: Callable[[dict[str, Any]], bool],
    what: str,
    seconds: float = 60,
    interval: float = 0.2,
) -> dict[str, dict[str, Any]]:
    """Poll every task's description until ``until`` holds for each: at most
    ``seconds`` and 1000 polls. The last descriptions, by task."""
    deadline = time.monotonic() + seconds
    last: dict[str, dict[str, Any]] = {}
    with Conveyor(home=home) as api:
        for _ in range(1000):
            last = {t: to_json(api.describe_task(t)) for t in tasks}
            if all(until(d) for d in last.values()):
                return last
            if time.monotonic() > deadline:
                break
            time.sleep(interval)
    states = {t: {k: d.get(k) for k in ("status", "stop_reason", "last_error")} for t, d in last.items()}
    raise AssertionError(f"timed out after {seconds} s waiting for {what}: {states}")


def ended(described: dict[str, Any]) -> bool:
    return described["status"] in {"stopped", "failed"}


def apply(home: Path, path: Path, text: str) -> None:
    """Write the stack ``text`` to ``path`` and ``conveyor apply`` it."""
    path.write_text(text)
    result = conveyor(home, "apply", str(path))
    assert result.returncode == 0, result.stderr


def drop_slots(url: str) -> None:
    """Drop the database's replication slots once no worker holds them (at most 10 s)."""
    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(100):
            row = conn.execute(
                "SELECT count(*) FROM pg_replication_slots WHERE active AND database = current_database()"
            ).fetchone()
            if row == (0,):
                break
            time.sleep(0.1)
        conn.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
            " WHERE database = current_database() AND NOT active"
        )
