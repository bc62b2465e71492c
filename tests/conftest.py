"""Shared fixtures: private database servers started on demand."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import psycopg
import pytest

from conveyor.store.store import Store
from support.moto import running_moto
from support.servers import MariaDBServer, PostgresServer, ServerBinariesMissing
from support.spark import SparkCluster, start_cluster

Server = TypeVar("Server", PostgresServer, MariaDBServer)
MISSING_HINT = "run `make system-packages` to install the database servers"


def _running(kind: type[Server]) -> Iterator[Server]:
    try:
        server = kind()
    except ServerBinariesMissing as exc:
        pytest.fail(f"{exc}: {MISSING_HINT}")
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    yield from _running(PostgresServer)


@pytest.fixture(scope="session")
def mariadb_server() -> Iterator[MariaDBServer]:
    yield from _running(MariaDBServer)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A metadata store under the test's own CONVEYOR_HOME-like folder."""
    opened = Store.open(home=tmp_path / "home")
    yield opened
    opened.close()


@pytest.fixture(autouse=True)
def _free_replication_slots(request: pytest.FixtureRequest) -> Iterator[None]:
    """After a test that used the session's PostgreSQL server, drop the logical
    slots nothing streams from any more: slots are server-wide and limited, and
    a task a test leaves stopped keeps its slot (as it must for a resume)."""
    yield
    if "pg_server" not in request.fixturenames:
        return
    server: PostgresServer = request.getfixturevalue("pg_server")
    with psycopg.connect(server.url(), autocommit=True, connect_timeout=10) as conn:
        idle = conn.execute(
            "SELECT slot_name FROM pg_replication_slots WHERE NOT active AND slot_type = 'logical'"
        ).fetchall()
        for (slot,) in idle:
            with contextlib.suppress(psycopg.Error):  # taken up again meanwhile: left as it is
                conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))


@pytest.fixture
def pg_db(pg_server: PostgresServer) -> str:
    return pg_server.url(pg_server.new_database())


@pytest.fixture
def mariadb_db(mariadb_server: MariaDBServer) -> str:
    return mariadb_server.url(mariadb_server.new_database())


@pytest.fixture(scope="session")
def moto_url() -> Iterator[str]:
    """One moto server for the session (S3, DynamoDB and Streams); tests name
    their buckets and tables uniquely."""
    with running_moto() as url:
        yield url


SPARK_TEST_JVM_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


@pytest.fixture(scope="session")
def spark_cluster() -> Iterator[SparkCluster]:
    """One Spark standalone master and worker (1 core) on loopback for the session.

    Its JVMs, and the drivers and executors of the session's runs, compile with the
    client compiler only (``JAVA_TOOL_OPTIONS``): the same results, half the CPU for
    runs this short (a test's Spark curation: 45 -> 22 CPU-s, 50 -> 34 s)."""
    pytest.importorskip("pyspark")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JAVA_TOOL_OPTIONS", SPARK_TEST_JVM_OPTIONS)
        cluster = start_cluster()
        try:
            yield cluster
        finally:
            cluster.close()
