"""Time as the engine sees it: injectable so Wait and Retry are testable without sleeping."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Where the engine reads the time and waits.

    ``sleep_until`` blocks until ``when`` (an aware UTC datetime) or returns at once when it
    has passed. It may instead raise :class:`ExecutionSuspended`: the engine has already
    persisted the wake-up time, so the execution stops cleanly and ``Execution.resume``
    continues the same wait later.
    """

    def now(self) -> datetime: ...

    def sleep_until(self, when: datetime) -> None: ...


class ExecutionSuspended(Exception):
    """Raised by a clock to park an execution in a Wait/Retry delay instead of blocking."""


class SystemClock:
    """Wall-clock time; ``stop`` wakes every sleeper, which then raise ExecutionSuspended."""

    def __init__(self) -> None:
        self._stop = threading.Event()

    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep_until(self, when: datetime) -> None:
        while True:
            remaining = (when - self.now()).total_seconds()
            if remaining <= 0:
                return
            if self._stop.wait(min(remaining, 1.0)):
                raise ExecutionSuspended

    def stop(self) -> None:
        self._stop.set()


class FakeClock:
    """A clock for tests: ``sleep_until`` jumps forward and records each sleep."""

    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime(2024, 1, 1, tzinfo=UTC)
        self.sleeps: list[float] = []

    def now(self) -> datetime:
        return self.current

    def sleep_until(self, when: datetime) -> None:
        delta = (when - self.current).total_seconds()
        self.sleeps.append(max(delta, 0.0))
        if delta > 0:
            self.current = when

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)
