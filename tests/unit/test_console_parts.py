"""The console's server-side drawing and routing: the state machine graph from
ASL, the charts, and which requests go to the console rather than the API."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from conveyor.api.console import wants_page
from conveyor.api.console.auth import ConsoleAuth
from conveyor.api.console.charts import Series, line_chart, task_charts
from conveyor.api.console.graph import END, START, edges_of, layers_of, state_graph

DEFINITION = {
    "StartAt": "Check",
    "States": {
        "Check": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.go", "BooleanEquals": True, "Next": "Work"}],
            "Default": "Skip",
        },
        "Work": {
            "Type": "Task",
            "Resource": "arn:aws:states:::lambda:invoke",
            "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Failed"}],
            "Next": "Again?",
        },
        "Again?": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.more", "BooleanEquals": True, "Next": "Work"}],
            "Default": "Done",
        },
        "Skip": {"Type": "Pass", "End": True},
        "Done": {"Type": "Succeed"},
        "Failed": {"Type": "Fail", "Error": "X"},
    },
}


def test_edges_cover_next_choices_default_catch_and_end() -> None:
    edges = {(e.source, e.target, e.kind) for e in edges_of(DEFINITION)}
    assert edges == {
        (START, "Check", "start"),
        ("Check", "Work", "choice"),
        ("Check", "Skip", "default"),
        ("Work", "Failed", "catch"),
        ("Work", "Again?", "next"),
        ("Again?", "Work", "choice"),
        ("Again?", "Done", "default"),
        ("Skip", END, "end"),
        ("Done", END, "end"),
        ("Failed", END, "end"),
    }
    assert layers_of(DEFINITION, edges_of(DEFINITION)) == [
        [START],
        ["Check"],
        ["Work", "Skip"],
        ["Again?", "Failed"],
        ["Done"],
        [END],
    ]


def test_the_graph_highlights_the_path_taken_loops_included() -> None:
    svg = state_graph(DEFINITION, ["Check", "Work", "Again?", "Work", "Again?", "Done"], status="SUCCEEDED")
    visited = dict(re.findall(r'data-state="([^"]+)" data-visited="(true|false)"', svg))
    assert visited == {
        "Check": "true",
        "Work": "true",
        "Again?": "true",
        "Skip": "false",
        "Done": "true",
        "Failed": "false",
    }
    taken = set(re.findall(r'class="edge edge-\w+ taken" data-from="([^"]+)" data-to="([^"]+)"', svg))
    assert taken == {
        (START, "Check"),
        ("Check", "Work"),
        ("Work", "Again?"),
        ("Again?", "Work"),
        ("Again?", "Done"),
        ("Done", END),
    }
    failed = state_graph(DEFINITION, ["Check", "Work"], status="FAILED", failed_state="Work")
    assert 'class="node visited failed" data-state="Work"' in failed
    assert "taken" not in failed.split('data-to="__end__"')[0].rsplit("<path", 1)[1]
    running = state_graph(DEFINITION, ["Check", "Work"], status="RUNNING")
    assert 'class="node visited current" data-state="Work"' in running


def test_names_are_escaped_in_the_graph() -> None:
    definition = {"StartAt": "<b>&", "States": {"<b>&": {"Type": "Succeed"}}}
    svg = state_graph(definition, ["<b>&"], status="SUCCEEDED")
    assert "<b>" not in svg and "&lt;b&gt;&amp;" in svg


def test_charts_scale_to_the_samples_and_say_when_there_are_none() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    points = [(start + timedelta(seconds=i), float(i)) for i in range(4)]
    svg = line_chart("CDC latency", [Series("source", points, "s-source")], "s")
    assert "<polyline" in svg and "latest: source 3 s" in svg and ">5 s<" in svg  # axis up to 5
    assert "no samples yet" in line_chart("Retained WAL", [Series("wal", [], "s-wal")], "bytes")
    rows = [{"at": start, "latency_source": 1.0, "latency_target": None, "retained_wal_bytes": 3 << 20}]
    latency, wal = task_charts(rows)
    assert "source (CDCLatencySource) 1 s" in latency and "3.0 MiB" in wal


def _scope(path: str, method: str = "GET", **headers: str) -> dict[str, object]:
    return {
        "type": "http",
        "path": path,
        "method": method,
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }


def test_browsers_get_pages_and_api_clients_get_json() -> None:
    html = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    assert wants_page(_scope("/"))
    assert wants_page(_scope("/lake")) and wants_page(_scope("/docs"))
    assert wants_page(_scope("/console/fragments/tasks"))
    assert wants_page(_scope("/console/login", "POST"))
    assert wants_page(_scope("/tasks/sync", **html))
    assert not wants_page(_scope("/tasks/sync"))  # httpx, curl: */*
    assert not wants_page(_scope("/tasks/sync", **html, Authorization="Bearer x"))
    assert not wants_page(_scope("/tasks/sync/stop", "POST", **html))
    assert not wants_page(_scope("/", "POST", **{"X-Amz-Target": "AmazonDMSv20160101.DescribeEndpoints"}))
    assert not wants_page(_scope("/events", **html))


def test_the_session_cookie_is_derived_from_the_token() -> None:
    auth = ConsoleAuth("secret-token")
    assert auth.token_ok("secret-token") and auth.token_ok(" secret-token\n")
    assert not auth.token_ok("other") and not auth.token_ok(None) and not auth.open
    assert ConsoleAuth(None).open and ConsoleAuth(None).token_ok(None)
