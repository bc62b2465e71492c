"""The console's login and routing in process (the browser tests in
tests/integration/test_console.py drive the pages): the token into a cookie,
--no-auth open, the API unchanged for its clients, /docs offline."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.api.app import create_app
from conveyor.orchestration.service import Service
from conveyor.store.store import Store

with warnings.catch_warnings():  # starlette now prefers httpx2; httpx still works
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

TOKEN = "unit-console-token"
HTML = {"Accept": "text/html"}


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    store = Store.open(home=tmp_path / "home")
    yield Service(store)
    store.close()


def test_the_token_once_becomes_a_session_cookie(service: Service) -> None:
    client = TestClient(create_app(service, TOKEN), base_url="http://127.0.0.1:8123")
    login = client.get("/", headers=HTML)
    assert login.status_code == 401 and 'name="token"' in login.text and "Log out" not in login.text
    assert client.get("/?token=wrong").status_code == 401 and not client.cookies
    assert client.get("/console/fragments/tasks").status_code == 401

    answered = client.get(f"/?token={TOKEN}", follow_redirects=False)
    assert answered.status_code == 303 and answered.headers["location"] == "/"
    cookie = answered.headers["set-cookie"]
    assert cookie.startswith("conveyor_console_8123=") and TOKEN not in cookie
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    home = client.get("/", headers=HTML)
    assert home.status_code == 200 and "No tasks yet" in home.text and "Log out" in home.text

    # the API keeps its bearer token: the cookie opens only the console
    assert client.get("/tasks").status_code == 401
    assert client.get("/events", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    # actions need htmx's header (a cross-site form cannot send it)
    assert client.post("/console/actions/tasks/x/start").status_code == 403
    refused = client.post("/console/actions/tasks/x/start", headers={"HX-Request": "true"})
    assert refused.status_code == 200 and "nothing is applied yet" in refused.text

    client.post("/console/logout")
    assert client.get("/", headers=HTML).status_code == 401


def test_the_login_form_and_its_next_page(service: Service) -> None:
    client = TestClient(create_app(service, TOKEN))
    sent = client.post(
        "/console/login", data={"token": TOKEN, "next": "//evil.example/"}, follow_redirects=False
    )
    assert sent.status_code == 303 and sent.headers["location"] == "/"
    sent = client.post("/console/login", data={"token": TOKEN, "next": "/rules"}, follow_redirects=False)
    assert sent.headers["location"] == "/rules"
    assert client.post("/console/login", data={"token": "nope"}).status_code == 401


def test_no_auth_serves_the_console_open(service: Service) -> None:
    client = TestClient(create_app(service, None))
    home = client.get("/", headers=HTML)
    assert home.status_code == 200 and "Log out" not in home.text
    assert client.get("/health").status_code == 200  # the API, as before, no token needed


def test_the_api_docs_load_nothing_from_elsewhere(service: Service) -> None:
    client = TestClient(create_app(service, TOKEN))
    docs = client.get("/docs")
    assert docs.status_code == 200
    assert "/console/static/swagger-ui/swagger-ui-bundle.js" in docs.text
    assert "cdn." not in docs.text and "https://" not in docs.text.split("<body>")[0]
    bundle = client.get("/console/static/swagger-ui/swagger-ui-bundle.js")
    assert bundle.status_code == 200 and len(bundle.content) > 1_000_000
    assert client.get("/console/static/htmx.min.js").status_code == 200
    assert client.get("/openapi.json").json()["info"]["title"] == "Conveyor"
