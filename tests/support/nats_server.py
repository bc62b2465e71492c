"""A private NATS server with JetStream, started by the tests that need one:
a free loopback port, its store in a temporary directory, stopped by its pid."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from support.servers import STARTUP_TIMEOUT, ServerBinariesMissing, _log_tail, _PrivateServer, free_port


class NatsServer(_PrivateServer):
    host = "127.0.0.1"

    def __init__(self) -> None:
        binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
        if not os.path.exists(binary):
            raise ServerBinariesMissing("nats-server not found")
        self.binary = binary
        self.port = 0
        self.tempdir: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def logfile(self) -> Path:
        assert self.tempdir is not None
        return self.tempdir / "server.log"

    def start(self) -> None:
        self.tempdir = Path(tempfile.mkdtemp(prefix="conveyor-nats-", dir="/tmp"))
        self.port = free_port()
        self._launch()

    def _launch(self) -> None:
        assert self.tempdir is not None
        with self.logfile.open("ab") as log:
            self.process = subprocess.Popen(
                [self.binary, "-js", "-a", self.host, "-p", str(self.port), "-sd", str(self.tempdir / "js")],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"nats-server exited with {self.process.returncode}:\n{_log_tail(self.logfile)}"
                )
            try:
                with socket.create_connection((self.host, self.port), timeout=1) as sock:
                    if sock.recv(7) == b'INFO {"':
                        return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(
            f"nats-server did not listen within {STARTUP_TIMEOUT}s:\n{_log_tail(self.logfile)}"
        )

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
