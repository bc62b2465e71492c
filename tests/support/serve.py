"""`conveyor serve` run as a user runs it, in a child process, and waiting on it."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from support.cli import environment


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)


class Serve:
    def __init__(self, home: Path, port: int, env: dict[str, str] | None = None, *args: str) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = home.parent / f"serve-{port}-{time.monotonic_ns()}.log"
        self.log = open(self.log_path, "w")  # noqa: SIM115
        self.process = subprocess.Popen(
            [sys.executable, "-m", "conveyor", "serve", "--port", str(port), *args],
            env=environment(home, env),
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def ready(self, headers: dict[str, str] | None = None) -> None:
        def answers() -> bool:
            assert self.process.poll() is None, "serve exited"
            try:
                return httpx.get(f"{self.url}/health", headers=headers, timeout=1).status_code in (200, 401)
            except httpx.HTTPError:
                return False

        wait_for(answers, 30, "conveyor serve to answer")

    def terminate(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        finally:
            self.log.close()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.log.close()
