"""Task settings Conveyor acts on, each shown by its effect on the target or the
task, through a stack file and the `conveyor` CLI: TargetSchema,
CreatePkAfterFullLoad, Logging.LogComponents, FailOnNoTablesCaptured,
TableErrorPolicy and StopTaskCachedChangesNotApplied."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest

from support.cli import conveyor, worker_log
from support.servers import PostgresServer
from support.tasks import apply, drop_slots, ended, wait_for, wait_until

pytestmark = pytest.mark.integration

DDL_LOG = """
CREATE TABLE public.ddl_log (tag text, object text, rows bigint);
CREATE FUNCTION public.log_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$
DECLARE r record; n bigint;
BEGIN
  FOR r IN SELECT * FROM pg_event_trigger_ddl_commands() WHERE object_type = 'table' LOOP
    n := NULL;
    IF r.command_tag = 'ALTER TABLE' THEN
      EXECUTE format('SELECT count(*) FROM %s', r.object_identity) INTO n;
    END IF;
    INSERT INTO public.ddl_log VALUES (r.command_tag, r.object_identity, n);
  END LOOP;
END $$;
CREATE EVENT TRIGGER log_ddl ON ddl_command_end EXECUTE FUNCTION public.log_ddl();
"""
"""Records each DDL command on a table, and its rows when it is an ALTER TABLE."""


def describe(home: Path, task: str) -> dict[str, Any]:
    result = conveyor(home, "tasks", "describe", task, "--json")
    assert result.returncode == 0, result.stderr
    described: dict[str, Any] = json.loads(result.stdout)
    return described


def test_target_schema_key_after_load_and_log_levels(tmp_path: Path, pg_server: PostgresServer) -> None:
    source, target = pg_server.url(pg_server.new_database()), pg_server.url(pg_server.new_database())
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.items (id int PRIMARY KEY, name text)")
        conn.execute("INSERT INTO public.items SELECT g, 'n' || g FROM generate_series(1, 3) g")
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute(DDL_LOG)
    home = tmp_path / "home"
    settings = {
        "TargetMetadata": {"TargetSchema": "landing"},
        "FullLoadSettings": {"CreatePkAfterFullLoad": True},
        "Logging": {"LogComponents": [{"Id": "TASK_MANAGER", "Severity": "LOGGER_SEVERITY_DEBUG"}]},
    }
    apply(
        home,
        tmp_path / "conveyor.yaml",
        "endpoints:\n"
        f"  src: {{engine: postgres, url: '{source}'}}\n"
        f"  dw: {{engine: postgres, url: '{target}'}}\n"
        "tasks:\n"
        f"  tuned: {{source: src, target: dw, settings: {json.dumps(settings)}}}\n"
        "  plain: {source: src, target: dw}\n",
    )
    for task in ("tuned", "plain"):
        assert conveyor(home, "tasks", "start", task).returncode == 0
        described = wait_for(home, task, ended)
        assert (described["status"], described["stop_reason"]) == ("stopped", "FULL_LOAD_ONLY_FINISHED")
    with psycopg.connect(target, autocommit=True) as conn:
        rows = conn.execute("SELECT count(*) FROM landing.items").fetchone()
        keys = conn.execute(
            "SELECT conrelid::regclass::text FROM pg_constraint WHERE contype = 'p'"
            " AND conrelid::regclass::text LIKE '%items' ORDER BY 1"
        ).fetchall()
        ddl = conn.execute("SELECT tag, object, rows FROM public.ddl_log").fetchall()
    assert rows == (3,)
    assert keys == [("items",), ("landing.items",)]  # public.items is the plain task's
    # The tuned table was created without its key, which came after its 3 rows; the plain one had it at once.
    assert ("ALTER TABLE", "landing.items", 3) in ddl
    assert not [row for row in ddl if row[0] == "ALTER TABLE" and row[1] == "public.items"]
    tuned_log = worker_log(home, "tuned")
    plain_log = worker_log(home, "plain")
    planned = [line for line in tuned_log.splitlines() if "task tuned: tables planned: landing.items" in line]
    assert planned and all(" DEBUG " in line for line in planned), tuned_log
    assert "DEBUG" not in plain_log


def _sqlite_source(path: Path, tables: dict[str, int]) -> None:
    with sqlite3.connect(path) as conn:
        for name, rows in tables.items():
            conn.execute(f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, v TEXT)")
            conn.executemany(f"INSERT INTO {name} VALUES (?, 'x')", [(i,) for i in range(rows)])


def test_no_tables_captured_ends_the_task_without_failing_when_told(tmp_path: Path) -> None:
    _sqlite_source(tmp_path / "app.sqlite", {"orders": 2})
    home = tmp_path / "home"
    nothing = {
        "rules": [
            {
                "rule-type": "selection",
                "rule-id": "1",
                "rule-name": "none",
                "object-locator": {"schema-name": "%", "table-name": "nomatch%"},
                "rule-action": "include",
            }
        ]
    }
    lenient = {"ErrorBehavior": {"FailOnNoTablesCaptured": False}}
    apply(
        home,
        tmp_path / "conveyor.yaml",
        "endpoints:\n"
        "  src: {engine: sqlite, path: ./app.sqlite}\n"
        "  dw: {engine: duckdb, path: ./dw.duckdb}\n"
        "tasks:\n"
        f"  lenient: {{source: src, target: dw, table_mappings: {json.dumps(nothing)},"
        f" settings: {json.dumps(lenient)}}}\n"
        f"  strict: {{source: src, target: dw, table_mappings: {json.dumps(nothing)}}}\n",
    )
    result = conveyor(home, "tasks", "start", "lenient", "--wait", "--json")
    assert result.returncode == 0, result.stderr
    described = json.loads(result.stdout)
    assert (described["status"], described["stop_reason"]) == ("stopped", "FULL_LOAD_ONLY_FINISHED")
    events = json.loads(conveyor(home, "events", "list", "--json").stdout)["Events"]
    messages = [e["detail"]["detailMessage"] for e in events]
    assert any(m.startswith("No tables captured.") for m in messages), messages
    failed = conveyor(home, "tasks", "start", "strict", "--wait", "--json")
    assert failed.returncode == 1
    assert "match none of the 1 source tables" in json.loads(failed.stdout)["last_error"]


@pytest.mark.parametrize(("policy", "loaded"), [("STOP_TASK", False), ("SUSPEND_TABLE", True)])
def test_table_error_policy(tmp_path: Path, pg_db: str, policy: str, loaded: bool) -> None:
    _sqlite_source(tmp_path / "app.sqlite", {"a_bad": 2, "b_good": 2})
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA main")
        conn.execute("CREATE TABLE main.a_bad (other int)")  # a shape the load cannot use
    settings = {
        "FullLoadSettings": {"TargetTablePrepMode": "DO_NOTHING", "MaxFullLoadSubTasks": 1},
        "ErrorBehavior": {"TableErrorPolicy": policy},
    }
    home = tmp_path / "home"
    apply(
        home,
        tmp_path / "conveyor.yaml",
        "endpoints:\n"
        "  src: {engine: sqlite, path: ./app.sqlite}\n"
        f"  dw: {{engine: postgres, url: '{pg_db}'}}\n"
        f"tasks:\n  load: {{source: src, target: dw, settings: {json.dumps(settings)}}}\n",
    )
    result = conveyor(home, "tasks", "start", "load", "--wait", "--json")
    assert result.returncode == 1
    described = json.loads(result.stdout)
    assert "main.a_bad" in described["last_error"]
    assert ("TableErrorPolicy STOP_TASK" in described["last_error"]) is (policy == "STOP_TASK")
    with psycopg.connect(pg_db, autocommit=True) as conn:
        good = conn.execute("SELECT to_regclass('main.b_good') IS NOT NULL").fetchone()
    assert good == (loaded,)


def test_stop_after_full_load_then_resume_applies_the_changes_since(tmp_path: Path, pg_db: str) -> None:
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.items (id int PRIMARY KEY, name text)")
        conn.execute("INSERT INTO public.items VALUES (1, 'a'), (2, 'b')")
    home, warehouse = tmp_path / "home", tmp_path / "dw.duckdb"
    settings = {"FullLoadSettings": {"StopTaskCachedChangesNotApplied": True}}
    apply(
        home,
        tmp_path / "conveyor.yaml",
        "endpoints:\n"
        f"  src: {{engine: postgres, url: '{pg_db}'}}\n"
        f"  dw: {{engine: duckdb, path: '{warehouse}'}}\n"
        "tasks:\n"
        "  sync: {source: src, target: dw, migration_type: full-load-and-cdc,"
        f" settings: {json.dumps(settings)}}}\n",
    )
    try:
        result = conveyor(home, "tasks", "start", "sync", "--wait", "--json")
        assert result.returncode == 0, result.stderr
        described = json.loads(result.stdout)
        assert (described["status"], described["stop_reason"]) == ("stopped", "STOPPED_AFTER_FULL_LOAD")
        with duckdb.connect(str(warehouse), read_only=True) as conn:
            assert conn.execute("SELECT count(*) FROM public.items").fetchone() == (2,)
        with psycopg.connect(pg_db, autocommit=True) as conn:
            conn.execute("INSERT INTO public.items VALUES (3, 'c')")
        assert conveyor(home, "tasks", "resume", "sync").returncode == 0
        wait_for(home, "sync", lambda d: sum(t.get("Inserts", 0) for t in d["tables"]) >= 1)
        assert conveyor(home, "tasks", "stop", "sync").returncode == 0
        assert wait_for(home, "sync", ended)["status"] == "stopped"
        with duckdb.connect(str(warehouse), read_only=True) as conn:
            assert conn.execute("SELECT id FROM public.items ORDER BY id").fetchall() == [(1,), (2,), (3,)]
    finally:
        drop_slots(pg_db)


def test_table_error_policy_stop_task_in_capture(tmp_path: Path, pg_db: str) -> None:
    """A source column changing type suspends its table; under STOP_TASK the task fails, saying why."""
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.items (id int PRIMARY KEY, counter int)")
        conn.execute("INSERT INTO public.items VALUES (1, 1)")
    home = tmp_path / "home"
    settings = {"ErrorBehavior": {"TableErrorPolicy": "STOP_TASK"}}
    apply(
        home,
        tmp_path / "conveyor.yaml",
        "endpoints:\n"
        f"  src: {{engine: postgres, url: '{pg_db}'}}\n"
        f"  dw: {{engine: duckdb, path: '{tmp_path / 'dw.duckdb'}'}}\n"
        "tasks:\n"
        "  sync: {source: src, target: dw, migration_type: full-load-and-cdc,"
        f" settings: {json.dumps(settings)}}}\n",
    )
    try:
        assert conveyor(home, "tasks", "start", "sync").returncode == 0
        wait_for(home, "sync", lambda d: d["status"] == "running" and "capture" in d)
        with psycopg.connect(pg_db, autocommit=True) as conn:
            conn.execute("ALTER TABLE public.items ALTER COLUMN counter TYPE bigint")
            conn.execute("UPDATE public.items SET counter = 5 WHERE id = 1")
        described = wait_for(home, "sync", ended)
        assert described["status"] == "failed"
        assert "public.items" in described["last_error"]
        assert "TableErrorPolicy STOP_TASK" in described["last_error"]
    finally:
        conveyor(home, "tasks", "stop", "sync")
        drop_slots(pg_db)


def test_truncate_fails_the_task_when_told(tmp_path: Path, pg_db: str) -> None:
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.items (id int PRIMARY KEY)")
        conn.execute("INSERT INTO public.items VALUES (1), (2)")
    home, warehouse = tmp_path / "home", tmp_path / "dw.duckdb"
    settings = {"ErrorBehavior": {"ApplyErrorFailOnTruncationDdl": True}}
    apply(
        home,
        tmp_path / "conveyor.yaml",
        "endpoints:\n"
        f"  src: {{engine: postgres, url: '{pg_db}'}}\n"
        f"  dw: {{engine: duckdb, path: '{warehouse}'}}\n"
        "tasks:\n"
        "  sync: {source: src, target: dw, migration_type: full-load-and-cdc,"
        f" settings: {json.dumps(settings)}}}\n",
    )
    try:
        assert conveyor(home, "tasks", "start", "sync").returncode == 0
        wait_for(home, "sync", lambda d: d["status"] == "running" and "capture" in d)
        with psycopg.connect(pg_db, autocommit=True) as conn:
            conn.execute("TRUNCATE public.items")
        described = wait_for(home, "sync", ended)
        assert described["status"] == "failed"
        assert "TRUNCATE of public.items (ApplyErrorFailOnTruncationDdl is true)" in described["last_error"]
        with duckdb.connect(str(warehouse), read_only=True) as conn:
            assert conn.execute("SELECT count(*) FROM public.items").fetchone() == (2,)  # not applied
    finally:
        conveyor(home, "tasks", "stop", "sync")
        drop_slots(pg_db)


def test_support_lobs_false_leaves_the_lob_columns_out(tmp_path: Path, pg_server: PostgresServer) -> None:
    """SupportLobs false: text without a length, bytea and jsonb columns are
    not on the target, in the full load or in change capture; a varchar(n)
    is not a LOB, and a text key stays (the rows need it). Said in the log."""
    source, target = pg_server.url(pg_server.new_database()), pg_server.url(pg_server.new_database())
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE public.docs"
            " (code text PRIMARY KEY, title varchar(20), body text, raw bytea, meta jsonb)"
        )
        conn.execute("INSERT INTO public.docs VALUES ('a', 'A', 'long', '\\x00', '{}')")
    home = tmp_path / "home"
    settings = {"TargetMetadata": {"SupportLobs": False}}
    apply(
        home,
        tmp_path / "conveyor.yaml",
        "endpoints:\n"
        f"  src: {{engine: postgres, url: '{source}'}}\n"
        f"  dw: {{engine: postgres, url: '{target}'}}\n"
        "tasks:\n"
        "  nolobs: {source: src, target: dw, migration_type: full-load-and-cdc,"
        f" settings: {json.dumps(settings)}}}\n",
    )
    try:
        assert conveyor(home, "tasks", "start", "nolobs").returncode == 0
        wait_for(home, "nolobs", _loaded)
        with psycopg.connect(source, autocommit=True) as conn:
            conn.execute("INSERT INTO public.docs VALUES ('b', 'B', 'more', '\\x01', '[]')")
            conn.execute("UPDATE public.docs SET title = 'A2', body = 'changed' WHERE code = 'a'")
        _wait_count(target, "SELECT count(*) FROM public.docs WHERE title IN ('A2', 'B')", 2)
    finally:
        conveyor(home, "tasks", "stop", "nolobs")
        wait_for(home, "nolobs", ended)
        drop_slots(source)
    with psycopg.connect(target) as conn:
        columns = conn.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_name = 'docs' ORDER BY ordinal_position"
        ).fetchall()
        rows = conn.execute("SELECT * FROM public.docs ORDER BY code").fetchall()
    assert columns == [("code",), ("title",)]
    assert rows == [("a", "A2"), ("b", "B")]
    assert (
        "TargetMetadata.SupportLobs is false: LOB columns left out: body, raw, meta (kept, as the key: code)"
        in (worker_log(home, "nolobs"))
    )


def _wait_count(url: str, sql: str, count: int) -> None:
    """Until ``sql`` counts ``count`` on ``url`` (the changes reached the target)."""

    def counted() -> bool:
        with psycopg.connect(url) as conn:
            return conn.execute(sql).fetchone() == (count,)

    wait_until(counted, f"{sql} to count {count}", seconds=60)


def _loaded(described: dict[str, Any]) -> bool:
    tables = described.get("tables") or []
    return bool(tables) and all(t.get("TableState") == "Table completed" for t in tables)


def test_limited_lob_mode_cuts_what_the_user_wrote_to_cut(tmp_path: Path, pg_server: PostgresServer) -> None:
    """LimitedSizeLobMode with LobMaxSize 1 (KB): text and bytea LOBs are cut
    to 1024 bytes in the full load and in change capture, and the log says
    so; FullLobMode copies them whole; a varchar(n) is not a LOB."""
    source, target = pg_server.url(pg_server.new_database()), pg_server.url(pg_server.new_database())
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE public.docs (id int PRIMARY KEY, body text, raw bytea, title varchar(4000))"
        )
        conn.execute(
            "INSERT INTO public.docs VALUES (1, repeat('x', 3000), decode(repeat('ab', 3000), 'hex'),"
            " repeat('t', 3000))"
        )
    home = tmp_path / "home"
    limited = {"TargetMetadata": {"LimitedSizeLobMode": True, "LobMaxSize": 1, "TargetSchema": "cut"}}
    full = {"TargetMetadata": {"FullLobMode": True, "LimitedSizeLobMode": False, "TargetSchema": "whole"}}
    apply(
        home,
        tmp_path / "conveyor.yaml",
        "endpoints:\n"
        f"  src: {{engine: postgres, url: '{source}'}}\n"
        f"  dw: {{engine: postgres, url: '{target}'}}\n"
        "tasks:\n"
        "  cut: {source: src, target: dw, migration_type: full-load-and-cdc,"
        f" settings: {json.dumps(limited)}}}\n"
        f"  whole: {{source: src, target: dw, settings: {json.dumps(full)}}}\n",
    )
    sizes = "SELECT id, octet_length(body), octet_length(raw), octet_length(title) FROM {}.docs ORDER BY id"
    try:
        assert conveyor(home, "tasks", "start", "whole").returncode == 0
        wait_for(home, "whole", ended)
        assert conveyor(home, "tasks", "start", "cut").returncode == 0
        wait_for(home, "cut", _loaded)
        with psycopg.connect(source, autocommit=True) as conn:
            conn.execute("INSERT INTO public.docs VALUES (2, repeat('é', 2000), '\\x00', 'short')")
        _wait_count(target, "SELECT count(*) FROM cut.docs", 2)
    finally:
        conveyor(home, "tasks", "stop", "cut")
        wait_for(home, "cut", ended)
        drop_slots(source)
    with psycopg.connect(target) as conn:
        cut = conn.execute(sizes.format("cut")).fetchall()
        whole = conn.execute(sizes.format("whole")).fetchall()
        cut_text = conn.execute("SELECT body FROM cut.docs WHERE id = 2").fetchone()
    assert cut == [(1, 1024, 1024, 3000), (2, 1024, 1, 5)]
    assert cut_text == ("é" * 512,)  # 1024 bytes, never half a character
    assert whole == [(1, 3000, 3000, 3000)]
    log = worker_log(home, "cut")
    assert "table cut.docs: 1 value(s) of LOB column body cut to 1 KB" in log, log
    assert "table cut.docs: LOB column body cut to 1 KB" in log, log
