"""What a lake's raw area holds for a table: its recorded full loads (LOAD
files) and its change files, from one listing of the area."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

from conveyor.connectors.lake import layout as lay
from conveyor.core.errors import ConveyorError, TerminalError
from conveyor.core.schema import TableRef, TableSchema
from conveyor.lake.controller import Lake, parse_time

_DATE_CHARS = frozenset("0123456789-_")


@dataclass(frozen=True)
class FullLoad:
    bucket_path: str
    when: datetime
    schema: TableSchema
    layout: lay.FileLayout
    files: tuple[str, ...]
    """Relative paths of the LOAD files, in counter order."""

    @property
    def folder(self) -> str:
        return lay.table_folder(self.bucket_path, self.schema.ref)


@dataclass(frozen=True)
class ChangeFile:
    name: str
    rel: str
    written: bool = True
    """False: only a TRUNCATE was recorded under this name (``layout.truncated_path``)."""


@dataclass
class TableFiles:
    full_loads: list[FullLoad] = field(default_factory=list)
    changes: list[ChangeFile] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)


class RawIndex:
    """One listing of a lake's raw area, shared by the tables of a run."""

    def __init__(self, lake: Lake) -> None:
        self.lake = lake
        skip = lake.curated_rel.strip("/") + "/" if lake.curated_rel else None
        self.tree = [rel for rel in lake.raw.list_tree("") if skip is None or not rel.startswith(skip)]
        state_dir = lay.join(lay.STATE_DIR, "tables")
        self.states = [
            lay.join(state_dir, rel)
            for rel in lake.raw.list_tree(state_dir)
            if rel.endswith(".json") and rel.count("/") >= 1
        ]
        unchanged_dir = lay.join(lay.STATE_DIR, "unchanged")
        self.marked = {rel.removesuffix(".json") for rel in lake.raw.list_tree(unchanged_dir)}
        """Change files with partial updates (``layout.unchanged_path``)."""
        truncated_dir = lay.join(lay.STATE_DIR, "truncated")
        self.truncated = {rel.removesuffix(".json") for rel in lake.raw.list_tree(truncated_dir)}
        """Change-file names a TRUNCATE was recorded under (``layout.truncated_path``)."""

    def table_files(self, ref: TableRef) -> TableFiles:
        found = TableFiles()
        state_dir = lay.join(lay.STATE_DIR, "tables")
        for rel in self.states:
            parts = rel.removeprefix(state_dir + "/").split("/")
            if parts[-2:] != [ref.schema, f"{ref.name}.json"]:
                continue
            bucket_path = "/".join(parts[:-2])
            try:
                found.full_loads.append(self._full_load(rel, bucket_path))
            except (ConveyorError, ValueError, KeyError, TypeError) as exc:
                found.problems.append((self.lake.raw.location(rel), f"unreadable load record: {exc}"))
        load_files = {f for load in found.full_loads for f in load.files}
        for rel in self.tree:
            parts = rel.split("/")
            rest = _after_table(parts, ref)
            if rest is None:
                continue
            name = rest[-1]
            if lay.CHANGE_RE.match(name):
                found.changes.append(ChangeFile(name, rel))
            elif lay.LOAD_RE.match(name) and len(rest) == 1:
                if rel not in load_files and not any(
                    rel.startswith(f.folder + "/") for f in found.full_loads
                ):
                    found.foreign.append(rel)  # LOAD files with no load record
            else:
                found.foreign.append(rel)
        listed = {c.rel for c in found.changes}
        for rel in self.truncated - listed:  # a TRUNCATE with no change after it in its batch
            rest = _after_table(rel.split("/"), ref)
            if rest is not None and lay.CHANGE_RE.match(rest[-1]):
                found.changes.append(ChangeFile(rest[-1], rel, written=False))
        found.changes.sort(key=lambda c: (c.name, c.rel))
        found.full_loads.sort(key=lambda f: (f.when, f.bucket_path))
        return found

    def _full_load(self, state_rel: str, bucket_path: str) -> FullLoad:
        data = self.lake.raw.read_bytes(state_rel)
        if data is None:
            raise TerminalError("disappeared")
        schema, layout, files = lay.parse_table_state(data)
        when = parse_time(json.loads(data).get("written_at"))
        if when is None:
            raise TerminalError("no written_at")
        folder = lay.table_folder(bucket_path, schema.ref)
        ordered = sorted(files, key=lambda name: lay.load_number(name) or 0)
        return FullLoad(bucket_path, when, schema, layout, tuple(f"{folder}/{name}" for name in ordered))


def _after_table(parts: list[str], ref: TableRef) -> list[str] | None:
    """What follows ``<schema>/<table>/`` in a path (optional date-partition
    folders and the file name), or None when the path is not the table's."""
    for i in range(len(parts) - 2):
        if parts[i] == ref.schema and parts[i + 1] == ref.name:
            rest = parts[i + 2 :]
            if all(set(p) <= _DATE_CHARS for p in rest[:-1]):
                return rest
    return None
