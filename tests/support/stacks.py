"""Stack files of one task, as the integration tests write them (JSON is YAML)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def select_all(schema: str = "%", table: str = "%") -> dict[str, Any]:
    """The selection rule that includes every table of ``schema`` matching ``table``."""
    return {
        "rule-type": "selection",
        "rule-id": "1",
        "rule-name": "all",
        "object-locator": {"schema-name": schema, "table-name": table},
        "rule-action": "include",
    }


def one_task(
    path: Path,
    source: dict[str, Any],
    target: dict[str, Any],
    *,
    task: str = "sync",
    migration_type: str = "full-load-and-cdc",
    schema: str = "%",
    rules: list[dict[str, Any]] | None = None,
    settings: dict[str, Any] | None = None,
    names: tuple[str, str] = ("src", "dst"),
    mappings: bool = True,
) -> Path:
    """Write a stack of endpoints ``names`` (source, target) and one task ``task``
    between them to ``path``: every table of ``schema`` unless ``rules`` are given
    (no ``table_mappings`` at all when ``mappings`` is false: the task's default)."""
    spec: dict[str, Any] = {"source": names[0], "target": names[1], "migration_type": migration_type}
    if mappings:
        spec["table_mappings"] = {"rules": rules if rules is not None else [select_all(schema)]}
    if settings is not None:
        spec["settings"] = settings
    document = {"endpoints": {names[0]: source, names[1]: target}, "tasks": {task: spec}}
    path.write_text(json.dumps(document))
    return path
