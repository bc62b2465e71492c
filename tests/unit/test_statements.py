"""Pieces of orchestration that need no database server: the Data API's typed fields,
EventBridge input transformers, the scheduler's missed-fire policies."""

from __future__ import annotations

import decimal
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from conveyor.orchestration.bus import render_template, target_input
from conveyor.orchestration.scheduler import Scheduler
from conveyor.orchestration.statements import _named, typed_field
from conveyor.service.apply import merge_into_store
from conveyor.stack.loader import load_stack
from conveyor.stack.model import RuleTarget
from conveyor.store.store import Store


@pytest.mark.parametrize(
    ("value", "field"),
    [
        (None, {"isNull": True}),
        (True, {"booleanValue": True}),
        (7, {"longValue": 7}),
        (1.5, {"doubleValue": 1.5}),
        (decimal.Decimal("685.00"), {"stringValue": "685.00"}),
        ("x", {"stringValue": "x"}),
        (date(2024, 2, 29), {"stringValue": "2024-02-29"}),
        (datetime(2024, 2, 29, 1, 2, 3), {"stringValue": "2024-02-29 01:02:03"}),
        (b"\x01\xff", {"blobValue": "Af8="}),
    ],
)
def test_values_become_the_data_apis_typed_fields(value: Any, field: dict[str, Any]) -> None:
    assert typed_field(value) == field


def test_named_parameters_become_psycopg_placeholders() -> None:
    assert _named("select :a, '%' || :b_2, x::text") == "select %(a)s, '%%' || %(b_2)s, x::text"


EVENT = {
    "source": "aws.dms",
    "resources": ["arn:aws:dms:local:000000000000:task:t"],
    "detail": {"eventId": "DMS-EVENT-0079", "n": 3, "msg": 'say "hi"'},
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ('{"task": <task>, "n": <n>}', {"task": "arn:aws:dms:local:000000000000:task:t", "n": 3}),
        (
            '{"text": "id <id> of <task>"}',
            {"text": "id DMS-EVENT-0079 of arn:aws:dms:local:000000000000:task:t"},
        ),
        ('{"msg": "<msg>"}', {"msg": 'say "hi"'}),
        ("task <task> stopped", "task arn:aws:dms:local:000000000000:task:t stopped"),
        ('{"missing": <nothing>}', {"missing": None}),
        ('{"rule": "<aws.events.rule-name>"}', {"rule": "r"}),
    ],
)
def test_input_transformer_renders_as_eventbridge_does(template: str, expected: Any) -> None:
    target = RuleTarget(
        state_machine="m",
        input_transformer={
            "InputPathsMap": {
                "task": "$.resources[0]",
                "n": "$.detail.n",
                "id": "$.detail.eventId",
                "msg": "$.detail.msg",
                "nothing": "$.detail.absent",
            },
            "InputTemplate": template,
        },
    )
    assert target_input(target, EVENT, "r") == expected


def test_input_and_input_path() -> None:
    assert target_input(RuleTarget(state_machine="m", input={"a": 1}), EVENT, "r") == {"a": 1}
    assert target_input(RuleTarget(state_machine="m", input_path="$.detail.n"), EVENT, "r") == 3
    assert target_input(RuleTarget(state_machine="m"), EVENT, "r") is EVENT
    with pytest.raises(ValueError, match="at most one of input, input_path"):
        RuleTarget(state_machine="m", input={}, input_path="$")
    assert render_template("plain", {}) == "plain"


class _Recorder:
    def __init__(self) -> None:
        self.started: list[tuple[str, Any]] = []

    def start(self, state_machine: str, execution_input: Any, *, run: str) -> dict[str, Any]:
        self.started.append((state_machine, execution_input))
        return {"executionArn": f"arn:{len(self.started)}"}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    (tmp_path / "m.asl.json").write_text('{"StartAt": "P", "States": {"P": {"Type": "Pass", "End": true}}}')
    (tmp_path / "conveyor.yaml").write_text(
        "state_machines:\n  m: {definition: file://m.asl.json}\n"
        "rules:\n"
        "  hourly: {schedule: rate(1 hour), targets: [{state_machine: m}]}\n"
        "  paris:\n"
        "    schedule: cron(30 2 * * ? *)\n"
        "    timezone: Europe/Paris\n"
        "    targets: [{state_machine: m, input: {}}]\n"
    )
    opened = Store.open(tmp_path / "home")
    merge_into_store(opened, load_stack(tmp_path / "conveyor.yaml"))
    yield opened
    opened.close()


def at(hour: int, minute: int = 0, day: int = 1) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(("policy", "fires"), [("once", 1), ("all", 5), ("skip", 0)])
def test_missed_fires_follow_the_policy(store: Store, policy: Any, fires: int) -> None:
    recorder = _Recorder()
    scheduler = Scheduler(store, recorder, missed=policy)
    scheduler.tick(at(0, 30))  # first sight: nothing fires, the rules start from now
    assert recorder.started == []
    scheduler.tick(at(5, 30))  # down from 00:30 to 05:30: 01:00 .. 05:00 were missed

    def hourly() -> list[dict[str, Any]]:  # the paris rule's input is {}
        return [i for _, i in recorder.started if i]

    assert len(hourly()) == fires
    if policy == "once":
        assert hourly()[0]["time"] == "2026-03-01T05:00:00Z"
    scheduler.tick(at(6, 0, 1))  # on time: fires whatever the policy
    assert len(hourly()) == fires + 1


def test_cron_fires_in_its_time_zone(store: Store) -> None:
    recorder = _Recorder()
    scheduler = Scheduler(store, recorder)
    scheduler.tick(at(0, 0))
    fired = scheduler.tick(at(1, 30))  # 02:30 in Paris (UTC+1 in March before the change)
    assert [f["Rule"] for f in fired] == ["hourly", "paris"]
    assert recorder.started[-1] == ("m", {})
    described = {row["Rule"]: row for row in scheduler.describe(at(1, 31))}
    assert described["paris"]["NextFire"].startswith("2026-03-02T01:30")
