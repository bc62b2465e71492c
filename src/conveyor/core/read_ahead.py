"""Running a producer one step ahead of its consumer, in a thread.

A source that parses rows in Python (PyMySQL) and a target that writes them
(COPY over a socket, waiting for the server) each leave the other idle when
they take turns on one thread; with the producer in a thread of its own, the
next batch is read while the last one is written (the socket waits and
Arrow's casts release the GIL).

Closing the returned generator (a stopped or failed consumer) stops the
producer: it finishes the item it is making, is closed in its own thread, and
is joined before ``close()`` returns, so whatever the producer holds (a
cursor, a connection's result) is free again for the caller.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Generator, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")

_POLL_S = 0.2
_JOIN_S = 60.0


class Handoff(Generic[T]):
    """A bounded queue from producer threads to one consumer, which the consumer
    can abandon: after ``stop`` a producer's ``put`` gives up (answers False)
    instead of waiting for room forever."""

    def __init__(self, depth: int) -> None:
        self._queue: queue.Queue[T] = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()

    def put(self, item: T) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def get(self) -> T:
        return self._queue.get()

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()


class _End(Generic[T]):
    """The producer finished (``error`` None) or failed."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


def read_ahead(
    items: Iterator[T],
    depth: int = 1,
    name: str = "read-ahead",
    on_stuck: Callable[[], None] | None = None,
) -> Generator[T, None, None]:
    """``items`` produced in a thread, up to ``depth`` of them waiting for the
    consumer; an exception of the producer is raised in the consumer.
    ``on_stuck`` is called when the producer has not stopped ``_JOIN_S``
    seconds after the consumer let go (e.g. to close the connection it reads)."""
    out: Handoff[T | _End[T]] = Handoff(depth)
    put = out.put

    def produce() -> None:
        error: BaseException | None = None
        try:
            for item in items:
                if not put(item):
                    break
        except BaseException as exc:  # handed to the consumer, raised there
            error = exc
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                try:
                    close()
                except BaseException as exc:
                    error = error or exc
        put(_End(error))

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item = out.get()
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return
            yield item
    finally:
        out.stop()
        thread.join(timeout=_JOIN_S)
        if thread.is_alive() and on_stuck is not None:
            on_stuck()
