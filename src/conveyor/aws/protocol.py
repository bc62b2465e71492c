"""The AWS JSON protocols on ``conveyor serve``: a ``POST /`` carrying
``X-Amz-Target: Prefix.Operation`` and an ``application/x-amz-json-1.x`` body is an
AWS request, checked by its SigV4 signature (not the REST API's bearer token) and
answered in the service's shapes; errors carry the service's ``__type`` so botocore
raises its modelled exceptions. Every other request goes on to the REST API.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from conveyor.aws.base import AwsError
from conveyor.aws.operations import call
from conveyor.aws.sigv4 import KeyPair, SignatureRefused, verify
from conveyor.orchestration.service import Service

log = logging.getLogger(__name__)
KEYS_MISSING = (
    "the AWS APIs of conveyor serve are off: start it with CONVEYOR_AWS_ACCESS_KEY_ID and "
    "CONVEYOR_AWS_SECRET_ACCESS_KEY set, and sign requests with that key pair"
)


class AwsJsonApi:
    """ASGI middleware answering AWS JSON-protocol requests itself."""

    def __init__(self, app: ASGIApp, service: Service, keys: KeyPair | None) -> None:
        self.app = app
        self.service = service
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
        target = headers.get("x-amz-target")
        if target is None:
            await self.app(scope, receive, send)
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        status, content_type, answer = await run_in_threadpool(self._answer, scope, headers, target, body)
        payload = json.dumps(answer, default=str).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", content_type.encode()),
                    (b"content-length", b"%d" % len(payload)),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    def _answer(
        self, scope: Scope, headers: dict[str, str], target: str, body: bytes
    ) -> tuple[int, str, dict[str, Any]]:
        json_type = "application/x-amz-json-1.1"
        if self.keys is None:
            return 403, json_type, _error("UnrecognizedClientException", KEYS_MISSING)
        host = headers.get("host", "localhost")
        query = scope.get("query_string", b"").decode()
        url = f"http://{host}{scope.get('path', '/')}" + (f"?{query}" if query else "")
        try:
            verify(self.keys, "POST", url, headers, body)
        except SignatureRefused as exc:
            return 403, json_type, _error(exc.code, exc.message)
        try:
            params = json.loads(body or b"{}")
        except json.JSONDecodeError as exc:
            return 400, json_type, _error("SerializationException", f"the body is not JSON: {exc}")
        if not isinstance(params, dict):
            return 400, json_type, _error("SerializationException", "the body must be a JSON object")
        try:
            aws, answer = call(self.service, target, params)
        except AwsError as exc:
            return exc.status, json_type, _error(exc.code, exc.message)
        except Exception as exc:  # the service's 500, with the reason logged here
            log.exception("%s failed", target)
            return 500, json_type, _error("InternalFailure", f"{type(exc).__name__}: {exc}")
        return 200, aws.content_type, answer


def _error(code: str, message: str) -> dict[str, Any]:
    return {"__type": code, "message": message}
