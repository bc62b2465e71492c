"""Segments of full loads in the metadata store (SQLite and PostgreSQL): claims
with leases, take-over after a lease expires, compare-and-set on the attempt,
cancellation; and the key ranges and filter JSON the segments carry."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from conveyor.core.row_filter import ColumnFilter, Condition, FilterOp, RowFilter
from conveyor.core.types import Kind
from conveyor.replication.segment_plan import decode_filter, encode_filter, key_ranges
from conveyor.store.segments import CANCELLED, DONE, FAILED, PENDING, RUNNING, SegmentQueue
from conveyor.store.store import Store

LEASE = timedelta(seconds=30)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def queue(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SegmentQueue]:
    if request.param == "sqlite":
        store = Store.open(home=tmp_path / "home")
    else:
        server = request.getfixturevalue("pg_server")
        store = Store.open(url=server.url(server.new_database("segq")))
    yield SegmentQueue(store)
    store.close()


def _publish(queue: SegmentQueue, count: int, lease_seconds: int | None = None) -> None:
    spec: dict[str, Any] = {"filter": {}, "staging": ["public", "s"]}
    if lease_seconds is not None:
        spec["lease_seconds"] = lease_seconds
    queue.publish("t", 1, ("public", "big"), "snap-1", [spec] * count)


def test_claims_in_order_finish_and_fail(queue: SegmentQueue) -> None:
    _publish(queue, 3)
    first, second, third = (queue.claim(f"w{i}", LEASE) for i in range(3))
    assert first is not None and second is not None and third is not None
    assert [first.seq, second.seq, third.seq] == [0, 1, 2]
    assert (first.snapshot_id, first.attempt) == ("snap-1", 1)
    assert queue.claim("w9", LEASE) is None  # all leased
    assert queue.finish(first, 10) and queue.fail(second, "boom") and queue.release(third)
    rows = queue.segments(1, ("public", "big"))
    assert [r["state"] for r in rows] == [DONE, FAILED, PENDING]
    assert (rows[0]["rows"], rows[1]["error"], rows[0]["claims"]) == (10, "boom", ["w0"])
    again = queue.claim("w9", LEASE)
    assert again is not None and again.seq == 2 and again.attempt == 2


def test_an_expired_lease_is_taken_over_and_the_old_claim_changes_nothing(queue: SegmentQueue) -> None:
    _publish(queue, 1, lease_seconds=1)
    old = queue.claim("dead", LEASE)
    assert old is not None and queue.claim("other", LEASE) is None
    time.sleep(1.2)
    new = queue.claim("other", LEASE)
    assert new is not None and new.attempt == 2
    assert not queue.renew(old, LEASE) and not queue.finish(old, 5)  # fenced off
    assert queue.renew(new, LEASE) and queue.finish(new, 7)
    (row,) = queue.segments(1)
    assert (row["state"], row["rows"], row["owner"], row["claims"]) == (DONE, 7, "other", ["dead", "other"])


def test_cancel_stops_claims_and_renewals(queue: SegmentQueue) -> None:
    _publish(queue, 2)
    held = queue.claim("w", LEASE)
    assert held is not None
    queue.cancel(1, ("public", "big"))
    assert queue.claim("w", LEASE) is None and not queue.renew(held, LEASE)
    assert {r["state"] for r in queue.segments(1)} == {CANCELLED}


def test_concurrent_claimers_never_share_a_segment(queue: SegmentQueue) -> None:
    _publish(queue, 40)
    taken: list[int] = []
    lock = threading.Lock()

    def claimer(name: str) -> None:
        while (claim := queue.claim(name, LEASE)) is not None:
            with lock:
                taken.append(claim.seq)

    threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(taken) == list(range(40))
    assert {r["state"] for r in queue.segments(1)} == {RUNNING}


@pytest.mark.parametrize(
    ("low", "high", "count", "expected"),
    [
        (1, 100, 4, [(1, 25), (26, 50), (51, 75), (76, 100)]),
        (5, 7, 16, [(5, 5), (6, 6), (7, 7)]),  # fewer segments than asked for a narrow range
        (-3, 3, 2, [(-3, 0), (1, 3)]),
        (9, 9, 8, [(9, 9)]),
    ],
)
def test_key_ranges_cover_every_key_once(
    low: int, high: int, count: int, expected: list[tuple[int, int]]
) -> None:
    segments = key_ranges("id", Kind.INT64, low, high, count)
    bounds = [
        (s.columns[0].conditions[0].values[0], s.columns[1].conditions[0].values[0] - 1) for s in segments
    ]
    assert bounds == expected
    for key in range(low - 1, high + 2):
        inside = [s for s in segments if s.matches({"id": key})]
        assert len(inside) == (1 if low <= key <= high else 0)


def test_filters_survive_json() -> None:
    where = RowFilter(
        (
            ColumnFilter("n", Kind.DECIMAL, (Condition(FilterOp.GT, (Decimal("1.50"),)),)),
            ColumnFilter(
                "d", Kind.DATE, (Condition(FilterOp.BETWEEN, (date(2020, 1, 1), date(2021, 1, 1))),)
            ),
            ColumnFilter(
                "ts", Kind.TIMESTAMP, (Condition(FilterOp.LTE, (datetime(2020, 1, 1, 3, 4, 5, 6),)),)
            ),
            ColumnFilter("t", Kind.TEXT, (Condition(FilterOp.EQ, ("a'b",)), Condition(FilterOp.NULL))),
            ColumnFilter("b", Kind.BOOLEAN, (Condition(FilterOp.EQ, (True,)),)),
        ),
        "rule 2 (ranges)",
    )
    assert decode_filter(encode_filter(where)) == where
