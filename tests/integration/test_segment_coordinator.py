"""The task's side of a load split across workers, in process against a real
PostgreSQL source and target: a failed segment fails the table (the others
cancelled, staging tables dropped, the target untouched), and a stop gives
the table up the same way."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from conveyor.connectors.base import EndpointConfig, PrepMode
from conveyor.connectors.postgres.source import PostgresSource
from conveyor.connectors.postgres.target import PostgresTarget
from conveyor.core.types import Kind
from conveyor.replication.full_load import FullLoad
from conveyor.replication.segment_load import StoreSegments
from conveyor.replication.segment_plan import key_ranges
from conveyor.replication.settings import SegmentedLoadSettings
from conveyor.replication.table_plan import TABLE_ERROR, TABLE_QUEUED, TablePlan
from conveyor.store.segments import CANCELLED, FAILED, SegmentQueue
from conveyor.store.store import Store
from support.servers import PostgresServer

pytestmark = pytest.mark.integration


def _setup(pg_server: PostgresServer) -> tuple[PostgresSource, PostgresTarget, str]:
    source_url = pg_server.url(pg_server.new_database("coordsrc"))
    target_url = pg_server.url(pg_server.new_database("coorddst"))
    with psycopg.connect(source_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id integer PRIMARY KEY, v text)")
        conn.execute("INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 1000) g")
    source = PostgresSource(EndpointConfig("src", "postgres", url=source_url))
    target = PostgresTarget(EndpointConfig("dw", "postgres", url=target_url))
    return source, target, target_url


@pytest.mark.parametrize("ending", ["segment fails", "task stops"])
def test_a_table_given_up_leaves_nothing(pg_server: PostgresServer, tmp_path: Path, ending: str) -> None:
    source, target, target_url = _setup(pg_server)
    store = Store.open(home=tmp_path / "home")
    queue = SegmentQueue(store)
    (table,) = [t for t in source.tables() if t.ref.name == "t"]
    plan = replace(TablePlan(table, table), segments=key_ranges("id", Kind.INT32, 1, 1000, 4))
    snapshot = source.snapshot()
    stop = threading.Event()
    seen: list[str] = []

    def worker() -> None:
        """Claims the first segment, then fails it or stops the load."""
        for _ in range(200):
            claim = queue.claim("w", timedelta(seconds=30))
            if claim is not None:
                with psycopg.connect(target_url, autocommit=True) as conn:  # a staging table left behind
                    conn.execute(f'CREATE TABLE public."{claim.spec["staging"][1]}" (id integer)')
                if ending == "segment fails":
                    queue.fail(claim, "boom")
                else:
                    stop.set()
                return
            threading.Event().wait(0.05)

    try:
        settings = SegmentedLoadSettings.model_validate({"Workers": "store"})
        segmented = StoreSegments(queue, "t", 1, snapshot, target, settings)
        helper = threading.Thread(target=worker)
        helper.start()
        load = FullLoad(snapshot, target, [plan], PrepMode.DROP_AND_CREATE, segmented=segmented, stop=stop)
        (progress,) = load.run()
        helper.join(timeout=30)
        seen = [s["state"] for s in queue.segments(1)]
    finally:
        snapshot.close()
        store.close()
    if ending == "segment fails":
        assert progress.state == TABLE_ERROR
        assert progress.error is not None and "segment 1 of 4 failed: boom" in progress.error
        assert seen == [FAILED, CANCELLED, CANCELLED, CANCELLED]
    else:
        assert progress.state == TABLE_QUEUED
        assert seen == [CANCELLED] * 4
    with psycopg.connect(target_url) as conn:
        tables = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    assert tables == []  # no staging table, and the table itself never committed
