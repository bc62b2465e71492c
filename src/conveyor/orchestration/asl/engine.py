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
* Parallel branches and Map iterations run concurrently in threads, up to the Map's
  MaxConcurrency (0 = at most :data:`MAX_CONCURRENCY`, as Step Functions caps an inline
  Map at 40). Each finished iteration / branch is checkpointed (``Cursor.done``): a
  resumed Map or Parallel runs only those that had not finished. A ``.waitForTaskToken``
  Task inside one keeps its token in ``Cursor.tokens`` and waits for the same token
  after a restart; the states before it in the iteration run again (at least once).
  When one fails, the iterations not started are not started and the running ones
  stop at their next state (a Distributed Map tolerates ``ToleratedFailure*``).
* ``QueryLanguage: JSONata`` states evaluate ``{% %}`` expressions (jsonata_eval);
  ``Assign`` sets workflow variables, read as ``$name`` in both languages, kept in the
  cursor. A Map iteration or Parallel branch reads the outer variables and has its own.
"""

from __future__ import annotations

import json
import random
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from conveyor.orchestration.asl import errors as E
from conveyor.orchestration.asl.choice import parse_timestamp
from conveyor.orchestration.asl.clock import Clock, ExecutionSuspended, SystemClock
from conveyor.orchestration.asl.definition import Catcher, Retrier, State, StateMachine, parse_definition
from conveyor.orchestration.asl.errors import StatesError, TaskError, matches
from conveyor.orchestration.asl.fanout import FanOut
from conveyor.orchestration.asl.integrations import Integrations, TaskContext
from conveyor.orchestration.asl.intrinsics import IntrinsicEnv, evaluate_intrinsic
from conveyor.orchestration.asl.jsonata_eval import JsonataEnv
from conveyor.orchestration.asl.paths import (
    apply_payload_template,
    apply_result_path,
    bound_variables,
    read_any,
    read_path,
)
from conveyor.orchestration.asl.scope import Cancelled, Scope
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
ASSIGN_MAX_BYTES = 256 * 1024
"""The JSON size of the values one Assign sets (Step Functions' limit)."""
VARIABLES_MAX_BYTES = 10 * 1024 * 1024
"""The JSON size of all the variables a scope holds (Step Functions' limit)."""

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


def context_time(text: str) -> str:
    """A time of the context object as the service writes it: ``2019-03-26T20:14:13.192Z``."""
    when = _parse_iso(text).astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


class _ExecutionTimedOut(StatesError):
    """The state machine's own TimeoutSeconds ran out: no Retry or Catch applies."""


@dataclass
class _Outcome:
    """How a state ended: its output and the next state (None = the scope ends)."""

    output: Any
    next: str | None


class Execution(FanOut):
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
        self._jsonata_env = JsonataEnv(self.rng)
        self._lock = threading.RLock()
        self._nested_checkpoints = record.cursor is not None and any(
            "/" in key for key in (*record.cursor.done, *record.cursor.tokens)
        )
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
        state_machine_type: str = "STANDARD",
        at_most_once: bool = False,
        seed: int | None = None,
        tokens: TaskTokens | None = None,
        execution_arn: str | None = None,
        state_machine_arn: str | None = None,
        max_seconds: int | None = None,
    ) -> Execution:
        """Validate ``definition`` (ConfigError when invalid), record ExecutionStarted and commit.
        The ARNs are what the context object shows; ``max_seconds`` caps the duration as
        TimeoutSeconds does (an EXPRESS execution's five minutes)."""
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
            state_machine_type=state_machine_type,
            at_most_once=at_most_once,
            execution_arn=execution_arn,
            state_machine_arn=state_machine_arn,
            max_seconds=max_seconds,
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
        scope = Scope(self.machine, top=True, cursor=cursor, variables=cursor.variables)
        try:
            self._check_execution_timeout()
            outcome = self._run_state(state, cursor.input, scope)
        except _ExecutionTimedOut as exc:
            self._finish_failed(exc.error, exc.cause, status="TIMED_OUT")
            return False
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
        self.record.cursor = Cursor(
            state=outcome.next, input=outcome.output, entered_time=now, variables=scope.variables
        )
        self._commit()
        return True

    def _finish_failed(self, error: str, cause: str | None, status: str = "FAILED") -> None:
        """End the execution FAILED (ExecutionFailed) or TIMED_OUT (ExecutionTimedOut)."""
        self.record.status, self.record.error, self.record.cause = status, error, cause
        self.record.cursor, self.record.stop_time = None, _iso(self.clock.now())
        kind = "ExecutionTimedOut" if status == "TIMED_OUT" else "ExecutionFailed"
        self._event(kind, error=error, cause=cause)
        self._commit()

    def _time_limit(self) -> tuple[float, str] | None:
        """The execution's limit in seconds and what sets it: the definition's
        TimeoutSeconds or the record's hard limit, whichever is shorter."""
        limits = []
        if self.machine.timeout_seconds is not None:
            limits.append((float(self.machine.timeout_seconds), "the state machine's TimeoutSeconds"))
        if self.record.max_seconds is not None:
            kind = self.record.state_machine_type
            what = f"the {self.record.max_seconds}-second limit of an {kind} execution"
            limits.append((float(self.record.max_seconds), what))
        return min(limits) if limits else None

    def _execution_deadline(self) -> datetime | None:
        limit = self._time_limit()
        if limit is None:
            return None
        return _parse_iso(self.record.start_time) + timedelta(seconds=limit[0])

    def _check_execution_timeout(self) -> None:
        deadline = self._execution_deadline()
        if deadline is not None and self.clock.now() >= deadline:
            limit = self._time_limit()
            assert limit is not None
            raise _ExecutionTimedOut(E.TIMEOUT, f"The execution ran past {limit[1]}")

    # --- events and checkpoints ------------------------------------------------------

    def _event(self, kind: str, **details: Any) -> None:
        with self._lock:
            event = HistoryEvent(self._next_event_id, kind, _iso(self.clock.now()), details)
            self._next_event_id += 1
            self._pending.append(event)

    def _commit(self) -> None:
        with self._lock:
            self.store.commit(self.record, self._pending)
            self._pending = []

    def _sleep(self, scope: Scope, wake_at: datetime, phase: str, attempts: list[int]) -> None:
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

    def _context(self, state: State, entered: str, retry_count: int, scope: Scope) -> dict[str, Any]:
        """The context object (``$$``), shaped as the service's: Ids are ARNs, times ISO 8601
        in UTC to the millisecond. ``Execution.RoleArn`` is left out: Conveyor has no roles."""
        record = self.record
        ctx: dict[str, Any] = {
            "Execution": {
                "Id": record.execution_arn or self.execution_id,
                "Input": record.input,
                "Name": record.name,
                "StartTime": context_time(record.start_time),
                "RedriveCount": 0,
            },
            "State": {"EnteredTime": context_time(entered), "Name": state.name, "RetryCount": retry_count},
            "StateMachine": {
                "Id": record.state_machine_arn or record.state_machine_name,
                "Name": record.state_machine_name,
            },
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
        """ResultPath then OutputPath (ResultSelector was applied to ``result``)."""
        combined = apply_result_path(state.result_path, raw, result)
        if state.output_path is None:
            return {}
        if state.output_path == "$":
            return combined
        return read_path(state.output_path, combined, what="OutputPath")

    def _bindings(self, raw: Any, context: Any, scope: Scope, **states: Any) -> dict[str, Any]:
        """What a JSONata expression sees: ``$states`` and the visible variables."""
        return {**scope.visible(), "states": {"input": raw, "context": context, **states}}

    def _jsonata(self, value: Any, bindings: Mapping[str, Any]) -> Any:
        return self._jsonata_env.template(value, bindings)

    def _expression(self, state: State, key: str, bindings: Mapping[str, Any]) -> Any:
        return self._jsonata_env.evaluate(state.expressions[key], bindings)

    def _assign(
        self,
        scope: Scope,
        block: dict[str, Any] | None,
        state: State,
        data: Any,
        context: Any,
        bindings: Any,
    ) -> None:
        """Evaluate ``Assign`` with the variables as they were before the state, then set them.
        JSONPath: ``.$`` values read ``data`` (the state's result, or its input)."""
        if not block:
            return
        if state.query_language == "JSONata":
            values = {name: self._jsonata(value, bindings) for name, value in block.items()}
        else:
            evaluated = self._template(block, data, context, "Assign")
            values = dict(evaluated)
        size = len(json.dumps(values, separators=(",", ":")))
        if size > ASSIGN_MAX_BYTES:
            cause = f"Assign of '{state.name}' sets {size} bytes of variables (at most {ASSIGN_MAX_BYTES})"
            raise StatesError(E.DATA_LIMIT_EXCEEDED, cause)
        merged = {**scope.variables, **values}
        total = len(json.dumps(merged, separators=(",", ":")))
        if total > VARIABLES_MAX_BYTES:
            cause = (
                f"the variables would hold {total} bytes after '{state.name}' (at most {VARIABLES_MAX_BYTES})"
            )
            raise StatesError(E.DATA_LIMIT_EXCEEDED, cause)
        scope.variables.update(values)

    # --- states ----------------------------------------------------------------------

    def _run_state(self, state: State, raw: Any, scope: Scope) -> _Outcome:
        with bound_variables(scope.visible()):
            return self._run_state_bound(state, raw, scope)

    def _run_state_bound(self, state: State, raw: Any, scope: Scope) -> _Outcome:
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
            bindings = self._bindings(raw, context, scope) if state.query_language == "JSONata" else {}
            assign_data = self._apply_input_path(state, raw)  # what JSONPath Assign reads
            if state.type == "Wait":
                output = self._run_wait(state, raw, scope, context, bindings)
            elif state.type == "Succeed" or state.query_language == "JSONata":
                output = self._plain_output(state, raw, bindings)
            else:
                data = self._effective_input(state, raw, context)
                assign_data = state.result if state.has_result else data
                output = self._finish_output(state, raw, assign_data, context)
            self._assign(scope, state.assign, state, assign_data, context, bindings)
            self._event(f"{prefix}StateExited", name=state.name, output=output)
            return _Outcome(output, state.next)
        if state.type == "Fail":
            error, cause = self._fail_details(state, raw, self._context(state, entered, 0, scope), scope)
            raise StatesError(error, cause)
        return self._run_with_retry(state, raw, scope, entered)

    def _plain_output(self, state: State, raw: Any, bindings: Mapping[str, Any]) -> Any:
        if state.query_language == "JSONata":
            return self._jsonata(state.output, bindings) if state.has_output else raw
        data = self._apply_input_path(state, raw)
        if state.output_path is None:
            return {}
        return data if state.output_path == "$" else read_path(state.output_path, data, what="OutputPath")

    def _run_choice(self, state: State, raw: Any, scope: Scope, entered: str) -> _Outcome:
        context = self._context(state, entered, 0, scope)
        jsonata = state.query_language == "JSONata"
        bindings = self._bindings(raw, context, scope) if jsonata else {}
        data = raw if jsonata else self._apply_input_path(state, raw)
        matched = None
        for index, rule in enumerate(state.choices):
            if rule.kind == "Condition":
                verdict = self._jsonata(rule.operand, bindings)
                if not isinstance(verdict, bool):
                    cause = f"The Condition of {state.name}.Choices[{index}] gave {verdict!r}, not a boolean"
                    raise StatesError(E.QUERY_EVALUATION, cause)
            else:
                verdict = rule.evaluate(data, context)
            if verdict:
                matched = index
                break
        target = state.default if matched is None else state.choices[matched].next
        if target is None:
            cause = f"No Choice rule matched and there is no Default in '{state.name}'"
            raise StatesError(E.NO_CHOICE_MATCHED, cause)
        # The matched rule's Assign / Output; the state's own when Default is taken.
        assign, output_tmpl = state.assign, (state.has_output, state.output)
        if matched is not None:
            assign, output_tmpl = state.choice_assign[matched], state.choice_output[matched]
        if jsonata and output_tmpl[0]:
            output = self._jsonata(output_tmpl[1], bindings)
        else:
            output = self._plain_output(state, raw, bindings)
        self._assign(scope, assign, state, data, context, bindings)
        self._event("ChoiceStateExited", name=state.name, output=output)
        return _Outcome(output, target)

    def _run_wait(self, state: State, raw: Any, scope: Scope, context: Any, bindings: Any) -> Any:
        cursor = scope.cursor if scope.top else None
        if cursor is not None and cursor.phase == "wait" and cursor.wake_at is not None:
            wake_at = _parse_iso(cursor.wake_at)
        else:
            wake_at = self._wake_time(state, self._apply_input_path(state, raw), bindings)
        self._sleep(scope, wake_at, "wait", [])
        return self._plain_output(state, raw, bindings)

    def _wake_time(self, state: State, data: Any, bindings: Mapping[str, Any]) -> datetime:
        now = self.clock.now()
        if "Seconds" in state.expressions:
            value = self._expression(state, "Seconds", bindings)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise StatesError(
                    E.QUERY_EVALUATION, f"Seconds of '{state.name}' gave {value!r}, not an integer >= 0"
                )
            return now + timedelta(seconds=value)
        if "Timestamp" in state.expressions:
            stamp = parse_timestamp(self._expression(state, "Timestamp", bindings))
            if stamp is None:
                raise StatesError(
                    E.QUERY_EVALUATION, f"Timestamp of '{state.name}' did not give an RFC 3339 timestamp"
                )
            return stamp
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

    def _fail_details(self, state: State, raw: Any, context: Any, scope: Scope) -> tuple[str, str | None]:
        def dynamic(key: str, expr: str | None, literal: str | None) -> str | None:
            if key in state.expressions:
                value = self._expression(state, key, self._bindings(raw, context, scope))
            elif expr is None:
                return literal
            else:
                value = (
                    read_any(expr, raw, context, what="path")
                    if expr.startswith("$")
                    else self._intrinsic(expr, raw, context)
                )
            if not isinstance(value, str):
                raise StatesError(E.RUNTIME, f"The {key} of Fail state '{state.name}' must give a string")
            return value

        error = dynamic("Error", state.error_path, state.error)
        cause = dynamic("Cause", state.cause_path, state.cause)
        return error or "States.Fail", cause

    # --- Task, Parallel, Map: the states with Retry and Catch ------------------------

    def _run_with_retry(self, state: State, raw: Any, scope: Scope, entered: str) -> _Outcome:
        prefix = _EVENT_PREFIX[state.type]
        cursor = scope.cursor if scope.top else None
        attempts = list(cursor.attempts) if cursor is not None and cursor.attempts else [0] * len(state.retry)
        if cursor is not None and cursor.phase == "retry" and cursor.wake_at is not None:
            self._sleep(scope, _parse_iso(cursor.wake_at), "retry", attempts)
        jsonata = state.query_language == "JSONata"
        while True:
            context = self._context(state, entered, sum(attempts), scope)
            token = self._task_token(state, scope)
            if token is not None:
                context["Task"] = {"Token": token}
            try:
                bindings = self._bindings(raw, context, scope) if jsonata else {}
                if jsonata:
                    data = self._jsonata(state.arguments, bindings) if state.has_arguments else raw
                else:
                    data = self._effective_input(state, raw, context)
                if state.type == "Task":
                    result = self._run_task(state, raw, data, context, token, scope, bindings)
                elif state.type == "Parallel":
                    result = self._run_parallel(state, data, scope)
                else:
                    result = self._run_map(state, data, context, scope, bindings)
                if jsonata:
                    bindings = self._bindings(raw, context, scope, result=result)
                    output = self._jsonata(state.output, bindings) if state.has_output else result
                    self._assign(scope, state.assign, state, result, context, bindings)
                else:
                    raw_result = result
                    if state.result_selector is not None:
                        result = self._template(state.result_selector, result, context, "ResultSelector")
                    output = self._finish_output(state, raw, result, context)
                    self._assign(scope, state.assign, state, raw_result, context, bindings)
            except StatesError as exc:
                if isinstance(exc, _ExecutionTimedOut):
                    raise
                self._check_execution_timeout()  # past it, nothing catches or retries
                self._forget(f"{scope.key}{state.name}[")
                delay = self._retry_delay(state.retry, attempts, exc.error)
                if delay is not None:
                    self._sleep(scope, self.clock.now() + timedelta(seconds=delay), "retry", attempts)
                    continue
                for catcher in state.catch:
                    if matches(list(catcher.error_equals), exc.error):
                        output = self._caught(state, catcher, exc, raw, context, scope)
                        self._event(f"{prefix}StateExited", name=state.name, output=output)
                        return _Outcome(output, catcher.next)
                raise
            self._event(f"{prefix}StateExited", name=state.name, output=output)
            return _Outcome(output, state.next)

    def _caught(
        self, state: State, catcher: Catcher, exc: StatesError, raw: Any, context: Any, scope: Scope
    ) -> Any:
        """The output of a state whose error a catcher handles (and the catcher's Assign)."""
        error_output = {"Error": exc.error, "Cause": exc.cause or ""}
        if state.query_language == "JSONata":
            bindings = self._bindings(raw, context, scope, errorOutput=error_output)
            output = self._jsonata(catcher.output, bindings) if catcher.has_output else error_output
        else:
            bindings = {}
            output = apply_result_path(catcher.result_path, raw, error_output)
        self._assign(scope, catcher.assign, state, error_output, context, bindings)
        return output

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

    # --- task tokens -----------------------------------------------------------------

    def _saved_token(self, state: State, scope: Scope) -> str | None:
        """The token this Task waits for according to the checkpoint, if any."""
        if scope.top:
            cursor = scope.cursor
            waiting = cursor is not None and cursor.phase == "token"
            return cursor.token if waiting and cursor is not None else None
        top = self.record.cursor
        with self._lock:
            return None if top is None else top.tokens.get(f"{scope.key}{state.name}")

    def _save_token(self, state: State, scope: Scope, token: str) -> None:
        with self._lock:
            if scope.top and scope.cursor is not None:
                scope.cursor.phase, scope.cursor.token = "token", token
            elif self.record.cursor is not None:
                self.record.cursor.tokens[f"{scope.key}{state.name}"] = token
                self._nested_checkpoints = True
            self._commit()

    def _leave_token(self, state: State, scope: Scope, token: str | None) -> None:
        """The Task is over: its token takes no answer any more and the cursor forgets it."""
        if token is None:
            return
        self.tokens.close(token)
        with self._lock:
            if scope.top and scope.cursor is not None:
                scope.cursor.phase, scope.cursor.token = "enter", None
            elif self.record.cursor is not None:
                self.record.cursor.tokens.pop(f"{scope.key}{state.name}", None)

    def _task_token(self, state: State, scope: Scope) -> str | None:
        """The token of a ``.waitForTaskToken`` Task: the checkpointed one when the
        execution resumes while waiting, else a new one."""
        if state.type != "Task" or not state.resource.endswith(WAIT_FOR_TOKEN):
            return None
        return self._saved_token(state, scope) or self.tokens.issue(
            self.execution_id, state.name, self.clock.now()
        )

    def _task_seconds(self, state: State, raw: Any, key: str, bindings: Mapping[str, Any]) -> float | None:
        if key in state.expressions:
            value = self._expression(state, key, bindings)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise StatesError(
                    E.QUERY_EVALUATION, f"{key} of '{state.name}' gave {value!r}, not an integer > 0"
                )
            return value
        path = state.timeout_seconds_path if key == "TimeoutSeconds" else state.heartbeat_seconds_path
        if path is not None:
            return self._seconds_from(raw, path, f"{key}Path")
        return state.timeout_seconds if key == "TimeoutSeconds" else state.heartbeat_seconds

    def _run_task(
        self,
        state: State,
        raw: Any,
        parameters: Any,
        context: dict[str, Any],
        token: str | None,
        scope: Scope,
        bindings: Mapping[str, Any],
    ) -> Any:
        handler = self.integrations.resolve(state.resource)
        if handler is None:
            raise StatesError(E.RUNTIME, f"No integration handles resource '{state.resource}'")
        timeout = self._task_seconds(state, raw, "TimeoutSeconds", bindings)
        heartbeat = self._task_seconds(state, raw, "HeartbeatSeconds", bindings)
        now = self.clock.now()
        timeout_at = None if timeout is None else now + timedelta(seconds=float(timeout))
        deadline = self._execution_deadline()  # a handler's heartbeat() ends it there too
        if deadline is not None and (timeout_at is None or deadline < timeout_at):
            timeout_at = deadline
        task = TaskContext(
            resource=state.resource,
            state_name=state.name,
            execution_id=self.execution_id,
            context_object=context,
            clock=self.clock,
            timeout_at=timeout_at,
            heartbeat_seconds=heartbeat,
            last_heartbeat=now,
        )
        waiting = token is not None and token == self._saved_token(state, scope)
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
                    self._save_token(state, scope, token)
                result = self._await_token(state, token, timeout, heartbeat, scope)
        except StatesError as exc:
            self._leave_token(state, scope, token)
            if exc.error in (E.TIMEOUT, E.HEARTBEAT_TIMEOUT):
                self._event("TaskTimedOut", resource=state.resource, error=exc.error, cause=exc.cause)
            else:
                self._event("TaskFailed", resource=state.resource, error=exc.error, cause=exc.cause)
            raise
        except Cancelled:
            self._leave_token(state, scope, token)
            raise
        except (ExecutionSuspended, KeyboardInterrupt):
            raise
        except Exception as exc:
            self._leave_token(state, scope, token)
            error = TaskError(E.TASK_FAILED, f"{type(exc).__name__}: {exc}")
            self._event("TaskFailed", resource=state.resource, error=error.error, cause=error.cause)
            raise error from exc
        self._leave_token(state, scope, token)
        try:
            json.dumps(result)
        except (TypeError, ValueError):
            cause = f"Task '{state.name}' returned a value that is not JSON"
            raise StatesError(E.TASK_FAILED, cause) from None
        self._event("TaskSucceeded", resource=state.resource, output=result)
        return result

    def _await_token(
        self, state: State, token: str, timeout: float | None, heartbeat: float | None, scope: Scope
    ) -> Any:
        """Poll the token's answer until it comes or the Task's time runs out."""
        while True:
            self._check_execution_timeout()
            scope.check_halted()
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
