"""`conveyor stack export` writes the applied stack as YAML that `conveyor apply`
stores again unchanged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from support.aws import shop_folder
from support.cli import conveyor

STACK = """
endpoints:
  shop-db: {engine: sqlite, path: ./data/shop.sqlite}
  warehouse: {engine: duckdb, path: ./data/warehouse.duckdb, dialect: redshift}
  pg: {engine: postgres, url: "postgresql://etl@127.0.0.1:5432/dw", password: "${env:DW_PASSWORD}"}
  lake: {engine: lake, path: ./lake, format: parquet, settings: {AddColumnName: true}}
tasks:
  shop-load:
    source: shop-db
    target: warehouse
    table_mappings: file://mappings.json
    settings: {FullLoadSettings: {TargetTablePrepMode: DROP_AND_CREATE}}
state_machines:
  flow: {definition: file://flow.asl.json, description: the flow}
functions:
  hello: {handler: ./hello.py:handler, environment: {A: "1"}, timeout: 30}
rules:
  nightly:
    schedule: "cron(0 2 * * ? *)"
    timezone: Europe/Paris
    targets: [{state_machine: flow, input: {n: null}}]
  on-app: {event_pattern: {source: [my.app]}, targets: [{state_machine: flow, input_path: "$.detail"}]}
lake_tables:
  dbo.customer: {primary_key: [id], partition_key: []}
"""
FLOW = {"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": None, "End": True}}}


def stored(home: Path) -> dict[str, Any]:
    from conveyor.store.store import Store

    store = Store.open(home)
    try:
        document = store.stack_document() or {}
    finally:
        store.close()
    return {k: v for k, v in document.items() if k not in ("base_dir", "file")}


def test_export_round_trips_through_apply(tmp_path: Path) -> None:
    file = shop_folder(tmp_path, STACK)
    (tmp_path / "flow.asl.json").write_text(json.dumps(FLOW))
    (tmp_path / "hello.py").write_text("def handler(event, context):\n    return event\n")
    first = tmp_path / "home"
    applied = conveyor(first, "apply", str(file))
    assert applied.returncode == 0, applied.stderr

    shown = conveyor(first, "stack", "export")
    assert shown.returncode == 0, shown.stderr
    exported = yaml.safe_load(shown.stdout)
    assert "${env:DW_PASSWORD}" in shown.stdout  # the reference, never a value
    assert exported["state_machines"]["flow"]["definition"] == FLOW  # documents inline, nulls kept
    assert exported["rules"]["nightly"]["targets"] == [{"state_machine": "flow", "input": {"n": None}}]

    out = tmp_path / "elsewhere" / "exported.yaml"
    out.parent.mkdir()
    written = conveyor(first, "stack", "export", "--output", str(out))
    assert written.returncode == 0 and out.read_text() == shown.stdout
    second = tmp_path / "home2"
    again = conveyor(second, "apply", str(out))
    assert again.returncode == 0, again.stderr
    assert stored(second) == stored(first)


def test_export_before_anything_is_applied_says_so(tmp_path: Path) -> None:
    shown = conveyor(tmp_path / "home", "stack", "export")
    assert shown.returncode == 1
    assert "nothing is applied yet" in shown.stderr
