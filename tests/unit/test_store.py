"""The metadata store on SQLite and on PostgreSQL (CONVEYOR_STORE_URL): runs,
statistics and events (its schema's versions: test_store_migrations.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from conveyor.core.errors import ConfigError
from conveyor.events.lifecycle import STARTED, STOPPED, task_event
from conveyor.store.event_pages import events_page
from conveyor.store.store import Store


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """Where a store lives: a CONVEYOR_HOME directory, or a private PostgreSQL database."""
    if request.param == "sqlite":
        return {"home": tmp_path / "home"}
    server = request.getfixturevalue("pg_server")
    return {"url": server.url(server.new_database("store"))}


@pytest.fixture
def store(location: dict[str, Any]) -> Iterator[Store]:
    opened = Store.open(**location)
    yield opened
    opened.close()


def test_task_status_and_runs(store: Store) -> None:
    assert store.task_status("t")["status"] == "ready"
    run = store.start_run("t", 123)
    store.set_task_status("t", "running", run=run)
    store.set_task_status("t", "stopped", stop_reason="FULL_LOAD_ONLY_FINISHED")
    status = store.task_status("t")
    assert (status["status"], status["stop_reason"], status["current_run"]) == (
        "stopped",
        "FULL_LOAD_ONLY_FINISHED",
        run,
    )


def test_table_stats_upsert_per_run(store: Store) -> None:
    first = store.start_run("t", None)
    store.put_table_stats("t", first, "main", "a", {"FullLoadRows": 1})
    store.put_table_stats("t", first, "main", "a", {"FullLoadRows": 5})
    second = store.start_run("t", None)
    store.put_table_stats("t", second, "main", "a", {"FullLoadRows": 7})
    assert store.table_stats("t", first) == [{"FullLoadRows": 5}]
    assert store.table_stats("t") == [{"FullLoadRows": 7}]


def test_events_in_order_and_since(store: Store) -> None:
    started, stopped = task_event(STARTED, "t"), task_event(STOPPED, "t", "FULL_LOAD_ONLY_FINISHED")
    store.put_event(started)
    store.put_event(stopped)
    assert [e["id"] for e in store.list_events()] == [started["id"], stopped["id"]]
    assert store.list_events(limit=1) == [started]


def test_events_newest_first_in_pages_from_a_time(store: Store) -> None:
    """After more events than a page holds, the newest are still the first seen,
    and the next-page tokens walk back to the oldest with none repeated or lost."""
    ids = []
    for n in range(1, 26):
        event = task_event(STARTED, f"t{n}")
        event["time"] = f"2026-01-01T00:{n:02d}:00Z"
        ids.append(store.put_event(event))
    first = events_page(store, limit=10)
    assert [e["id"] for e in first["Events"]] == ids[::-1][:10]
    seen, token = [], None
    for _ in range(10):
        page = events_page(store, limit=10, next_token=token)
        seen += [e["id"] for e in page["Events"]]
        token = page["NextToken"]
        if token is None:
            break
    assert seen == ids[::-1]
    newest = task_event(STARTED, "late")
    store.put_event(newest)
    assert [e["id"] for e in events_page(store, limit=10, next_token=first["NextToken"])["Events"]] == (
        ids[::-1][10:20]
    )
    since = events_page(store, since="2026-01-01T00:20:00Z", limit=100)["Events"]
    assert [e["id"] for e in since] == [newest["id"], *ids[::-1][:6]]
    assert events_page(store, since="1h", limit=100)["Events"] == [newest]
    for bad, message in [
        ({"limit": 0}, "limit must be between 1 and 1000"),
        ({"next_token": "abc"}, "is not one this service gave"),
        ({"since": "yesterday"}, "give an ISO 8601 time"),
    ]:
        with pytest.raises(ConfigError, match=message):
            events_page(store, **bad)


def test_stack_document_survives_reopen(location: dict[str, Any]) -> None:
    first = Store.open(**location)
    first.put_stack_document({"endpoints": {"a": {"engine": "sqlite"}}})
    first.close()
    second = Store.open(**location)
    assert second.stack_document() == {"endpoints": {"a": {"engine": "sqlite"}}}
    second.close()


def test_stack_applied_at_is_timezone_aware(store: Store) -> None:
    """SQLite gives datetimes back naive; read as local time they would shift
    a state machine's creationDate and a schedule's timestamps."""
    assert store.stack_applied_at() is None
    store.put_stack_document({})
    applied = store.stack_applied_at()
    assert applied is not None and applied.utcoffset() == timedelta(0)
    assert abs((datetime.now(UTC) - applied).total_seconds()) < 60


def test_table_suspensions_survive_and_reload_requests_replace_them(store: Store) -> None:
    position = {"engine": "postgres", "position": {"lsn": 42}}
    store.put_suspension("t", ("public", "items"), ("dw", "items"), "column 'a' changed type", position)
    store.put_suspension("t", ("public", "other"), ("dw", "other"), "refused", None)
    rows = {r["table_name"]: r for r in store.suspensions("t")}
    assert rows["items"]["state"] == "suspended" and rows["items"]["position"] == position
    assert rows["items"]["reason"] == "column 'a' changed type" and rows["items"]["target_schema"] == "dw"
    assert store.suspensions("another task") == []
    store.request_table_reload("t", "public", "items", ("dw", "items"))
    store.request_table_reload(
        "t", "public", "fresh", ("dw", "fresh")
    )  # not suspended: a reload all the same
    states = {r["table_name"]: r["state"] for r in store.suspensions("t")}
    assert states == {"items": "reload", "other": "suspended", "fresh": "reload"}
    store.clear_suspension("t", "public", "items")
    assert {r["table_name"] for r in store.suspensions("t")} == {"other", "fresh"}
    store.clear_suspension("t")
    assert store.suspensions("t") == []


def test_progress_is_sampled_at_most_every_interval_and_old_samples_are_dropped(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime, timedelta

    from conveyor.store import progress

    clock = [datetime(2026, 1, 1, tzinfo=UTC)]
    monkeypatch.setattr(progress, "now", lambda: clock[0])
    detail = {
        "CDCLatencySource": 0.5,
        "CDCLatencyTarget": 0.75,
        "RetainedWalBytes": 4096,
        "AppliedChanges": 3,
    }
    store.put_task_progress("t", 1, detail)
    store.put_task_progress("t", 1, detail | {"CDCLatencySource": 9.0})  # within the interval: not sampled
    clock[0] += timedelta(seconds=progress.SAMPLE_SECONDS)
    store.put_task_progress("t", 1, detail | {"CDCLatencySource": 1.5, "RetainedWalBytes": None})
    samples = store.task_samples("t")
    assert [(s["latency_source"], s["latency_target"], s["retained_wal_bytes"]) for s in samples] == [
        (0.5, 0.75, 4096),
        (1.5, 0.75, None),
    ]
    assert store.task_progress("t") == detail | {"CDCLatencySource": 1.5, "RetainedWalBytes": None}
    clock[0] += progress.SAMPLE_RETENTION + timedelta(seconds=5)
    store.put_task_progress("t", 2, detail)
    assert [s["run_id"] for s in store.task_samples("t")] == [2]
    assert store.task_samples("other") == []
