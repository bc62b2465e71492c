"""Task, Parallel and Map: the states with Retry and Catch.

An attempt evaluates the state's input, runs it (Task / Parallel / Map) and shapes its
output; a :class:`StatesError` is retried by the first matching Retrier (the delay is
checkpointed at the top level, so a restart sleeps only for the time left), else handed
to the first matching Catcher, else raised. An execution timeout is never retried or
caught.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from conveyor.orchestration.asl.definition import Catcher, Retrier, State
from conveyor.orchestration.asl.errors import StatesError, matches
from conveyor.orchestration.asl.parts import (
    EVENT_PREFIX,
    ExecutionParts,
    ExecutionTimedOut,
    Outcome,
    parse_iso,
)
from conveyor.orchestration.asl.paths import apply_result_path
from conveyor.orchestration.asl.scope import Scope


class Recovery(ExecutionParts):
    """Attempts, Retry and Catch for :class:`Execution`."""

    def _run_with_retry(self, state: State, raw: Any, scope: Scope, entered: str) -> Outcome:
        prefix = EVENT_PREFIX[state.type]
        cursor = scope.cursor if scope.top else None
        attempts = list(cursor.attempts) if cursor is not None and cursor.attempts else [0] * len(state.retry)
        if cursor is not None and cursor.phase == "retry" and cursor.wake_at is not None:
            self._sleep(scope, parse_iso(cursor.wake_at), "retry", attempts)
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
                if isinstance(exc, ExecutionTimedOut):
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
                        return Outcome(output, catcher.next)
                raise
            self._event(f"{prefix}StateExited", name=state.name, output=output)
            return Outcome(output, state.next)

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
