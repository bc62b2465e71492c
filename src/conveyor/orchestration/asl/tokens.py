"""Task tokens: a Task whose resource ends in ``.waitForTaskToken`` hands
``$$.Task.Token`` to its integration and then waits for SendTaskSuccess or
SendTaskFailure with that token (or SendTaskHeartbeat, which keeps it alive).

The engine issues the token before it calls the integration (so an answer that
comes back while the integration still runs is not lost), keeps it in the execution's
cursor (a resumed execution waits for the same token, the integration is not called
again) and polls :meth:`TaskTokens.answer` through its clock. A token that timed out
or whose task ended otherwise is closed: a late answer is refused (TaskTimedOut).
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

WAIT_FOR_TOKEN = ".waitForTaskToken"
WAITING, SUCCEEDED, FAILED, CLOSED = "waiting", "succeeded", "failed", "closed"


@dataclass
class TokenAnswer:
    status: str
    issued_at: datetime
    heartbeat_at: datetime | None = None
    output: Any = None
    error: str | None = None
    cause: str | None = None


class TaskTokens(Protocol):
    def issue(self, execution_id: str, state: str, now: datetime) -> str:
        """Record a new waiting token; returns it."""
        ...

    def answer(self, token: str) -> TokenAnswer | None: ...

    def close(self, token: str) -> None:
        """The task ended without an answer (timed out, aborted): refuse late ones."""
        ...


def new_token() -> str:
    return secrets.token_urlsafe(48)


class InMemoryTaskTokens:
    """Tokens of one process (the engine's default and unit tests); answered with
    :meth:`succeed`, :meth:`fail` and :meth:`heartbeat`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens: dict[str, TokenAnswer] = {}
        self.issued: list[str] = []

    def issue(self, execution_id: str, state: str, now: datetime) -> str:
        token = new_token()
        with self._lock:
            self._tokens[token] = TokenAnswer(WAITING, now)
            self.issued.append(token)
        return token

    def answer(self, token: str) -> TokenAnswer | None:
        with self._lock:
            return self._tokens.get(token)

    def _set(self, token: str, **changes: Any) -> bool:
        with self._lock:
            found = self._tokens.get(token)
            if found is None or found.status != WAITING:
                return False
            for key, value in changes.items():
                setattr(found, key, value)
            return True

    def close(self, token: str) -> None:
        self._set(token, status=CLOSED)

    def succeed(self, token: str, output: Any) -> bool:
        return self._set(token, status=SUCCEEDED, output=output)

    def fail(self, token: str, error: str | None, cause: str | None) -> bool:
        return self._set(token, status=FAILED, error=error, cause=cause)

    def heartbeat(self, token: str, now: datetime) -> bool:
        return self._set(token, heartbeat_at=now)
