"""What the parts of an :class:`~conveyor.orchestration.asl.engine.Execution` share.

An Execution is assembled from mixins, one per concern: the driver (``engine``: start,
resume, steps, events, checkpoints), data processing and ``$$`` (``dataflow``), the
flow states Choice/Wait/Pass/Succeed/Fail (``flow_states``), Retry and Catch
(``recovery``), Task and its task tokens (``task_state``), and Map/Parallel
(``fanout``). :class:`ExecutionParts` is their common base: it declares the attributes
the Execution holds and the methods one part calls on another. Its stubs sit last in
the method resolution order, so the part that implements a method always wins.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from conveyor.orchestration.asl.clock import Clock
from conveyor.orchestration.asl.definition import State, StateMachine
from conveyor.orchestration.asl.errors import StatesError
from conveyor.orchestration.asl.integrations import Integrations
from conveyor.orchestration.asl.intrinsics import IntrinsicEnv
from conveyor.orchestration.asl.jsonata_eval import JsonataEnv
from conveyor.orchestration.asl.scope import Scope
from conveyor.orchestration.asl.store import ExecutionRecord, ExecutionStore
from conveyor.orchestration.asl.tokens import TaskTokens

EVENT_PREFIX = {
    "Task": "Task",
    "Pass": "Pass",
    "Wait": "Wait",
    "Choice": "Choice",
    "Parallel": "Parallel",
    "Map": "Map",
    "Succeed": "Succeed",
    "Fail": "Fail",
}
"""The history event prefix of each state type (``TaskStateEntered`` ...)."""


def iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def context_time(text: str) -> str:
    """A time of the context object as the service writes it: ``2019-03-26T20:14:13.192Z``."""
    when = parse_iso(text).astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


class ExecutionTimedOut(StatesError):
    """The execution's time limit ran out (the state machine's TimeoutSeconds, or an
    EXPRESS execution's five minutes): no Retry or Catch applies."""


@dataclass
class Outcome:
    """How a state ended: its output and the next state (None = the scope ends)."""

    output: Any
    next: str | None


class ExecutionParts:
    """The attributes and cross-part methods of an Execution (see the module docstring)."""

    machine: StateMachine
    record: ExecutionRecord
    store: ExecutionStore
    integrations: Integrations
    clock: Clock
    rng: random.Random
    tokens: TaskTokens
    _intrinsics: IntrinsicEnv
    _jsonata_env: JsonataEnv
    _lock: threading.RLock
    _nested_checkpoints: bool

    @property
    def execution_id(self) -> str:
        raise NotImplementedError

    # engine: events, checkpoints, time
    def _event(self, kind: str, **details: Any) -> None:
        raise NotImplementedError

    def _commit(self) -> None:
        raise NotImplementedError

    def _sleep(self, scope: Scope, wake_at: datetime, phase: str, attempts: list[int]) -> None:
        raise NotImplementedError

    def _check_execution_timeout(self) -> None:
        raise NotImplementedError

    def _execution_deadline(self) -> datetime | None:
        raise NotImplementedError

    # dataflow: $$, paths, templates, JSONata, Assign
    def _context(self, state: State, entered: str, retry_count: int, scope: Scope) -> dict[str, Any]:
        raise NotImplementedError

    def _intrinsic(self, expression: str, data: Any, context: Any) -> Any:
        raise NotImplementedError

    def _template(self, template: Any, data: Any, context: Any, field: str) -> Any:
        raise NotImplementedError

    @staticmethod
    def _apply_input_path(state: State, raw: Any) -> Any:
        raise NotImplementedError

    def _effective_input(self, state: State, raw: Any, context: Any) -> Any:
        raise NotImplementedError

    def _finish_output(self, state: State, raw: Any, result: Any, context: Any) -> Any:
        raise NotImplementedError

    def _bindings(self, raw: Any, context: Any, scope: Scope, **states: Any) -> dict[str, Any]:
        raise NotImplementedError

    def _jsonata(self, value: Any, bindings: Mapping[str, Any]) -> Any:
        raise NotImplementedError

    def _expression(self, state: State, key: str, bindings: Mapping[str, Any]) -> Any:
        raise NotImplementedError

    def _assign(
        self,
        scope: Scope,
        block: dict[str, Any] | None,
        state: State,
        data: Any,
        context: Any,
        bindings: Any,
    ) -> None:
        raise NotImplementedError

    # flow_states, recovery: running one state
    def _run_state(self, state: State, raw: Any, scope: Scope) -> Outcome:
        raise NotImplementedError

    def _run_with_retry(self, state: State, raw: Any, scope: Scope, entered: str) -> Outcome:
        raise NotImplementedError

    # task_state
    def _task_token(self, state: State, scope: Scope) -> str | None:
        raise NotImplementedError

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
        raise NotImplementedError

    # fanout
    def _forget(self, prefix: str) -> None:
        raise NotImplementedError

    def _run_parallel(self, state: State, data: Any, scope: Scope) -> list[Any]:
        raise NotImplementedError

    def _run_map(
        self, state: State, data: Any, context: dict[str, Any], scope: Scope, bindings: Mapping[str, Any]
    ) -> list[Any]:
        raise NotImplementedError
