"""Private PostgreSQL and MariaDB servers started by the test suite.

Both servers listen on a free loopback port with their data in a temporary
directory, so system servers on 5432/3306 are never touched.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

STARTUP_TIMEOUT = 60.0


class ServerBinariesMissing(RuntimeError):
    """The server binaries are not installed."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _chown_tree(path: Path, user: str) -> None:
    entry = pwd.getpwnam(user)
    os.chown(path, entry.pw_uid, entry.pw_gid)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)


def _log_tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def _unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


class _PrivateServer:
    """What both servers share: restart, and close (stop, then remove the temp dir)."""

    tempdir: Path | None

    def stop(self) -> None:
        raise NotImplementedError

    def _launch(self) -> None:
        raise NotImplementedError

    def restart(self) -> None:
        self.stop()
        self._launch()

    def close(self) -> None:
        try:
            self.stop()
        finally:
            if self.tempdir is not None:
                shutil.rmtree(self.tempdir, ignore_errors=True)
                self.tempdir = None


class PostgresServer(_PrivateServer):
    host = "127.0.0.1"
    user = "postgres"
    password: str | None = None

    def __init__(self) -> None:
        self.bindir = self._find_bindir()
        self.port = 0
        self.tempdir: Path | None = None
        self.startup_seconds: float | None = None

    @staticmethod
    def _find_bindir() -> Path:
        candidates = []
        for path in glob.glob("/usr/lib/postgresql/*/bin"):
            version = Path(path).parent.name
            if os.path.exists(os.path.join(path, "initdb")):
                try:
                    key = float(version)
                except ValueError:
                    continue
                candidates.append((key, Path(path)))
        if not candidates:
            raise ServerBinariesMissing("PostgreSQL binaries not found")
        return max(candidates)[1]

    @property
    def datadir(self) -> Path:
        assert self.tempdir is not None
        return self.tempdir / "data"

    @property
    def logfile(self) -> Path:
        assert self.tempdir is not None
        return self.tempdir / "server.log"

    def _run(self, *args: str) -> None:
        cmd = ["runuser", "-u", "postgres", "--", *args]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(
                f"{' '.join(cmd)} failed ({result.returncode}):\n"
                f"{result.stdout}\n{result.stderr}\n{_log_tail(self.logfile)}"
            )

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{db}"

    def _setup(self) -> None:
        self.tempdir = Path(tempfile.mkdtemp(prefix="conveyor-pg-", dir="/tmp"))
        _chown_tree(self.tempdir, "postgres")
        self.port = free_port()
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.datadir),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        )
        conf = self.datadir / "postgresql.conf"
        with conf.open("a") as fh:
            fh.write(
                "\n# conveyor test settings\n"
                "listen_addresses = '127.0.0.1'\n"
                f"port = {self.port}\n"
                f"unix_socket_directories = '{self.tempdir}'\n"
                "wal_level = logical\n"
                "max_replication_slots = 20\n"
                "max_wal_senders = 20\n"
                "fsync = off\n"
                "synchronous_commit = off\n"
                "full_page_writes = off\n"
                "max_connections = 200\n"
            )
        hba = self.datadir / "pg_hba.conf"
        hba.write_text(
            "local all all trust\n"
            "local replication all trust\n"
            "host replication postgres 127.0.0.1/32 trust\n"
            "host replication all 127.0.0.1/32 scram-sha-256\n"
            "host all postgres 127.0.0.1/32 trust\n"
            "host all all 127.0.0.1/32 scram-sha-256\n"
        )
        _chown_tree(self.tempdir, "postgres")

    def _launch(self) -> None:
        began = time.monotonic()
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.datadir),
            "-l",
            str(self.logfile),
            "-w",
            "-t",
            str(int(STARTUP_TIMEOUT)),
            "start",
        )
        self._wait_ready(began)

    def _wait_ready(self, began: float) -> None:
        import psycopg

        deadline = began + STARTUP_TIMEOUT
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                with psycopg.connect(self.url(), connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                self.startup_seconds = time.monotonic() - began
                return
            except psycopg.OperationalError as exc:
                last = exc
                time.sleep(0.1)
        raise RuntimeError(
            f"PostgreSQL did not accept connections within {STARTUP_TIMEOUT}s: "
            f"{last}\n{_log_tail(self.logfile)}"
        )

    def start(self) -> None:
        began = time.monotonic()
        if self.tempdir is None:
            self._setup()
        self._launch()
        self.startup_seconds = time.monotonic() - began

    def stop(self) -> None:
        if self.tempdir is None:
            return
        if (self.datadir / "postmaster.pid").exists():
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "fast", "-w", "stop")

    def new_database(self, prefix: str = "t") -> str:
        import psycopg

        name = _unique_name(prefix)
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name


class MariaDBServer(_PrivateServer):
    host = "127.0.0.1"
    user = "root"
    password = ""

    def __init__(self) -> None:
        self.mariadbd = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
        self.install_db = shutil.which("mariadb-install-db") or "/usr/bin/mariadb-install-db"
        if not (os.path.exists(self.mariadbd) and os.path.exists(self.install_db)):
            raise ServerBinariesMissing("MariaDB binaries not found")
        self.port = 0
        self.tempdir: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.startup_seconds: float | None = None

    @property
    def datadir(self) -> Path:
        assert self.tempdir is not None
        return self.tempdir / "data"

    @property
    def logfile(self) -> Path:
        assert self.tempdir is not None
        return self.tempdir / "server.log"

    @property
    def cnf(self) -> Path:
        assert self.tempdir is not None
        return self.tempdir / "my.cnf"

    def url(self, db: str = "") -> str:
        return f"mysql://{self.user}@{self.host}:{self.port}/{db}"

    def _setup(self) -> None:
        self.tempdir = Path(tempfile.mkdtemp(prefix="conveyor-mariadb-", dir="/tmp"))
        self.port = free_port()
        self.datadir.mkdir()
        t = self.tempdir
        self.cnf.write_text(
            "[mysqld]\n"
            f"datadir = {self.datadir}\n"
            f"port = {self.port}\n"
            "bind-address = 127.0.0.1\n"
            f"socket = {t}/mysqld.sock\n"
            f"pid-file = {t}/mysqld.pid\n"
            f"tmpdir = {t}\n"  # private: bootstraps side by side collide on /tmp's #sql-temptable-* names
            f"log_bin = {t}/mysql-bin\n"
            "binlog_format = ROW\n"
            "binlog_row_image = FULL\n"
            "binlog_row_metadata = FULL\n"
            "server_id = 1\n"
            "skip-name-resolve\n"
            "innodb_flush_log_at_trx_commit = 2\n"
            "sync_binlog = 0\n"
            "character-set-server = utf8mb4\n"
            "innodb_buffer_pool_size = 128M\n"
            "user = mysql\n"
        )
        _chown_tree(t, "mysql")
        cmd = [
            self.install_db,
            f"--defaults-file={self.cnf}",
            "--user=mysql",
            f"--datadir={self.datadir}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
        ]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(
                f"mariadb-install-db failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
            )
        _chown_tree(t, "mysql")

    def _launch(self) -> None:
        import pymysql

        began = time.monotonic()
        with self.logfile.open("ab") as log:
            self.process = subprocess.Popen(
                [self.mariadbd, f"--defaults-file={self.cnf}"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = began + STARTUP_TIMEOUT
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"mariadbd exited with {self.process.returncode}:\n{_log_tail(self.logfile)}"
                )
            try:
                conn = pymysql.connect(
                    host=self.host, port=self.port, user=self.user, password="", connect_timeout=2
                )
            except pymysql.err.OperationalError as exc:
                last = exc
                time.sleep(0.1)
                continue
            conn.close()
            self.startup_seconds = time.monotonic() - began
            return
        self._terminate()
        raise RuntimeError(
            f"MariaDB did not accept connections within {STARTUP_TIMEOUT}s: {last}\n{_log_tail(self.logfile)}"
        )

    def start(self) -> None:
        began = time.monotonic()
        if self.tempdir is None:
            self._setup()
        self._launch()
        self.startup_seconds = time.monotonic() - began

    def _terminate(self) -> None:
        proc = self.process
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.process = None

    def stop(self) -> None:
        self._terminate()

    def new_database(self, prefix: str = "t") -> str:
        import pymysql

        name = _unique_name(prefix)
        conn = pymysql.connect(host=self.host, port=self.port, user=self.user, password="")
        try:
            with conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        finally:
            conn.close()
        return name
