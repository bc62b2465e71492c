"""Tasks, Retry/Catch timing, timeouts, history, the seed-001 machine and resuming."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from test_asl_harness import machine

from conveyor.orchestration.asl import (
    Execution,
    ExecutionSuspended,
    FakeClock,
    InMemoryExecutionStore,
    Integrations,
    ScriptedTask,
    StatesError,
    TaskContext,
    TaskError,
)
from support.seeds import SEED_001_ASL

RES = "arn:aws:states:::test:task"
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def task(**fields: Any) -> dict[str, Any]:
    return {"Type": "Task", "Resource": RES, **fields}


def run(
    definition: dict[str, Any] | str,
    handler: Any,
    execution_input: Any = None,
    clock: FakeClock | None = None,
) -> tuple[Execution, FakeClock]:
    integrations = Integrations()
    integrations.register(RES, handler)
    clock = clock or FakeClock(T0)
    execution = Execution.start(
        definition,
        execution_input,
        store=InMemoryExecutionStore(),
        integrations=integrations,
        clock=clock,
        seed=1,
    )
    execution.run()
    return execution, clock


def types(execution: Execution) -> list[str]:
    return [e.type for e in execution.history()]


def test_task_parameters_result_selector_and_history() -> None:
    handler = ScriptedTask([{"Payload": {"v": 42}, "StatusCode": 200}])
    definition = machine(
        {
            "T": task(
                Parameters={"id.$": "$.id", "retry.$": "$$.State.RetryCount"},
                ResultSelector={"value.$": "$.Payload.v"},
                ResultPath="$.result",
                End=True,
            )
        }
    )
    execution, _ = run(definition, handler, {"id": "x"})
    assert execution.status == "SUCCEEDED"
    assert execution.output == {"id": "x", "result": {"value": 42}}
    assert handler.calls == [{"id": "x", "retry": 0}]
    assert types(execution) == [
        "ExecutionStarted",
        "TaskStateEntered",
        "TaskScheduled",
        "TaskStarted",
        "TaskSucceeded",
        "TaskStateExited",
        "ExecutionSucceeded",
    ]
    history = execution.history()
    assert history[2].details["parameters"] == {"id": "x", "retry": 0}
    assert history[4].details["output"] == {"Payload": {"v": 42}, "StatusCode": 200}
    assert [e.id for e in history] == list(range(1, 8))


def flaky(failures: int, error: str = "Boom") -> ScriptedTask:
    return ScriptedTask([TaskError(error, "transient")] * failures + [{"ok": True}])


@pytest.mark.parametrize(
    ("retrier", "failures", "sleeps", "status"),
    [
        ({"ErrorEquals": ["Boom"]}, 3, [1.0, 2.0, 4.0], "SUCCEEDED"),  # defaults: 1 s, x2, 3 attempts
        ({"ErrorEquals": ["Boom"]}, 4, [1.0, 2.0, 4.0], "FAILED"),
        ({"ErrorEquals": ["Boom"], "IntervalSeconds": 2, "BackoffRate": 3}, 2, [2.0, 6.0], "SUCCEEDED"),
        (
            {"ErrorEquals": ["Boom"], "IntervalSeconds": 3, "MaxAttempts": 5, "MaxDelaySeconds": 10},
            5,
            [3.0, 6.0, 10.0, 10.0, 10.0],
            "SUCCEEDED",
        ),
        ({"ErrorEquals": ["Boom"], "MaxAttempts": 0}, 1, [], "FAILED"),
        (
            {"ErrorEquals": ["States.ALL"], "BackoffRate": 1.0, "IntervalSeconds": 5},
            2,
            [5.0, 5.0],
            "SUCCEEDED",
        ),
        ({"ErrorEquals": ["States.TaskFailed"]}, 1, [1.0], "SUCCEEDED"),
        ({"ErrorEquals": ["Other"]}, 1, [], "FAILED"),
    ],
)
def test_retry_intervals(retrier: dict[str, Any], failures: int, sleeps: list[float], status: str) -> None:
    handler = flaky(failures)
    execution, clock = run(machine({"T": task(Retry=[retrier], End=True)}), handler)
    assert clock.sleeps == sleeps
    assert execution.status == status
    # each attempt starts when the previous delay ends
    elapsed = [(t - T0).total_seconds() for t in handler.times]
    assert elapsed == [sum(sleeps[:i]) for i in range(len(handler.times))]


def test_retry_count_in_context_and_events() -> None:
    handler = flaky(2)
    definition = machine(
        {"T": task(Parameters={"n.$": "$$.State.RetryCount"}, Retry=[{"ErrorEquals": ["Boom"]}], End=True)}
    )
    execution, _ = run(definition, handler)
    assert handler.calls == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert types(execution).count("TaskFailed") == 2
    assert types(execution).count("TaskStateEntered") == 1


def test_full_jitter_is_bounded_and_seeded() -> None:
    retrier = {"ErrorEquals": ["Boom"], "IntervalSeconds": 10, "MaxAttempts": 3, "JitterStrategy": "FULL"}
    first, clock = run(machine({"T": task(Retry=[retrier], End=True)}), flaky(3))
    _, again = run(machine({"T": task(Retry=[retrier], End=True)}), flaky(3))
    assert clock.sleeps == again.sleeps
    assert all(0 <= s <= cap for s, cap in zip(clock.sleeps, [10, 20, 40], strict=True))
    assert clock.sleeps != [10.0, 20.0, 40.0]
    assert first.status == "SUCCEEDED"


def test_separate_retriers_count_separately() -> None:
    handler = ScriptedTask([TaskError("A"), TaskError("B"), TaskError("A"), {"done": 1}])
    retry = [
        {"ErrorEquals": ["A"], "IntervalSeconds": 1, "MaxAttempts": 2, "BackoffRate": 10},
        {"ErrorEquals": ["B"], "IntervalSeconds": 7, "MaxAttempts": 1},
    ]
    execution, clock = run(machine({"T": task(Retry=retry, End=True)}), handler)
    assert execution.output == {"done": 1}
    assert clock.sleeps == [1.0, 7.0, 10.0]


def test_catch_after_retries_with_result_path() -> None:
    definition = machine(
        {
            "T": task(
                Retry=[{"ErrorEquals": ["Boom"], "MaxAttempts": 1}],
                Catch=[
                    {"ErrorEquals": ["Other"], "Next": "Wrong"},
                    {"ErrorEquals": ["Boom"], "ResultPath": "$.error", "Next": "Handled"},
                ],
                Next="Wrong",
            ),
            "Wrong": {"Type": "Fail", "Error": "Wrong"},
            "Handled": {"Type": "Pass", "End": True},
        }
    )
    execution, clock = run(definition, flaky(5), {"keep": 1})
    assert execution.status == "SUCCEEDED"
    assert execution.output == {"keep": 1, "error": {"Error": "Boom", "Cause": "transient"}}
    assert clock.sleeps == [1.0]
    assert "TaskStateExited" in types(execution)


@pytest.mark.parametrize(
    ("result_path", "expected"),
    [
        ("$", {"Error": "Boom", "Cause": "transient"}),
        (None, {"keep": 1}),
        ("$.a.b", {"keep": 1, "a": {"b": {"Error": "Boom", "Cause": "transient"}}}),
    ],
)
def test_catch_result_path(result_path: str | None, expected: Any) -> None:
    catcher = {"ErrorEquals": ["States.ALL"], "Next": "H", "ResultPath": result_path}
    definition = machine({"T": task(Catch=[catcher], End=True), "H": {"Type": "Pass", "End": True}})
    execution, _ = run(definition, flaky(1), {"keep": 1})
    assert execution.output == expected


def test_python_exceptions_become_task_failed() -> None:
    def broken(parameters: Any, context: TaskContext) -> Any:
        raise KeyError("nope")

    execution, _ = run(machine({"T": task(End=True)}), broken)
    assert (execution.record.error, execution.record.cause) == ("States.TaskFailed", "KeyError: 'nope'")
    assert types(execution)[-2:] == ["TaskFailed", "ExecutionFailed"]


def test_runtime_errors_are_not_caught_by_states_all() -> None:
    definition = machine(
        {
            "T": task(OutputPath="$.missing", Catch=[{"ErrorEquals": ["States.ALL"], "Next": "H"}], End=True),
            "H": {"Type": "Pass", "End": True},
        }
    )
    execution, _ = run(definition, ScriptedTask([{"x": 1}]))
    assert (execution.status, execution.record.error) == ("FAILED", "States.Runtime")


def test_parameter_path_failure_is_catchable() -> None:
    definition = machine(
        {
            "T": task(
                Parameters={"x.$": "$.nope"}, Catch=[{"ErrorEquals": ["States.ALL"], "Next": "H"}], End=True
            ),
            "H": {"Type": "Pass", "End": True},
        }
    )
    execution, _ = run(definition, ScriptedTask([{}]))
    assert execution.output["Error"] == "States.ParameterPathFailure"
    assert "'x.$'" in execution.output["Cause"]


def slow(seconds: float, beats: int = 0) -> Any:
    def handler(parameters: Any, context: TaskContext) -> Any:
        assert isinstance(context.clock, FakeClock)
        for _ in range(beats):
            context.clock.advance(seconds)
            context.heartbeat()
        context.clock.advance(seconds)
        return {"done": True}

    return handler


@pytest.mark.parametrize(
    ("fields", "handler", "error", "event"),
    [
        ({"TimeoutSeconds": 10}, slow(11), "States.Timeout", "TaskTimedOut"),
        ({"TimeoutSeconds": 10}, slow(9), None, "TaskSucceeded"),
        ({"TimeoutSecondsPath": "$.t"}, slow(6), "States.Timeout", "TaskTimedOut"),
        ({"TimeoutSeconds": 60, "HeartbeatSeconds": 5}, slow(4, beats=3), None, "TaskSucceeded"),
        (
            {"TimeoutSeconds": 60, "HeartbeatSeconds": 5},
            slow(6, beats=1),
            "States.HeartbeatTimeout",
            "TaskTimedOut",
        ),
        ({"HeartbeatSecondsPath": "$.h"}, slow(3), None, "TaskSucceeded"),
    ],
)
def test_task_timeouts(fields: dict[str, Any], handler: Any, error: str | None, event: str) -> None:
    execution, _ = run(machine({"T": task(**fields, End=True)}), handler, {"t": 5, "h": 4})
    assert execution.record.error == error
    assert event in types(execution)


def test_task_failed_does_not_match_timeout() -> None:
    definition = machine(
        {
            "T": task(
                TimeoutSeconds=1,
                Catch=[
                    {"ErrorEquals": ["States.TaskFailed"], "Next": "H"},
                    {"ErrorEquals": ["States.Timeout"], "Next": "TO"},
                ],
                End=True,
            ),
            "H": {"Type": "Pass", "Result": "task-failed", "End": True},
            "TO": {"Type": "Pass", "Result": "timeout", "End": True},
        }
    )
    execution, _ = run(definition, slow(2))
    assert execution.output == "timeout"


def test_execution_timeout() -> None:
    definition = {
        "StartAt": "W",
        "TimeoutSeconds": 30,
        "States": {"W": {"Type": "Wait", "Seconds": 60, "Next": "P"}, "P": {"Type": "Pass", "End": True}},
    }
    execution, clock = run(definition, ScriptedTask([{}]))
    assert (execution.status, execution.record.error) == ("TIMED_OUT", "States.Timeout")
    assert execution.history()[-1].type == "ExecutionTimedOut"
    assert clock.sleeps == [30.0]  # the wait is cut short at the execution's deadline


def test_execution_timeout_is_not_caught_inside_a_map() -> None:
    definition = {
        "StartAt": "M",
        "TimeoutSeconds": 5,
        "States": {
            "M": {
                "Type": "Map",
                "ItemProcessor": {
                    "StartAt": "W",
                    "States": {"W": {"Type": "Wait", "Seconds": 10, "End": True}},
                },
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "H"}],
                "End": True,
            },
            "H": {"Type": "Succeed"},
        },
    }
    execution, clock = run(definition, ScriptedTask([{}]), [1])
    assert (execution.status, execution.record.error) == ("TIMED_OUT", "States.Timeout")
    assert execution.history()[-1].type == "ExecutionTimedOut"
    assert clock.sleeps == [5.0]


@pytest.mark.parametrize(
    ("wait", "execution_input", "sleep"),
    [
        ({"Seconds": 30}, {}, 30.0),
        ({"SecondsPath": "$.s"}, {"s": 12}, 12.0),
        ({"Timestamp": "2024-01-01T00:05:00Z"}, {}, 300.0),
        ({"TimestampPath": "$.at"}, {"at": "2024-01-01T01:00:00+01:00"}, 0.0),
        ({"TimestampPath": "$.at"}, {"at": "2024-01-01T00:00:01.500Z"}, 1.5),
    ],
)
def test_wait_variants(wait: dict[str, Any], execution_input: Any, sleep: float) -> None:
    execution, clock = run(
        machine({"W": {"Type": "Wait", **wait, "End": True}}), ScriptedTask([{}]), execution_input
    )
    assert execution.status == "SUCCEEDED"
    assert clock.sleeps == [sleep]
    assert types(execution) == [
        "ExecutionStarted",
        "WaitStateEntered",
        "WaitStateExited",
        "ExecutionSucceeded",
    ]


def test_wait_seconds_path_must_be_a_number() -> None:
    execution, _ = run(machine({"W": {"Type": "Wait", "SecondsPath": "$.s", "End": True}}), None, {"s": "10"})
    assert execution.record.error == "States.Runtime"


def test_map_and_parallel_history() -> None:
    definition = machine(
        {
            "M": {
                "Type": "Map",
                "ItemProcessor": {"StartAt": "T", "States": {"T": task(End=True)}},
                "Next": "P",
            },
            "P": {
                "Type": "Parallel",
                "Branches": [{"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}}],
                "End": True,
            },
        }
    )
    execution, _ = run(definition, lambda p, c: p * 2, [1, 2])
    assert execution.output == [[2, 4]]
    assert types(execution) == [
        "ExecutionStarted",
        "MapStateEntered",
        "MapStateStarted",
        "MapIterationStarted",
        "TaskStateEntered",
        "TaskScheduled",
        "TaskStarted",
        "TaskSucceeded",
        "TaskStateExited",
        "MapIterationSucceeded",
        "MapIterationStarted",
        "TaskStateEntered",
        "TaskScheduled",
        "TaskStarted",
        "TaskSucceeded",
        "TaskStateExited",
        "MapIterationSucceeded",
        "MapStateSucceeded",
        "MapStateExited",
        "ParallelStateEntered",
        "ParallelStateStarted",
        "PassStateEntered",
        "PassStateExited",
        "ParallelStateSucceeded",
        "ParallelStateExited",
        "ExecutionSucceeded",
    ]


def test_map_retry_reruns_the_whole_map() -> None:
    handler = ScriptedTask([1, TaskError("Boom"), 1, 2])
    definition = machine(
        {
            "M": {
                "Type": "Map",
                "Retry": [{"ErrorEquals": ["Boom"], "IntervalSeconds": 4}],
                "ItemProcessor": {"StartAt": "T", "States": {"T": task(End=True)}},
                "End": True,
            }
        }
    )
    execution, clock = run(definition, handler, ["a", "b"])
    assert execution.output == [1, 2]
    assert clock.sleeps == [4.0]
    assert "MapIterationFailed" in types(execution)


# --- the seed-001 state machine, as published -----------------------------------------


SEED_001 = SEED_001_ASL


def seed_definition() -> str:
    """The seed's definition; when the shared seed is beside the checkout, check we copied it exactly."""
    for candidate in (Path("/work/shared/seeds"), Path(__file__).parents[3] / "shared" / "seeds"):
        for path in candidate.glob("001_*.txt"):
            assert SEED_001 in path.read_text(encoding="utf-8")
    return SEED_001


EXECUTE = "arn:aws:states:::aws-sdk:redshiftdata:executeStatement"
DESCRIBE = "arn:aws:states:::aws-sdk:redshiftdata:describeStatement"


def redshift_data() -> tuple[Integrations, ScriptedTask, ScriptedTask]:
    execute = ScriptedTask([{"Id": "stmt-1"}, {"Id": "stmt-2"}])
    describe = ScriptedTask(
        [{"Id": "stmt-1", "Status": s} for s in ("STARTED", "STARTED", "FINISHED")],
    )
    integrations = Integrations()
    integrations.register(EXECUTE, execute)
    integrations.register(DESCRIBE, describe)
    return integrations, execute, describe


LOOP = [
    "WaitStateEntered",
    "WaitStateExited",
    "TaskStateEntered",
    "TaskScheduled",
    "TaskStarted",
    "TaskSucceeded",
    "TaskStateExited",
    "ChoiceStateEntered",
    "ChoiceStateExited",
]
TASK = ["TaskStateEntered", "TaskScheduled", "TaskStarted", "TaskSucceeded", "TaskStateExited"]


def test_seed_001_runs_as_written() -> None:
    integrations, execute, describe = redshift_data()
    clock = FakeClock(T0)
    execution = Execution.start(
        seed_definition(), {}, store=InMemoryExecutionStore(), integrations=integrations, clock=clock
    )
    assert any("typographic quote" in w for w in execution.machine.warnings)
    execution.run()
    assert execution.status == "SUCCEEDED"
    assert execution.output == {"Id": "stmt-2"}
    assert clock.sleeps == [30.0, 30.0, 30.0]
    assert [c["Sql"] for c in execute.calls] == [
        "call dbo.sp_load_cust_dim()",
        "call dbo.sp_load_fact_sales()",
    ]
    assert execute.calls[1]["ClusterIdentifier"] == "redshiftcluster-abcdef"
    assert describe.calls == [{"Id": "stmt-1"}] * 3
    assert types(execution) == ["ExecutionStarted", *TASK, *LOOP * 3, *TASK, "ExecutionSucceeded"]
    entered = [e.details["name"] for e in execution.history() if e.type.endswith("StateEntered")]
    assert entered[:4] == [
        "Load_Customer_Dim",
        "Wait on Load_Customer_Dim",
        "Check_Status_Load_Customer_Dim",
        "Choice",
    ]
    assert entered[-1] == "Load_Sales_Fact"
    assert execution.history()[-1].timestamp == "2024-01-01T00:01:30Z"


def test_seed_001_unknown_resource_is_a_config_error() -> None:
    from conveyor.core.errors import ConfigError

    integrations = Integrations()
    integrations.register(EXECUTE, ScriptedTask([{}]))
    with pytest.raises(
        ConfigError, match=r"States.Check_Status_Load_Customer_Dim.Resource: no integration handles"
    ):
        Execution.start(seed_definition(), {}, store=InMemoryExecutionStore(), integrations=integrations)


# --- resuming -------------------------------------------------------------------------


class StoppingClock(FakeClock):
    """Sleeps ``run_for`` seconds of a wait, then stops the process (suspends or crashes)."""

    def __init__(self, start: datetime, run_for: float, crash: bool = False) -> None:
        super().__init__(start)
        self.run_for, self.crash = run_for, crash

    def sleep_until(self, when: datetime) -> None:
        self.advance(self.run_for)
        if self.crash:
            raise RuntimeError("process killed")
        raise ExecutionSuspended


@pytest.mark.parametrize("crash", [False, True])
def test_resume_in_the_middle_of_a_wait(crash: bool) -> None:
    integrations, _, describe = redshift_data()
    store = InMemoryExecutionStore()
    stopping = StoppingClock(T0, run_for=10, crash=crash)
    execution = Execution.start(
        seed_definition(), {}, store=store, integrations=integrations, clock=stopping, execution_id="run-1"
    )
    if crash:
        with pytest.raises(RuntimeError):
            execution.run()
    else:
        assert execution.run().status == "RUNNING"
    record = store.load("run-1")
    assert record.status == "RUNNING"
    assert record.cursor is not None
    assert (record.cursor.state, record.cursor.phase) == ("Wait on Load_Customer_Dim", "wait")
    assert record.cursor.wake_at == "2024-01-01T00:00:30Z"

    later = FakeClock(T0 + timedelta(seconds=10))
    resumed = Execution.resume(store, "run-1", integrations=integrations, clock=later)
    resumed.run()
    assert resumed.status == "SUCCEEDED"
    assert later.sleeps == [20.0, 30.0, 30.0]  # the first wait continues with the 20 s left
    history = types(resumed)
    assert history.count("WaitStateEntered") == 3
    assert history.count("WaitStateExited") == 3
    assert [e.id for e in resumed.history()] == list(range(1, len(history) + 1))
    assert len(describe.calls) == 3


def test_resume_during_a_retry_delay_keeps_the_attempt_count() -> None:
    handler = flaky(2)
    integrations = Integrations()
    integrations.register(RES, handler)
    store = InMemoryExecutionStore()
    retry = [{"ErrorEquals": ["Boom"], "IntervalSeconds": 10, "MaxAttempts": 2}]
    definition = machine({"T": task(Retry=retry, Parameters={"n.$": "$$.State.RetryCount"}, End=True)})
    execution = Execution.start(
        definition, {}, store=store, integrations=integrations, clock=StoppingClock(T0, 4), execution_id="r"
    )
    execution.run()
    cursor = store.load("r").cursor
    assert cursor is not None and (cursor.phase, cursor.attempts) == ("retry", [1])
    later = FakeClock(T0 + timedelta(seconds=4))
    resumed = Execution.resume(store, "r", integrations=integrations, clock=later)
    resumed.run()
    assert resumed.status == "SUCCEEDED"
    assert later.sleeps == [6.0, 20.0]
    assert handler.calls == [{"n": 0}, {"n": 1}, {"n": 2}]


def test_a_crash_inside_a_task_reruns_the_state() -> None:
    calls: list[int] = []

    def crashing_once(parameters: Any, context: TaskContext) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise SystemExit("worker died")
        return {"ok": True}

    integrations = Integrations()
    integrations.register(RES, crashing_once)
    store = InMemoryExecutionStore()
    definition = machine({"P": {"Type": "Pass", "Result": 1, "Next": "T"}, "T": task(End=True)})
    execution = Execution.start(
        definition, {}, store=store, integrations=integrations, clock=FakeClock(), execution_id="c"
    )
    with pytest.raises(SystemExit):
        execution.run()
    resumed = Execution.resume(store, "c", integrations=integrations, clock=FakeClock())
    resumed.run()
    assert resumed.output == {"ok": True}
    assert types(resumed) == [
        "ExecutionStarted",
        "PassStateEntered",
        "PassStateExited",
        *TASK,
        "ExecutionSucceeded",
    ]


def test_step_by_step() -> None:
    integrations = Integrations()
    store = InMemoryExecutionStore()
    definition = machine({"A": {"Type": "Pass", "Next": "B"}, "B": {"Type": "Pass", "End": True}})
    execution = Execution.start(
        definition, {"x": 1}, store=store, integrations=integrations, clock=FakeClock()
    )
    assert execution.step() is True
    assert store.load(execution.execution_id).cursor.state == "B"  # type: ignore[union-attr]
    assert execution.step() is False
    assert execution.step() is False
    assert execution.output == {"x": 1}


def test_task_error_type() -> None:
    error = TaskError("Custom.Error", "details")
    assert isinstance(error, StatesError)
    assert (error.error, error.cause) == ("Custom.Error", "details")


def test_system_clock_stop_suspends_sleepers() -> None:
    from conveyor.orchestration.asl import SystemClock

    clock = SystemClock()
    clock.sleep_until(clock.now() - timedelta(seconds=1))  # in the past: returns at once
    clock.stop()
    with pytest.raises(ExecutionSuspended):
        clock.sleep_until(clock.now() + timedelta(seconds=30))


def test_context_object_names_arns_and_millisecond_times() -> None:
    """``$$`` as the service's context object shows it (AWS Step Functions developer guide,
    "Accessing execution data from the Context object"): ARNs as Ids, times to the
    millisecond in UTC."""
    definition = machine(
        {
            "W": {"Type": "Wait", "Seconds": 1, "Next": "P"},
            "P": {"Type": "Pass", "Parameters": {"ctx.$": "$$"}, "End": True},
        }
    )
    clock = FakeClock(T0 + timedelta(microseconds=192_345))
    execution = Execution.start(
        definition,
        {"k": "v"},
        store=InMemoryExecutionStore(),
        integrations=Integrations(),
        clock=clock,
        name="run1",
        state_machine_name="sm",
        execution_arn="arn:aws:states:local:000000000000:execution:sm:run1",
        state_machine_arn="arn:aws:states:local:000000000000:stateMachine:sm",
    )
    execution.run()
    ctx = execution.output["ctx"]
    assert ctx["Execution"] == {
        "Id": "arn:aws:states:local:000000000000:execution:sm:run1",
        "Input": {"k": "v"},
        "Name": "run1",
        "StartTime": "2024-01-01T00:00:00.192Z",
        "RedriveCount": 0,
    }
    assert ctx["StateMachine"] == {"Id": "arn:aws:states:local:000000000000:stateMachine:sm", "Name": "sm"}
    assert ctx["State"] == {"EnteredTime": "2024-01-01T00:00:01.192Z", "Name": "P", "RetryCount": 0}


@pytest.mark.parametrize(
    ("timeout_seconds", "max_seconds", "sleeps", "cause"),
    [
        (None, 5, [5.0], "the 5-second limit of an EXPRESS execution"),
        (3, 5, [3.0], "the state machine's TimeoutSeconds"),
        (None, None, [60.0], None),
    ],
)
def test_a_hard_limit_ends_the_execution_timed_out(
    timeout_seconds: int | None, max_seconds: int | None, sleeps: list[float], cause: str | None
) -> None:
    definition: dict[str, Any] = {
        "StartAt": "W",
        "States": {"W": {"Type": "Wait", "Seconds": 60, "End": True}},
    }
    if timeout_seconds is not None:
        definition["TimeoutSeconds"] = timeout_seconds
    clock = FakeClock(T0)
    execution = Execution.start(
        definition,
        None,
        store=InMemoryExecutionStore(),
        integrations=Integrations(),
        clock=clock,
        state_machine_type="EXPRESS",
        max_seconds=max_seconds,
    )
    execution.run()
    assert clock.sleeps == sleeps
    if cause is None:
        assert execution.status == "SUCCEEDED"
        return
    assert (execution.status, execution.record.error) == ("TIMED_OUT", "States.Timeout")
    assert execution.record.cause == f"The execution ran past {cause}"
    assert types(execution)[-1] == "ExecutionTimedOut"


def test_a_task_running_past_the_limit_is_not_caught() -> None:
    """A handler that heartbeats past the execution's limit ends the execution TIMED_OUT;
    the state's Catch does not apply (nothing runs after the limit)."""

    def slow(parameters: Any, context: TaskContext) -> Any:
        for _ in range(10):
            context.clock.sleep_until(context.clock.now() + timedelta(seconds=1))
            context.heartbeat()
        return {}

    definition = machine(
        {
            "T": task(Catch=[{"ErrorEquals": ["States.ALL"], "Next": "H"}], End=True),
            "H": {"Type": "Succeed"},
        }
    )
    integrations = Integrations()
    integrations.register(RES, slow)
    execution = Execution.start(
        definition,
        None,
        store=InMemoryExecutionStore(),
        integrations=integrations,
        clock=FakeClock(T0),
        max_seconds=3,
    )
    execution.run()
    assert (execution.status, execution.record.error) == ("TIMED_OUT", "States.Timeout")
    assert types(execution)[-2:] == ["TaskTimedOut", "ExecutionTimedOut"]
