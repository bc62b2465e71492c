"""The lake operations: the controller's entries (list, edit), a curation run,
and SQL over the curated tables."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from conveyor.core.errors import ConfigError, NotFoundError
from conveyor.core.extras import needs_extra
from conveyor.core.names import did_you_mean
from conveyor.lake.controller import Controller, ControllerEntry, Lake, format_time, parse_names, parse_time
from conveyor.lake.jobs import curate, lakes_with_controllers
from conveyor.service.models import (
    CurationRuns,
    LakeProcessResult,
    LakeTable,
    LakeTableList,
    LakeTableResult,
    QueryResult,
)
from conveyor.stack.model import Stack


@dataclass(frozen=True)
class LakeTableChange:
    """Edits of one controller entry; None leaves a member as it is, and for the
    text members ``"null"`` (or empty) clears it."""

    active: bool | None = None
    primary_key: str | None = None
    partition_key: str | None = None
    last_full_load_date: str | None = None
    last_incremental_file: str | None = None


def lake_tables(stack: Stack, lake: str | None = None) -> LakeTableList:
    with lakes_with_controllers(stack, lake) as pairs:
        return LakeTableList(
            [LakeTable(**entry.public(owner.name)) for owner, c in pairs for entry in c.entries.values()]
        )


def curation_runs(stack: Stack, limit: int) -> CurationRuns:
    """The newest ``limit`` curation commits over every curated table of every lake."""
    with needs_extra("curation runs", "lake"):
        from conveyor.lake.history import curation_runs as table_runs

    runs: list[dict[str, Any]] = []
    with lakes_with_controllers(stack) as pairs:
        for lake, controller in pairs:
            for table in sorted(controller.entries):
                runs += table_runs(lake, table)
    runs.sort(key=lambda r: r["time"] or "", reverse=True)
    return CurationRuns(runs[:limit])


def set_lake_table(stack: Stack, table: str, change: LakeTableChange, lake: str | None = None) -> LakeTable:
    with lakes_with_controllers(stack, lake) as pairs:
        owner, controller, entry = _find(pairs, table)
        if change.active is not None:
            entry.active = change.active
        if change.primary_key is not None:
            entry.primary_key = parse_names(change.primary_key)
        if change.partition_key is not None:
            entry.partition_key = parse_names(change.partition_key)
        if change.last_full_load_date is not None:
            text = change.last_full_load_date
            when = None if text.lower() in ("", "null") else parse_time(text)
            entry.last_full_load_date = None if when is None else format_time(when)
        if change.last_incremental_file is not None:
            value = change.last_incremental_file.strip()
            entry.last_incremental_file = None if value.lower() in ("", "null") else value
        controller.save()
        return LakeTable(**entry.public(owner.name))


def _find(pairs: list[tuple[Lake, Controller]], table: str) -> tuple[Lake, Controller, ControllerEntry]:
    holders = [(lake, c) for lake, c in pairs if table in c.entries]
    if len(holders) > 1:
        raise ConfigError(
            f"lake table {table!r} is in several lakes ({', '.join(lake.name for lake, _ in holders)}); "
            "pick one with --lake"
        )
    if holders:
        lake, controller = holders[0]
        return lake, controller, controller.entries[table]
    if len(pairs) != 1:
        known = [name for _, c in pairs for name in c.entries]
        raise NotFoundError(f"no lake table named {table!r}" + did_you_mean(table, known))
    schema, dot, name = table.partition(".")
    if not (dot and schema and name):
        raise ConfigError(f"a lake table is named schema.table, not {table!r}")
    lake, controller = pairs[0]
    entry = controller.entries[table] = ControllerEntry(table)
    return lake, controller, entry


def lake_process(
    stack: Stack,
    table: str | None = None,
    lake: str | None = None,
    engine: str | None = None,
    master: str | None = None,
) -> LakeProcessResult:
    results = curate(stack, lake, table, engine, master)
    return LakeProcessResult([LakeTableResult(**r.as_dict()) for r in results])


def query(stack: Stack, sql: str) -> QueryResult:
    with needs_extra("lake queries", "lake"):
        from conveyor.lake.catalog import build_catalog, run_query

    with lakes_with_controllers(stack) as pairs:
        catalog = build_catalog(lake for lake, _ in pairs)
        try:
            result = run_query(catalog, sql)
        finally:
            catalog.connection.close()
    answer = QueryResult(result.to_pylist())
    answer._columns = list(result.column_names)
    return answer
