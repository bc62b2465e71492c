"""The one retry policy (core/retry.py): RecoverableError* as waits."""

from __future__ import annotations

from itertools import islice

import pytest

from conveyor.core.errors import TerminalError, TransientError
from conveyor.core.retry import RetryPolicy, retry_call
from conveyor.replication.settings import parse_task_settings


def test_the_services_defaults_double_up_to_the_maximum_then_stop() -> None:
    waits = list(RetryPolicy().waits())
    assert waits[:4] == [5, 10, 20, 40]
    assert waits[-1] == 1800 and waits[-2] == 1280 and len(waits) == 10


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (RetryPolicy(count=3), [5, 10, 20]),
        (RetryPolicy(count=0), []),
        (RetryPolicy(count=4, throttling=False, interval=2), [2, 2, 2, 2]),
        (RetryPolicy(count=5, interval=1, throttling_max=3), [1, 2, 3]),
        (RetryPolicy(count=5, interval=0, throttling=False), [0.1] * 5),  # never a busy loop
    ],
)
def test_waits(policy: RetryPolicy, expected: list[float]) -> None:
    assert list(policy.waits()) == expected


def test_without_stop_after_the_maximum_the_waits_go_on_at_it() -> None:
    policy = RetryPolicy(interval=1, throttling_max=4, stop_after_throttling_max=False)
    assert list(islice(policy.waits(), 6)) == [1, 2, 4, 4, 4, 4]


def test_the_task_settings_make_the_policy() -> None:
    settings = parse_task_settings(
        {
            "ErrorBehavior": {
                "RecoverableErrorCount": 2,
                "RecoverableErrorInterval": 7,
                "RecoverableErrorThrottling": False,
                "RecoverableErrorStopRetryAfterThrottlingMax": False,
            }
        },
        "test",
    )
    assert list(settings.error_behavior.retry_policy().waits()) == [7, 7]


def test_retry_call_retries_only_what_is_retryable() -> None:
    calls: list[int] = []
    slept: list[float] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise TransientError("not yet")
        return "done"

    policy = RetryPolicy(count=5, interval=1)
    assert retry_call(flaky, policy, what="x", sleep=lambda s: slept.append(s) or False) == "done"
    assert slept == [1, 2]

    def broken() -> str:
        raise TerminalError("no")

    with pytest.raises(TerminalError):
        retry_call(broken, policy, what="x", sleep=lambda s: False)


def test_no_retry_left_or_a_stop_raises_the_error() -> None:
    def failing() -> None:
        raise TransientError("down")

    with pytest.raises(TransientError, match="down"):
        retry_call(failing, RetryPolicy(count=1, interval=0), what="x", sleep=lambda s: False)
    with pytest.raises(TransientError, match="down"):
        retry_call(failing, RetryPolicy(), what="x", sleep=lambda s: True)  # stopping
