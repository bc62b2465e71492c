"""The curation job's runs over one curated table, read back from the Delta
log: every commit the job made carries the controller values it established
(``conveyor.curation`` in its commitInfo), with deltalake's operation metrics.
Read through the lake's own file system (see ``delta_commits.commit_values`` for why
not ``DeltaTable.history()``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from conveyor.lake.controller import Lake
from conveyor.lake.delta_commits import METADATA_KEY

RUNS_SHOWN = 10


def curation_runs(lake: Lake, table: str, limit: int = RUNS_SHOWN) -> list[dict[str, Any]]:
    """The table's newest ``limit`` commits, newest first: version, time, operation,
    rows and files touched, and the controller values (None for a commit not made by
    the curation job)."""
    schema, name = table.split(".", 1)
    log_dir = f"{schema}/{name}/_delta_log"
    versions = sorted(
        (int(f[:-5]) for f in lake.curated.list_files(log_dir) if f.endswith(".json") and f[:-5].isdigit()),
        reverse=True,
    )
    runs = []
    for version in versions[:limit]:
        data = lake.curated.read_bytes(f"{log_dir}/{version:020d}.json")
        if data is None:
            continue
        for line in data.splitlines():
            info = json.loads(line).get("commitInfo") if line.strip() else None
            if info is None:
                continue
            runs.append(_run(lake.name, table, version, info))
            break
    return runs


def _run(lake: str, table: str, version: int, info: dict[str, Any]) -> dict[str, Any]:
    stamp = info.get("timestamp")
    when = datetime.fromtimestamp(stamp / 1000, UTC).isoformat(timespec="seconds") if stamp else None
    raw = info.get(METADATA_KEY)
    values = json.loads(raw) if isinstance(raw, str) else None
    metrics = info.get("operationMetrics") or {}
    return {
        "lake": lake,
        "table": table,
        "version": version,
        "time": when,
        "operation": info.get("operation"),
        "metrics": {k: v for k, v in metrics.items() if k.startswith("num") and v not in (0, None)},
        "by_curation": values is not None,
        "last_full_load_date": (values or {}).get("LastFullLoadDate"),
        "last_incremental_file": (values or {}).get("LastIncrementalFile"),
    }
