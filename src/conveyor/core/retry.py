"""The one retry policy: ErrorBehavior's RecoverableError* settings.

A recoverable error (``TransientError``; ``ConnectionFailed`` where the caller
says it is worth retrying) is retried after ``RecoverableErrorInterval``
seconds; with ``RecoverableErrorThrottling`` each wait doubles, up to
``RecoverableErrorThrottlingMax``; ``RecoverableErrorCount`` bounds the retries
(-1: no bound, 0: none), and ``RecoverableErrorStopRetryAfterThrottlingMax``
gives up once a wait of the maximum was not enough. The full load retries a
table with it, change capture the target's apply.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from conveyor.core.errors import TransientError

T = TypeVar("T")
log = logging.getLogger(__name__)

MIN_WAIT_S = 0.1
"""No retry comes sooner (an interval of 0 must not spin)."""


@dataclass(frozen=True)
class RetryPolicy:
    count: int = -1
    interval: float = 5.0
    throttling: bool = True
    throttling_max: float = 1800.0
    stop_after_throttling_max: bool = True

    def waits(self) -> Iterator[float]:
        """The wait before each retry, in order; the iterator ends when no retry is left."""
        wait, retries, reached_max = max(self.interval, MIN_WAIT_S), 0, False
        while self.count < 0 or retries < self.count:
            if reached_max and self.stop_after_throttling_max:
                return
            if self.throttling:
                wait = min(wait, max(self.throttling_max, MIN_WAIT_S))
                reached_max = wait >= self.throttling_max
            yield wait
            retries += 1
            if self.throttling:
                wait *= 2


def retry_call(
    action: Callable[[], T],
    policy: RetryPolicy,
    *,
    what: str,
    retryable: tuple[type[BaseException], ...] = (TransientError,),
    sleep: Callable[[float], bool],
) -> T:
    """``action()``, retried on ``retryable`` errors as ``policy`` says. ``sleep(s)``
    waits and answers True when the caller is stopping: the error is then raised
    at once, as it is when the policy has no retry left."""
    waits = policy.waits()
    while True:
        try:
            return action()
        except retryable as exc:
            wait = next(waits, None)
            if wait is None:
                log.error("%s: giving up after the retries RecoverableErrorCount allows: %s", what, exc)
                raise
            log.warning("%s: %s; retrying in %.1f s", what, exc, wait)
            if sleep(wait):
                raise
