"""Running a state machine: :class:`Execution` advances state by state and checkpoints.

Contract
--------
* ``Execution.start`` validates the definition, records ``ExecutionStarted`` and commits.
  ``run()`` then executes until the execution ends or the clock suspends it
  (:class:`~conveyor.orchestration.asl.clock.ExecutionSuspended`).
* Checkpoints are top-level: after every top-level state, and before each Wait or Retry
  delay, the store receives the new events and the cursor (state, input, wake-up time,
  retry counts). ``Execution.resume`` continues from the last checkpoint, so a Wait
  restored from the store sleeps only for the time left, and a state that was
  interrupted while running is run again (tasks are at-least-once, as in Step Functions).
* A Task whose resource ends in ``.waitForTaskToken`` gets a token (``$$.Task.Token``)
  issued before its integration is called, then waits, polling its :class:`TaskTokens`,
  for the token's answer (SendTaskSuccess / SendTaskFailure), honouring TimeoutSeconds
  and HeartbeatSeconds (SendTaskHeartbeat) from when the token was issued. The token is
  checkpointed: a resumed execution waits for the same token without calling the
  integration again. Each retry attempt gets a new token.
* Parallel branches and Map iterations run inline and in order (MaxConcurrency is
  honoured as sequential execution); they are not checkpointed separately, so a
  Parallel or Map state interrupted midway runs again from its start.
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from conveyor.orchestration.asl import errors as E
from conveyor.orchestration.asl.choice import parse_timestamp
from conveyor.orchestration.asl.clock import Clock, ExecutionSuspended, SystemClock
from conveyor.orchestration.asl.definition import Retrier, State, StateMachine, parse_definition
from conveyor.orchestration.asl.errors import StatesError, TaskError, matches
from conveyor.orchestration.asl.integrations import Integrations, TaskContext
from conveyor.orchestration.asl.intrinsics import IntrinsicEnv, evaluate_intrinsic
from conveyor.orchestration.asl.paths import apply_payload_template, apply_result_path, read_any, read_path
from conveyor.orchestration.asl.store import Cursor, ExecutionRecord, ExecutionStore, HistoryEvent
from conveyor.orchestration.asl.tokens import (
    CLOSED,
    FAILED,
    SUCCEEDED,
    WAIT_FOR_TOKEN,
    InMemoryTaskTokens,
    TaskTokens,
)

TOKEN_POLL_SECONDS = 0.2

_EVENT_PREFIX = {
    "Task": "Task",
    "Pass": "Pass",
    "Wait": "Wait",
    "Choice": "Choice",
    "Parallel": "Parallel",
    "Map": "Map",
    "Succeed": "Succeed",
    "Fail": "Fail",
}


def _json_or_none(value: Any) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return None
    return value


def _iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def _parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class _ExecutionTimedOut(StatesError):
    """The state machine's own TimeoutSeconds ran out: no Retry or Catch applies."""


@dataclass
class _Outcome:
    """How a state ended: its output and the next state (None = the scope ends)."""

    output: Any
    next: str | None


@dataclass
class _Scope:
    """A running list of states: the top level (checkpointed) or a branch/iteration."""

    machine: StateMachine
    top: bool
    map_item: dict[str, Any] | None = None
    cursor: Cursor | None = field(default=None)


class Execution:
    """One execution of a state machine. Not thread-safe: drive it from one thread."""

    def __init__(
        self,
        machine: StateMachine,
        record: ExecutionRecord,
        *,
        store: ExecutionStore,
        integrations: Integrations,
        clock: Clock | None = None,
        seed: int | None = None,
        tokens: TaskTokens | None = None,
    ) -> None:
        self.machine = machine
        self.tokens: TaskTokens = tokens or InMemoryTaskTokens()
        self.record = record
        self.store = store
        self.integrations = integrations
        self.clock: Clock = clock or SystemClock()
        self.rng = random.Random(seed)
        self._intrinsics = IntrinsicEnv(self.rng)
        self._pending: list[HistoryEvent] = []
        self._next_event_id = len(store.history(record.execution_id)) + 1

    # --- lifecycle ------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        definition: str | dict[str, Any] | StateMachine,
        execution_input: Any = None,
        *,
        store: ExecutionStore,
        integrations: Integrations,
        clock: Clock | None = None,
        name: str | None = None,
        execution_id: str | None = None,
        state_machine_name: str = "StateMachine",
        seed: int | None = None,
        tokens: TaskTokens | None = None,
    ) -> Execution:
        """Validate ``definition`` (ConfigError when invalid), record ExecutionStarted and commit."""
        machine = (
            definition
            if isinstance(definition, StateMachine)
            else parse_definition(definition, resources=integrations)
        )
        clock = clock or SystemClock()
        execution_input = {} if execution_input is None else execution_input
        json.dumps(execution_input)  # the input must be JSON
        exec_id = execution_id or str(uuid.uuid4())
        now = _iso(clock.now())
        record = ExecutionRecord(
            execution_id=exec_id,
            name=name or exec_id,
            definition=machine.source,
            input=execution_input,
            start_time=now,
            cursor=Cursor(state=machine.start_at, input=execution_input, entered_time=now),
            state_machine_name=state_machine_name,
        )
        execution = cls(
            machine, record, store=store, integrations=integrations, clock=clock, seed=seed, tokens=tokens
        )
        execution._event("ExecutionStarted", input=execution_input)
        execution._commit()
        return execution

    @classmethod
    def resume(
        cls,
        store: ExecutionStore,
        execution_id: str,
        *,
        integrations: Integrations,
        clock: Clock | None = None,
        seed: int | None = None,
        tokens: TaskTokens | None = None,
    ) -> Execution:
        """Continue an execution from its last checkpoint."""
        record = store.load(execution_id)
        machine = parse_definition(record.definition, resources=integrations)
        return cls(
            machine, record, store=store, integrations=integrations, clock=clock, seed=seed, tokens=tokens
        )

    @property
    def execution_id(self) -> str:
        return self.record.execution_id

    @property
    def status(self) -> str:
        return self.record.status

    @property
    def output(self) -> Any:
        return self.record.output

    def history(self) -> list[HistoryEvent]:
        return self.store.history(self.execution_id)

    def run(self) -> ExecutionRecord:
        """Run until the execution ends or the clock suspends it; returns the record."""
        try:
            while self.step():
                pass
        except ExecutionSuspended:
            self._pending.clear()
            self._next_event_id = len(self.history()) + 1
        return self.record

    def step(self) -> bool:
        """Run the current top-level state; False once the execution has ended."""
        cursor = self.record.cursor
        if self.record.status != "RUNNING" or cursor is None:
            return False
        state = self.machine.states[cursor.state]
        scope = _Scope(self.machine, top=True, cursor=cursor)
        try:
            self._check_execution_timeout()
            outcome = self._run_state(state, cursor.input, scope)
        except StatesError as exc:
            self._finish_failed(exc.error, exc.cause)
            return False
        if outcome.next is None:
            self.record.status, self.record.output = "SUCCEEDED", outcome.output
            self.record.cursor, self.record.stop_time = None, _iso(self.clock.now())
            self._event("ExecutionSucceeded", output=outcome.output)
            self._commit()
            return False
        now = _iso(self.clock.now())
        self.record.cursor = Cursor(state=outcome.next, input=outcome.output, entered_time=now)
        self._commit()
        return True

    def _finish_failed(self, error: str, cause: str | None) -> None:
        self.record.status, self.record.error, self.record.cause = "FAILED", error, cause
        self.record.cursor, self.record.stop_time = None, _iso(self.clock.now())
        self._event("ExecutionFailed", error=error, cause=cause)
        self._commit()

    def _execution_deadline(self) -> datetime | None:
        if self.machine.timeout_seconds is None:
            return None
        return _parse_iso(self.record.start_time) + timedelta(seconds=self.machine.timeout_seconds)

    def _check_execution_timeout(self) -> None:
        deadline = self._execution_deadline()
        if deadline is not None and self.clock.now() >= deadline:
            raise _ExecutionTimedOut(E.TIMEOUT, "The execution ran past the state machine's TimeoutSeconds")

    # --- events and checkpoints ------------------------------------------------------

    def _event(self, kind: str, **details: Any) -> None:
        event = HistoryEvent(self._next_event_id, kind, _iso(self.clock.now()), details)
        self._next_event_id += 1
        self._pending.append(event)

    def _commit(self) -> None:
        self.store.commit(self.record, self._pending)
        self._pending = []

    def _sleep(self, scope: _Scope, wake_at: datetime, phase: str, attempts: list[int]) -> None:
        if scope.top and scope.cursor is not None:
            scope.cursor.phase, scope.cursor.wake_at = phase, _iso(wake_at)
            scope.cursor.attempts = list(attempts)
            self._commit()
        deadline = self._execution_deadline()
        if deadline is not None and wake_at >= deadline:
            self.clock.sleep_until(deadline)
            self._check_execution_timeout()
        self.clock.sleep_until(wake_at)
        if scope.top and scope.cursor is not None:
            scope.cursor.phase, scope.cursor.wake_at = "enter", None

    # --- context object and data processing ----------------------------------------

    def _context(self, state: State, entered: str, retry_count: int, scope: _Scope) -> dict[str, Any]:
        ctx: dict[str, Any] = {
            "Execution": {
                "Id": self.execution_id,
                "Input": self.record.input,
                "Name": self.record.name,
                "StartTime": self.record.start_time,
                "RedriveCount": 0,
            },
            "State": {"EnteredTime": entered, "Name": state.name, "RetryCount": retry_count},
            "StateMachine": {"Id": self.record.state_machine_name, "Name": self.record.state_machine_name},
        }
        if scope.map_item is not None:
            ctx["Map"] = {"Item": scope.map_item}
        return ctx

    def _intrinsic(self, expression: str, data: Any, context: Any) -> Any:
        return evaluate_intrinsic(expression, data, context, self._intrinsics)

    def _template(self, template: Any, data: Any, context: Any, field: str) -> Any:
        return apply_payload_template(template, data, context, self._intrinsic, field=field)

    @staticmethod
    def _apply_input_path(state: State, raw: Any) -> Any:
        if state.input_path is None:
            return {}
        if state.input_path == "$":
            return raw
        return read_path(state.input_path, raw, what="InputPath")

    def _effective_input(self, state: State, raw: Any, context: Any) -> Any:
        data = self._apply_input_path(state, raw)
        if state.has_parameters:
            data = self._template(state.parameters, data, context, "Parameters")
        return data

    def _finish_output(self, state: State, raw: Any, result: Any, context: Any) -> Any:
        if state.result_selector is not None:
            result = self._template(state.result_selector, result, context, "ResultSelector")
        combined = apply_result_path(state.result_path, raw, result)
        if state.output_path is None:
            return {}
        if state.output_path == "$":
            return combined
        return read_path(state.output_path, combined, what="OutputPath")

    # --- states ----------------------------------------------------------------------

    def _run_state(self, state: State, raw: Any, scope: _Scope) -> _Outcome:
        prefix = _EVENT_PREFIX[state.type]
        cursor = scope.cursor if scope.top else None
        resuming = cursor is not None and cursor.phase != "enter"
        entered = cursor.entered_time if cursor is not None else _iso(self.clock.now())
        if not resuming:
            self._event(f"{prefix}StateEntered", name=state.name, input=raw)
        if state.type == "Choice":
            return self._run_choice(state, raw, scope, entered)
        if state.type in ("Wait", "Succeed", "Pass"):
            context = self._context(state, entered, 0, scope)
            if state.type == "Wait":
                output = self._run_wait(state, raw, scope, context)
            elif state.type == "Succeed":
                output = self._plain_output(state, raw)
            else:
                data = self._effective_input(state, raw, context)
                output = self._finish_output(state, raw, state.result if state.has_result else data, context)
            self._event(f"{prefix}StateExited", name=state.name, output=output)
            return _Outcome(output, state.next)
        if state.type == "Fail":
            error, cause = self._fail_details(state, raw, self._context(state, entered, 0, scope))
            raise StatesError(error, cause)
        return self._run_with_retry(state, raw, scope, entered)

    def _plain_output(self, state: State, raw: Any) -> Any:
        data = self._apply_input_path(state, raw)
        if state.output_path is None:
            return {}
        return data if state.output_path == "$" else read_path(state.output_path, data, what="OutputPath")

    def _run_choice(self, state: State, raw: Any, scope: _Scope, entered: str) -> _Outcome:
        data = self._apply_input_path(state, raw)
        context = self._context(state, entered, 0, scope)
        target = next((rule.next for rule in state.choices if rule.evaluate(data, context)), state.default)
        if target is None:
            cause = f"No Choice rule matched and there is no Default in '{state.name}'"
            raise StatesError(E.NO_CHOICE_MATCHED, cause)
        output = self._plain_output(state, raw)
        self._event("ChoiceStateExited", name=state.name, output=output)
        return _Outcome(output, target)

    def _run_wait(self, state: State, raw: Any, scope: _Scope, context: Any) -> Any:
        cursor = scope.cursor if scope.top else None
        if cursor is not None and cursor.phase == "wait" and cursor.wake_at is not None:
            wake_at = _parse_iso(cursor.wake_at)
        else:
            wake_at = self._wake_time(state, self._apply_input_path(state, raw))
        self._sleep(scope, wake_at, "wait", [])
        return self._plain_output(state, raw)

    def _wake_time(self, state: State, data: Any) -> datetime:
        now = self.clock.now()
        if state.seconds is not None:
            return now + timedelta(seconds=state.seconds)
        if state.timestamp is not None:
            stamp = parse_timestamp(state.timestamp)
            assert stamp is not None
            return stamp
        if state.seconds_path is not None:
            value = read_path(state.seconds_path, data, what="SecondsPath")
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                cause = f"SecondsPath '{state.seconds_path}' must give a non-negative integer"
                raise StatesError(E.RUNTIME, cause)
            return now + timedelta(seconds=value)
        assert state.timestamp_path is not None
        stamp = parse_timestamp(read_path(state.timestamp_path, data, what="TimestampPath"))
        if stamp is None:
            cause = f"TimestampPath '{state.timestamp_path}' must give an RFC 3339 timestamp"
            raise StatesError(E.RUNTIME, cause)
        return stamp

    def _fail_details(self, state: State, raw: Any, context: Any) -> tuple[str, str | None]:
        def dynamic(expr: str | None, literal: str | None) -> str | None:
            if expr is None:
                return literal
            value = (
                read_any(expr, raw, context, what="path")
                if expr.startswith("$")
                else self._intrinsic(expr, raw, context)
            )
            if not isinstance(value, str):
                raise StatesError(E.RUNTIME, f"'{expr}' in Fail state '{state.name}' must give a string")
            return value

        error = dynamic(state.error_path, state.error)
        cause = dynamic(state.cause_path, state.cause)
        return error or "States.Fail", cause

    # --- Task, Parallel, Map: the states with Retry and Catch ------------------------

    def _run_with_retry(self, state: State, raw: Any, scope: _Scope, entered: str) -> _Outcome:
        prefix = _EVENT_PREFIX[state.type]
        cursor = scope.cursor if scope.top else None
        attempts = list(cursor.attempts) if cursor is not None and cursor.attempts else [0] * len(state.retry)
        if cursor is not None and cursor.phase == "retry" and cursor.wake_at is not None:
            self._sleep(scope, _parse_iso(cursor.wake_at), "retry", attempts)
        while True:
            context = self._context(state, entered, sum(attempts), scope)
            token = self._task_token(state, scope)
            if token is not None:
                context["Task"] = {"Token": token}
            try:
                data = self._effective_input(state, raw, context)
                if state.type == "Task":
                    result = self._run_task(state, raw, data, context, token, scope)
                elif state.type == "Parallel":
                    result = self._run_parallel(state, data, scope)
                else:
                    result = self._run_map(state, data, context, scope)
                output = self._finish_output(state, raw, result, context)
            except StatesError as exc:
                if isinstance(exc, _ExecutionTimedOut):
                    raise
                delay = self._retry_delay(state.retry, attempts, exc.error)
                if delay is not None:
                    self._sleep(scope, self.clock.now() + timedelta(seconds=delay), "retry", attempts)
                    continue
                for catcher in state.catch:
                    if matches(list(catcher.error_equals), exc.error):
                        error_output = {"Error": exc.error, "Cause": exc.cause or ""}
                        output = apply_result_path(catcher.result_path, raw, error_output)
                        self._event(f"{prefix}StateExited", name=state.name, output=output)
                        return _Outcome(output, catcher.next)
                raise
            self._event(f"{prefix}StateExited", name=state.name, output=output)
            return _Outcome(output, state.next)

    def _retry_delay(self, retriers: tuple[Retrier, ...], attempts: list[int], error: str) -> float | None:
        """Seconds to wait before the next attempt (and count it), or None: no retry left."""
        for index, retrier in enumerate(retriers):
            if not matches(list(retrier.error_equals), error):
                continue
            if attempts[index] >= retrier.max_attempts:
                return None
            delay = retrier.interval_seconds * retrier.backoff_rate ** attempts[index]
            if retrier.max_delay_seconds is not None:
                delay = min(delay, retrier.max_delay_seconds)
            if retrier.jitter_strategy == "FULL":
                delay = self.rng.uniform(0, delay)
            attempts[index] += 1
            return delay
        return None

    def _task_token(self, state: State, scope: _Scope) -> str | None:
        """The token of a ``.waitForTaskToken`` Task: the checkpointed one when the
        execution resumes while waiting, else a new one."""
        if state.type != "Task" or not state.resource.endswith(WAIT_FOR_TOKEN):
            return None
        cursor = scope.cursor if scope.top else None
        if cursor is not None and cursor.phase == "token" and cursor.token is not None:
            return cursor.token
        return self.tokens.issue(self.execution_id, state.name, self.clock.now())

    def _run_task(
        self,
        state: State,
        raw: Any,
        parameters: Any,
        context: dict[str, Any],
        token: str | None = None,
        scope: _Scope | None = None,
    ) -> Any:
        handler = self.integrations.resolve(state.resource)
        if handler is None:
            raise StatesError(E.RUNTIME, f"No integration handles resource '{state.resource}'")
        timeout = state.timeout_seconds
        if state.timeout_seconds_path is not None:
            timeout = self._seconds_from(raw, state.timeout_seconds_path, "TimeoutSecondsPath")
        heartbeat = state.heartbeat_seconds
        if state.heartbeat_seconds_path is not None:
            heartbeat = self._seconds_from(raw, state.heartbeat_seconds_path, "HeartbeatSecondsPath")
        now = self.clock.now()
        task = TaskContext(
            resource=state.resource,
            state_name=state.name,
            execution_id=self.execution_id,
            context_object=context,
            clock=self.clock,
            timeout_at=None if timeout is None else now + timedelta(seconds=float(timeout)),
            heartbeat_seconds=heartbeat,
            last_heartbeat=now,
        )
        cursor = scope.cursor if scope is not None and scope.top else None
        waiting = (
            token is not None and cursor is not None and cursor.phase == "token" and cursor.token == token
        )
        if not waiting:
            self._event(
                "TaskScheduled",
                resource=state.resource,
                parameters=parameters,
                timeoutInSeconds=timeout,
                heartbeatInSeconds=heartbeat,
            )
            self._event("TaskStarted", resource=state.resource)
        try:
            if token is None:
                result = handler(parameters, task)
                task.check_timeouts()
            else:
                if not waiting:
                    submitted = handler(parameters, task)
                    self._event("TaskSubmitted", resource=state.resource, output=_json_or_none(submitted))
                    if cursor is not None:
                        cursor.phase, cursor.token = "token", token
                        self._commit()
                result = self._await_token(state, token, timeout, heartbeat)
        except StatesError as exc:
            self._leave_token(cursor, token)
            if exc.error in (E.TIMEOUT, E.HEARTBEAT_TIMEOUT):
                self._event("TaskTimedOut", resource=state.resource, error=exc.error, cause=exc.cause)
            else:
                self._event("TaskFailed", resource=state.resource, error=exc.error, cause=exc.cause)
            raise
        except (ExecutionSuspended, KeyboardInterrupt):
            raise
        except Exception as exc:
            self._leave_token(cursor, token)
            error = TaskError(E.TASK_FAILED, f"{type(exc).__name__}: {exc}")
            self._event("TaskFailed", resource=state.resource, error=error.error, cause=error.cause)
            raise error from exc
        self._leave_token(cursor, token)
        try:
            json.dumps(result)
        except (TypeError, ValueError):
            cause = f"Task '{state.name}' returned a value that is not JSON"
            raise StatesError(E.TASK_FAILED, cause) from None
        self._event("TaskSucceeded", resource=state.resource, output=result)
        return result

    def _leave_token(self, cursor: Cursor | None, token: str | None) -> None:
        """The Task is over: its token takes no answer any more and the cursor forgets it."""
        if token is None:
            return
        self.tokens.close(token)
        if cursor is not None:
            cursor.phase, cursor.token = "enter", None

    def _await_token(self, state: State, token: str, timeout: float | None, heartbeat: float | None) -> Any:
        """Poll the token's answer until it comes or the Task's time runs out."""
        while True:
            self._check_execution_timeout()
            found = self.tokens.answer(token)
            if found is None:
                raise StatesError(E.RUNTIME, f"Task '{state.name}': its task token is not recorded")
            if found.status == SUCCEEDED:
                return found.output
            if found.status == FAILED:
                raise TaskError(found.error or E.TASK_FAILED, found.cause)
            if found.status == CLOSED:
                raise StatesError(E.TIMEOUT, f"Task '{state.name}': its task token was closed")
            now = self.clock.now()
            if timeout is not None and now >= found.issued_at + timedelta(seconds=float(timeout)):
                self.tokens.close(token)
                raise StatesError(E.TIMEOUT, f"Task '{state.name}' ran past its TimeoutSeconds")
            alive = found.heartbeat_at or found.issued_at
            if heartbeat is not None and now >= alive + timedelta(seconds=float(heartbeat)):
                self.tokens.close(token)
                raise StatesError(
                    E.HEARTBEAT_TIMEOUT, f"Task '{state.name}' sent no heartbeat within HeartbeatSeconds"
                )
            self.clock.sleep_until(now + timedelta(seconds=TOKEN_POLL_SECONDS))

    @staticmethod
    def _seconds_from(raw: Any, path: str, field: str) -> int:
        value = read_path(path, raw, what=field)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise StatesError(E.RUNTIME, f"{field} '{path}' must give a positive integer, got {value!r}")
        return value

    def _run_scope(self, machine: StateMachine, data: Any, map_item: dict[str, Any] | None = None) -> Any:
        scope = _Scope(machine, top=False, map_item=map_item)
        name: str | None = machine.start_at
        while name is not None:
            outcome = self._run_state(machine.states[name], data, scope)
            data, name = outcome.output, outcome.next
        return data

    def _run_parallel(self, state: State, data: Any, scope: _Scope) -> list[Any]:
        self._event("ParallelStateStarted", name=state.name)
        results = []
        for branch in state.branches:
            try:
                results.append(self._run_scope(branch, data))
            except StatesError as exc:
                self._event("ParallelStateFailed", name=state.name, error=exc.error, cause=exc.cause)
                raise
        self._event("ParallelStateSucceeded", name=state.name)
        return results

    def _run_map(self, state: State, data: Any, context: dict[str, Any], scope: _Scope) -> list[Any]:
        items = read_path(state.items_path, data, what="ItemsPath")
        if not isinstance(items, list):
            cause = f"ItemsPath '{state.items_path}' of '{state.name}' did not give an array"
            raise StatesError(E.RUNTIME, cause)
        assert state.processor is not None
        self._event("MapStateStarted", name=state.name, length=len(items))
        results = []
        for index, item in enumerate(items):
            map_item = {"Index": index, "Value": item}
            item_input = item
            if state.has_item_selector:
                item_context = {**context, "Map": {"Item": map_item}}
                item_input = self._template(state.item_selector, data, item_context, "ItemSelector")
            self._event("MapIterationStarted", name=state.name, index=index)
            try:
                results.append(self._run_scope(state.processor, item_input, map_item))
            except StatesError as exc:
                failure = {"error": exc.error, "cause": exc.cause}
                self._event("MapIterationFailed", name=state.name, index=index, **failure)
                self._event("MapStateFailed", name=state.name, error=exc.error, cause=exc.cause)
                raise
            self._event("MapIterationSucceeded", name=state.name, index=index)
        self._event("MapStateSucceeded", name=state.name)
        return results
