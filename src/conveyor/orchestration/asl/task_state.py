"""A Task: calling its integration, and waiting for a ``.waitForTaskToken`` answer.

The token is issued before the integration is called and checkpointed after it returns
(at the top level in the cursor, inside a Map or Parallel in ``Cursor.tokens``), so a
resumed execution waits for the same token without calling the integration again.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from conveyor.orchestration.asl import errors as E
from conveyor.orchestration.asl.clock import ExecutionSuspended
from conveyor.orchestration.asl.definition import State
from conveyor.orchestration.asl.errors import StatesError, TaskError
from conveyor.orchestration.asl.integrations import TaskContext
from conveyor.orchestration.asl.parts import ExecutionParts
from conveyor.orchestration.asl.paths import read_path
from conveyor.orchestration.asl.scope import Cancelled, Scope
from conveyor.orchestration.asl.tokens import CLOSED, FAILED, SUCCEEDED, WAIT_FOR_TOKEN

TOKEN_POLL_SECONDS = 0.2
"""How often a Task waiting for its token reads the token's answer."""


def _json_or_none(value: Any) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return None
    return value


class TaskState(ExecutionParts):
    """Task states and their task tokens for :class:`Execution`."""

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
