"""ARNs carry the account and region an installation is configured with."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.aws import aws_client, served_stack
from support.cli import conveyor

pytestmark = pytest.mark.e2e

STACK = """
endpoints:
  shop-db: {engine: sqlite, path: ./data/shop.sqlite}
  warehouse: {engine: duckdb, path: ./data/warehouse.duckdb}
tasks:
  shop-load: {source: shop-db, target: warehouse, table_mappings: file://mappings.json}
state_machines:
  passer: {definition: {StartAt: P, States: {P: {Type: Pass, End: true}}}}
  quick: {type: EXPRESS, definition: {StartAt: P, States: {P: {Type: Pass, End: true}}}}
rules:
  on-app: {event_pattern: {source: [my.app]}, targets: [{state_machine: passer}]}
"""
WHERE = {"CONVEYOR_AWS_ACCOUNT_ID": "123456789012", "CONVEYOR_AWS_REGION": "eu-west-1"}


def test_arns_name_the_configured_account_and_region(tmp_path: Path) -> None:
    with served_stack(tmp_path, STACK, WHERE) as server:
        dms = aws_client(server.url, "dms", region="eu-west-1")
        (task,) = dms.describe_replication_tasks()["ReplicationTasks"]
        assert task["ReplicationTaskArn"] == "arn:aws:dms:eu-west-1:123456789012:task:shop-load"
        assert task["SourceEndpointArn"] == "arn:aws:dms:eu-west-1:123456789012:endpoint:shop-db"
        sfn = aws_client(server.url, "stepfunctions", region="eu-west-1")
        machines = {m["name"]: m["stateMachineArn"] for m in sfn.list_state_machines()["stateMachines"]}
        assert machines["passer"] == "arn:aws:states:eu-west-1:123456789012:stateMachine:passer"
        started = sfn.start_execution(stateMachineArn=machines["passer"], name="one")
        assert started["executionArn"] == "arn:aws:states:eu-west-1:123456789012:execution:passer:one"
        synced = sfn.start_sync_execution(stateMachineArn=machines["quick"], name="two")
        assert synced["executionArn"].startswith("arn:aws:states:eu-west-1:123456789012:express:quick:two:")
        events = aws_client(server.url, "events", region="eu-west-1")
        assert (
            events.describe_rule(Name="on-app")["Arn"] == "arn:aws:events:eu-west-1:123456789012:rule/on-app"
        )
        # the same install asked again gives the same ARNs
        assert (
            dms.describe_replication_tasks()["ReplicationTasks"][0]["ReplicationTaskArn"]
            == (task["ReplicationTaskArn"])
        )


def test_an_account_id_that_is_not_twelve_digits_is_refused(tmp_path: Path) -> None:
    shown = conveyor(tmp_path / "home", "tasks", "list", env={"CONVEYOR_AWS_ACCOUNT_ID": "12ab"})
    assert shown.returncode != 0
    assert "CONVEYOR_AWS_ACCOUNT_ID='12ab': an account id is 12 digits" in shown.stderr
