"""Task tokens in the metadata store: issued by an execution's ``.waitForTaskToken``
Task in whichever process runs it, answered (SendTaskSuccess / SendTaskFailure /
SendTaskHeartbeat) from any process, by the token alone."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from conveyor.core.errors import ConfigError, ConveyorError, NotFoundError
from conveyor.orchestration.asl.tokens import CLOSED, FAILED, SUCCEEDED, WAITING, TokenAnswer, new_token
from conveyor.store.rows import TaskTokenRow
from conveyor.store.store import Store


class TokenTimedOut(ConveyorError):
    """The token's Task is over (timed out, answered, or its execution ended)."""


class StoreTaskTokens:
    def __init__(self, store: Store) -> None:
        self.store = store

    # the engine's side
    def issue(self, execution_id: str, state: str, now: datetime) -> str:
        token = new_token()
        self.store.put_task_token(token, execution_id, state, now)
        return token

    def answer(self, token: str) -> TokenAnswer | None:
        row = self.store.task_token(token)
        if row is None:
            return None
        return TokenAnswer(
            row["status"], row["issued_at"], row["heartbeat_at"], row["output"], row["error"], row["cause"]
        )

    def close(self, token: str) -> None:
        self.store.answer_task_token(token, CLOSED)

    # the API's side
    def _waiting(self, token: Any) -> TaskTokenRow:
        if not isinstance(token, str) or not token:
            raise ConfigError("taskToken is required")
        row = self.store.task_token(token)
        if row is None:
            raise NotFoundError("Task does not exist anymore (no task has that token)")
        if row["status"] != WAITING:
            raise TokenTimedOut(f"Task Timed Out: its task token is {row['status']}")
        execution = self.store.execution(row["execution_id"])
        if execution is None or execution["status"] != "RUNNING":
            self.close(token)
            raise TokenTimedOut("Task Timed Out: its execution is not running")
        return row

    def succeed(self, token: Any, output: Any) -> None:
        self._waiting(token)
        try:
            value = json.loads(output) if isinstance(output, str) else output
        except json.JSONDecodeError as exc:
            raise ConfigError(f"output is not JSON: {exc}") from None
        if not self.store.answer_task_token(token, SUCCEEDED, output=value):
            raise TokenTimedOut("Task Timed Out: the task was answered or ended meanwhile")

    def fail(self, token: Any, error: str | None, cause: str | None) -> None:
        self._waiting(token)
        if not self.store.answer_task_token(token, FAILED, error=error, cause=cause):
            raise TokenTimedOut("Task Timed Out: the task was answered or ended meanwhile")

    def heartbeat(self, token: Any) -> None:
        self._waiting(token)
        if not self.store.heartbeat_task_token(token):
            raise TokenTimedOut("Task Timed Out: the task was answered or ended meanwhile")
