"""Lake change files as the service writes them, through a stack file and the
CLI: every change in commit order as I/U/D with its transaction's commit time,
files written per CdcMaxBatchInterval / CdcMinFileSize, and a worker SIGKILLed
mid-run leaves no change lost or written twice."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import signal
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from conveyor.connectors.lake import layout as lay
from conveyor.core.faults import ENV as FAULT_ENV
from support import stacks
from support import tasks as support_tasks
from support.cli import conveyor, worker_log
from support.servers import PostgresServer

pytestmark = pytest.mark.integration

DEADLINE_S = 60.0


def wait_until(check: Callable[[], bool], what: str, debug: Callable[[], Any] | None = None) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {DEADLINE_S} s waiting for {what}: {debug() if debug else ''}")


def described(home: Path, task: str) -> dict[str, Any]:
    """`conveyor tasks describe TASK --json`, read in this process (it is polled)."""
    return support_tasks.described(home, task)


def stop(home: Path, task: str) -> None:
    conveyor(home, "tasks", "stop", task)
    with contextlib.suppress(AssertionError):
        wait_until(lambda: described(home, task)["status"] != "running", f"{task} to stop")
    pid = described(home, task).get("pid")
    if pid and described(home, task)["status"] == "running":
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def change_files(lake: Path, table: str) -> list[Path]:
    """The table's change files, in name (write) order."""
    found = [p for p in lake.rglob("*.csv") if lay.CHANGE_RE.match(p.name) and f"/{table}/" in str(p)]
    return sorted(found, key=lambda p: p.name)


def change_rows(lake: Path, table: str) -> list[dict[str, str]]:
    """Every change row of the table (files with a header row), in order."""
    rows: list[dict[str, str]] = []
    for path in change_files(lake, table):
        rows.extend(csv.DictReader(io.StringIO(path.read_text())))
    return rows


def _twice(lake: Path, home: Path, inserted: list[str]) -> str:
    """What a failed exactly-once check needs to be understood: the inserts
    written twice or lost, the files holding the doubled ones, the
    checkpoints and the worker's log. (A rare double write of one
    BatchSplitSize part, seen on 2026-12-05, was a replay's parts lowering the
    checkpoint's written mark: test_lake_target's
    test_a_replay_in_smaller_parts_writes_no_change_twice.)"""
    doubled = sorted({i for i in inserted if inserted.count(i) > 1}, key=int)
    files = sorted(
        {
            str(path.relative_to(lake))
            for path in change_files(lake, "events")
            for row in csv.DictReader(io.StringIO(path.read_text()))
            if row["Op"] == "I" and row["id"] in doubled
        }
    )
    checkpoints = {
        str(p.relative_to(lake)): p.read_text() for p in (lake / ".conveyor" / "checkpoints").glob("*.json")
    }
    return (
        f"an insert lost or written twice: {len(inserted)} inserts, {len(set(inserted))} distinct;"
        f" doubled {doubled[:3]}..{doubled[-3:]} ({len(doubled)}) in {files}; checkpoints {checkpoints};"
        f" worker log:\n{worker_log(home, 'sync')[-6000:]}"
    )


def stack(path: Path, endpoints: dict[str, Any], task: dict[str, Any], lake_tables: dict[str, Any]) -> Path:
    path.write_text(json.dumps({"endpoints": endpoints, "tasks": {"sync": task}, "lake_tables": lake_tables}))
    return path


def curated(home: Path, sql: str) -> list[dict[str, Any]]:
    processed = conveyor(home, "lake", "process", "--json", timeout=300)
    assert processed.returncode == 0, processed.stdout + processed.stderr
    assert not [t for t in json.loads(processed.stdout) if t["status"] == "failed"], processed.stdout
    queried = conveyor(home, "query", sql, "--json")
    assert queried.returncode == 0, queried.stderr
    rows: list[dict[str, Any]] = json.loads(queried.stdout)
    return rows


# --- every change, in commit order, with its commit time ----------------------------------


def test_each_change_in_commit_order_with_its_commit_time(pg_server: PostgresServer, tmp_path: Path) -> None:
    source = pg_server.url(pg_server.new_database("lakelog"))
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id integer PRIMARY KEY, v text)")
        conn.execute("ALTER TABLE items REPLICA IDENTITY FULL")  # delete rows carry the whole old row
        conn.execute("INSERT INTO items VALUES (1, 'one'), (2, 'two')")
    lake = tmp_path / "lake"
    settings = {"TimestampColumnName": "ts", "AddColumnName": True, "CdcMaxBatchInterval": 1}
    path = stack(
        tmp_path / "stack.json",
        {
            "src": {"engine": "postgres", "url": source},
            "lake": {"engine": "lake", "path": str(lake), "settings": settings},
        },
        {"source": "src", "target": "lake", "migration_type": "full-load-and-cdc"},
        {"public.items": {"primary_key": ["id"]}},
    )
    home = tmp_path / "home"
    assert conveyor(home, "apply", str(path)).returncode == 0
    assert conveyor(home, "tasks", "start", "sync").returncode == 0
    try:
        wait_until(lambda: any(lake.rglob("LOAD00000001.csv")), "the full load")
        transactions = [
            [
                "INSERT INTO items VALUES (10, 'a')",
                "UPDATE items SET v = 'b' WHERE id = 10",
                "DELETE FROM items WHERE id = 10",
            ],
            ["INSERT INTO items VALUES (11, 'x')"],
            ["UPDATE items SET v = 'y' WHERE id = 11"],
            ["UPDATE items SET id = 12 WHERE id = 11"],  # a key change: D of the old key, U of the new
            ["DELETE FROM items WHERE id = 1", "INSERT INTO items VALUES (1, 'again')"],
        ]
        spans: list[tuple[datetime, datetime]] = []
        with psycopg.connect(source, autocommit=True) as conn:
            for statements in transactions:
                began = datetime.now(UTC)
                with conn.transaction():
                    for statement in statements:
                        conn.execute(statement)  # type: ignore[arg-type]
                spans.append((began, datetime.now(UTC)))
                time.sleep(0.05)
        wait_until(
            lambda: len(change_rows(lake, "items")) >= 9,
            "the change rows",
            debug=lambda: (change_rows(lake, "items"), worker_log(home, "sync")[-3000:]),
        )
    finally:
        stop(home, "sync")
    rows = change_rows(lake, "items")
    assert [(r["Op"], r["id"], r["v"]) for r in rows] == [
        ("I", "10", "a"),
        ("U", "10", "b"),
        ("D", "10", "b"),
        ("I", "11", "x"),
        ("U", "11", "y"),
        ("D", "11", "y"),
        ("U", "12", "y"),
        ("D", "1", "one"),
        ("I", "1", "again"),
    ]
    # the commit time of each row's transaction: one per transaction, inside its span
    per_transaction = [rows[0:3], rows[3:4], rows[4:5], rows[5:7], rows[7:9]]
    for (began, ended), group in zip(spans, per_transaction, strict=True):
        stamps = {r["ts"] for r in group}
        assert len(stamps) == 1, group
        at = datetime.strptime(stamps.pop(), "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC)
        assert began <= at <= ended, (began, at, ended)
    assert curated(home, "SELECT id, v FROM public.items ORDER BY id") == [
        {"id": 1, "v": "again"},
        {"id": 2, "v": "two"},
        {"id": 12, "v": "y"},
    ]


def test_a_source_filter_writes_a_moved_out_row_as_a_delete_of_its_old_row(
    pg_server: PostgresServer, tmp_path: Path
) -> None:
    """Rows captured in Arrow with a source filter: an INSERT the filter
    leaves out is not in the file, an UPDATE that moves its row out is a D
    row of the old row as the source sent it (whole under REPLICA IDENTITY
    FULL, else its key), one that moves it in a U row. Every row is masked,
    a D row's old values too."""
    source = pg_server.url(pg_server.new_database("lakefilter"))
    with psycopg.connect(source, autocommit=True) as conn:
        for table in ("wide", "narrow"):
            conn.execute(f"CREATE TABLE {table} (id integer PRIMARY KEY, n integer, v text)")
            conn.execute(f"INSERT INTO {table} VALUES (1, 10, 'one1'), (2, 500, 'two2')")
        conn.execute("ALTER TABLE wide REPLICA IDENTITY FULL")
    lake = tmp_path / "lake"
    rule = {
        "rule-type": "selection",
        "rule-id": "1",
        "rule-name": "small",
        "object-locator": {"schema-name": "public", "table-name": "%"},
        "rule-action": "include",
        "filters": [
            {
                "filter-type": "source",
                "column-name": "n",
                "filter-conditions": [{"filter-operator": "between", "start-value": "0", "end-value": "100"}],
            }
        ],
    }
    path = stacks.one_task(
        tmp_path / "stack.json",
        {"engine": "postgres", "url": source},
        {"engine": "lake", "path": str(lake), "settings": {"AddColumnName": True, "CdcMaxBatchInterval": 1}},
        rules=[
            rule,
            {
                "rule-type": "transformation",
                "rule-id": "2",
                "rule-name": "mask",
                "rule-target": "column",
                "object-locator": {"schema-name": "public", "table-name": "%", "column-name": "v"},
                "rule-action": "data-masking-digits-mask",
                "value": "#",
            },
        ],
    )
    home = tmp_path / "home"
    assert conveyor(home, "apply", str(path)).returncode == 0
    assert conveyor(home, "tasks", "start", "sync").returncode == 0
    try:
        wait_until(lambda: len(list(lake.rglob("LOAD00000001.csv"))) == 2, "the full load")
        with psycopg.connect(source, autocommit=True) as conn:
            for table in ("wide", "narrow"):
                conn.execute(f"INSERT INTO {table} VALUES (3, 20, 'three3')")
                conn.execute(f"INSERT INTO {table} VALUES (4, 900, 'four4')")  # never in
                conn.execute(f"UPDATE {table} SET n = 700, v = 'gone' WHERE id = 1")  # moves out
                conn.execute(f"UPDATE {table} SET n = 50 WHERE id = 2")  # moves in
                conn.execute(f"UPDATE {table} SET n = 30 WHERE id = 3")
                conn.execute(f"DELETE FROM {table} WHERE id = 3")
        wait_until(
            lambda: all(len(change_rows(lake, t)) >= 5 for t in ("wide", "narrow")),
            "the change rows",
            debug=lambda: (change_rows(lake, "wide"), change_rows(lake, "narrow")),
        )
    finally:
        stop(home, "sync")

    def said(table: str) -> list[tuple[str, ...]]:
        return [(r["Op"], r["id"], r["n"], r["v"]) for r in change_rows(lake, table)]

    assert said("wide") == [
        ("I", "3", "20", "three#"),
        ("D", "1", "10", "one#"),
        ("U", "2", "50", "two#"),
        ("U", "3", "30", "three#"),
        ("D", "3", "30", "three#"),
    ]
    assert said("narrow") == [
        ("I", "3", "20", "three#"),
        ("D", "1", "", ""),
        ("U", "2", "50", "two#"),
        ("U", "3", "30", "three#"),
        ("D", "3", "", ""),
    ]
    assert "task sync: 2 of 2 tables captured in Arrow" in worker_log(home, "sync")


# --- when files are written ------------------------------------------------------------------


def _sqlite_stack(
    tmp_path: Path, settings: dict[str, Any], task_settings: dict[str, Any] | None = None
) -> tuple[Path, Path, Path]:
    db = tmp_path / "src.sqlite"
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
        conn.commit()
    lake = tmp_path / "lake"
    path = stack(
        tmp_path / "stack.json",
        {
            "src": {"engine": "sqlite", "path": str(db)},
            "lake": {"engine": "lake", "path": str(lake), "settings": settings},
        },
        {"source": "src", "target": "lake", "migration_type": "cdc", "settings": task_settings or {}},
        {"main.notes": {"primary_key": ["id"]}},
    )
    home = tmp_path / "home"
    assert conveyor(home, "apply", str(path)).returncode == 0
    assert conveyor(home, "tasks", "start", "sync").returncode == 0
    wait_until(lambda: described(home, "sync")["status"] == "running", "the task to run")
    time.sleep(1.0)  # capture begins (its triggers) right after the worker starts
    return db, lake, home


def _insert(db: Path, first: int, count: int) -> None:
    """``count`` rows, one transaction each, of the same text size (~207 bytes a row)."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        for i in range(first, first + count):
            conn.execute("INSERT INTO notes VALUES (?, ?)", (i, "b" * 200))
            conn.commit()


def test_cdc_max_batch_interval_writes_a_file_per_interval(tmp_path: Path) -> None:
    db, lake, home = _sqlite_stack(tmp_path, {"CdcMaxBatchInterval": 2, "CdcMinFileSize": 32000})
    try:
        for burst in range(3):
            _insert(db, 100 * burst + 100, 4)
            time.sleep(0.8)
            assert len(change_files(lake, "notes")) == burst, "a file before CdcMaxBatchInterval"
            wait_until(lambda n=burst + 1: len(change_files(lake, "notes")) == n, f"file {burst + 1}")
    finally:
        stop(home, "sync")
    files = change_files(lake, "notes")
    assert [len(p.read_text().splitlines()) for p in files] == [4, 4, 4]


def test_cdc_min_file_size_writes_a_file_per_size(tmp_path: Path) -> None:
    db, lake, home = _sqlite_stack(tmp_path, {"CdcMaxBatchInterval": 3600, "CdcMinFileSize": 1})
    try:
        _insert(db, 1, 15)  # 1 KB is five of these rows: three files, before any interval
        wait_until(lambda: len(change_files(lake, "notes")) >= 3, "three files")
    finally:
        stop(home, "sync")
    files = change_files(lake, "notes")
    assert [len(p.read_text().splitlines()) for p in files] == [5, 5, 5]
    assert all(p.stat().st_size >= 1024 for p in files)


def test_batch_split_size_cuts_a_transaction_captured_in_arrow(tmp_path: Path) -> None:
    """A 1,000-row transaction comes as one captured batch (the table is
    captured in Arrow); BatchSplitSize cuts it: a file per 100 changes."""
    settings = {"CdcMaxBatchInterval": 3600, "CdcMinFileSize": 32000}
    tuning = {"ChangeProcessingTuning": {"BatchSplitSize": 100}}
    db, lake, home = _sqlite_stack(tmp_path, settings, tuning)
    try:
        with contextlib.closing(sqlite3.connect(db)) as conn:
            conn.executemany("INSERT INTO notes VALUES (?, ?)", [(i, f"n{i}") for i in range(1, 1001)])
            conn.commit()
        wait_until(lambda: len(change_files(lake, "notes")) >= 10, "ten files")
    finally:
        stop(home, "sync")
    files = change_files(lake, "notes")
    lines = [p.read_text().splitlines() for p in files]
    assert [len(rows) for rows in lines] == [100] * 10
    assert [row.split(",")[:2] for rows in lines for row in rows] == [["I", str(i)] for i in range(1, 1001)]
    log = (home / "logs" / "sync").glob("*.log")
    assert any("1 of 1 tables captured in Arrow" in path.read_text() for path in log)


# --- SIGKILL: nothing lost, nothing twice ----------------------------------------------------------


CRASH_POINTS = [
    "capture-after-partial-apply:1",  # a part of a large transaction written under the older checkpoint
    "capture-before-apply:2",  # a batch read, nothing written
    "capture-after-apply:2",  # files and checkpoint written, the source not acknowledged
]


def test_a_killed_worker_loses_and_repeats_no_change(pg_server: PostgresServer, tmp_path: Path) -> None:
    source = pg_server.url(pg_server.new_database("lakekill"))
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("CREATE TABLE events (id integer PRIMARY KEY, v integer NOT NULL)")
        conn.execute("INSERT INTO events SELECT g, 0 FROM generate_series(1, 10) g")
    lake = tmp_path / "lake"
    settings = {"AddColumnName": True, "CdcMaxBatchInterval": 1}
    path = stack(
        tmp_path / "stack.json",
        {
            "src": {"engine": "postgres", "url": source},
            "lake": {"engine": "lake", "path": str(lake), "settings": settings},
        },
        {
            "source": "src",
            "target": "lake",
            "migration_type": "full-load-and-cdc",
            "settings": {"ChangeProcessingTuning": {"BatchSplitSize": 100}},
        },
        {"public.events": {"primary_key": ["id"]}},
    )
    home = tmp_path / "home"
    assert conveyor(home, "apply", str(path)).returncode == 0
    next_id = 1000
    try:
        for index, point in enumerate(CRASH_POINTS):
            started = conveyor(
                home, "tasks", "start" if index == 0 else "resume", "sync", env={FAULT_ENV: point}
            )
            assert started.returncode == 0, started.stderr
            wait_until(lambda: any(lake.rglob("LOAD00000001.csv")), "the full load")
            with psycopg.connect(source, autocommit=True) as conn:
                with conn.transaction():  # one transaction of several BatchSplitSizes
                    conn.execute(
                        "INSERT INTO events SELECT g, 1 FROM generate_series(%s::int, %s::int) g",
                        (next_id, next_id + 349),
                    )
                    conn.execute("UPDATE events SET v = v + 1 WHERE id <= 10")
                for i in range(5):
                    conn.execute("INSERT INTO events VALUES (%s, 2)", (next_id + 350 + i,))
                    conn.execute("DELETE FROM events WHERE id = %s", (next_id + i,))
            next_id += 1000
            wait_until(
                lambda: described(home, "sync")["status"] == "failed",
                f"the worker to die at {point}",
                debug=lambda: described(home, "sync"),
            )
        assert conveyor(home, "tasks", "resume", "sync").returncode == 0
        expected_rows = 3 * (350 + 10 + 10)
        wait_until(
            lambda: len(change_rows(lake, "events")) >= expected_rows,
            "every change in a file",
            debug=lambda: len(change_rows(lake, "events")),
        )
        time.sleep(1.5)  # anything written twice would land now
    finally:
        stop(home, "sync")
    rows = change_rows(lake, "events")
    inserted = [r["id"] for r in rows if r["Op"] == "I"]
    assert len(inserted) == len(set(inserted)) == 3 * 355, _twice(lake, home, inserted)
    assert len(rows) == expected_rows
    with psycopg.connect(source) as conn:
        expected = [{"id": i, "v": v} for i, v in conn.execute("SELECT id, v FROM events ORDER BY id")]
    assert curated(home, "SELECT id, v FROM public.events ORDER BY id") == expected
