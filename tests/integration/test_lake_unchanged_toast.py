"""An UPDATE that leaves a TOASTed value unchanged (pgoutput sends no value
for it) must not turn that value into NULL in the curated lake table."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from conveyor.orchestration.bus import event_sink
from conveyor.replication.task_runner import run_task
from conveyor.stack.loader import load_stack
from conveyor.store.store import Store
from support.cli import conveyor
from support.servers import PostgresServer

pytestmark = pytest.mark.integration

DEADLINE_S = 60.0
BIG = "(SELECT string_agg(md5(i::text || {seed}), '') FROM generate_series(1, 300) AS i)"


def _wait(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _counted(store: Store, run: int | None) -> int | None:
    """Changes of the table handed to the applier in ``run`` (None before its
    capture reports); a stop applies every change handed over."""
    if run is None or store.task_progress("toast") is None:
        return None
    stats = store.table_stats("toast", run)
    return sum(int(s.get("Inserts", 0)) + int(s.get("Updates", 0)) for s in stats) if stats else None


def _run_changes(store: Store, stack: Path, source: str, statements: list[str]) -> None:
    """Run the task until ``statements`` (one transaction each) are captured."""
    stop = threading.Event()
    loaded = load_stack(stack)
    status = store.task_status("toast") or {}
    previous = status.get("current_run")
    mode = "resume" if previous is not None else "start"
    thread = threading.Thread(
        target=lambda: run_task(store, loaded, "toast", events=event_sink(store), stop=stop, mode=mode),
        daemon=True,
    )
    thread.start()

    def run() -> int | None:
        current = (store.task_status("toast") or {}).get("current_run")
        return None if current == previous else current

    try:
        _wait(lambda: _counted(store, run()) is not None, "capture to begin")
        with psycopg.connect(source, autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)  # type: ignore[arg-type]
        _wait(lambda: (_counted(store, run()) or 0) >= len(statements), "the changes to be captured")
    finally:
        stop.set()
        thread.join(timeout=DEADLINE_S)
    assert not thread.is_alive()


def _curated(home: Path) -> dict[int, tuple[Any, ...]]:
    processed = conveyor(home, "lake", "process", "--json", timeout=300)
    assert processed.returncode == 0, processed.stdout + processed.stderr
    failed = [t for t in json.loads(processed.stdout) if t["status"] == "failed"]
    assert not failed, failed
    queried = conveyor(home, "query", "SELECT id, n, md5(doc) AS doc FROM public.docs ORDER BY id", "--json")
    assert queried.returncode == 0, queried.stderr
    return {row["id"]: (row["n"], row["doc"]) for row in json.loads(queried.stdout)}


def _source(url: str) -> dict[int, tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT id, n, md5(doc) FROM docs ORDER BY id").fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def test_unchanged_toasted_values_keep_their_value_in_the_curated_table(
    pg_server: PostgresServer, tmp_path: Path
) -> None:
    source = pg_server.url(pg_server.new_database("toast"))
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("CREATE TABLE docs (id integer PRIMARY KEY, n integer, doc text)")
        conn.execute("ALTER TABLE docs ALTER COLUMN doc SET STORAGE EXTERNAL")  # out of line, uncompressed
        conn.execute(f"INSERT INTO docs VALUES (1, 0, {BIG.format(seed=1)}), (3, 0, {BIG.format(seed=3)})")
        conn.execute("INSERT INTO docs VALUES (4, 0, NULL)")
    stack = tmp_path / "conveyor.yaml"
    stack.write_text(
        json.dumps(
            {
                "endpoints": {
                    "src": {"engine": "postgres", "url": source},
                    "lake": {
                        "engine": "lake",
                        "path": str(tmp_path / "lake"),
                        "format": "csv",
                        "settings": {"CdcMaxBatchInterval": 1},
                    },
                },
                "tasks": {
                    "toast": {
                        "source": "src",
                        "target": "lake",
                        "migration_type": "full-load-and-cdc",
                        "table_mappings": {
                            "rules": [
                                {
                                    "rule-type": "selection",
                                    "rule-id": "1",
                                    "rule-name": "docs",
                                    "object-locator": {"schema-name": "public", "table-name": "docs"},
                                    "rule-action": "include",
                                }
                            ]
                        },
                    }
                },
                "lake_tables": {"public.docs": {"primary_key": ["id"]}},
            }
        )
    )
    home = tmp_path / "home"
    assert conveyor(home, "apply", str(stack)).returncode == 0
    store = Store.open(home=home)
    try:
        # partial updates over the full load, chained, and over a row inserted by CDC
        _run_changes(
            store,
            stack,
            source,
            [
                "UPDATE docs SET n = 1 WHERE id = 1",
                "UPDATE docs SET n = 1 WHERE id = 3",
                "UPDATE docs SET n = 2 WHERE id = 3",
                f"INSERT INTO docs VALUES (2, 0, {BIG.format(seed=2)})",
                "UPDATE docs SET n = 1 WHERE id = 4",
            ],
        )
        assert list((tmp_path / "lake" / ".conveyor" / "unchanged").rglob("*.json")), (
            "no partial update written"
        )
        first = _curated(home)
        # a partial update on top of the curated table (its value comes from Delta)
        _run_changes(
            store, stack, source, ["UPDATE docs SET n = 5 WHERE id = 1", "UPDATE docs SET n = 6 WHERE id = 2"]
        )
        second = _curated(home)
    finally:
        store.close()
    expected = _source(source)
    assert expected[1][1] is not None and expected[4][1] is None
    assert (first, second[1], second[2]) == (
        {**expected, 1: (1, expected[1][1]), 2: (0, expected[2][1])},
        expected[1],
        expected[2],
    )
