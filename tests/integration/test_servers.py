"""The private database servers come up with the settings conveyor needs."""

from __future__ import annotations

import psycopg
import pymysql
import pytest

from support.servers import MariaDBServer, PostgresServer

pytestmark = pytest.mark.integration


def test_postgres_answers_with_logical_wal(pg_server: PostgresServer) -> None:
    with psycopg.connect(pg_server.url()) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        assert conn.execute("SHOW wal_level").fetchone() == ("logical",)


def test_mariadb_binlog_settings(mariadb_server: MariaDBServer) -> None:
    conn = pymysql.connect(
        host=mariadb_server.host,
        port=mariadb_server.port,
        user=mariadb_server.user,
        password=mariadb_server.password,
    )
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT @@log_bin, @@binlog_format, @@binlog_row_image, @@binlog_row_metadata")
            assert cur.fetchone() == (1, "ROW", "FULL", "FULL")
    finally:
        conn.close()


def test_postgres_restart_then_connect(pg_server: PostgresServer) -> None:
    pg_server.restart()
    with psycopg.connect(pg_server.url()) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_two_pg_databases_differ(pg_server: PostgresServer, pg_db: str) -> None:
    other = pg_server.url(pg_server.new_database())
    assert other != pg_db
    with psycopg.connect(pg_db) as conn:
        name = conn.execute("SELECT current_database()").fetchone()
    assert name is not None and pg_db.endswith("/" + name[0])
