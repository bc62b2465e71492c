"""Persistence of executions: a small protocol and an in-memory implementation.

The engine calls :meth:`ExecutionStore.commit` at every checkpoint (after each top-level
state, before every Wait or Retry delay, at the end). A commit appends the new history
events *and* replaces the execution record in one step, so a restored execution never
sees events that its record does not account for. Records and events are plain JSON
values (timestamps as ISO 8601 strings), so a store may serialise them as it likes.
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass, field
from typing import Any, Protocol

from conveyor.core.errors import NotFoundError


@dataclass
class Cursor:
    """Where a running execution is: the state to run (or being run) and its input.

    ``phase`` is ``"enter"`` (run the state from the start), ``"wait"`` (a Wait state is
    sleeping until ``wake_at``) or ``"retry"`` (a Task/Parallel/Map sleeps until ``wake_at``
    before its next attempt; ``attempts`` counts the retries used per retrier) or
    ``"token"`` (a Task waits for the answer to ``token``).
    """

    state: str
    input: Any
    entered_time: str
    phase: str = "enter"
    wake_at: str | None = None
    attempts: list[int] = field(default_factory=list)
    token: str | None = None
    """Phase ``"token"``: the Task (``.waitForTaskToken``) called its integration and
    waits for an answer to this token."""
    variables: dict[str, Any] = field(default_factory=dict)
    """The top-level workflow variables (``Assign``) when this state was entered."""
    done: dict[str, Any] = field(default_factory=dict)
    """Outputs of the Map iterations / Parallel branches of this state that finished,
    by key (``Map[3]``, ``Par[1]/Inner[0]``): a resumed state does not run them again."""
    tokens: dict[str, str] = field(default_factory=dict)
    """Task tokens that Tasks inside iterations / branches wait for, by key
    (``Map[3]/Ask``): a resumed iteration waits for the same token."""


@dataclass
class ExecutionRecord:
    execution_id: str
    name: str
    definition: dict[str, Any]
    input: Any
    start_time: str
    status: str = "RUNNING"  # RUNNING | SUCCEEDED | FAILED | TIMED_OUT (| ABORTED, by the API)
    cursor: Cursor | None = None
    output: Any = None
    error: str | None = None
    cause: str | None = None
    stop_time: str | None = None
    state_machine_name: str = "StateMachine"
    state_machine_type: str = "STANDARD"
    """STANDARD or EXPRESS, as the machine was when the execution started."""
    at_most_once: bool = False
    """Run by its caller until it ends (a synchronous EXPRESS execution): when that
    process dies, nobody takes it over (orchestration/executions.py fails it)."""
    execution_arn: str | None = None
    """``$$.Execution.Id``: the execution's ARN (None: its id, for records without one)."""
    state_machine_arn: str | None = None
    """``$$.StateMachine.Id``: the state machine's ARN (None: its name)."""
    max_seconds: int | None = None
    """A hard limit on the execution's duration besides the definition's TimeoutSeconds
    (an EXPRESS execution's five minutes): past it the execution ends TIMED_OUT."""


@dataclass
class HistoryEvent:
    """One event, named as Step Functions names it (``TaskStateEntered``, ...)."""

    id: int
    type: str
    timestamp: str
    details: dict[str, Any] = field(default_factory=dict)


class ExecutionStore(Protocol):
    def commit(self, record: ExecutionRecord, events: list[HistoryEvent]) -> None:
        """Atomically append ``events`` to the history and replace the record."""
        ...

    def load(self, execution_id: str) -> ExecutionRecord:
        """The last committed record; raises NotFoundError when there is none."""
        ...

    def history(self, execution_id: str) -> list[HistoryEvent]: ...


class InMemoryExecutionStore:
    """Thread-safe; keeps deep copies so callers cannot change what was committed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[str, ExecutionRecord] = {}
        self._events: dict[str, list[HistoryEvent]] = {}
        self.commits = 0

    def commit(self, record: ExecutionRecord, events: list[HistoryEvent]) -> None:
        with self._lock:
            self._records[record.execution_id] = copy.deepcopy(record)
            self._events.setdefault(record.execution_id, []).extend(copy.deepcopy(events))
            self.commits += 1

    def load(self, execution_id: str) -> ExecutionRecord:
        with self._lock:
            if execution_id not in self._records:
                raise NotFoundError(f"no execution with id {execution_id!r}")
            return copy.deepcopy(self._records[execution_id])

    def history(self, execution_id: str) -> list[HistoryEvent]:
        with self._lock:
            return copy.deepcopy(self._events.get(execution_id, []))

    def executions(self) -> list[str]:
        with self._lock:
            return list(self._records)
