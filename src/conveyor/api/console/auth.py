"""Who may see the console: the serve token, given once (``/?token=...`` or the
login form), becomes an HttpOnly, SameSite=Strict session cookie. The cookie
holds an HMAC of the token, not the token: it is valid exactly as long as the
token is (change the token and every session ends), and survives restarts.
``token`` None (``serve --no-auth``, loopback only) lets everyone in."""

from __future__ import annotations

import hashlib
import hmac

from starlette.requests import Request
from starlette.responses import Response

COOKIE = "conveyor_console"
"""The cookie's name, followed by the port: cookies ignore ports, and two serves on
one host (each with its own token) must not overwrite each other's session."""
MAX_AGE = 7 * 24 * 3600


class ConsoleAuth:
    def __init__(self, token: str | None) -> None:
        self.token = token
        self._session = (
            None
            if token is None
            else hmac.new(token.encode(), b"conveyor console session v1", hashlib.sha256).hexdigest()
        )

    @property
    def open(self) -> bool:
        return self.token is None

    def token_ok(self, given: str | None) -> bool:
        if self.token is None:
            return True
        return given is not None and hmac.compare_digest(given.strip().encode(), self.token.encode())

    def allowed(self, request: Request) -> bool:
        """Whether the request carries a valid session cookie (or the console is open)."""
        if self._session is None:
            return True
        cookie = request.cookies.get(cookie_name(request))
        return cookie is not None and hmac.compare_digest(cookie.encode(), self._session.encode())

    def same_origin_action(self, request: Request) -> bool:
        """A state-changing request from the console's own pages: htmx's header (a
        cross-site form cannot send it without CORS) and, when given, our origin."""
        if request.headers.get("hx-request") != "true":
            return False
        origin = request.headers.get("origin")
        return origin is None or origin == f"{request.url.scheme}://{request.url.netloc}"

    def log_in(self, request: Request, response: Response) -> None:
        if self._session is None:
            return
        secure = request.url.scheme == "https"
        response.set_cookie(
            cookie_name(request),
            self._session,
            max_age=MAX_AGE,
            httponly=True,
            samesite="strict",
            secure=secure,
            path="/",
        )

    @staticmethod
    def log_out(request: Request, response: Response) -> None:
        response.delete_cookie(cookie_name(request), path="/", httponly=True, samesite="strict")


def cookie_name(request: Request) -> str:
    port = request.url.port or (443 if request.url.scheme == "https" else 80)
    return f"{COOKIE}_{port}"
