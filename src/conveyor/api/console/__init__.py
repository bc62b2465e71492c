"""The web console of ``conveyor serve``: server-rendered pages (Jinja2) that
htmx keeps live, every asset shipped in the package (see ``static/VENDORED.md``).

A page and the REST resource it shows share their URL: a browser navigating
to ``/tasks/NAME`` (it asks for ``text/html`` and sends no bearer token) gets
the page, an API client the JSON. ``/``, ``/lake``, ``/docs`` and everything
under ``/console/`` are the console's alone.
"""

from __future__ import annotations

import re

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from conveyor.service import Conveyor

CONSOLE_ONLY = re.compile(r"^/(|lake|docs|docs/oauth2-redirect)$")
SHARED_PAGES = re.compile(r"^/(tasks/[^/]+|executions|executions/[^/]+|rules|statements)$")


def wants_page(scope: Scope) -> bool:
    """Whether a request is for the console rather than the REST API."""
    path = scope.get("path", "")
    if path.startswith("/console/"):
        return True
    if scope.get("method") not in ("GET", "HEAD"):
        return False  # the services' AWS JSON APIs POST to /
    if CONSOLE_ONLY.match(path):
        return True
    if not SHARED_PAGES.match(path):
        return False
    headers = dict(scope.get("headers") or [])
    return b"authorization" not in headers and b"text/html" in headers.get(b"accept", b"")


class ConsoleRouter:
    """ASGI middleware sending the console's requests to the console app."""

    def __init__(self, app: ASGIApp, console: ASGIApp) -> None:
        self.app = app
        self.console = console

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and wants_page(scope):
            await self.console(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def install_console(app: FastAPI, service: Conveyor, token: str | None) -> None:
    """Serve the console (and the offline API docs) in front of ``app``'s routes."""
    from conveyor.api.console.pages import create_console

    app.router.routes[:] = [
        r for r in app.router.routes if getattr(r, "path", None) not in ("/docs", "/docs/oauth2-redirect")
    ]
    app.add_middleware(ConsoleRouter, console=create_console(service, token, app.openapi_url))
