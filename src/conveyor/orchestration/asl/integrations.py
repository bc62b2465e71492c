"""Task dispatch: a registry from ``Resource`` ARNs to Python callables.

A handler is ``(parameters, context) -> result``. It runs synchronously in the engine's
thread and reports failure by raising :class:`~conveyor.orchestration.asl.errors.TaskError`
(any other exception becomes ``States.TaskFailed`` with the exception text as cause).
Long-running handlers (``.sync`` integrations that poll) should call
``context.heartbeat()`` now and then: it raises States.Timeout / States.HeartbeatTimeout
once the state's ``TimeoutSeconds`` / ``HeartbeatSeconds`` have run out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from conveyor.orchestration.asl import errors as E
from conveyor.orchestration.asl.clock import Clock
from conveyor.orchestration.asl.errors import StatesError, TaskError
from conveyor.orchestration.asl.tokens import WAIT_FOR_TOKEN


@dataclass
class TaskContext:
    """What a handler may know about the task it runs."""

    resource: str
    state_name: str
    execution_id: str
    context_object: dict[str, Any]
    clock: Clock
    timeout_at: datetime | None = None
    heartbeat_seconds: float | None = None
    last_heartbeat: datetime | None = None

    def heartbeat(self) -> None:
        """Record that the task is alive; raises if it already timed out."""
        self.check_timeouts()
        self.last_heartbeat = self.clock.now()

    def check_timeouts(self) -> None:
        now = self.clock.now()
        if self.timeout_at is not None and now > self.timeout_at:
            raise StatesError(E.TIMEOUT, f"Task '{self.state_name}' ran past its TimeoutSeconds")
        if (
            self.heartbeat_seconds is not None
            and self.last_heartbeat is not None
            and (now - self.last_heartbeat).total_seconds() > self.heartbeat_seconds
        ):
            raise StatesError(
                E.HEARTBEAT_TIMEOUT, f"Task '{self.state_name}' sent no heartbeat within HeartbeatSeconds"
            )


TaskHandler = Callable[[Any, TaskContext], Any]


class Integrations:
    """Resource ARN → handler. Exact registrations win over prefixes; the longest prefix wins."""

    def __init__(self) -> None:
        self._exact: dict[str, TaskHandler] = {}
        self._prefixes: dict[str, TaskHandler] = {}

    def register(self, resource: str, handler: TaskHandler, *, prefix: bool = False) -> None:
        (self._prefixes if prefix else self._exact)[resource] = handler

    def resolve(self, resource: str) -> TaskHandler | None:
        """The handler of ``resource``; ``X.waitForTaskToken`` not registered itself is
        X's (the engine waits for the token)."""
        handler = self._exact.get(resource) or self._exact.get(resource.removesuffix(WAIT_FOR_TOKEN))
        resource = resource.removesuffix(WAIT_FOR_TOKEN) if handler is None else resource
        if handler is not None:
            return handler
        best = max((p for p in self._prefixes if resource.startswith(p)), key=len, default=None)
        return None if best is None else self._prefixes[best]

    def known(self) -> list[str]:
        return sorted(self._exact) + sorted(p + "*" for p in self._prefixes)


@dataclass
class ScriptedTask:
    """A test integration: answers each call with the next scripted response.

    A response that is an exception is raised; a callable is called with the parameters;
    anything else is returned. The last response repeats. Calls are recorded in ``calls``.
    """

    responses: list[Any]
    calls: list[Any] = field(default_factory=list)
    times: list[datetime] = field(default_factory=list)

    def __call__(self, parameters: Any, context: TaskContext) -> Any:
        self.calls.append(parameters)
        self.times.append(context.clock.now())
        index = min(len(self.calls) - 1, len(self.responses) - 1)
        response = self.responses[index]
        if isinstance(response, BaseException):
            raise response
        if callable(response):
            return response(parameters, context)
        return response


def echo(parameters: Any, context: TaskContext) -> Any:
    """A handler that returns its parameters."""
    return parameters


def failing(error: str, cause: str | None = None) -> TaskHandler:
    def handler(parameters: Any, context: TaskContext) -> Any:
        raise TaskError(error, cause)

    return handler


def registry(entries: Iterable[tuple[str, TaskHandler]] = ()) -> Integrations:
    found = Integrations()
    for resource, handler in entries:
        found.register(resource, handler)
    return found
