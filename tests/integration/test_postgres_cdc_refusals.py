"""Rows a PostgreSQL target itself refuses during change capture (a CHECK the
target has and the source has not) meet ErrorBehavior's DataErrorPolicy and
its escalation as in the full load: the row goes to awsdms_apply_exceptions
with the reason and its table goes on (LOG_ERROR), is dropped
(IGNORE_RECORD), suspends its table (SUSPEND_TABLE) or stops the task
(STOP_TASK). The batch's other rows are applied once, in the batch's
transaction with its checkpoint: a trigger on the target counts every row
written. Through a stack file and the CLI.

Three tables, each on another of the applier's paths: ``items`` passes as
the source's COPY text (same column types on both sides) and its second
change is a partial update (an unchanged TOASTed column); ``notes`` goes
through Arrow (its target column is of another type); ``other`` refuses
nothing."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from support.cli import conveyor
from support.servers import PostgresServer

pytestmark = pytest.mark.integration

BIG = "(SELECT string_agg(md5(g::text), '') FROM generate_series(1, 600) g)"
SOURCE_TABLES = [
    "CREATE TABLE public.items (id int PRIMARY KEY, qty int, big text)",
    "CREATE TABLE public.notes (id int PRIMARY KEY, v varchar(20))",
    "CREATE TABLE public.other (id int PRIMARY KEY)",
]
TARGET_TABLES = [
    "CREATE TABLE public.items (id int PRIMARY KEY, qty int CONSTRAINT qty_not_negative CHECK (qty >= 0),"
    " big text)",
    "CREATE TABLE public.notes (id int PRIMARY KEY, v text CONSTRAINT not_bad CHECK (v <> 'bad'))",
    "CREATE TABLE public.other (id int PRIMARY KEY)",
    "CREATE TABLE public.written (tbl text, id int, what text)",
    "CREATE FUNCTION public.count_write() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
    " INSERT INTO public.written VALUES (TG_TABLE_NAME, NEW.id, TG_OP); RETURN NEW; END $$",
    *(
        f"CREATE TRIGGER count_{t} AFTER INSERT OR UPDATE ON public.{t} FOR EACH ROW"
        " EXECUTE FUNCTION public.count_write()"
        for t in ("items", "notes", "other")
    ),
]
FIRST = [  # one source transaction: 7 changes, 2 refused by the target
    f"INSERT INTO public.items VALUES (1, 5, {BIG}), (2, -1, {BIG}), (3, 7, {BIG})",
    "INSERT INTO public.notes VALUES (1, 'good'), (2, 'bad'), (3, 'fine')",
    "INSERT INTO public.other VALUES (1)",
]
SECOND = [  # another: 4 changes, the partial update of 3 refused
    "UPDATE public.items SET qty = -3 WHERE id = 3",
    "UPDATE public.items SET qty = 6 WHERE id = 1",
    "DELETE FROM public.notes WHERE id = 1",
    "INSERT INTO public.other VALUES (2)",
]


@dataclass
class Task:
    home: Path
    source: str
    target: str

    def describe(self) -> dict[str, Any]:
        result = conveyor(self.home, "tasks", "describe", "sync", "--json")
        assert result.returncode == 0, result.stderr
        described: dict[str, Any] = json.loads(result.stdout)
        return described

    def wait(self, until: Callable[[dict[str, Any]], bool], seconds: float = 60) -> dict[str, Any]:
        """Poll `tasks describe`: at most ``seconds`` and 300 polls."""
        deadline = time.monotonic() + seconds
        described: dict[str, Any] = {}
        for _ in range(300):
            described = self.describe()
            if until(described):
                return described
            if time.monotonic() > deadline:
                break
            time.sleep(0.2)
        raise AssertionError(f"gave up waiting; last description: {described}")

    def change(self, statements: list[str]) -> None:
        """One source transaction."""
        with psycopg.connect(self.source) as conn:
            for statement in statements:
                conn.execute(statement)

    def applied(self, changes: int) -> dict[str, Any]:
        return self.wait(lambda d: ((d.get("capture") or {}).get("AppliedChanges") or 0) >= changes)

    def suspended(self) -> dict[str, str]:
        return {
            t["TableName"]: t["SuspendedReason"]
            for t in self.describe()["tables"]
            if t.get("SuspendedReason")
        }

    def stop(self) -> None:
        conveyor(self.home, "tasks", "stop", "sync")
        self.wait(lambda d: d["status"] in {"stopped", "failed"})

    def query(self, statement: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.target) as conn:
            return conn.execute(statement).fetchall()

    def rows(self) -> dict[str, list[tuple[Any, ...]]]:
        return {
            "items": self.query("SELECT id, qty, length(big) FROM public.items ORDER BY id"),
            "notes": self.query("SELECT id, v FROM public.notes ORDER BY id"),
            "other": self.query("SELECT id FROM public.other ORDER BY id"),
        }

    def written(self) -> list[tuple[Any, ...]]:
        """Every row the target wrote (its trigger's count), in order."""
        return self.query("SELECT tbl, id, what FROM public.written ORDER BY tbl, id, what")

    def exceptions(self) -> list[tuple[Any, ...]]:
        """(table, key, column, value, error) of the apply-exceptions table."""
        if self.query("SELECT to_regclass('public.awsdms_apply_exceptions')") == [(None,)]:
            return []
        return self.query(
            "SELECT table_name, key::text, column_name, value, error FROM public.awsdms_apply_exceptions"
            " ORDER BY error_time, table_name, key"
        )


@pytest.fixture
def run(tmp_path: Path, pg_server: PostgresServer) -> Iterator[Callable[[dict[str, Any]], Task]]:
    """Starts a cdc task with the given ErrorBehavior, capturing when it returns."""
    tasks: list[Task] = []

    def start(error_behavior: dict[str, Any]) -> Task:
        source = pg_server.url(pg_server.new_database("refsrc"))
        target = pg_server.url(pg_server.new_database("refdst"))
        for url, statements in ((source, SOURCE_TABLES), (target, TARGET_TABLES)):
            with psycopg.connect(url, autocommit=True) as conn:
                for statement in statements:
                    conn.execute(statement)
        home, stack = tmp_path / "home", tmp_path / "conveyor.yaml"
        settings = json.dumps({"ErrorBehavior": error_behavior})
        stack.write_text(
            "endpoints:\n"
            f"  src: {{engine: postgres, url: '{source}'}}\n"
            f"  dw: {{engine: postgres, url: '{target}'}}\n"
            "tasks:\n"
            f"  sync: {{source: src, target: dw, migration_type: cdc, settings: {settings}}}\n"
        )
        applied = conveyor(home, "apply", str(stack))
        assert applied.returncode == 0, applied.stderr
        task = Task(home, source, target)
        tasks.append(task)
        assert conveyor(home, "tasks", "start", "sync").returncode == 0
        task.wait(lambda d: d["status"] == "running" and "capture" in d)
        return task

    try:
        yield start
    finally:
        for task in tasks:
            conveyor(task.home, "tasks", "stop", "sync")
            _drop_slots(task.source)


def _drop_slots(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(100):
            if conn.execute("SELECT count(*) FROM pg_replication_slots WHERE active").fetchone() == (0,):
                break
            time.sleep(0.1)
        conn.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots")


LOGGED_ROWS = {
    "items": [(1, 6, 19200), (3, 7, 19200)],
    "notes": [(3, "fine")],
    "other": [(1,), (2,)],
}
WRITTEN_ONCE = [  # the first batch's rows and the second's, each written once
    ("items", 1, "INSERT"),
    ("items", 1, "UPDATE"),
    ("items", 3, "INSERT"),
    ("notes", 1, "INSERT"),
    ("notes", 3, "INSERT"),
    ("other", 1, "INSERT"),
    ("other", 2, "INSERT"),
]


def test_log_error_logs_each_refused_row_and_applies_the_rest_once(run: Callable[..., Task]) -> None:
    task = run({"DataErrorPolicy": "LOG_ERROR"})
    task.change(FIRST)
    task.applied(7)
    task.change(SECOND)
    task.applied(11)
    task.stop()
    assert task.describe()["status"] == "stopped"
    assert task.rows() == LOGGED_ROWS
    assert task.written() == WRITTEN_ONCE
    logged = task.exceptions()
    assert sorted((t, k, c, v) for t, k, c, v, _ in logged) == [
        ("items", '{"id": 2}', "qty", "-1"),  # the CHECK's column, from the target's catalog
        ("items", '{"id": 3}', "qty", "-3"),
        ("notes", '{"id": 2}', "v", "bad"),
    ]
    errors = {(t, k): e for t, k, _, _, e in logged}
    assert 'violates check constraint "qty_not_negative"' in errors[("items", '{"id": 2}')]
    assert 'violates check constraint "not_bad"' in errors[("notes", '{"id": 2}')]
    assert 'violates check constraint "qty_not_negative"' in errors[("items", '{"id": 3}')]
    assert all(e.startswith(f"table public.{t}: ") for (t, _), e in errors.items())


def test_ignore_record_drops_each_refused_row(run: Callable[..., Task]) -> None:
    task = run({"DataErrorPolicy": "IGNORE_RECORD"})
    task.change(FIRST)
    task.applied(7)
    task.change(SECOND)
    task.applied(11)
    task.stop()
    assert task.rows() == LOGGED_ROWS
    assert task.written() == WRITTEN_ONCE
    assert task.exceptions() == []


def test_suspend_table_suspends_the_tables_and_the_rest_goes_on(run: Callable[..., Task]) -> None:
    task = run({"DataErrorPolicy": "SUSPEND_TABLE"})
    task.change(FIRST)
    task.wait(lambda d: sum(bool(t.get("SuspendedReason")) for t in d["tables"]) == 2)
    task.change(["INSERT INTO public.other VALUES (2)"])
    task.wait(lambda d: (d["capture"].get("AppliedChanges") or 0) >= 8)
    reasons = task.suspended()
    assert set(reasons) == {"items", "notes"}, reasons
    assert "qty_not_negative" in reasons["items"] and "(DataErrorPolicy SUSPEND_TABLE)" in reasons["items"]
    assert "not_bad" in reasons["notes"] and "(DataErrorPolicy SUSPEND_TABLE)" in reasons["notes"]
    task.stop()
    assert task.rows() == {"items": [], "notes": [], "other": [(1,), (2,)]}  # nothing of theirs applied
    assert task.written() == [("other", 1, "INSERT"), ("other", 2, "INSERT")]
    assert task.exceptions() == []


def test_stop_task_fails_the_task_before_the_batch(run: Callable[..., Task]) -> None:
    task = run({"DataErrorPolicy": "STOP_TASK"})
    task.change(FIRST)
    described = task.wait(lambda d: d["status"] in {"stopped", "failed"})
    assert described["status"] == "failed"
    assert "qty_not_negative" in described["last_error"] or "not_bad" in described["last_error"]
    assert "(DataErrorPolicy STOP_TASK)" in described["last_error"]
    assert task.rows() == {"items": [], "notes": [], "other": []}
    assert task.written() == []


def test_escalation_suspends_a_table_at_the_count(run: Callable[..., Task]) -> None:
    """LOG_ERROR up to DataErrorEscalationCount refusals of a table, counted
    as the full load counts them (per table): the second refusal of items
    suspends it; notes, refused once, goes on."""
    task = run(
        {
            "DataErrorPolicy": "LOG_ERROR",
            "DataErrorEscalationCount": 2,
            "DataErrorEscalationPolicy": "SUSPEND_TABLE",
        }
    )
    task.change(FIRST)
    task.applied(7)
    assert task.suspended() == {}
    task.change(SECOND)
    task.wait(lambda d: any(t.get("SuspendedReason") for t in d["tables"]))
    task.applied(11)
    reasons = task.suspended()
    assert list(reasons) == ["items"], reasons
    assert "qty_not_negative" in reasons["items"] and "(data error escalation: 2 errors)" in reasons["items"]
    task.stop()
    assert task.rows() == {
        "items": [(1, 5, 19200), (3, 7, 19200)],  # the second batch's changes of items not applied
        "notes": [(3, "fine")],
        "other": [(1,), (2,)],
    }
    assert sorted((t, k) for t, k, *_ in task.exceptions()) == [
        ("items", '{"id": 2}'),
        ("notes", '{"id": 2}'),
    ]
