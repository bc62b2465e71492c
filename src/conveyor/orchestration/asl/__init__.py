"""An Amazon States Language interpreter (JSONPath and JSONata), as a library with no I/O of its own.

Tasks run through an :class:`Integrations` registry, time comes from a :class:`Clock`,
and executions persist through an :class:`ExecutionStore`.
"""

from __future__ import annotations

from conveyor.orchestration.asl.clock import Clock, ExecutionSuspended, FakeClock, SystemClock
from conveyor.orchestration.asl.definition import StateMachine, parse_definition
from conveyor.orchestration.asl.engine import Execution
from conveyor.orchestration.asl.errors import StatesError, TaskError
from conveyor.orchestration.asl.integrations import Integrations, ScriptedTask, TaskContext, TaskHandler
from conveyor.orchestration.asl.store import (
    Cursor,
    ExecutionRecord,
    ExecutionStore,
    HistoryEvent,
    InMemoryExecutionStore,
)

__all__ = [
    "Clock",
    "Cursor",
    "Execution",
    "ExecutionRecord",
    "ExecutionStore",
    "ExecutionSuspended",
    "FakeClock",
    "HistoryEvent",
    "InMemoryExecutionStore",
    "Integrations",
    "ScriptedTask",
    "StateMachine",
    "StatesError",
    "SystemClock",
    "TaskContext",
    "TaskError",
    "TaskHandler",
    "parse_definition",
]
