"""Writes v7-sqlite.sql and v7-postgres.sql beside this file: a metadata store made
by Conveyor's own migrations at schema version 7 (before Alembic), with a row or two
in every table, for tests/unit/test_store_migrations.py. Run it with the Conveyor of
that time on the path (commit 2048e5a: `git archive 2048e5a src | tar -x -C OLD`):

    PYTHONPATH=OLD/src:tests python tests/data/store/make_v7_snapshots.py

The files are kept as written then: they are what older Conveyors left, not what
this one makes."""

from __future__ import annotations

import sqlite3
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from conveyor.store import schema
from conveyor.store.store import Store
from support.servers import PostgresServer

HERE = Path(__file__).parent
WHEN = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def fill(store: Store) -> None:
    assert schema.SCHEMA_VERSION == 7
    store.put_stack_document({"endpoints": {"src": {"engine": "sqlite", "path": "src.db"}}})
    run = store.start_run("orders", 4242)
    store.set_task_status("orders", "running", run=run)
    store.put_table_stats("orders", run, "main", "orders", {"FullLoadRows": 3})
    store.put_task_progress("orders", run, {"CDCLatencySource": 0.5, "AppliedChanges": 7})
    store.finish_run(run, "stopped", "STOP_REASON_NORMAL", None)
    store.set_task_status("orders", "stopped", stop_reason="STOP_REASON_NORMAL")
    store.put_suspension("orders", ("main", "items"), ("dw", "items"), "column 'a' changed type", {"lsn": 42})
    event = {"id": "ev-1", "time": "2026-11-30T12:00:00Z", "source": "conveyor.task"}
    store.put_event(event | {"detail-type": "Task Started", "detail": {"task": "orders"}})
    store.put_statement({"id": "st-1", "endpoint": "src", "query": "select 1", "status": "FINISHED"})
    record = {"cursor": {"state": "Done"}}
    values = {"name": "e1", "state_machine": "sm", "status": "SUCCEEDED", "record": record}
    values |= {"start_time": WHEN, "stop_time": WHEN}
    store.commit_execution(
        "ex-1", values, [{"id": 1, "type": "ExecutionStarted", "timestamp": "t", "details": {}}]
    )
    store.set_connection("src", "successful", None)
    store.set_schedule_last_fire("nightly", WHEN)
    store.put_task_token("tok-1", "ex-1", "Wait", WHEN)
    store.put_job_run(
        {"id": "jr-1", "job_name": "curate", "state": "SUCCEEDED", "arguments": {}, "started_on": WHEN}
    )
    with store.engine.begin() as conn:
        conn.execute(
            schema.load_segments.insert().values(
                task="orders",
                run_id=run,
                schema_name="main",
                table_name="orders",
                seq=0,
                spec={"where": "1=1"},
                state="done",
                attempt=1,
                claims=["host:1"],
                rows=3,
                updated_at=WHEN,
            )
        )


def sqlite_snapshot() -> None:
    with tempfile.TemporaryDirectory() as home:
        store = Store.open(Path(home))
        fill(store)
        store.close()
        conn = sqlite3.connect(Path(home) / "conveyor.db")
        (HERE / "v7-sqlite.sql").write_text("\n".join(conn.iterdump()) + "\n")
        conn.close()


def postgres_snapshot() -> None:
    server = PostgresServer()
    server.start()
    try:
        db = server.new_database("v7")
        store = Store.open(url=server.url(db))
        fill(store)
        store.close()
        dumped = subprocess.run(
            [
                str(server.bindir / "pg_dump"),
                "--inserts",
                "--no-owner",
                "--no-privileges",
                "--no-comments",
                "-h",
                server.host,
                "-p",
                str(server.port),
                "-U",
                server.user,
                db,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        # psql's meta-commands (\restrict) are not SQL
        lines = [line for line in dumped.splitlines() if not line.startswith("\\")]
        (HERE / "v7-postgres.sql").write_text("\n".join(lines) + "\n")
    finally:
        server.close()


if __name__ == "__main__":
    sqlite_snapshot()
    postgres_snapshot()
