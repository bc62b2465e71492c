"""Endpoint options: every key a connector reads is declared for its engine,
and the declarations check names, types and ranges."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from conveyor.stack.endpoint_options import option_names, option_problems
from conveyor.stack.endpoints_spec import EndpointSpec

CONNECTORS = Path(__file__).parents[2] / "src" / "conveyor" / "connectors"
READ = re.compile(r"""(?:options|settings)\.get\(\s*["']([a-z_]+)["']""")
NOT_OPTIONS = {"settings"}  # the nested mapping itself


def read_keys(engine_dir: str) -> set[str]:
    keys: set[str] = set()
    for path in (CONNECTORS / engine_dir).glob("*.py"):
        keys |= set(READ.findall(path.read_text(encoding="utf-8")))
    return keys - NOT_OPTIONS


@pytest.mark.parametrize(
    ("engine", "folder"),
    [
        ("postgres", "postgres"),
        ("mysql", "mysql"),
        ("sqlite", "sqlite"),
        ("duckdb", "duckdb"),
        ("dynamodb", "dynamodb"),
        ("nats", "nats"),
    ],
)
def test_every_option_a_connector_reads_is_declared(engine: str, folder: str) -> None:
    undeclared = read_keys(folder) - set(option_names(engine))
    assert not undeclared, f"{folder} reads options its engine does not declare: {sorted(undeclared)}"


def test_the_scan_finds_the_options_it_should() -> None:
    assert {"slot_name", "publication_name", "heartbeat_seconds"} <= read_keys("postgres")
    assert read_keys("duckdb") == {"memory_limit"}
    assert {"busy_timeout", "batch_rows"} <= read_keys("sqlite")


OPTIONS: list[tuple[str, dict[str, Any], list[str]]] = [
    ("postgres", {"slot_name": "my_slot", "publication_name": "Pub", "heartbeat_seconds": 0}, []),
    ("postgres", {"slot_name": "My-Slot"}, ["settings.slot_name"]),
    ("postgres", {"heartbeat_seconds": "often"}, ["settings.heartbeat_seconds"]),
    ("postgres", {"slotname": "x"}, ["settings.slotname"]),
    ("postgres", {"slot_name": "${env:SLOT}"}, []),
    ("duckdb", {"memory_limit": "1.5GB"}, []),
    ("duckdb", {"memory_limit": "512 MiB"}, []),
    ("duckdb", {"memory_limit": "half"}, ["settings.memory_limit"]),
    ("duckdb", {"memory_limit": 128}, ["settings.memory_limit"]),
    ("sqlite", {"busy_timeout": 0.5, "batch_rows": 10}, []),
    ("sqlite", {"busy_timeout": -1, "batch_rows": 0}, ["settings.busy_timeout", "settings.batch_rows"]),
    ("mysql", {"server_id": 7}, ["settings.server_id"]),
    ("dynamodb", {"total_segments": 2, "incremental": {"attribute": "at", "number_unit": "ms"}}, []),
    ("dynamodb", {"incremental": "updated_at", "conflicting_values": "fail"}, []),
    ("dynamodb", {"conflicting_values": "merge"}, ["settings.conflicting_values"]),
    ("dynamodb", {"incremental": {"atribute": "x"}},
     ["settings.incremental.attribute", "settings.incremental.atribute"]),
    ("lake", {"DatePartitionEnabled": True, "EncryptionMode": "SSE_S3"}, []),
    ("lake", {"DatePartitionEnable": True}, ["settings.DatePartitionEnable"]),
    ("nats", {"stream": "ORDERS", "subject_prefix": "cdc.sales", "duplicate_window_seconds": 600}, []),
    ("nats", {"subject_prefix": "cdc.*", "stream": "a.b"}, ["settings.stream", "settings.subject_prefix"]),
]  # fmt: skip


@pytest.mark.parametrize(("engine", "settings", "paths"), OPTIONS)
def test_options_are_checked(engine: str, settings: dict[str, Any], paths: list[str]) -> None:
    assert [path for path, _ in option_problems(engine, settings)] == paths


def test_options_reach_the_connector_config_at_the_top_level(tmp_path: Path) -> None:
    spec = EndpointSpec.model_validate(
        {"engine": "duckdb", "path": "dw.duckdb", "settings": {"memory_limit": "64MB"}},
        context={"base_dir": tmp_path},
    )
    config = spec.to_config("dw", tmp_path)
    assert config.options["memory_limit"] == "64MB"
    assert config.options["settings"] == {"memory_limit": "64MB"}
