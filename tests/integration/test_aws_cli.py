"""The AWS CLI (from the registry, a test dependency) against `conveyor serve`: one
representative command per service, credentials from the environment, and a
signature made with the wrong secret refused by every service."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.aws import KEYS, SHOP_STACK, served_stack
from support.serve import Serve

pytestmark = pytest.mark.e2e

STACK = (
    SHOP_STACK
    + """
state_machines:
  passer: {definition: {StartAt: P, States: {P: {Type: Pass, End: true}}}}
  quick: {type: EXPRESS, definition: {StartAt: P, States: {P: {Type: Pass, End: true}}}}
"""
)
COMMANDS = {
    "dms": ["dms", "describe-replication-tasks"],
    "stepfunctions": [
        "stepfunctions",
        "start-execution",
        "--state-machine-arn",
        "arn:aws:states:local:000000000000:stateMachine:passer",
        "--input",
        '{"from": "cli"}',
    ],
    "redshift-data": [
        "redshift-data",
        "execute-statement",
        "--cluster-identifier",
        "warehouse",
        "--database",
        "dev",
        "--sql",
        "SELECT 1 AS one",
    ],
    "events": ["events", "put-events", "--entries", '[{"Source": "cli", "DetailType": "t", "Detail": "{}"}]'],
    "scheduler": ["scheduler", "list-schedules"],
    "glue": ["glue", "get-job-runs", "--job-name", "dmscdc-lake"],
}


def aws_command() -> str:
    found = Path(sys.executable).parent / "aws"
    if found.exists():
        return str(found)
    which = shutil.which("aws")
    assert which, "the AWS CLI is a test dependency: pip install -e '.[dev]' (awscli)"
    return which


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    with served_stack(tmp_path_factory.mktemp("cli"), STACK) as server:
        yield server


def aws(
    server: Serve, args: list[str], secret: str | None = None, extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env |= {
        "AWS_ACCESS_KEY_ID": KEYS["CONVEYOR_AWS_ACCESS_KEY_ID"],
        "AWS_SECRET_ACCESS_KEY": secret or KEYS["CONVEYOR_AWS_SECRET_ACCESS_KEY"],
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_MAX_ATTEMPTS": "1",
    }
    env |= extra or {}
    return subprocess.run(
        [aws_command(), "--endpoint-url", server.url, "--output", "json", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def answer(server: Serve, service: str) -> Any:
    done = aws(server, COMMANDS[service])
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout) if done.stdout.strip() else {}


def test_one_command_per_service(served: Serve) -> None:
    tasks = answer(served, "dms")["ReplicationTasks"]
    assert [t["ReplicationTaskIdentifier"] for t in tasks] == ["shop-load"]
    assert answer(served, "stepfunctions")["executionArn"].startswith(
        "arn:aws:states:local:000000000000:execution:passer:"
    )
    statement = answer(served, "redshift-data")
    assert statement["Id"] and statement["ClusterIdentifier"] == "warehouse"
    put = answer(served, "events")
    assert put["FailedEntryCount"] == 0 and put["Entries"][0]["EventId"]
    assert answer(served, "scheduler")["Schedules"] == []
    assert answer(served, "glue")["JobRuns"] == []


@pytest.mark.parametrize("service", sorted(COMMANDS))
def test_a_wrong_secret_is_refused(served: Serve, service: str) -> None:
    done = aws(served, COMMANDS[service], secret="not-the-secret")
    assert done.returncode != 0
    assert "InvalidSignatureException" in done.stderr, done.stderr


SYNC = [
    "stepfunctions",
    "start-sync-execution",
    "--state-machine-arn",
    "arn:aws:states:local:000000000000:stateMachine:quick",
    "--input",
    '{"from": "cli"}',
]


def test_start_sync_execution_needs_host_prefix_injection_off(served: Serve, tmp_path: Path) -> None:
    """botocore sends StartSyncExecution to ``sync-<host>``: on a loopback endpoint that
    host does not resolve, and the SDKs' documented switch (environment or config file)
    keeps the endpoint as given."""
    refused = aws(served, SYNC)
    assert refused.returncode != 0
    assert "sync-127.0.0.1" in refused.stderr, refused.stderr
    by_env = aws(served, SYNC, extra={"AWS_DISABLE_HOST_PREFIX_INJECTION": "true"})
    assert by_env.returncode == 0, by_env.stderr
    run = json.loads(by_env.stdout)
    assert run["status"] == "SUCCEEDED" and json.loads(run["output"]) == {"from": "cli"}
    assert run["billingDetails"]["billedMemoryUsedInMB"] == 64
    config = tmp_path / "config"
    config.write_text("[default]\ndisable_host_prefix_injection = true\n")
    by_file = aws(served, SYNC, extra={"AWS_CONFIG_FILE": str(config)})
    assert by_file.returncode == 0, by_file.stderr
    assert json.loads(json.loads(by_file.stdout)["output"]) == {"from": "cli"}
