"""Shared fixtures: private database servers started on demand."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support.servers import MariaDBServer, PostgresServer, ServerBinariesMissing

MISSING_HINT = "run `make system-packages` to install the database servers"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    try:
        server = PostgresServer()
    except ServerBinariesMissing as exc:
        pytest.fail(f"{exc}: {MISSING_HINT}")
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def mariadb_server() -> Iterator[MariaDBServer]:
    try:
        server = MariaDBServer()
    except ServerBinariesMissing as exc:
        pytest.fail(f"{exc}: {MISSING_HINT}")
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture
def pg_db(pg_server: PostgresServer) -> str:
    return pg_server.url(pg_server.new_database())


@pytest.fixture
def mariadb_db(mariadb_server: MariaDBServer) -> str:
    return mariadb_server.url(mariadb_server.new_database())
