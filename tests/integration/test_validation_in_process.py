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
from conveyor.replication.full_load import TablePlan
from conveyor.replication.settings import ValidationSettings
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
