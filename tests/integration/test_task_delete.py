"""`conveyor tasks delete`: a stopped task leaves what is applied, its change capture
ended on the source first (the replication slot and publication Conveyor made), so
nothing of it keeps holding the source's WAL; a running task, or one a source that
cannot be reached would leave a slot behind, is not deleted."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from support import stacks
from support.cli import conveyor
from support.tasks import ended, kill_worker, wait_for

pytestmark = pytest.mark.integration


def _slots_and_publications(url: str) -> tuple[list[str], list[str]]:
    with psycopg.connect(url, autocommit=True) as conn:
        slots = [
            r[0]
            for r in conn.execute(
                "SELECT slot_name FROM pg_replication_slots WHERE database = current_database()"
            )
        ]
        publications = [r[0] for r in conn.execute("SELECT pubname FROM pg_publication")]
    return slots, publications


def test_a_stopped_capture_task_is_deleted_with_its_slot_and_publication(pg_db: str, tmp_path: Path) -> None:
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, name text)")
        conn.execute("INSERT INTO items VALUES (1, 'a')")
    home = tmp_path / "home"
    stack = stacks.one_task(
        tmp_path / "conveyor.yaml",
        {"engine": "postgres", "url": pg_db},
        {"engine": "duckdb", "path": str(tmp_path / "w.duckdb")},
        schema="public",
    )
    assert conveyor(home, "apply", str(stack)).returncode == 0
    try:
        assert conveyor(home, "tasks", "start", "sync").returncode == 0
        wait_for(home, "sync", lambda d: d["status"] == "running" and bool(d["tables"]))
        running = conveyor(home, "tasks", "delete", "sync")
        assert running.returncode == 1
        assert "task 'sync' is running: stop it before you delete it" in running.stderr
        assert _slots_and_publications(pg_db)[0] != []  # the capture's slot
        assert conveyor(home, "tasks", "stop", "sync").returncode == 0
        wait_for(home, "sync", ended)
    finally:
        kill_worker(home, "sync")

    deleted = conveyor(home, "tasks", "delete", "sync", "--json")
    assert deleted.returncode == 0, deleted.stderr
    assert json.loads(deleted.stdout) == {"task": "sync", "status": "deleted", "pid": None}
    assert _slots_and_publications(pg_db) == ([], [])
    assert json.loads(conveyor(home, "tasks", "list", "--json").stdout) == []
    events = json.loads(conveyor(home, "events", "list", "--json").stdout)["Events"]
    assert events[0]["detail"]["eventId"] == "DMS-EVENT-0073"  # the newest
    again = conveyor(home, "tasks", "delete", "sync")
    assert (again.returncode, again.stderr) == (2, "error: no task named 'sync'; known: -\n")


def test_a_task_whose_source_cannot_be_reached_is_kept(tmp_path: Path) -> None:
    """Deleting it would leave its slot on the source, holding WAL, with nothing to say so."""
    home = tmp_path / "home"
    stack = stacks.one_task(
        tmp_path / "conveyor.yaml",
        {"engine": "postgres", "url": "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2"},
        {"engine": "duckdb", "path": str(tmp_path / "w.duckdb")},
        migration_type="cdc",
    )
    assert conveyor(home, "apply", str(stack)).returncode == 0
    refused = conveyor(home, "tasks", "delete", "sync")
    assert refused.returncode == 1
    assert "endpoint 'src': cannot connect to PostgreSQL at 127.0.0.1:1" in refused.stderr, refused.stderr
    assert [t["name"] for t in json.loads(conveyor(home, "tasks", "list", "--json").stdout)] == ["sync"]
