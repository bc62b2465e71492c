"""The /metrics collector over a real store: buckets, states and counters as stored."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import insert

from conveyor.api.metrics import StoreCollector, observe
from conveyor.orchestration.service import Service
from conveyor.service import Conveyor
from conveyor.store import schema as s
from conveyor.store.store import Store


def _scrape(store: Store) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(lambda: observe(Conveyor.over(Service(store)))))
    text = generate_latest(registry).decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_statement_durations_are_bucketed_cumulatively(store: Store) -> None:
    now = datetime.now(UTC)
    durations = {"a": 3_000_000, "b": 40_000_000, "c": 2_000_000_000, "d": -1}  # ns; -1: not ended
    with store.engine.begin() as conn:
        conn.execute(
            insert(s.statements),
            [
                {
                    "id": key,
                    "endpoint": "dw",
                    "query": "select 1",
                    "status": "FINISHED" if ns >= 0 else "STARTED",
                    "created_at": now,
                    "updated_at": now,
                    "duration_ns": ns,
                }
                for key, ns in durations.items()
            ],
        )
    samples = _scrape(store)

    def bucket(le: str) -> float:
        labels = frozenset({"endpoint": "dw", "status": "FINISHED", "le": le}.items())
        return samples[("conveyor_statement_duration_seconds_bucket", labels)]

    assert (bucket("0.005"), bucket("0.025"), bucket("0.05"), bucket("1.0"), bucket("2.5")) == (1, 1, 2, 2, 3)
    assert bucket("+Inf") == 3
    finished = frozenset({"endpoint": "dw", "status": "FINISHED"}.items())
    assert samples[("conveyor_statement_duration_seconds_sum", finished)] == pytest.approx(2.043)
    assert samples[("conveyor_statements", frozenset({"endpoint": "dw", "status": "STARTED"}.items()))] == 1


def test_an_empty_store_has_only_the_info_metric(store: Store) -> None:
    samples = _scrape(store)
    assert [name for name, _ in samples] == ["conveyor_info"]
