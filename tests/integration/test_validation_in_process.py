"""Validation in process, SQLite source and DuckDB target: ThreadCount (tables
in parallel, never more at once than asked), the LOB settings, a key held twice."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import duckdb
import pytest

from conveyor.connectors.base import EndpointConfig
from conveyor.connectors.duckdb.target import DuckDBTarget, create_table_sql
from conveyor.connectors.sqlite.source import SQLiteSource
from conveyor.core.schema import TableRef
from conveyor.replication.settings import ValidationSettings
from conveyor.replication.table_plan import TablePlan
from conveyor.replication.validation import VALIDATED, ValidationRun, validate_tables

pytestmark = pytest.mark.integration
TABLES = ("a", "b", "c")


class CountingTarget:
    """A real target that counts the tables being validated at once; with a
    barrier, each table waits until ``parties`` tables are in flight together."""

    def __init__(self, target: DuckDBTarget, parties: int | None) -> None:
        self.target, self.in_flight, self.most = target, 0, 0
        self.barrier = threading.Barrier(parties, timeout=60) if parties else None
        self._lock = threading.Lock()

    def describe(self, ref: TableRef) -> Any:
        with self._lock:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
        if self.barrier is not None:
            self.barrier.wait()  # breaks (and fails the table) unless all are in flight together
        return self.target.describe(ref)

    def count(self, ref: TableRef) -> int:
        return self.target.count(ref)

    def read(self, *args: Any, **kwargs: Any) -> Any:
        yield from self.target.read(*args, **kwargs)
        with self._lock:
            self.in_flight -= 1


@pytest.fixture
def endpoints(tmp_path: Path) -> tuple[SQLiteSource, DuckDBTarget]:
    src = sqlite3.connect(tmp_path / "s.sqlite")
    for name in TABLES:
        src.execute(f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, v TEXT)")
        src.executemany(f"INSERT INTO {name} VALUES (?, ?)", [(i, f"{name}{i}") for i in range(30)])
    src.commit()
    src.close()
    source = SQLiteSource(EndpointConfig("s", "sqlite", path=str(tmp_path / "s.sqlite")))
    con = duckdb.connect(str(tmp_path / "t.duckdb"))
    for table in source.tables():
        con.execute(create_table_sql(table))
        con.executemany(
            f"INSERT INTO main.{table.ref.name} VALUES (?, ?)",
            [(i, f"{table.ref.name}{i}") for i in range(30)],
        )
    con.close()
    return source, DuckDBTarget(EndpointConfig("t", "duckdb", path=str(tmp_path / "t.duckdb")))


@pytest.mark.parametrize("threads", [1, 3])
def test_thread_count_tables_at_once(endpoints: tuple[SQLiteSource, DuckDBTarget], threads: int) -> None:
    source, duck = endpoints
    target = CountingTarget(duck, parties=threads if threads > 1 else None)
    plans = [TablePlan(t, t) for t in source.tables()]
    run = ValidationRun("t", ValidationSettings.model_validate({"ThreadCount": threads, "PartitionSize": 7}))
    snapshot = source.snapshot()
    try:
        checks = validate_tables(snapshot, target, plans, run)  # type: ignore[arg-type]
    finally:
        snapshot.close()
        duck.close()
    assert [(c.table, c.state, c.partitions) for c in checks] == [(f"main.{n}", VALIDATED, 5) for n in TABLES]
    assert target.most == threads


@pytest.mark.parametrize(
    ("settings", "state", "note"),
    [
        ({}, "Mismatched records", None),
        (
            {"ValidationPartialLobSize": 1},
            VALIDATED,
            "ValidationPartialLobSize: only the first 1 KB compared of v",
        ),
        ({"SkipLobColumns": True}, VALIDATED, "SkipLobColumns: not compared: v"),
    ],
)
def test_lob_settings_say_what_was_not_compared(
    endpoints: tuple[SQLiteSource, DuckDBTarget],
    tmp_path: Path,
    settings: dict[str, Any],
    state: str,
    note: str,
) -> None:
    source, duck = endpoints
    src = sqlite3.connect(tmp_path / "s.sqlite")
    src.execute("UPDATE a SET v = ? WHERE id = 1", ["x" * 2000 + "source"])
    src.commit()
    src.close()
    con = duck._connection()
    con.execute("UPDATE main.a SET v = ? WHERE id = 1", ["x" * 2000 + "target"])
    plan = TablePlan(source.tables()[0], source.tables()[0])
    snapshot = source.snapshot()
    try:
        (check,) = validate_tables(
            snapshot, duck, [plan], ValidationRun("t", ValidationSettings.model_validate(settings))
        )
    finally:
        snapshot.close()
        duck.close()
    assert check.state == state
    assert check.notes == ([note] if note else [])


def test_a_key_held_twice_is_a_table_error_naming_it(
    endpoints: tuple[SQLiteSource, DuckDBTarget], tmp_path: Path
) -> None:
    source, duck = endpoints
    con = duck._connection()
    con.execute("CREATE TABLE main.b2 AS SELECT * FROM main.b")  # no primary key on the target
    con.execute("INSERT INTO main.b2 VALUES (7, 'b7')")
    table = source.tables()[1]
    plan = TablePlan(table, table.renamed(TableRef("main", "b2")))
    snapshot = source.snapshot()
    try:
        (check,) = validate_tables(snapshot, duck, [plan], ValidationRun("t"))
    finally:
        snapshot.close()
        duck.close()
    assert (check.state, check.reason) == ("Table error", "the target holds the key (id) = ['7'] twice")


class _Clock:
    """Stands in for the module's ``time``: monotonic seconds the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("delay_key", "limit_minutes"),
    [
        ("RecordFailureDelayLimitInMinutes", 0),
        ("RecordFailureDelayLimitInMinutes", 2),
        ("RecordFailureDelayInMinutes", 3),
    ],
)
def test_a_difference_is_reported_after_its_delay(
    endpoints: tuple[SQLiteSource, DuckDBTarget],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    delay_key: str,
    limit_minutes: int,
) -> None:
    """During capture a differing row is reported when comparisons find it unchanged
    for a settle delay (ValidationQueryCdcDelaySeconds) or, with
    RecordFailureDelayLimitInMinutes (or RecordFailureDelayInMinutes, written), for
    that many minutes; the next comparison is scheduled for when that delay has passed."""
    from conveyor.replication.cdc import validation as cdc_validation

    clock = _Clock()
    monkeypatch.setattr(cdc_validation, "time", clock)
    source, target = endpoints
    table = next(t for t in source.tables() if t.ref.name == "a")
    plan = TablePlan(table, table)
    settings = ValidationSettings.model_validate(
        {
            "EnableValidation": True,
            "ValidationQueryCdcDelaySeconds": 10,
            delay_key: limit_minutes,
        }
    )
    capture = cdc_validation.CaptureValidation("t", settings, [plan], lambda: (None, None, lambda: None))  # type: ignore[arg-type,return-value]
    con = duckdb.connect(str(tmp_path / "t.duckdb"))
    con.execute("UPDATE main.a SET v = 'changed behind Conveyor' WHERE id = 7")
    con.close()
    confirm = limit_minutes * 60.0 or 10.0
    state = capture._tables[plan.target.ref]

    def compare() -> dict[str, Any]:
        snapshot = source.snapshot()
        try:
            capture._check(snapshot, target, state)
        finally:
            snapshot.close()
        return capture.stats(plan.target.ref)

    first = compare()  # found, not yet reported
    assert first["ValidationState"] == "Pending records" and first["ValidationFailedRecords"] == 0
    assert first["ValidationPendingRecords"] == 1
    assert state.since is not None and state.since + capture.settle == pytest.approx(clock.now + confirm)
    clock.now += confirm - 1  # not long enough yet
    assert compare()["ValidationFailedRecords"] == 0
    clock.now += 1
    reported = compare()
    assert reported["ValidationState"] == "Mismatched records"
    assert reported["ValidationFailedRecords"] == 1


def test_every_differing_row_is_kept_during_capture_and_the_record_capped(
    endpoints: tuple[SQLiteSource, DuckDBTarget], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """TableFailureMaxCount caps the failures table, not what capture validation
    keeps comparing: every differing row stays counted (and compared again)."""
    from conveyor.replication.cdc import validation as cdc_validation

    clock = _Clock()
    monkeypatch.setattr(cdc_validation, "time", clock)
    source, target = endpoints
    table = next(t for t in source.tables() if t.ref.name == "a")
    plan = TablePlan(table, table)
    settings = ValidationSettings.model_validate(
        {"EnableValidation": True, "ValidationQueryCdcDelaySeconds": 10, "TableFailureMaxCount": 2}
    )
    capture = cdc_validation.CaptureValidation("t", settings, [plan], lambda: (None, None, lambda: None))  # type: ignore[arg-type,return-value]
    con = duckdb.connect(str(tmp_path / "t.duckdb"))
    con.execute("UPDATE main.a SET v = 'changed behind Conveyor' WHERE id < 5")
    con.close()
    state = capture._tables[plan.target.ref]
    for _ in range(2):
        snapshot = source.snapshot()
        try:
            capture._check(snapshot, target, state)
        finally:
            snapshot.close()
        clock.now += 10
    assert capture.stats(plan.target.ref)["ValidationFailedRecords"] == 5
    assert len(state.differing) == 5
    cur = target._connection().cursor()  # the target's own database instance
    try:
        assert cur.execute("SELECT count(*) FROM main.awsdms_validation_failures_v1").fetchone() == (2,)
    finally:
        cur.close()
