"""The curated Delta table's commits of this job: opening the table, the
controller values a commit carries, and recovering a controller entry from them."""

from __future__ import annotations

import json
from typing import Any

from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from conveyor.lake.controller import ControllerEntry, Lake

METADATA_KEY = "conveyor.curation"
HISTORY_DEPTH = 50
"""How many of a table's newest commits recovery looks through for this job's."""


def open_delta(lake: Lake, table: str) -> DeltaTable | None:
    try:
        return DeltaTable(lake.table_uri(table), storage_options=lake.storage_options())
    except TableNotFoundError:
        return None


def commit_values(lake: Lake, table: str, dt: DeltaTable) -> tuple[int, dict[str, Any]] | None:
    """The newest commit of this job among the table's last HISTORY_DEPTH
    commits: its version and the controller values it carries.

    The commits' ``commitInfo`` is read from the ``_delta_log`` JSON files
    through the lake's own file system, not with ``DeltaTable.history()``:
    deltalake 1.6's ``history()`` holds the Python GIL for the whole of its
    S3 requests (its other calls used here release it). That stalls every
    other thread of the process meanwhile; when a thread of this process is
    what answers S3 (moto in the tests) nothing answers until the requests
    time out."""
    schema, name = table.split(".", 1)
    newest = dt.version()
    for version in range(newest, max(newest - HISTORY_DEPTH, -1), -1):
        data = lake.curated.read_bytes(f"{schema}/{name}/_delta_log/{version:020d}.json")
        if data is None:  # removed by log cleanup (older commits live in a checkpoint)
            return None
        for line in data.splitlines():
            if not line.strip():
                continue
            info = json.loads(line).get("commitInfo")
            if info is None:
                continue
            raw = info.get(METADATA_KEY)
            if raw is not None:
                return version, json.loads(raw)
            break
    return None


def recover(lake: Lake, entry: ControllerEntry, dt: DeltaTable | None) -> bool:
    """Bring the entry up to the table's newest commit of this job."""
    if dt is None:
        if entry.table_version is not None:  # the curated table was removed: start afresh
            entry.last_full_load_date = None
            entry.last_incremental_file = None
            entry.table_version = None
            return True
        return False
    found = commit_values(lake, entry.table, dt)
    if found is None:
        return False
    version, values = found
    if entry.table_version is not None and version <= entry.table_version:
        return False
    entry.last_full_load_date = values.get("LastFullLoadDate")
    entry.last_incremental_file = values.get("LastIncrementalFile")
    entry.table_version = version
    return True
