"""The control tables' writer (replication/control_tables.py) on a real DuckDB
file, with a clock the test moves: a history row at each timeslot's end and one
for the part-slot at the end, the status row through a run, suspended tables
coming and going, ControlSchema, and the targets that keep no control tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from conveyor.connectors.base import EndpointConfig
from conveyor.connectors.duckdb.control import DuckDBControlTables
from conveyor.core.errors import ConfigError
from conveyor.replication.control_tables import (
    CHANGE_PROCESSING,
    FULL_LOAD,
    ControlTables,
    Suspended,
    target_problems,
)
from conveyor.replication.settings import ControlTablesSettings, parse_task_settings


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def _settings(**keys: Any) -> ControlTablesSettings:
    return parse_task_settings({"ControlTablesSettings": keys}, "settings").control_tables_settings


def _tables(path: Path, clock: Clock, **keys: Any) -> ControlTables:
    config = EndpointConfig("dw", "duckdb", path=str(path))
    return ControlTables("sync", _settings(**keys), DuckDBControlTables(config), clock=clock)


def _query(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(path), read_only=True) as conn:
        return conn.execute(sql).fetchall()


def test_a_history_row_per_timeslot_and_one_at_the_end(tmp_path: Path) -> None:
    path, clock = tmp_path / "dw.duckdb", Clock()
    tables = _tables(path, clock, HistoryTableEnabled=True, HistoryTimeslotInMinutes=1)
    tables.phase(FULL_LOAD)
    tables.observe_table_rows("main", "a", 7)
    tables.observe_table_rows("main", "b", 3)
    clock.advance(30)
    tables.tick()  # the slot has not ended: nothing yet
    clock.advance(31)
    tables.tick()  # 61 s: the first slot's row
    tables.phase(CHANGE_PROCESSING)
    applied = clock.now - timedelta(seconds=3)  # the last change applied committed 3 s before
    tables.observe_capture(5, 0, '{"lsn": "0/1"}', applied, applied, [])
    clock.advance(20)
    tables.close()  # the part-slot's row, for change processing only (no full-load rows in it)
    start = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    rows = _query(
        path,
        "SELECT task_name, timeslot_type, timeslot, timeslot_duration, timeslot_records, timeslot_volume"
        " FROM main.awsdms_history ORDER BY timeslot",
    )
    assert rows == [
        ("sync", FULL_LOAD, start + timedelta(minutes=1), 1, 10, None),
        ("sync", CHANGE_PROCESSING, start + timedelta(seconds=81), 1, 5, None),
    ]
    [(latency,)] = _query(
        path, "SELECT timeslot_latency FROM main.awsdms_history WHERE timeslot_type LIKE 'CHANGE%'"
    )
    assert latency == 3  # the target latency the capture saw last


def test_slots_without_a_tick_are_written_each_with_their_own_counts(tmp_path: Path) -> None:
    path, clock = tmp_path / "dw.duckdb", Clock()
    tables = _tables(path, clock, HistoryTableEnabled=True, HistoryTimeslotInMinutes=1)
    tables.phase(CHANGE_PROCESSING)
    tables.observe_capture(4, 0, None, None, None, [])
    clock.advance(150)
    tables.tick()  # two slots ended since the last tick
    tables.close()
    rows = _query(
        path, "SELECT timeslot_records, timeslot_duration FROM main.awsdms_history ORDER BY timeslot"
    )
    assert rows == [(4, 1), (0, 1), (0, 1)]


def test_the_status_row_through_a_run(tmp_path: Path) -> None:
    path, clock = tmp_path / "dw.duckdb", Clock()
    tables = _tables(path, clock, StatusTableEnabled=True)
    status = "SELECT task_name, task_status, pending_changes, source_current_position FROM main.awsdms_status"
    tables.phase(FULL_LOAD)
    tables.connection.close()  # let the test read the file; the writer opens it again
    assert _query(path, status) == [("sync", FULL_LOAD, None, None)]
    tables.phase(CHANGE_PROCESSING)
    tables._status_written = 0.0  # the next observation writes at once (else every 5 s)
    tables.observe_capture(9, 2, '{"lsn": "0/2"}', clock.now, clock.now, [])
    tables.connection.close()
    assert _query(path, status) == [("sync", CHANGE_PROCESSING, 2, '{"lsn": "0/2"}')]
    tables.close()
    assert _query(path, status) == [("sync", "NOT RUNNING", None, '{"lsn": "0/2"}')]
    [(memory,)] = _query(path, "SELECT task_memory FROM main.awsdms_status")
    assert memory > 0


def test_suspended_tables_come_and_go_keeping_their_time(tmp_path: Path) -> None:
    path, clock = tmp_path / "dw.duckdb", Clock()
    tables = _tables(path, clock, SuspendedTablesTableEnabled=True, ControlSchema="dms_control")
    first = clock.now
    tables.suspended([Suspended("main", "items", "column 'qty' changed type", first)])
    clock.advance(60)
    later = [
        Suspended("main", "items", "column 'qty' changed type", clock.now),
        Suspended("main", "other", "source DDL", clock.now),
    ]
    tables.suspended(later)
    tables.close()
    query = (
        "SELECT table_owner, table_name, suspend_reason, suspend_timestamp"
        " FROM dms_control.awsdms_suspended_tables ORDER BY table_name"
    )
    assert _query(path, query) == [
        ("main", "items", "column 'qty' changed type", first),
        ("main", "other", "source DDL", clock.now),
    ]
    # The next run: items reloaded, other still suspended.
    tables = _tables(path, clock, SuspendedTablesTableEnabled=True, ControlSchema="dms_control")
    tables.suspended([Suspended("main", "other", "source DDL", clock.now + timedelta(minutes=5))])
    tables.close()
    assert _query(path, query) == [("main", "other", "source DDL", clock.now)]
    assert _query(path, "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'main'") == [
        (0,)
    ]


@pytest.mark.parametrize("engine", ["lake", "nats"])
def test_targets_without_control_tables_refuse_them_naming_key_and_engine(engine: str) -> None:
    settings = _settings(StatusTableEnabled=True, HistoryTableEnabled=False, ControlSchema="ctl")
    problems = target_problems(settings, engine)
    assert [key for key, _ in problems] == [
        "ControlTablesSettings.StatusTableEnabled",
        "ControlTablesSettings.ControlSchema",
    ]
    assert all(f"a {engine} target keeps no control tables" in why for _, why in problems)
    assert target_problems(_settings(), engine) == []
    assert target_problems(settings, "postgres") == target_problems(settings, "duckdb") == []


def test_a_stack_file_with_control_tables_on_a_lake_is_refused(tmp_path: Path) -> None:
    from conveyor.stack.loader import load_stack

    (tmp_path / "s.yaml").write_text(
        "endpoints:\n  src: {engine: sqlite, path: ./a.sqlite}\n  lake: {engine: lake, path: ./lake}\n"
        "tasks:\n  t:\n    source: src\n    target: lake\n    settings:\n"
        "      ControlTablesSettings: {SuspendedTablesTableEnabled: true}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_stack(tmp_path / "s.yaml")
    assert (
        "tasks.t.settings.ControlTablesSettings.SuspendedTablesTableEnabled: Conveyor cannot honour true:"
        in str(caught.value)
    )
    assert "a lake target keeps no control tables" in str(caught.value)
