"""ErrorBehavior's apply-conflict policies (ApplyErrorInsertPolicy,
ApplyErrorUpdatePolicy, ApplyErrorDeletePolicy and their escalation) in change
capture into PostgreSQL and DuckDB, through a stack file and the CLI.

The target table is made to differ from the source before a cdc task starts:
it has row 1 (which the source then inserts) and lacks rows 2 and 3 (which
the source then updates and deletes), so the capture meets one conflict of
each kind; row 9, inserted last, is no conflict."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest

from support.cli import conveyor, worker_log
from support.servers import PostgresServer
from support.tasks import drop_slots, wait_for

pytestmark = pytest.mark.integration

CONFLICTS = [
    "INSERT INTO public.items VALUES (1, 'source')",
    "UPDATE public.items SET name = 'source' WHERE id = 2",
    "DELETE FROM public.items WHERE id = 3",
    "INSERT INTO public.items VALUES (9, 'nine')",
]


@dataclass
class Target:
    """The task's target: a PostgreSQL database or a DuckDB file (read only
    once the task has stopped: the worker holds the file)."""

    engine: str
    where: str

    def endpoint(self) -> str:
        if self.engine == "postgres":
            return f"{{engine: postgres, url: '{self.where}'}}"
        return f"{{engine: duckdb, path: '{self.where}'}}"

    def prepare(self, extra: str = "") -> None:
        statements = [
            f"CREATE TABLE public.items (id int PRIMARY KEY, name text{extra})",
            "INSERT INTO public.items (id, name) VALUES (1, 'target')",
        ]
        if extra:
            statements.append("UPDATE public.items SET big = 'target big' WHERE id = 1")
        if self.engine == "postgres":
            with psycopg.connect(self.where, autocommit=True) as conn:
                for statement in statements:
                    conn.execute(statement)
        else:
            with duckdb.connect(self.where) as conn:
                conn.execute("CREATE SCHEMA IF NOT EXISTS public")
                for statement in statements:
                    conn.execute(statement)

    def query(self, statement: str) -> list[tuple[Any, ...]]:
        if self.engine == "postgres":
            with psycopg.connect(self.where) as conn:
                return conn.execute(statement).fetchall()
        with duckdb.connect(self.where, read_only=True) as conn:
            return conn.execute(statement).fetchall()

    def query_commit(self, statement: str) -> None:
        """A write behind Conveyor's back (PostgreSQL only: the worker holds a DuckDB file)."""
        with psycopg.connect(self.where, autocommit=True) as conn:
            conn.execute(statement)

    def rows(self) -> dict[int, str]:
        return dict(self.query("SELECT id, name FROM public.items"))

    def exceptions(self) -> list[tuple[str, str, str]]:
        """(table, key, error) of the apply-exceptions table, by key."""
        if not self.query(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'awsdms_apply_exceptions'"
        )[0][0]:
            return []
        found = self.query("SELECT table_name, CAST(key AS VARCHAR), error FROM awsdms_apply_exceptions")
        return sorted((t, json.dumps(json.loads(k)), e) for t, k, e in found)


@pytest.fixture(params=["postgres", "duckdb"])
def target(request: pytest.FixtureRequest, pg_server: PostgresServer, tmp_path: Path) -> Target:
    if request.param == "postgres":
        return Target("postgres", pg_server.url(pg_server.new_database()))
    return Target("duckdb", str(tmp_path / "dw.duckdb"))


@dataclass
class Task:
    home: Path
    source: str

    def describe(self) -> dict[str, Any]:
        result = conveyor(self.home, "tasks", "describe", "sync", "--json")
        assert result.returncode == 0, result.stderr
        described: dict[str, Any] = json.loads(result.stdout)
        return described

    def wait(self, until: Callable[[dict[str, Any]], bool], seconds: float = 60) -> dict[str, Any]:
        """Poll the task's description (in this process: support/tasks.py)."""
        return wait_for(self.home, "sync", until, seconds)

    def change(self, *statements: str) -> None:
        """One source transaction."""
        with psycopg.connect(self.source) as conn:
            for statement in statements:
                conn.execute(statement)

    def applied(self, changes: int) -> dict[str, Any]:
        return self.wait(lambda d: ((d.get("capture") or {}).get("AppliedChanges") or 0) >= changes)

    def stop(self) -> None:
        conveyor(self.home, "tasks", "stop", "sync")
        self.wait(lambda d: d["status"] in {"stopped", "failed"})

    def kill(self) -> None:
        """SIGKILL the worker, then wait until the task is seen failed."""
        pid = self.describe().get("pid")
        if pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.wait(lambda d: d["status"] == "failed")

    def again(self, command: str) -> None:
        """``tasks resume`` or ``tasks start``, capturing when it returns."""
        result = conveyor(self.home, "tasks", command, "sync")
        assert result.returncode == 0, result.stderr
        self.wait(lambda d: d["status"] == "running" and "capture" in d)


@pytest.fixture
def run(tmp_path: Path, pg_db: str, target: Target) -> Iterator[Callable[..., Task]]:
    """Starts a cdc task from ``pg_db`` (rows 2 and 3) to ``target`` (row 1)
    with the given ErrorBehavior, capturing when it returns. ``toasted``: the
    table has a column ``big`` whose values PostgreSQL keeps out of line (an
    UPDATE that leaves it unchanged does not send it)."""
    tasks: list[Task] = []

    def start(
        error_behavior: dict[str, Any], toasted: bool = False, rules: list[dict[str, Any]] | None = None
    ) -> Task:
        extra = ", big text" if toasted else ""
        with psycopg.connect(pg_db, autocommit=True) as conn:
            conn.execute(f"CREATE TABLE public.items (id int PRIMARY KEY, name text{extra})")
            conn.execute("INSERT INTO public.items (id, name) VALUES (2, 'two'), (3, 'three')")
            if toasted:
                random = "SELECT string_agg(md5(g::text), '') FROM generate_series(1, 600) g"
                conn.execute(f"UPDATE public.items SET big = ({random})")
        target.prepare(extra)
        home, stack = tmp_path / "home", tmp_path / "conveyor.yaml"
        settings = json.dumps({"ErrorBehavior": error_behavior})
        mappings = f", table_mappings: {json.dumps({'rules': rules})}" if rules else ""
        stack.write_text(
            "endpoints:\n"
            f"  src: {{engine: postgres, url: '{pg_db}'}}\n"
            f"  dw: {target.endpoint()}\n"
            "tasks:\n"
            f"  sync: {{source: src, target: dw, migration_type: cdc, settings: {settings}{mappings}}}\n"
        )
        applied = conveyor(home, "apply", str(stack))
        assert applied.returncode == 0, applied.stderr
        task = Task(home, pg_db)
        tasks.append(task)
        assert conveyor(home, "tasks", "start", "sync").returncode == 0
        task.wait(lambda d: d["status"] == "running" and "capture" in d)
        return task

    try:
        yield start
    finally:
        for task in tasks:
            conveyor(task.home, "tasks", "stop", "sync")
        drop_slots(pg_db)


def _key(i: int) -> str:
    return json.dumps({"id": i})


def test_log_error_logs_each_conflict_and_leaves_the_target_row(
    run: Callable[..., Task], target: Target
) -> None:
    task = run(
        {
            "ApplyErrorInsertPolicy": "LOG_ERROR",
            "ApplyErrorUpdatePolicy": "LOG_ERROR",
            "ApplyErrorDeletePolicy": "LOG_ERROR",
        }
    )
    task.change(*CONFLICTS)
    task.applied(4)
    task.stop()
    assert target.rows() == {1: "target", 9: "nine"}
    logged = target.exceptions()
    assert [(t, k) for t, k, _ in logged] == [("items", _key(1)), ("items", _key(2)), ("items", _key(3))]
    assert "INSERT of a key the target already has (ApplyErrorInsertPolicy LOG_ERROR)" in logged[0][2]
    assert "UPDATE of a row the target does not have (ApplyErrorUpdatePolicy LOG_ERROR)" in logged[1][2]
    assert "DELETE of a row the target does not have (ApplyErrorDeletePolicy LOG_ERROR)" in logged[2][2]
    assert task.describe()["status"] == "stopped"


def test_ignore_record_skips_each_conflict_without_a_log(run: Callable[..., Task], target: Target) -> None:
    task = run({"ApplyErrorInsertPolicy": "IGNORE_RECORD", "ApplyErrorUpdatePolicy": "IGNORE_RECORD"})
    task.change(*CONFLICTS)
    task.applied(4)
    task.stop()
    assert target.rows() == {1: "target", 9: "nine"}
    assert target.exceptions() == []


def test_insert_and_update_record_write_the_rows(run: Callable[..., Task], target: Target) -> None:
    task = run({"ApplyErrorInsertPolicy": "INSERT_RECORD", "ApplyErrorUpdatePolicy": "UPDATE_RECORD"})
    task.change(*CONFLICTS)
    task.applied(4)
    task.stop()
    assert target.rows() == {1: "source", 2: "source", 9: "nine"}
    assert target.exceptions() == []


def test_later_changes_of_a_key_in_the_batch_apply_after_a_refused_first(
    run: Callable[..., Task], target: Target
) -> None:
    """Judged by the key's first change in the batch: the refused INSERT of 1
    is logged and the UPDATE after it applies to the existing row; the
    refused UPDATE of 2 and the DELETE after it leave no row; 3 deleted and
    inserted again in the batch is re-created."""
    task = run({"ApplyErrorInsertPolicy": "LOG_ERROR", "ApplyErrorUpdatePolicy": "LOG_ERROR"})
    task.change(
        "INSERT INTO public.items VALUES (1, 'source')",
        "UPDATE public.items SET name = 'updated' WHERE id = 1",
        "UPDATE public.items SET name = 'source' WHERE id = 2",
        "DELETE FROM public.items WHERE id = 2",
        "DELETE FROM public.items WHERE id = 3",
        "INSERT INTO public.items VALUES (3, 'again')",
    )
    task.applied(6)
    task.stop()
    assert target.rows() == {1: "updated", 3: "again"}
    assert [(t, k) for t, k, _ in target.exceptions()] == [("items", _key(1)), ("items", _key(2))]


@pytest.mark.parametrize("policy", ["IGNORE_RECORD", "LOG_ERROR"])
def test_a_partial_update_after_a_refused_insert_keeps_the_target_rows_unsent_values(
    run: Callable[..., Task], target: Target, policy: str
) -> None:
    """As one by one: the INSERT of 1 is refused and the UPDATEs after it
    apply to the target's row; they leave the out-of-line ``big`` unsent, so
    it keeps the target's value, not the refused INSERT's. Row 4, inserted
    and updated the same way, is no conflict and has the source's."""
    task = run({"ApplyErrorInsertPolicy": policy}, toasted=True)
    task.change(
        "INSERT INTO public.items SELECT 1, 'source', big FROM public.items WHERE id = 2",
        "INSERT INTO public.items SELECT 4, 'source', big FROM public.items WHERE id = 2",
        "UPDATE public.items SET name = 'updated' WHERE id IN (1, 4)",
        "UPDATE public.items SET name = 'again' WHERE id = 1",
    )
    task.applied(5)
    task.stop()
    with psycopg.connect(task.source) as conn:
        source_big = conn.execute("SELECT big FROM public.items WHERE id = 2").fetchone()
    assert source_big is not None and len(source_big[0]) > 10_000  # kept out of line
    rows = target.query("SELECT id, name, big FROM public.items WHERE id IN (1, 4) ORDER BY id")
    assert rows == [(1, "again", "target big"), (4, "updated", source_big[0])]
    logged = [(t, k) for t, k, _ in target.exceptions()]
    assert logged == ([("items", _key(1))] if policy == "LOG_ERROR" else [])
    # judged from key histories of rows captured in Arrow, partial UPDATEs among them
    assert "task sync: 1 of 1 tables captured in Arrow" in worker_log(task.home, "sync")


def test_a_row_the_filter_moves_out_is_not_judged_and_the_others_are(
    run: Callable[..., Task], target: Target
) -> None:
    """A source filter with apply conflicts judged (rows captured in Arrow):
    the INSERT of 1 and the UPDATE of 3 are conflicts, logged; the UPDATE
    moving 2 out of the filter deletes it and is not judged (as one by one),
    and the INSERT of 4, outside the filter, is not applied."""
    rules = [
        {
            "rule-type": "selection",
            "rule-id": "1",
            "rule-name": "items",
            "object-locator": {"schema-name": "public", "table-name": "items"},
            "rule-action": "include",
            "filters": [
                {
                    "filter-type": "source",
                    "column-name": "name",
                    "filter-conditions": [{"filter-operator": "noteq", "value": "skip"}],
                }
            ],
        }
    ]
    task = run({"ApplyErrorInsertPolicy": "LOG_ERROR", "ApplyErrorUpdatePolicy": "LOG_ERROR"}, rules=rules)
    task.change(
        "INSERT INTO public.items VALUES (1, 'source')",
        "UPDATE public.items SET name = 'skip' WHERE id = 2",
        "UPDATE public.items SET name = 'kept' WHERE id = 3",
        "INSERT INTO public.items VALUES (4, 'skip')",
    )
    task.applied(2)
    task.stop()
    assert target.rows() == {1: "target"}
    assert [(t, k) for t, k, _ in target.exceptions()] == [("items", _key(1)), ("items", _key(3))]
    assert "task sync: 1 of 1 tables captured in Arrow" in worker_log(task.home, "sync")


def test_suspend_table_suspends_before_the_batch(run: Callable[..., Task], target: Target) -> None:
    task = run({"ApplyErrorUpdatePolicy": "SUSPEND_TABLE"})
    task.change(*CONFLICTS)
    described = task.wait(lambda d: any(t.get("SuspendedReason") for t in d["tables"]))
    [table] = described["tables"]
    assert "1 x an UPDATE of a row the target does not have" in table["SuspendedReason"]
    assert "(ApplyErrorUpdatePolicy SUSPEND_TABLE)" in table["SuspendedReason"]
    task.stop()
    assert target.rows() == {1: "target"}  # nothing of the batch applied


def test_stop_task_fails_the_task_before_the_batch(run: Callable[..., Task], target: Target) -> None:
    task = run({"ApplyErrorInsertPolicy": "STOP_TASK"})
    task.change(*CONFLICTS)
    described = task.wait(lambda d: d["status"] in {"stopped", "failed"})
    assert described["status"] == "failed"
    assert "1 x an INSERT of a key the target already has" in described["last_error"]
    assert "(ApplyErrorInsertPolicy STOP_TASK)" in described["last_error"]
    assert target.rows() == {1: "target"}


def test_escalation_suspends_the_table_at_the_count(run: Callable[..., Task], target: Target) -> None:
    """Two conflicts are logged over two batches; the third reaches the count."""
    task = run(
        {
            "ApplyErrorInsertPolicy": "LOG_ERROR",
            "ApplyErrorUpdatePolicy": "LOG_ERROR",
            "ApplyErrorEscalationCount": 3,
            "ApplyErrorEscalationPolicy": "SUSPEND_TABLE",
        }
    )
    task.change(CONFLICTS[0])
    task.applied(1)
    task.change(CONFLICTS[1], "INSERT INTO public.items VALUES (8, 'eight')")
    task.applied(3)
    assert not any(t.get("SuspendedReason") for t in task.describe()["tables"])
    task.change(CONFLICTS[2], CONFLICTS[3])  # a DELETE of a missing row (IGNORE_RECORD) counts too
    described = task.wait(lambda d: any(t.get("SuspendedReason") for t in d["tables"]))
    assert "apply error escalation: 3 apply conflicts" in described["tables"][0]["SuspendedReason"]
    task.stop()
    assert target.rows() == {1: "target", 8: "eight"}
    assert [(t, k) for t, k, _ in target.exceptions()] == [("items", _key(1)), ("items", _key(2))]


def test_escalation_counts_over_the_tasks_life(run: Callable[..., Task], target: Target) -> None:
    """One conflict before a stop, one before a SIGKILL: the third, after
    the resumes, reaches the count (the target keeps the counts with its
    checkpoint). A new start counts afresh."""
    task = run(
        {
            "ApplyErrorInsertPolicy": "LOG_ERROR",
            "ApplyErrorUpdatePolicy": "LOG_ERROR",
            "ApplyErrorEscalationCount": 3,
            "ApplyErrorEscalationPolicy": "SUSPEND_TABLE",
        }
    )
    task.change(CONFLICTS[0])
    task.applied(1)
    task.stop()
    task.again("resume")
    task.change(CONFLICTS[1])
    task.applied(1)
    task.kill()
    task.again("resume")
    assert not any(t.get("SuspendedReason") for t in task.describe()["tables"])
    task.change(CONFLICTS[2])
    described = task.wait(lambda d: any(t.get("SuspendedReason") for t in d["tables"]))
    assert "apply error escalation: 3 apply conflicts" in described["tables"][0]["SuspendedReason"]
    task.stop()
    task.again("start")
    task.change("UPDATE public.items SET name = 'again' WHERE id = 2")  # a fourth conflict, the first now
    task.applied(1)
    assert not any(t.get("SuspendedReason") for t in task.describe()["tables"])
    task.stop()
    assert target.rows() == {1: "target"}
    assert [(t, k) for t, k, _ in target.exceptions()] == [
        ("items", _key(1)),
        ("items", _key(2)),
        ("items", _key(2)),
    ]


def test_escalation_stops_the_task(run: Callable[..., Task], target: Target) -> None:
    task = run({"ApplyErrorEscalationCount": 2, "ApplyErrorEscalationPolicy": "STOP_TASK"})
    task.change(*CONFLICTS)  # unwritten policies: overwrite, insert, ignore; all three count
    described = task.wait(lambda d: d["status"] in {"stopped", "failed"})
    assert described["status"] == "failed"
    assert "apply error escalation: 3 apply conflicts, STOP_TASK" in described["last_error"]
    assert target.rows() == {1: "target"}


def test_update_record_cannot_insert_a_partial_update_and_says_so(
    run: Callable[..., Task], target: Target
) -> None:
    """The UPDATE of 2 leaves its out-of-line ``big`` unsent: the missing row
    cannot be inserted whole, so the key goes to the exceptions table; row 3's
    UPDATE sends every column (``big`` changed) and is inserted."""
    task = run({"ApplyErrorUpdatePolicy": "UPDATE_RECORD"}, toasted=True)
    task.change(
        "UPDATE public.items SET name = 'source' WHERE id = 2",
        "UPDATE public.items SET name = 'source', big = 'small' WHERE id = 3",
    )
    task.applied(2)
    task.stop()
    assert target.rows() == {1: "target", 3: "source"}
    [(table, key, error)] = target.exceptions()
    assert (table, key) == ("items", _key(2))
    assert "left columns unsent: UPDATE_RECORD cannot insert it" in error


def test_a_reload_clears_a_suspension_and_conflicts_are_judged_again(
    run: Callable[..., Task], target: Target
) -> None:
    """A table suspended by a conflict is reloaded (`tasks reload --table`):
    it matches the source again, the changes held during the reload are not
    judged, and later conflicts are (PostgreSQL: a row written behind
    Conveyor's back)."""
    task = run({"ApplyErrorInsertPolicy": "SUSPEND_TABLE"})
    task.change(CONFLICTS[0])
    task.wait(lambda d: bool(d.get("suspended_tables")))
    reload = conveyor(task.home, "tasks", "reload", "sync", "--table", "public.items")
    assert reload.returncode == 0, reload.stderr
    task.change("INSERT INTO public.items VALUES (10, 'ten')")
    task.wait(lambda d: not d.get("suspended_tables") and not any(t.get("Reloading") for t in d["tables"]))
    task.change("INSERT INTO public.items VALUES (11, 'eleven')")
    if target.engine == "postgres":
        task.wait(lambda d: target.rows().get(11) == "eleven")
        target.query_commit("INSERT INTO public.items VALUES (12, 'target')")
        task.change("INSERT INTO public.items VALUES (12, 'source')")
        described = task.wait(lambda d: bool(d.get("suspended_tables")))
        assert "(ApplyErrorInsertPolicy SUSPEND_TABLE)" in json.dumps(described["suspended_tables"])
    task.stop()
    rows = target.rows()
    assert {k: rows[k] for k in (1, 2, 3, 10, 11)} == {
        1: "source",
        2: "two",
        3: "three",
        10: "ten",
        11: "eleven",
    }
    assert target.exceptions() == []


def test_a_reloaded_table_counts_its_conflicts_afresh(run: Callable[..., Task], target: Target) -> None:
    """Two conflicts counted, then the table is reloaded (`tasks reload
    --table`, the table not suspended): its count starts over, on the target
    too (seen after a stop and a resume), so the escalation comes at the third
    conflict after the reload, not at the first."""
    task = run(
        {
            "ApplyErrorInsertPolicy": "LOG_ERROR",
            "ApplyErrorUpdatePolicy": "LOG_ERROR",
            "ApplyErrorEscalationCount": 3,
            "ApplyErrorEscalationPolicy": "SUSPEND_TABLE",
        }
    )
    task.change(CONFLICTS[0])
    task.applied(1)
    task.change(CONFLICTS[1])
    task.applied(2)
    reload = conveyor(task.home, "tasks", "reload", "sync", "--table", "public.items")
    assert reload.returncode == 0, reload.stderr
    task.wait(lambda d: not d.get("suspended_tables") and not any(t.get("Reloading") for t in d["tables"]))
    task.stop()
    assert target.rows() == {1: "source", 2: "source", 3: "three"}
    assert target.query("SELECT count(*) FROM conveyor_apply_conflicts WHERE table_name = 'items'") == [(0,)]

    # The target made to differ again, behind Conveyor's back, while the task is stopped.
    statements = [
        "DELETE FROM public.items WHERE id IN (2, 3)",
        "INSERT INTO public.items VALUES (20, 'target')",
    ]
    if target.engine == "postgres":
        for statement in statements:
            target.query_commit(statement)
    else:
        with duckdb.connect(target.where) as conn:
            for statement in statements:
                conn.execute(statement)
    task.again("resume")
    task.change("UPDATE public.items SET name = 'after' WHERE id = 2")
    task.applied(1)
    task.change("UPDATE public.items SET name = 'after' WHERE id = 3")
    task.applied(2)
    assert not any(t.get("SuspendedReason") for t in task.describe()["tables"])
    task.change("INSERT INTO public.items VALUES (20, 'source')")
    described = task.wait(lambda d: any(t.get("SuspendedReason") for t in d["tables"]))
    assert "apply error escalation: 3 apply conflicts" in described["tables"][0]["SuspendedReason"]
    task.stop()
    assert target.rows() == {1: "source", 20: "target"}
    assert [(t, k) for t, k, _ in target.exceptions()] == [
        ("items", _key(1)),
        ("items", _key(2)),
        ("items", _key(2)),
        ("items", _key(3)),
    ]
