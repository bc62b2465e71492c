"""A TRUNCATE captured into the lake: the change-file layout has no row form for
it, so the lake target records it beside the batch's file and curation empties
the curated table there. Through the stack file and the CLI: the background
task, `tasks stop`, `lake process` and `query`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest

from integration.test_cdc_tasks import wait_until
from support.cli import conveyor
from support.servers import PostgresServer

pytestmark = pytest.mark.integration


def _stack(path: Path, source: str, lake: Path) -> Path:
    rule = {
        "rule-type": "selection",
        "rule-id": "1",
        "rule-name": "items",
        "object-locator": {"schema-name": "public", "table-name": "items"},
        "rule-action": "include",
    }
    document = {
        "endpoints": {
            "src": {"engine": "postgres", "url": source},
            "lake": {
                "engine": "lake",
                "path": str(lake),
                "format": "csv",
                "settings": {"CdcMaxBatchInterval": 1},
            },
        },
        "tasks": {
            "feed": {
                "source": "src",
                "target": "lake",
                "migration_type": "full-load-and-cdc",
                "table_mappings": {"rules": [rule]},
            }
        },
        "lake_tables": {"public.items": {"primary_key": ["id"]}},
    }
    stack = path / "conveyor.yaml"
    stack.write_text(json.dumps(document))
    return stack


def _describe(home: Path) -> dict[str, Any]:
    described = conveyor(home, "tasks", "describe", "feed", "--json")
    assert described.returncode == 0, described.stderr
    document: dict[str, Any] = json.loads(described.stdout)
    return document


def _capturing(home: Path) -> bool:
    described = _describe(home)
    return described["status"] == "running" and "capture" in described


def _markers(lake: Path) -> list[Path]:
    return sorted((lake / ".conveyor" / "truncated").rglob("*.json"))


def _change_files(lake: Path) -> list[Path]:
    return [f for f in (lake / "public" / "items").rglob("*.csv") if not f.name.startswith("LOAD")]


def _curated(home: Path) -> dict[int, str]:
    processed = conveyor(home, "lake", "process", "--json", timeout=300)
    assert processed.returncode == 0, processed.stdout + processed.stderr
    (result,) = [t for t in json.loads(processed.stdout) if t["table"] == "public.items"]
    assert result["status"] in {"processed", "unchanged"} and not result["skipped"], result
    queried = conveyor(home, "query", "SELECT id, v FROM public.items ORDER BY id", "--json")
    assert queried.returncode == 0, queried.stderr
    return {row["id"]: row["v"] for row in json.loads(queried.stdout)}


def _source(url: str) -> dict[int, str]:
    with psycopg.connect(url) as conn:
        return dict(conn.execute("SELECT id, v FROM items ORDER BY id").fetchall())


def test_a_truncate_empties_the_curated_table_where_it_happened(
    pg_server: PostgresServer, tmp_path: Path
) -> None:
    source = pg_server.url(pg_server.new_database("trunc"))
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id integer PRIMARY KEY, v text)")
        conn.execute("INSERT INTO items SELECT g, 'loaded ' || g FROM generate_series(1, 5) g")
    lake, home = tmp_path / "lake", tmp_path / "home"
    assert conveyor(home, "apply", str(_stack(tmp_path, source, lake))).returncode == 0
    started = conveyor(home, "tasks", "start", "feed")
    assert started.returncode == 0, started.stderr
    try:
        wait_until(lambda: _capturing(home), "the capture to begin", debug=lambda: _describe(home))
        assert _curated(home) == _source(source)  # the full load

        # In one transaction: changes before the TRUNCATE (gone with it), then after it.
        with psycopg.connect(source) as conn:
            conn.execute("INSERT INTO items VALUES (6, 'before the truncate')")
            conn.execute("UPDATE items SET v = 'changed before' WHERE id = 1")
            conn.execute("TRUNCATE items")
            conn.execute("INSERT INTO items VALUES (1, 'after'), (7, 'after')")
            conn.execute("UPDATE items SET v = 'after, changed' WHERE id = 7")
        wait_until(lambda: len(_markers(lake)) == 1, "the TRUNCATE to be recorded")
        assert _curated(home) == _source(source) == {1: "after", 7: "after, changed"}

        # A TRUNCATE last in its batch: no change file, only its record.
        with psycopg.connect(source, autocommit=True) as conn:
            conn.execute("TRUNCATE items")
        wait_until(lambda: len(_markers(lake)) == 2, "the second TRUNCATE to be recorded")
        assert _curated(home) == _source(source) == {}

        written = len(_change_files(lake))
        with psycopg.connect(source, autocommit=True) as conn:
            conn.execute("INSERT INTO items VALUES (8, 'after both')")
        wait_until(lambda: len(_change_files(lake)) > written, "the insert after the second TRUNCATE")
        assert _curated(home) == _source(source) == {8: "after both"}
    finally:
        stopped = conveyor(home, "tasks", "stop", "feed")
        assert stopped.returncode == 0, stopped.stderr
