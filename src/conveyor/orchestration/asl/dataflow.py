"""Data processing of a state and the context object ``$$``, for an Execution.

JSONPath states: InputPath -> Parameters -> (the state's work) -> ResultSelector ->
ResultPath -> OutputPath. JSONata states: ``{% %}`` expressions over ``$states`` and the
visible variables. Both: ``Assign`` (Step Functions' size limits apply).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from conveyor.orchestration.asl import errors as E
from conveyor.orchestration.asl.definition import State
from conveyor.orchestration.asl.errors import StatesError
from conveyor.orchestration.asl.intrinsics import evaluate_intrinsic
from conveyor.orchestration.asl.parts import ExecutionParts, context_time
from conveyor.orchestration.asl.paths import apply_payload_template, apply_result_path, read_path
from conveyor.orchestration.asl.scope import Scope

ASSIGN_MAX_BYTES = 256 * 1024
"""The JSON size of the values one Assign sets (Step Functions' limit)."""
VARIABLES_MAX_BYTES = 10 * 1024 * 1024
"""The JSON size of all the variables a scope holds (Step Functions' limit)."""


class DataFlow(ExecutionParts):
    """``$$``, paths, payload templates, JSONata and Assign for :class:`Execution`."""

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
