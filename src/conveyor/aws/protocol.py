"""The AWS JSON protocols on ``conveyor serve``: a ``POST /`` carrying
``X-Amz-Target: Prefix.Operation`` and an ``application/x-amz-json-1.x`` body is an
AWS request, checked by its SigV4 signature (not the REST API's bearer token) and
answered in the service's shapes; errors carry the service's ``__type`` so botocore
raises its modelled exceptions. A request SigV4-signed for ``scheduler`` (EventBridge
Scheduler, a REST-JSON protocol) is routed by method and path (aws/scheduler.py).
Every other request goes on to the REST API.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from conveyor.aws.base import AwsError
from conveyor.aws.operations import call
from conveyor.aws.scheduler import answer as scheduler_answer
from conveyor.aws.sigv4 import KeyPair, SignatureRefused, verify
from conveyor.orchestration.service import Service

log = logging.getLogger(__name__)
_REST_JSON = re.compile(r"^AWS4-HMAC-SHA256 .*Credential=[^/]+/\d{8}/[^/]+/scheduler/aws4_request")
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
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
        target = headers.get("x-amz-target")
        rest_json = _REST_JSON.search(headers.get("authorization", ""))
        if (target is None or scope["method"] != "POST") and rest_json is None:
            await self.app(scope, receive, send)
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        if target is None or scope["method"] != "POST":
            status, content_type, answer = await run_in_threadpool(self._rest_json, scope, headers, body)
        else:
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

    def _signed(self, scope: Scope, headers: dict[str, str], body: bytes) -> dict[str, Any] | None:
        """None when the request's signature holds, else the error to answer (403)."""
        if self.keys is None:
            return _error("UnrecognizedClientException", KEYS_MISSING)
        host = headers.get("host", "localhost")
        query = scope.get("query_string", b"").decode()
        url = f"http://{host}{scope.get('raw_path', scope.get('path', '/').encode()).decode()}"
        url += f"?{query}" if query else ""
        try:
            verify(self.keys, scope["method"], url, headers, body)
        except SignatureRefused as exc:
            return _error(exc.code, exc.message)
        return None

    def _rest_json(
        self, scope: Scope, headers: dict[str, str], body: bytes
    ) -> tuple[int, str, dict[str, Any]]:
        """A REST-JSON service's request (EventBridge Scheduler), routed by method and path."""
        refused = self._signed(scope, headers, body)
        if refused is not None:
            return 403, "application/json", refused
        path = scope.get("path", "/")
        if not path.startswith("/schedules"):
            return (
                404,
                "application/json",
                _error("UnknownOperationException", f"{path}: not a Scheduler path"),
            )
        try:
            status, answer = scheduler_answer(
                self.service, scope["method"], path, scope.get("query_string", b"").decode(), body
            )
        except Exception as exc:  # the service's 500, with the reason logged here
            log.exception("scheduler %s %s failed", scope["method"], path)
            return 500, "application/json", _error("InternalServerException", f"{type(exc).__name__}: {exc}")
        return status, "application/json", answer

    def _answer(
        self, scope: Scope, headers: dict[str, str], target: str, body: bytes
    ) -> tuple[int, str, dict[str, Any]]:
        json_type = "application/x-amz-json-1.1"
        refused = self._signed(scope, headers, body)
        if refused is not None:
            return 403, json_type, refused
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
