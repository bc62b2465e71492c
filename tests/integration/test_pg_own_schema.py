"""Conveyor's own schema on a PostgreSQL source (``conveyor_ddl``, DDL capture)
is never a user table: a task selecting every schema neither loads it nor puts
it in its publication, so starting such a task again works."""

from __future__ import annotations

import psycopg
import pytest

from conveyor.connectors.base import EndpointConfig
from conveyor.connectors.registry import open_change_source, open_source
from support.servers import PostgresServer

pytestmark = pytest.mark.integration


def test_conveyor_ddl_schema_is_not_listed_and_capture_begins_again(pg_server: PostgresServer) -> None:
    url = pg_server.url(pg_server.new_database("ownschema"))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id bigint PRIMARY KEY, v text)")
    config = EndpointConfig("src", "postgres", url=url)
    source = open_source(config)
    changes = open_change_source(config)
    try:
        changes.begin_capture("own", source.tables(), export_snapshot=False)
        with psycopg.connect(url) as conn:  # the DDL capture's schema is there now
            assert conn.execute(
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'conveyor_ddl'"
            ).fetchone() == (2,)
        tables = source.tables()
        assert [str(t.ref) for t in tables] == ["public.items"]
        changes.end_capture("own")  # a start again: capture ends, then begins with the same tables
        changes.begin_capture("own", tables, export_snapshot=False)
    finally:
        changes.end_capture("own")
        source.close()
