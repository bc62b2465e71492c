"""Endpoint options written in a stack file reach the connectors: a PostgreSQL
source captures through the slot and publication it names, a DuckDB target
runs with the memory_limit it sets. Through `conveyor apply` and `tasks start`."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest

from support import tasks as support_tasks
from support.cli import conveyor, worker_log

pytestmark = pytest.mark.integration


def describe(home: Path, task: str) -> dict[str, Any]:
    """`conveyor tasks describe TASK --json`, read in this process (it is polled)."""
    return support_tasks.described(home, task)


def wait_for(home: Path, task: str, until: Callable[[dict[str, Any]], bool], seconds: float = 60) -> None:
    """Poll `tasks describe`: at most ``seconds`` and 300 polls."""
    deadline = time.monotonic() + seconds
    described: dict[str, Any] = {}
    for _ in range(300):
        described = describe(home, task)
        if until(described):
            return
        if described["status"] == "failed" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    raise AssertionError(f"gave up waiting; last description: {described}")


def wait_heartbeat(url: str, seconds: float) -> bool:
    """Whether a session of the database ran the capture's heartbeat (at most ``seconds``, 100 polls)."""
    deadline = time.monotonic() + seconds
    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(100):
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND query LIKE 'SELECT pg_logical_emit_message%%'"
            ).fetchone()
            if row is not None and row[0] > 0:
                return True
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
    return False


@pytest.fixture
def named_slot(pg_db: str) -> Iterator[tuple[str, str]]:
    """A source table with a publication and a logical slot the user made."""
    database = pg_db.rsplit("/", 1)[1]
    slot, publication = f"own_slot_{database}".lower(), "own_pub"
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.items (id int PRIMARY KEY, name text)")
        conn.execute("INSERT INTO public.items VALUES (1, 'a'), (2, 'b')")
        conn.execute(f"CREATE PUBLICATION {publication} FOR TABLE public.items")
        conn.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
    try:
        yield slot, publication
    finally:
        with psycopg.connect(pg_db, autocommit=True) as conn:
            for _ in range(100):  # the worker may still hold it for a moment
                active = conn.execute(
                    "SELECT active FROM pg_replication_slots WHERE slot_name = %s", (slot,)
                ).fetchone()
                if active is None or not active[0]:
                    break
                time.sleep(0.1)
            conn.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s",
                (slot,),
            )


def test_slot_publication_and_memory_limit_from_the_stack_file(
    tmp_path: Path, pg_db: str, named_slot: tuple[str, str]
) -> None:
    slot, publication = named_slot
    home, warehouse = tmp_path / "home", tmp_path / "dw.duckdb"
    stack = tmp_path / "conveyor.yaml"
    stack.write_text(
        "endpoints:\n"
        f"  src: {{engine: postgres, url: '{pg_db}',"
        f" settings: {{slot_name: {slot}, publication_name: {publication}, heartbeat_seconds: 1}}}}\n"
        f"  dw: {{engine: duckdb, path: '{warehouse}', settings: {{memory_limit: 96MB}}}}\n"
        "tasks:\n"
        "  sync: {source: src, target: dw, migration_type: full-load-and-cdc}\n"
    )
    applied = conveyor(home, "apply", str(stack))
    assert applied.returncode == 0, applied.stderr
    started = conveyor(home, "tasks", "start", "sync")
    assert started.returncode == 0, started.stderr
    try:
        wait_for(home, "sync", lambda d: d["status"] == "running" and len(d["tables"]) == 1)
        with psycopg.connect(pg_db, autocommit=True) as conn:
            conn.execute("INSERT INTO public.items VALUES (3, 'c')")
        wait_for(home, "sync", lambda d: sum(t.get("Inserts", 0) for t in d["tables"]) >= 1)
        with psycopg.connect(pg_db, autocommit=True) as conn:
            slots = dict(
                conn.execute(
                    "SELECT slot_name, active FROM pg_replication_slots WHERE database = current_database()"
                ).fetchall()
            )
            publications = {row[0] for row in conn.execute("SELECT pubname FROM pg_publication").fetchall()}
        assert slots.get(slot) is True  # the task streams from the user's slot
        assert not [name for name in slots if name.startswith("conveyor_")]
        assert publications == {publication}
        # heartbeat_seconds: 1: an idle stream writes a WAL message within seconds
        assert wait_heartbeat(pg_db, seconds=20)
    finally:
        stop = conveyor(home, "tasks", "stop", "sync")
        assert stop.returncode == 0, stop.stderr
        wait_for(home, "sync", lambda d: d["status"] in {"stopped", "failed"})
    assert describe(home, "sync")["status"] == "stopped"
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        assert conn.execute("SELECT id, name FROM public.items ORDER BY id").fetchall() == [
            (1, "a"),
            (2, "b"),
            (3, "c"),
        ]
    log = worker_log(home, "sync")
    assert "endpoint dw: DuckDB memory_limit 91.5 MiB" in log  # DuckDB shows 96MB in MiB
    with psycopg.connect(pg_db, autocommit=True) as conn:  # the user's slot outlives the task
        assert conn.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (slot,)).fetchone()


def test_a_misspelt_option_is_refused_at_apply_naming_endpoint_and_key(tmp_path: Path) -> None:
    stack = tmp_path / "conveyor.yaml"
    stack.write_text(
        "endpoints:\n"
        "  src: {engine: postgres, url: 'postgresql://app@127.0.0.1:5/db', heartbeat_seconds: 5,\n"
        "        settings: {slot_nam: s, heartbeat_seconds: fast}}\n"
        f"  dw: {{engine: duckdb, path: '{tmp_path / 'dw.duckdb'}', settings: {{memory_limt: 1GB}}}}\n"
        "  lite: {engine: sqlite, path: ./a.sqlite, settings: {batch_rows: 0}}\n"
    )
    result = conveyor(tmp_path / "home", "apply", str(stack))
    assert result.returncode == 2
    lines = " ".join(result.stderr.split())
    for fragment in (
        "endpoints.src.heartbeat_seconds: an option of a postgres endpoint: write it under settings",
        "endpoints.src.settings.slot_nam: unknown option of a postgres endpoint; did you mean 'slot_name'?",
        "endpoints.src.settings.heartbeat_seconds:",
        "endpoints.dw.settings.memory_limt: unknown option of a duckdb endpoint;"
        " did you mean 'memory_limit'?",
        "endpoints.lite.settings.batch_rows: must be greater than or equal to 1 (got 0)",
    ):
        assert fragment in lines, result.stderr
    assert not (tmp_path / "home").exists() or "created" not in result.stdout
