"""`conveyor serve` is never open by accident: a generated token kept under
CONVEYOR_HOME, a blank token refused, --no-auth on loopback only, bodies limited."""

from __future__ import annotations

import re
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support.cli import conveyor
from support.serve import Serve, wait_for
from support.servers import free_port

pytestmark = pytest.mark.e2e


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def login_url(server: Serve) -> str:
    """The login URL serve printed, read from its log."""
    pattern = re.compile(r"conveyor serve: (http://localhost:\d+/\?token=(\S+))")

    def printed() -> re.Match[str] | None:
        return pattern.search(server.log_path.read_text())

    match = wait_for(printed, 30, "serve to print its login URL")
    return str(match.group(2))


def test_a_generated_token_is_kept_private_and_reused(home: Path) -> None:
    port = free_port()
    first = Serve(home, port)
    try:
        first.ready()
        token = login_url(first)
        stored = home / "serve-token"
        assert stored.read_text().strip() == token and len(token) >= 32
        assert stat.S_IMODE(stored.stat().st_mode) == 0o600
        assert httpx.get(f"{first.url}/events", timeout=5).status_code == 401
        blank = {"Authorization": "Bearer"}
        assert httpx.get(f"{first.url}/events", headers=blank, timeout=5).status_code == 401
        good = {"Authorization": f"Bearer {token}"}
        assert httpx.get(f"{first.url}/events", headers=good, timeout=5).status_code == 200
        assert first.terminate() == 0
    finally:
        first.kill()

    second = Serve(home, port)
    try:
        second.ready()
        assert login_url(second) == token
    finally:
        second.kill()


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        ((), {"CONVEYOR_API_TOKEN": "   "}, "CONVEYOR_API_TOKEN is set but blank"),
        (("--token-env", "MY_TOKEN"), {"MY_TOKEN": ""}, "MY_TOKEN is set but blank"),
        (("--no-auth", "--host", "0.0.0.0"), {}, "refusing to bind 0.0.0.0 with --no-auth"),
        (("--host", "0.0.0.0"), {}, "outside loopback the API needs a token you chose"),
    ],
)
def test_serve_refuses_to_run_open(
    home: Path, args: tuple[str, ...], env: dict[str, str], message: str
) -> None:
    refused = conveyor(home, "serve", "--port", str(free_port()), *args, env=env, timeout=30)
    assert refused.returncode == 2, refused.stderr
    assert message in refused.stderr
    assert not (home / "serve-token").exists()


@pytest.fixture
def limited(home: Path) -> Iterator[tuple[Serve, dict[str, str]]]:
    token = {"Authorization": "Bearer body-limit-token"}
    server = Serve(home, free_port(), {"CONVEYOR_API_TOKEN": "body-limit-token"}, "--max-body-bytes", "2000")
    try:
        server.ready(token)
        yield server, token
    finally:
        server.kill()


def test_request_bodies_over_the_limit_are_refused_and_not_stored(
    limited: tuple[Serve, dict[str, str]],
) -> None:
    server, auth = limited
    small = {"source": "my.app", "detail-type": "small", "detail": {"k": 1}}
    assert httpx.post(f"{server.url}/events", json=small, headers=auth, timeout=5).status_code == 200

    big = {"source": "my.app", "detail-type": "big", "detail": {"k": "x" * 5000}}
    declared = httpx.post(f"{server.url}/events", json=big, headers=auth, timeout=5)
    assert declared.status_code == 413
    assert declared.json() == {"error": "request body over the limit of 2000 bytes"}

    as_json = auth | {"Content-Type": "application/json"}

    def chunked() -> Iterator[bytes]:
        yield b'{"source": "my.app", "detail-type": "chunked", "detail": {"k": "'
        for _ in range(10):
            yield b"y" * 500
        yield b'"}}'

    streamed = httpx.post(f"{server.url}/events", content=chunked(), headers=as_json, timeout=5)
    assert streamed.status_code == 413

    def small_chunks() -> Iterator[bytes]:
        yield b'{"source": "my.app", "detail-type": "chunked-small",'
        yield b' "detail": {"k": 2}}'

    accepted = httpx.post(f"{server.url}/events", content=small_chunks(), headers=as_json, timeout=5)
    assert accepted.status_code == 200, accepted.text

    listed = httpx.get(f"{server.url}/events", headers=auth, timeout=5).json()["Events"]
    kinds = [e["detail-type"] for e in listed]
    assert "small" in kinds and "chunked-small" in kinds
    assert "big" not in kinds and "chunked" not in kinds
