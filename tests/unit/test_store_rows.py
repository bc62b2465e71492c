"""The store's typed rows (store/rows.py) name exactly the keys its reads answer,
with timezone-aware datetimes, so the types cannot drift from the tables."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from conveyor.store import rows
from conveyor.store.store import Store


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
    answered: list[tuple[Any, dict[str, Any] | None]] = [
        (rows.TaskStatusRow, dict(store.task_status("t"))),
        (rows.RunRow, dict(store.list_runs("t")[0])),
        (rows.SuspensionRow, dict(store.suspensions("t")[0])),
        (rows.TaskSampleRow, dict(store.task_samples("t")[0])),
        (rows.TaskTokenRow, dict(store.task_token("tok") or {})),
        (rows.JobRunRow, dict(store.job_run("jr") or {})),
    ]
    for row_type, row in answered:
        assert row is not None and set(row) == keys(row_type), row_type.__name__
        for key, value in row.items():
            if isinstance(value, datetime):
                assert value.tzinfo is not None, (row_type.__name__, key)
    assert store.run(run) == store.list_runs("t")[0]
