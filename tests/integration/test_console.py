"""The web console in a real browser (Debian's chromium driven by Playwright)
against a real `conveyor serve`: a PostgreSQL change-capture task, an SQLite
load into the lake curated by a state machine, a schedule and a statement.
Screenshots of each page go to the run's temp dir (printed at the end)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from support.cli import conveyor
from support.serve import Serve, wait_for
from support.servers import PostgresServer, free_port

playwright_sync = pytest.importorskip("playwright.sync_api")
Page = playwright_sync.Page
expect = playwright_sync.expect

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

CHROMIUM = os.environ.get("CONVEYOR_CHROMIUM", "/usr/bin/chromium")
TOKEN = "console-test-token-0123456789abcdef"
ROWS = 1000
LAKE_ROWS = 40
WAIT_MS = 30_000


def _curate_definition() -> dict[str, Any]:
    """Check the input, curate the lake table, succeed; a failure goes to Fail."""
    return {
        "StartAt": "Check input",
        "States": {
            "Check input": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.skip", "BooleanEquals": True, "Next": "Skipped"}],
                "Default": "Curate",
            },
            "Curate": {
                "Type": "Task",
                "Resource": "arn:aws:states:::glue:startJobRun.sync",
                "Parameters": {"JobName": "curate-lake", "Arguments": {"--table": "main.orders"}},
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Curation failed"}],
                "Next": "Done",
            },
            "Skipped": {"Type": "Pass", "End": True},
            "Done": {"Type": "Succeed"},
            "Curation failed": {"Type": "Fail", "Error": "CurationFailed"},
        },
    }


def _stack(tmp: Path, source: str, target: str) -> Path:
    with sqlite3.connect(tmp / "shop.sqlite") as conn:
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, region TEXT NOT NULL, qty INTEGER)")
        conn.executemany(
            "INSERT INTO orders VALUES (?, ?, ?)",
            [(i, ("eu", "us")[i % 2], i) for i in range(1, LAKE_ROWS + 1)],
        )
    conn.close()
    include_all = {
        "rules": [
            {
                "rule-type": "selection",
                "rule-id": "1",
                "rule-name": "all",
                "object-locator": {"schema-name": "public", "table-name": "%"},
                "rule-action": "include",
            }
        ]
    }
    document = {
        "endpoints": {
            "sales": {"engine": "postgres", "url": source},
            "warehouse": {"engine": "postgres", "url": target},
            "shop": {"engine": "sqlite", "path": "./shop.sqlite"},
            "lake": {"engine": "lake", "path": "./lake", "settings": {"AddColumnName": True}},
        },
        "tasks": {
            "sales-sync": {
                "source": "sales",
                "target": "warehouse",
                "migration_type": "full-load-and-cdc",
                "table_mappings": include_all,
            },
            "shop-to-lake": {"source": "shop", "target": "lake"},
        },
        "lake_tables": {"main.orders": {"primary_key": "id", "partition_key": "region"}},
        "state_machines": {"curate": {"definition": _curate_definition()}},
        "rules": {
            "nightly-curation": {"schedule": "cron(0 2 * * ? *)", "targets": [{"state_machine": "curate"}]}
        },
    }
    path = tmp / "conveyor.yaml"
    path.write_text(json.dumps(document))
    return path


class Console:
    def __init__(self, serve: Serve, home: Path, source: str, shots: Path) -> None:
        self.serve, self.home, self.source, self.shots = serve, home, source, shots
        self.url = serve.url

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        return httpx.request(method, f"{self.url}{path}", headers=headers, timeout=30, **kwargs)

    def shot(self, page: Page, name: str) -> None:
        page.screenshot(path=str(self.shots / f"{name}.png"), full_page=True)


@pytest.fixture(scope="module")
def console(pg_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    tmp = tmp_path_factory.mktemp("console")
    source, target = (pg_server.url(pg_server.new_database(p)) for p in ("consrc", "condst"))
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id bigint PRIMARY KEY, name text, qty integer NOT NULL)")
        conn.execute(f"INSERT INTO items SELECT g, 'item ' || g, g % 7 FROM generate_series(1, {ROWS}) g")
        conn.execute("CREATE TABLE notes (id bigint PRIMARY KEY, body text)")
        conn.execute("INSERT INTO notes SELECT g, 'note ' || g FROM generate_series(1, 25) g")
    home = tmp / "home"
    stack = _stack(tmp, source, target)
    applied = conveyor(home, "apply", str(stack))
    assert applied.returncode == 0, applied.stderr
    shots = tmp / "screenshots"
    shots.mkdir()
    serve = Serve(home, free_port(), {"CONVEYOR_API_TOKEN": TOKEN})
    try:
        serve.ready()
        yield Console(serve, home, source, shots)
        assert serve.terminate() == 0
    finally:
        serve.kill()
        print(f"console screenshots: {shots}")
        keep = os.environ.get("CONVEYOR_CONSOLE_SCREENSHOTS")
        if keep:
            shutil.copytree(shots, keep, dirs_exist_ok=True)


@pytest.fixture(scope="module")
def browser(console: Console) -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no chromium at {CHROMIUM} (scripts/install-system-packages.sh installs it)")
    with playwright_sync.sync_playwright() as play:
        launched = play.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any, console: Console) -> Iterator[Page]:
    """A logged-in page in its own browser context, offline but for the server."""
    context = browser.new_context(viewport={"width": 1366, "height": 860})
    context.route(
        "**/*",
        lambda route: route.continue_() if route.request.url.startswith(console.url) else route.abort(),
    )
    opened = context.new_page()
    opened.on("dialog", lambda dialog: dialog.accept())  # the buttons' confirmations
    response = opened.goto(f"{console.url}/?token={TOKEN}")
    assert response is not None and response.ok
    try:
        yield opened
    finally:
        context.close()


def test_without_the_token_no_data_is_shown(browser: Any, console: Console) -> None:
    context = browser.new_context()
    try:
        anonymous = context.new_page()
        for path in ("/", "/tasks/sales-sync", "/executions", "/lake", "/statements", "/rules"):
            response = anonymous.goto(console.url + path)
            assert response is not None and response.status == 401, path
            expect(anonymous.get_by_role("heading", name="Log in")).to_be_visible()
            assert anonymous.locator("table, .status, svg").count() == 0
            assert "shop-to-lake" not in anonymous.content() and "warehouse" not in anonymous.content()
        fragment = anonymous.request.get(f"{console.url}/console/fragments/tasks")
        assert fragment.status == 401 and "sales-sync" not in fragment.text()
        action = anonymous.request.post(
            f"{console.url}/console/actions/tasks/sales-sync/start", headers={"HX-Request": "true"}
        )
        assert action.status == 403
        wrong = anonymous.goto(f"{console.url}/?token=not-the-token")
        assert wrong is not None and wrong.status == 401
        expect(anonymous.get_by_role("alert")).to_contain_text("not this server's")
        assert not context.cookies()
        console.shot(anonymous, "login")
        # The API still answers JSON to a client, and needs its bearer token.
        assert httpx.get(f"{console.url}/tasks/sales-sync", timeout=10).status_code == 401
    finally:
        context.close()


def test_logging_in_sets_a_session_cookie_and_lists_every_task(page: Page, console: Console) -> None:
    assert page.url == f"{console.url}/"  # the token left the address bar
    [cookie] = page.context.cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and TOKEN not in cookie["value"]
    expect(page.get_by_role("heading", name="Tasks", exact=True)).to_be_visible()
    for name, kind in (("sales-sync", "full-load-and-cdc"), ("shop-to-lake", "full-load")):
        row = page.locator(f"tr[data-task='{name}']")
        expect(row.locator(".status")).to_have_text("ready")
        expect(row).to_contain_text(kind)
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    assert not page.context.cookies()
    # the login form logs in as well
    page.get_by_label("Serve token").fill(TOKEN)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("tr[data-task='sales-sync']")).to_be_visible()


def _nav(page: Page, name: str) -> None:
    page.get_by_role("navigation", name="Main").get_by_role("link", name=name, exact=True).click()


def _cell(page: Page, table: str, column: str) -> Any:
    return page.locator(f"#table-stats tr[data-table='{table}'] td[data-col='{column}']")


def test_task_page_loads_captures_live_and_stops_and_resumes(page: Page, console: Console) -> None:
    page.get_by_role("link", name="sales-sync").click()
    expect(page.get_by_role("heading", name="Task sales-sync")).to_be_visible()
    page.evaluate("window.__notReloaded = true")

    page.get_by_role("button", name="Start").click()  # confirmed by the dialog handler
    expect(page.locator("#task-status")).to_have_text("running", timeout=WAIT_MS)
    expect(_cell(page, "public.items", "FullLoadRows")).to_have_text(str(ROWS), timeout=WAIT_MS)
    expect(_cell(page, "public.notes", "FullLoadRows")).to_have_text("25")

    with psycopg.connect(console.source, autocommit=True) as conn:
        conn.execute("INSERT INTO items SELECT g, 'new ' || g, 1 FROM generate_series(1001, 1030) g")
        conn.execute("UPDATE items SET qty = qty + 1 WHERE id <= 12")
        conn.execute("DELETE FROM items WHERE id > 1025")
    expect(_cell(page, "public.items", "Inserts")).to_have_text("30", timeout=WAIT_MS)
    expect(_cell(page, "public.items", "Updates")).to_have_text("12", timeout=WAIT_MS)
    expect(_cell(page, "public.items", "Deletes")).to_have_text("5", timeout=WAIT_MS)
    with psycopg.connect(console.source, autocommit=True) as conn:
        conn.execute("INSERT INTO notes VALUES (26, 'one more')")
    expect(_cell(page, "public.notes", "Inserts")).to_have_text("1", timeout=WAIT_MS)
    assert page.evaluate("window.__notReloaded") is True  # counted up without a reload

    expect(page.locator("svg.chart").first).to_be_visible(timeout=WAIT_MS)  # latency samples
    expect(page.get_by_role("cell", name="Replication task has started.").first).to_be_visible()
    console.shot(page, "task")

    page.get_by_role("button", name="Stop").click()
    expect(page.locator("#task-status")).to_have_text("stopped", timeout=WAIT_MS)
    expect(page.locator("#flash")).to_contain_text("stopping")
    described = json.loads(conveyor(console.home, "tasks", "describe", "sales-sync", "--json").stdout)
    assert described["status"] == "stopped"

    page.get_by_role("button", name="Resume").click()
    expect(page.locator("#task-status")).to_have_text("running", timeout=WAIT_MS)
    with psycopg.connect(console.source, autocommit=True) as conn:
        conn.execute("INSERT INTO notes VALUES (27, 'after resume')")
    expect(_cell(page, "public.notes", "Inserts")).to_have_text("1", timeout=WAIT_MS)  # this run's count
    page.get_by_role("button", name="Stop").click()
    expect(page.locator("#task-status")).to_have_text("stopped", timeout=WAIT_MS)

    page.get_by_role("button", name="Reload table public.notes").click()  # one table, from the page
    expect(page.locator("#flash")).to_contain_text("resuming to reload public.notes")
    expect(page.locator("#task-status")).to_have_text("running", timeout=WAIT_MS)
    # The reloaded table's counts are taken over once the stream passes the reload's
    # snapshot: on an idle source that is at the next change (of any table).
    reloaded = _cell(page, "public.notes", "FullLoadRows")
    with psycopg.connect(console.source, autocommit=True) as conn:
        for _ in range(60):  # bounded: a change a second until the reload is taken over
            conn.execute("UPDATE items SET qty = qty + 1 WHERE id = 1")
            if reloaded.inner_text() == "27":
                break
            page.wait_for_timeout(1000)
    expect(reloaded).to_have_text("27", timeout=WAIT_MS)
    page.get_by_role("button", name="Stop").click()
    expect(page.locator("#task-status")).to_have_text("stopped", timeout=WAIT_MS)

    _nav(page, "Tasks")
    expect(page.locator("tr[data-task='sales-sync'] .status")).to_have_text("stopped")
    console.shot(page, "home")


@pytest.fixture(scope="module")
def curated(console: Console) -> str:
    """The lake loaded and an execution of ``curate`` run to its end; its id."""
    loaded = conveyor(console.home, "tasks", "start", "shop-to-lake", "--wait")
    assert loaded.returncode == 0, loaded.stderr
    started = console.api("POST", "/state-machines/curate/executions", json={"input": {"skip": False}})
    assert started.status_code == 200, started.text
    execution_id = started.json()["executionArn"].rsplit(":", 1)[1]
    ref = started.json().get("executionId") or execution_id

    def finished() -> dict[str, Any] | None:
        described = console.api("GET", f"/executions/{ref}").json()
        return described if described["status"] != "RUNNING" else None

    described = wait_for(finished, 60, "the curation execution to end")
    assert described["status"] == "SUCCEEDED", described
    return str(described["executionId"])


def test_an_execution_graph_shows_the_path_taken(page: Page, console: Console, curated: str) -> None:
    _nav(page, "Executions")
    page.locator(f"tr[data-execution='{curated}'] a").click()
    expect(page.locator("#execution-status")).to_have_text("SUCCEEDED")
    graph = page.locator("svg.graph")
    expect(graph).to_be_visible()
    for state in ("Check input", "Curate", "Done"):
        expect(graph.locator(f"g[data-state='{state}']")).to_have_attribute("data-visited", "true")
    for state in ("Skipped", "Curation failed"):
        expect(graph.locator(f"g[data-state='{state}']")).to_have_attribute("data-visited", "false")
    taken = graph.locator("path.edge.taken")
    pairs = {
        (taken.nth(i).get_attribute("data-from"), taken.nth(i).get_attribute("data-to"))
        for i in range(taken.count())
    }
    assert pairs == {
        ("__start__", "Check input"),
        ("Check input", "Curate"),
        ("Curate", "Done"),
        ("Done", "__end__"),
    }
    expect(page.locator("#path-taken")).to_have_text("Check input → Curate → Done")
    curate = page.locator("article.state", has=page.get_by_role("heading", name="Curate"))
    expect(curate).to_contain_text('"JobRunState": "SUCCEEDED"')  # its output
    console.shot(page, "execution")


def test_a_query_on_the_lake_page_returns_rows(page: Page, console: Console, curated: str) -> None:
    _nav(page, "Lake")
    controller = page.get_by_role("table", name="One entry per lake table")
    expect(controller.get_by_role("rowheader", name="main.orders")).to_be_visible()
    expect(page.get_by_role("table", name="Commits of the curated Delta tables")).to_contain_text(
        "main.orders"
    )
    page.get_by_label("SQL").fill(
        "SELECT region, count(*) AS n, sum(qty) AS total FROM main.orders GROUP BY region ORDER BY region"
    )
    page.get_by_role("button", name="Run query").click()
    result = page.locator("#query-result table")
    expect(result.locator("tbody tr")).to_have_count(2, timeout=WAIT_MS)
    rows = [[c.inner_text() for c in r.locator("td").all()] for r in result.locator("tbody tr").all()]
    assert rows == [["eu", "20", "420"], ["us", "20", "400"]]
    page.get_by_label("SQL").fill("SELECT * FROM main.nope")
    page.get_by_role("button", name="Run query").click()
    expect(page.locator("#query-result [role=alert]")).to_contain_text("query failed")
    page.get_by_label("SQL").fill("SELECT * FROM main.orders ORDER BY id LIMIT 8")
    page.get_by_role("button", name="Run query").click()
    expect(page.locator("#query-result tbody tr")).to_have_count(8)
    console.shot(page, "lake")


def test_rules_statements_and_offline_api_docs(page: Page, console: Console) -> None:
    _nav(page, "Rules")
    row = page.locator("tr[data-rule='nightly-curation']")
    expect(row).to_contain_text("cron(0 2 * * ? *)")
    expect(row.locator(".next-fire")).to_contain_text("02:00")
    console.shot(page, "rules")

    executed = console.api(
        "POST",
        "/statements",
        json={"ClusterIdentifier": "warehouse", "Sql": "SELECT 6 * 7 AS answer"},
    )
    assert executed.status_code == 200, executed.text
    statement = executed.json()["Id"]
    _nav(page, "Statements")
    entry = page.locator(f"tr[data-statement='{statement}']")
    expect(entry.locator(".status")).to_have_text("FINISHED", timeout=WAIT_MS)
    entry.get_by_role("button").click()
    expect(page.locator("#statement-result table tbody tr")).to_have_count(1)
    expect(page.locator("#statement-result table")).to_contain_text("answer")
    expect(page.locator("#statement-result tbody td")).to_have_text("42")
    console.shot(page, "statements")

    _nav(page, "API")  # every asset local: the page is offline but for us
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Conveyor", timeout=WAIT_MS)
    expect(page.get_by_text("/tasks/{name}/stop").first).to_be_visible()
