"""The states without Retry or Catch: Choice, Wait, Pass, Succeed and Fail.

:meth:`FlowStates._run_state` is where every state starts (it records the
``...StateEntered`` event and binds the visible variables); Task, Parallel and Map go on
to :class:`~conveyor.orchestration.asl.recovery.Recovery`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from conveyor.orchestration.asl import errors as E
from conveyor.orchestration.asl.choice import parse_timestamp
from conveyor.orchestration.asl.definition import State
from conveyor.orchestration.asl.errors import StatesError
from conveyor.orchestration.asl.parts import EVENT_PREFIX, ExecutionParts, Outcome, iso, parse_iso
from conveyor.orchestration.asl.paths import bound_variables, read_any, read_path
from conveyor.orchestration.asl.scope import Scope


class FlowStates(ExecutionParts):
    """Choice, Wait, Pass, Succeed and Fail for :class:`Execution`."""

    def _run_state(self, state: State, raw: Any, scope: Scope) -> Outcome:
        with bound_variables(scope.visible()):
            return self._run_state_bound(state, raw, scope)

    def _run_state_bound(self, state: State, raw: Any, scope: Scope) -> Outcome:
        prefix = EVENT_PREFIX[state.type]
        cursor = scope.cursor if scope.top else None
        resuming = cursor is not None and cursor.phase != "enter"
        entered = cursor.entered_time if cursor is not None else iso(self.clock.now())
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
            return Outcome(output, state.next)
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

    def _run_choice(self, state: State, raw: Any, scope: Scope, entered: str) -> Outcome:
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
        return Outcome(output, target)

    def _run_wait(self, state: State, raw: Any, scope: Scope, context: Any, bindings: Any) -> Any:
        cursor = scope.cursor if scope.top else None
        if cursor is not None and cursor.phase == "wait" and cursor.wake_at is not None:
            wake_at = parse_iso(cursor.wake_at)
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
