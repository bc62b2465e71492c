"""Shared fixtures: private database servers started on demand."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TypeVar

import pytest

from support.moto import running_moto
from support.servers import MariaDBServer, PostgresServer, ServerBinariesMissing

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
