"""The migration service's task lifecycle through boto3: a task created, modified and
deleted through the API is stored as `conveyor apply` stores it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from support.aws import aws_client, served_stack, shop_folder
from support.cli import conveyor
from support.serve import wait_for

pytestmark = pytest.mark.e2e

CUSTOMERS_ONLY = {
    "rules": [
        {
            "rule-type": "selection",
            "rule-id": "1",
            "rule-name": "customers",
            "object-locator": {"schema-name": "main", "table-name": "customer"},
            "rule-action": "include",
        }
    ]
}
SETTINGS = {"FullLoadSettings": {"TargetTablePrepMode": "DROP_AND_CREATE"}}


def stored_document(home: Path) -> dict[str, Any]:
    from conveyor.store.store import Store

    store = Store.open(home)
    try:
        return store.stack_document() or {}
    finally:
        store.close()


def test_create_modify_delete_a_task_as_apply_would(tmp_path: Path) -> None:
    with served_stack(tmp_path / "served") as server:
        dms = aws_client(server.url, "dms")
        endpoints = {e["EndpointIdentifier"]: e["EndpointArn"] for e in dms.describe_endpoints()["Endpoints"]}
        created = dms.create_replication_task(
            ReplicationTaskIdentifier="customers-load",
            SourceEndpointArn=endpoints["shop-db"],
            TargetEndpointArn=endpoints["warehouse"],
            ReplicationInstanceArn="arn:aws:dms:local:000000000000:rep:conveyor",
            MigrationType="full-load",
            TableMappings=json.dumps(CUSTOMERS_ONLY),
            ReplicationTaskSettings=json.dumps(SETTINGS),
        )["ReplicationTask"]
        assert created["ReplicationTaskIdentifier"] == "customers-load"
        assert created["Status"] == "ready"
        arn = created["ReplicationTaskArn"]

        # the stored body is what `conveyor apply` stores for the same declaration
        other = tmp_path / "applied"
        other.mkdir()
        file = shop_folder(
            other,
            "endpoints:\n  shop-db: {engine: sqlite, path: ./data/shop.sqlite}\n"
            "  warehouse: {engine: duckdb, path: ./data/warehouse.duckdb}\n"
            "tasks:\n  customers-load: {source: shop-db, target: warehouse, migration_type: full-load,"
            f" table_mappings: {json.dumps(CUSTOMERS_ONLY)}, settings: {json.dumps(SETTINGS)}}}\n",
        )
        assert conveyor(other / "home", "apply", str(file)).returncode == 0
        home = tmp_path / "served" / "home"
        assert (
            stored_document(home)["tasks"]["customers-load"]
            == (stored_document(other / "home")["tasks"]["customers-load"])
        )

        with pytest.raises(dms.exceptions.ResourceAlreadyExistsFault):
            dms.create_replication_task(
                ReplicationTaskIdentifier="customers-load",
                SourceEndpointArn=endpoints["shop-db"],
                TargetEndpointArn=endpoints["warehouse"],
                ReplicationInstanceArn="x",
                MigrationType="full-load",
                TableMappings=json.dumps(CUSTOMERS_ONLY),
            )
        with pytest.raises(ClientError, match="InvalidParameterValueException") as bad:
            dms.create_replication_task(
                ReplicationTaskIdentifier="bad-mappings",
                SourceEndpointArn=endpoints["shop-db"],
                TargetEndpointArn=endpoints["warehouse"],
                ReplicationInstanceArn="x",
                MigrationType="full-load",
                TableMappings=json.dumps({"rules": []}),
            )
        assert "rules" in str(bad.value)
        with pytest.raises(dms.exceptions.ResourceNotFoundFault):
            dms.create_replication_task(
                ReplicationTaskIdentifier="no-source",
                SourceEndpointArn="arn:aws:dms:local:000000000000:endpoint:missing",
                TargetEndpointArn=endpoints["warehouse"],
                ReplicationInstanceArn="x",
                MigrationType="full-load",
                TableMappings=json.dumps(CUSTOMERS_ONLY),
            )

        # it runs as any applied task does
        dms.start_replication_task(ReplicationTaskArn=arn, StartReplicationTaskType="start-replication")

        def finished() -> dict[str, Any] | None:
            tasks = dms.describe_replication_tasks(
                Filters=[{"Name": "replication-task-arn", "Values": [arn]}]
            )["ReplicationTasks"]
            return tasks[0] if tasks[0]["Status"] in ("stopped", "failed") else None

        assert wait_for(finished, 60, "the full load")["Status"] == "stopped"
        tables = dms.describe_table_statistics(ReplicationTaskArn=arn)["TableStatistics"]
        assert {t["TableName"]: t["FullLoadRows"] for t in tables} == {"customer": 3}

        modified = dms.modify_replication_task(
            ReplicationTaskArn=arn,
            TableMappings=json.dumps(
                CUSTOMERS_ONLY
                | {
                    "rules": [
                        CUSTOMERS_ONLY["rules"][0]
                        | {"object-locator": {"schema-name": "main", "table-name": "%"}}
                    ]
                }
            ),
            MigrationType="full-load",
        )["ReplicationTask"]
        assert json.loads(modified["TableMappings"])["rules"][0]["object-locator"]["table-name"] == "%"
        assert stored_document(home)["tasks"]["customers-load"]["settings"] == SETTINGS  # kept
        with pytest.raises(ClientError, match="InvalidParameterValueException"):
            dms.modify_replication_task(ReplicationTaskArn=arn, MigrationType="sometimes")

        assert (
            dms.describe_replication_task_assessment_results(ReplicationTaskArn=arn)[
                "ReplicationTaskAssessmentResults"
            ]
            == []
        )
        with pytest.raises(ClientError, match="InvalidParameterValueException") as full_load:
            dms.reload_tables(
                ReplicationTaskArn=arn, TablesToReload=[{"SchemaName": "main", "TableName": "customer"}]
            )
        assert "full-load task" in str(full_load.value)

        deleted = dms.delete_replication_task(ReplicationTaskArn=arn)["ReplicationTask"]
        assert deleted["Status"] == "deleting"
        assert "customers-load" not in stored_document(home)["tasks"]
        names = [t["ReplicationTaskIdentifier"] for t in dms.describe_replication_tasks()["ReplicationTasks"]]
        assert names == ["shop-load"]
        with pytest.raises(dms.exceptions.ResourceNotFoundFault):
            dms.delete_replication_task(ReplicationTaskArn=arn)
        # Created, modified and deleted, as the service's events say (a refused call says nothing).
        described = dms.describe_events(SourceIdentifier="customers-load", SourceType="replication-task")
        events = [
            (e["Message"], tuple(e["EventCategories"]))
            for e in described["Events"][::-1]  # newest first: oldest first here
            if e["EventCategories"] != ["statechange"]  # it also ran
        ]
        assert events[0] == ("Replication task has been created.", ("creation",))
        assert events[-1] == ("Replication task has been deleted.", ("deletion",))
        assert set(events[1:-1]) == {("Replication task has been modified.", ("configuration change",))}


def test_a_running_task_is_not_modified_or_deleted_and_reloads_tables(tmp_path: Path) -> None:
    with served_stack(tmp_path) as server:
        dms = aws_client(server.url, "dms")
        created = dms.create_replication_task(
            ReplicationTaskIdentifier="shop-cdc",
            SourceEndpointArn="shop-db",  # a name works as the ARN does
            TargetEndpointArn="warehouse",
            ReplicationInstanceArn="conveyor",
            MigrationType="full-load-and-cdc",
            TableMappings=json.dumps(CUSTOMERS_ONLY),
        )["ReplicationTask"]
        arn = created["ReplicationTaskArn"]
        dms.start_replication_task(ReplicationTaskArn=arn, StartReplicationTaskType="start-replication")

        def capturing() -> dict[str, Any] | None:
            (task,) = dms.describe_replication_tasks(
                Filters=[{"Name": "replication-task-id", "Values": ["shop-cdc"]}]
            )["ReplicationTasks"]
            assert task["Status"] not in ("failed", "stopped"), task
            loaded = task["ReplicationTaskStats"]["TablesLoaded"] == 1
            return task if task["Status"] == "running" and loaded else None

        wait_for(capturing, 90, "the full load to hand over to capture")
        with pytest.raises(dms.exceptions.InvalidResourceStateFault):
            dms.modify_replication_task(ReplicationTaskArn=arn, MigrationType="full-load")
        with pytest.raises(dms.exceptions.InvalidResourceStateFault):
            dms.delete_replication_task(ReplicationTaskArn=arn)
        reloaded = dms.reload_tables(
            ReplicationTaskArn=arn, TablesToReload=[{"SchemaName": "main", "TableName": "customer"}]
        )
        assert reloaded["ReplicationTaskArn"] == arn
        with pytest.raises(dms.exceptions.ResourceNotFoundFault):
            dms.reload_tables(
                ReplicationTaskArn=arn, TablesToReload=[{"SchemaName": "main", "TableName": "nope"}]
            )
        # The service's event for it, once (the refused call says nothing).
        messages = [e["Message"] for e in dms.describe_events(SourceIdentifier="shop-cdc")["Events"]]
        assert [m for m in messages if "reload" in m] == [
            "A reload of table details has been requested. Tables: main.customer."
        ]

        dms.stop_replication_task(ReplicationTaskArn=arn)
        wait_for(
            lambda: (
                dms.describe_replication_tasks(
                    Filters=[{"Name": "replication-task-id", "Values": ["shop-cdc"]}]
                )["ReplicationTasks"][0]["Status"]
                == "stopped"
            ),
            60,
            "the task to stop",
        )
        assert dms.delete_replication_task(ReplicationTaskArn=arn)["ReplicationTask"]["Status"] == "deleting"
