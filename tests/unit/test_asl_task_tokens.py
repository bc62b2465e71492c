"""``.waitForTaskToken``: the Task hands ``$$.Task.Token`` to its integration and waits
for the token's answer, with TimeoutSeconds and HeartbeatSeconds honoured."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from test_asl_harness import machine

from conveyor.orchestration.asl import Execution, FakeClock, InMemoryExecutionStore, Integrations, TaskContext
from conveyor.orchestration.asl.clock import ExecutionSuspended
from conveyor.orchestration.asl.tokens import InMemoryTaskTokens

RES = "arn:aws:states:::test:send"
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def waiting_task(**fields: Any) -> dict[str, Any]:
    return {
        "Type": "Task",
        "Resource": f"{RES}.waitForTaskToken",
        "Parameters": {"token.$": "$$.Task.Token", "order.$": "$.order"},
        "End": True,
        **fields,
    }


def start(
    definition: dict[str, Any],
    handler: Any,
    tokens: InMemoryTaskTokens,
    clock: Any = None,
    store: InMemoryExecutionStore | None = None,
) -> Execution:
    integrations = Integrations()
    integrations.register(RES, handler)
    return Execution.start(
        definition,
        {"order": 7},
        store=store or InMemoryExecutionStore(),
        integrations=integrations,
        clock=clock or FakeClock(T0),
        tokens=tokens,
    )


def test_the_tokens_answer_is_the_task_result() -> None:
    tokens = InMemoryTaskTokens()
    calls: list[Any] = []

    def send(parameters: Any, context: TaskContext) -> Any:
        calls.append(parameters)
        tokens.succeed(parameters["token"], {"approved": True})  # answered while the call runs
        return {"MessageId": "m-1"}

    execution = start(machine({"T": waiting_task(ResultPath="$.answer")}), send, tokens)
    execution.run()
    assert execution.status == "SUCCEEDED"
    assert execution.output == {"order": 7, "answer": {"approved": True}}
    assert calls == [{"token": tokens.issued[0], "order": 7}]
    kinds = [e.type for e in execution.history()]
    assert kinds[kinds.index("TaskStarted") :] == [
        "TaskStarted",
        "TaskSubmitted",
        "TaskSucceeded",
        "TaskStateExited",
        "ExecutionSucceeded",
    ]


def test_a_failure_answer_is_caught_as_its_error() -> None:
    tokens = InMemoryTaskTokens()

    def send(parameters: Any, context: TaskContext) -> Any:
        tokens.fail(parameters["token"], "Rejected", "no stock")
        return {}

    catching = {k: v for k, v in waiting_task().items() if k != "End"}
    catching |= {"Next": "Done", "Catch": [{"ErrorEquals": ["Rejected"], "Next": "Sorry"}]}
    definition = machine({"T": catching, "Done": {"Type": "Succeed"}, "Sorry": {"Type": "Pass", "End": True}})
    execution = start(definition, send, tokens)
    execution.run()
    assert execution.status == "SUCCEEDED"
    assert execution.output == {"Error": "Rejected", "Cause": "no stock"}


@pytest.mark.parametrize(
    ("fields", "beats", "error"),
    [
        ({"HeartbeatSeconds": 2}, 0, "States.HeartbeatTimeout"),
        ({"TimeoutSeconds": 3}, 0, "States.Timeout"),
        ({"TimeoutSeconds": 3, "HeartbeatSeconds": 2}, 5, "States.Timeout"),  # beats keep it alive
    ],
)
def test_timeouts_while_waiting(fields: dict[str, Any], beats: int, error: str) -> None:
    tokens = InMemoryTaskTokens()
    clock = FakeClock(T0)
    original = clock.sleep_until

    def sleep_until(when: datetime) -> None:
        original(when)
        if beats and tokens.issued:
            tokens.heartbeat(tokens.issued[0], clock.now())

    clock.sleep_until = sleep_until  # type: ignore[method-assign]
    execution = start(machine({"T": waiting_task(**fields)}), lambda p, c: {}, tokens, clock)
    execution.run()
    assert (execution.status, execution.record.error) == ("FAILED", error)
    assert "TaskTimedOut" in [e.type for e in execution.history()]
    assert tokens.succeed(tokens.issued[0], {}) is False  # a late answer is refused


class SuspendOnce(FakeClock):
    """Suspends the first wait for the token, as serve's shutdown does."""

    def __init__(self) -> None:
        super().__init__(T0)
        self.suspended = False

    def sleep_until(self, when: datetime) -> None:
        if not self.suspended:
            self.suspended = True
            raise ExecutionSuspended
        super().sleep_until(when)


def test_a_resumed_execution_waits_for_the_same_token_without_calling_again() -> None:
    tokens = InMemoryTaskTokens()
    store = InMemoryExecutionStore()
    calls: list[Any] = []
    integrations = Integrations()
    integrations.register(RES, lambda p, c: calls.append(p) or {})
    execution = Execution.start(
        machine({"T": waiting_task()}),
        {"order": 1},
        store=store,
        integrations=integrations,
        clock=SuspendOnce(),
        tokens=tokens,
    )
    execution.run()
    assert execution.status == "RUNNING"
    saved = store.load(execution.execution_id).cursor
    assert saved is not None and saved.phase == "token" and saved.token == tokens.issued[0]

    tokens.succeed(tokens.issued[0], {"late": "but fine"})
    resumed = Execution.resume(
        store,
        execution.execution_id,
        integrations=integrations,
        clock=FakeClock(T0 + timedelta(1)),
        tokens=tokens,
    )
    resumed.run()
    assert resumed.status == "SUCCEEDED" and resumed.output == {"late": "but fine"}
    assert len(calls) == 1 and len(tokens.issued) == 1
