"""The store's typed rows (store/rows.py) name exactly the keys its reads answer,
with timezone-aware datetimes, so the types cannot drift from the tables; on
SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from conveyor.orchestration.asl.store import HistoryEvent
from conveyor.store import rows
from conveyor.store.store import Store


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        opened = Store.open(home=tmp_path / "home")
    else:
        server = request.getfixturevalue("pg_server")
        opened = Store.open(url=server.url(server.new_database("rows")))
    yield opened
    opened.close()


def keys(row_type: Any) -> set[str]:
    return set(row_type.__required_keys__ | row_type.__optional_keys__)


def test_each_typed_row_has_the_keys_the_store_answers(store: Store) -> None:
    when = datetime(2026, 12, 1, tzinfo=UTC)
    assert set(store.task_status("never")) == keys(rows.TaskStatusRow) - {"updated_at"}
    run = store.start_run("t", 7)
    store.set_task_status("t", "running", run=run)
    store.put_task_progress("t", run, {"CDCLatencySource": 0.5})
    store.put_suspension("t", ("main", "a"), ("dw", "a"), "refused", {"lsn": 1})
    store.put_task_token("tok", "ex", "Wait", when)
    store.put_job_run({"id": "jr", "job_name": "j", "state": "RUNNING", "arguments": {}, "started_on": when})
    store.put_statement({"id": "st", "endpoint": "dw", "query": "SELECT 1", "status": "SUBMITTED"})
    store.update_statement("st", ["SUBMITTED"], status="FINISHED", result={"Records": []}, started_at=when)
    execution = {"name": "e", "state_machine": "m", "status": "RUNNING", "record": {}, "start_time": when}
    event = {"id": 1, "type": "ExecutionStarted", "timestamp": "2026-12-01T00:00:00Z", "details": {"x": 1}}
    assert store.commit_execution("ex", execution, [event])
    store.set_connection("dw", "successful")
    answered: list[tuple[Any, dict[str, Any] | None]] = [
        (rows.TaskStatusRow, dict(store.task_status("t"))),
        (rows.RunRow, dict(store.list_runs("t")[0])),
        (rows.SuspensionRow, dict(store.suspensions("t")[0])),
        (rows.TaskSampleRow, dict(store.task_samples("t")[0])),
        (rows.TaskTokenRow, dict(store.task_token("tok") or {})),
        (rows.JobRunRow, dict(store.job_run("jr") or {})),
        (rows.StatementRow, dict(store.statement("st") or {})),
        (rows.StatementSummaryRow, dict(store.list_statements()[0])),
        (rows.ExecutionRow, dict(store.execution("ex") or {})),
        (rows.ExecutionRow, dict(store.find_executions(state_machine="m")[0])),
        (rows.ExecutionEventRow, dict(store.execution_events("ex")[0])),
        (rows.ConnectionRow, dict(store.connections()[0])),
    ]
    for row_type, row in answered:
        assert row is not None and set(row) == keys(row_type), row_type.__name__
        for key, value in row.items():
            if isinstance(value, datetime):
                assert value.tzinfo is not None, (row_type.__name__, key)
    assert store.run(run) == store.list_runs("t")[0]
    assert store.statement("st") == store.list_statements()[0] | {"result": {"Records": []}}
    # the history rows are the engine's HistoryEvent, field for field
    assert keys(rows.ExecutionEventRow) == {f.name for f in fields(HistoryEvent)}
    assert [HistoryEvent(**e) for e in store.execution_events("ex")] == [HistoryEvent(**event)]
