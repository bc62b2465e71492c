"""core/read_ahead.py: the producer runs in its own thread, ahead by at most
``depth`` items; its error reaches the consumer; closing stops and closes it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from conveyor.core.read_ahead import read_ahead


def test_items_arrive_in_order_from_another_thread() -> None:
    threads: list[int] = []

    def produce() -> Iterator[int]:
        for i in range(50):
            threads.append(threading.get_ident())
            yield i

    assert list(read_ahead(produce(), depth=3)) == list(range(50))
    assert set(threads) != {threading.get_ident()}


def test_the_producer_runs_at_most_depth_items_ahead() -> None:
    made: list[int] = []

    def produce() -> Iterator[int]:
        for i in range(100):
            made.append(i)
            yield i

    items = read_ahead(produce(), depth=2)
    assert next(items) == 0
    deadline = time.monotonic() + 5
    while len(made) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    # one taken, two queued, one made and waiting to be queued
    assert len(made) == 4
    items.close()


def test_a_producer_error_is_raised_in_the_consumer_after_the_items_before_it() -> None:
    def produce() -> Iterator[int]:
        yield 1
        yield 2
        raise ValueError("bad row 3")

    got = []
    with pytest.raises(ValueError, match="bad row 3"):
        for item in read_ahead(produce()):
            got.append(item)
    assert got == [1, 2]


def test_closing_stops_the_producer_and_closes_it_before_returning() -> None:
    closed = threading.Event()
    made: list[int] = []

    def produce() -> Iterator[int]:
        try:
            for i in range(1_000_000):
                made.append(i)
                yield i
        finally:
            closed.set()

    items = read_ahead(produce(), depth=1)
    assert next(items) == 0
    items.close()
    assert closed.is_set()
    assert len(made) < 10
    assert not [t for t in threading.enumerate() if t.name == "read-ahead"]


def test_a_producer_that_does_not_stop_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("conveyor.core.read_ahead._JOIN_S", 0.1)
    release = threading.Event()
    stuck: list[bool] = []

    def produce() -> Iterator[int]:
        yield 1
        release.wait(5)  # a fetch that hangs
        yield 2

    items = read_ahead(produce(), depth=1, on_stuck=lambda: stuck.append(True))
    assert next(items) == 1
    items.close()
    assert stuck == [True]
    release.set()
