"""A full load that loses its target connection mid-table loads the table again
from the same snapshot, as the RecoverableError* settings say; with no retry
left the table fails with the reason. The target's own backend is terminated by
a trigger, once, at the 1000th row (a sequence is not rolled back)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest

from support.cli import conveyor
from support.servers import PostgresServer

pytestmark = pytest.mark.integration

ROWS = 5000
KILL_ONCE = """
CREATE SEQUENCE rows_seen;
CREATE FUNCTION kill_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF nextval('rows_seen') = 1000 THEN
    PERFORM pg_terminate_backend(pg_backend_pid());
  END IF;
  RETURN NEW;
END $$;
CREATE TABLE public.items (id bigint PRIMARY KEY, note text);
CREATE TRIGGER kill_once BEFORE INSERT ON public.items FOR EACH ROW EXECUTE FUNCTION kill_once();
"""


def _databases(pg: PostgresServer, name: str) -> tuple[str, str]:
    source, target = f"{name}_src", f"{name}_dst"
    with psycopg.connect(pg.url(), autocommit=True) as conn:
        for db in (source, target):
            conn.execute(f"DROP DATABASE IF EXISTS {db}")
            conn.execute(f"CREATE DATABASE {db}")
    with psycopg.connect(pg.url(source), autocommit=True) as conn:
        conn.execute("CREATE TABLE public.items (id bigint PRIMARY KEY, note text)")
        conn.execute(f"INSERT INTO public.items SELECT g, 'row ' || g FROM generate_series(1, {ROWS}) g")
    with psycopg.connect(pg.url(target), autocommit=True) as conn:
        conn.execute(KILL_ONCE)
    return pg.url(source), pg.url(target)


def _run(tmp_path: Path, source: str, target: str, errors: dict[str, Any]) -> dict[str, Any]:
    stack = {
        "endpoints": {
            "src": {"engine": "postgres", "url": source},
            "dst": {"engine": "postgres", "url": target},
        },
        "tasks": {
            "items": {
                "source": "src",
                "target": "dst",
                "migration_type": "full-load",
                "table_mappings": {
                    "rules": [
                        {
                            "rule-type": "selection",
                            "rule-id": "1",
                            "rule-name": "items",
                            "object-locator": {"schema-name": "public", "table-name": "items"},
                            "rule-action": "include",
                        }
                    ]
                },
                "settings": {
                    "FullLoadSettings": {"TargetTablePrepMode": "TRUNCATE_BEFORE_LOAD"},
                    "ErrorBehavior": errors,
                },
            }
        },
    }
    (tmp_path / "conveyor.yaml").write_text(json.dumps(stack))
    home = tmp_path / "home"
    applied = conveyor(home, "apply", str(tmp_path / "conveyor.yaml"))
    assert applied.returncode == 0, applied.stderr
    started = conveyor(home, "tasks", "start", "items", "--wait", "--json", timeout=180)
    described: dict[str, Any] = json.loads(started.stdout)
    return described


def test_a_lost_target_connection_loads_the_table_again(pg_server: PostgresServer, tmp_path: Path) -> None:
    source, target = _databases(pg_server, "retry_ok")
    described = _run(tmp_path, source, target, {"RecoverableErrorInterval": 0, "RecoverableErrorCount": 2})
    assert described["status"] == "stopped", described
    (table,) = described["tables"]
    assert (table["TableState"], table["FullLoadRows"]) == ("Table completed", ROWS)
    with psycopg.connect(target) as conn:
        count, total = conn.execute("SELECT count(*), sum(id) FROM public.items").fetchone()  # type: ignore[misc]
        seen = conn.execute("SELECT last_value FROM rows_seen").fetchone()
    assert (count, total) == (ROWS, ROWS * (ROWS + 1) // 2)
    assert seen is not None and seen[0] > ROWS  # the first attempt's rows, then all of them again


def test_no_retry_left_fails_the_table_with_the_reason(pg_server: PostgresServer, tmp_path: Path) -> None:
    source, target = _databases(pg_server, "retry_none")
    described = _run(tmp_path, source, target, {"RecoverableErrorCount": 0})
    (table,) = described["tables"]
    assert table["TableState"] == "Table error", described
    text = json.dumps(described)
    assert "terminating connection due to administrator command" in text
    assert "no retry left" in text
    with psycopg.connect(target) as conn:
        assert conn.execute("SELECT count(*) FROM public.items").fetchone() == (0,)
