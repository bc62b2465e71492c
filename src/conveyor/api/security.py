"""Who may talk to ``conveyor serve``, and how much they may send.

The API runs SQL with stored credentials and starts tasks, so it is never open by
accident: a token comes from the environment, or is generated on first start and
kept under CONVEYOR_HOME (mode 0600, as Jupyter keeps its own). Only an explicit
``--no-auth`` on a loopback address serves without one.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the CLI reads the token helpers without the server extra
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conveyor.core.errors import ConfigError

TOKEN_FILE = "serve-token"
DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024


def serve_token(home: Path, from_env: str | None, env_name: str) -> str:
    """The token every request must carry: ``from_env`` when the variable is set,
    else the one stored under ``home`` (created on first use). A blank token is
    refused: it would let any request in that sends ``Bearer`` and nothing."""
    if from_env is not None:
        if not from_env.strip():
            raise ConfigError(f"{env_name} is set but blank; give it a secret value, or unset it")
        return from_env.strip()
    path = home / TOKEN_FILE
    if path.exists():
        stored = path.read_text(encoding="utf-8").strip()
        if not stored:
            raise ConfigError(f"{path} is empty; delete it and a new token is generated")
        return stored
    home.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(token + "\n")
    return token


class BodyLimit:
    """ASGI middleware answering 413 to a request body over ``limit`` bytes: at once by
    its Content-Length, or, for a chunked body, as soon as the bytes read pass the
    limit. An oversized body is never read past the limit, parsed or stored."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await _too_large(send, self.limit)
            return
        if declared is not None:
            await self.app(scope, receive, send)
            return
        # Chunked: read up to the limit first, then hand the body over whole.
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            received += len(chunks[-1])
            if received > self.limit:
                await _too_large(send, self.limit)
                return
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)


async def _too_large(send: Send, limit: int) -> None:
    body = json.dumps({"error": f"request body over the limit of {limit} bytes"}).encode()
    headers: list[Any] = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})
