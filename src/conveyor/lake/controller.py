"""The curation job's controller: one entry per lake table (ActiveFlag,
PrimaryKey, PartitionKey, LastFullLoadDate, LastIncrementalFile), the local
counterpart of the seed's DynamoDB controller table.

The entries live beside the curated tables, in ``<curated root>/_controller.json``,
written atomically (temporary file and rename locally, one object PUT on S3).
The curated root is the lake endpoint's ``curated_path`` option when given
(relative to the endpoint's path unless absolute or ``s3://``), otherwise
``<path>/curated``.

Entries are seeded from the stack's ``lake_tables``: a declaration that is new,
or that changed since it was last seeded, sets ActiveFlag, PrimaryKey and
PartitionKey; otherwise edits made with ``conveyor lake tables set`` stay.
Tables that have raw files but no declaration are listed inactive, as the
seed's stack lists every table for a person to review.

``TableVersion`` is the Delta table version the entry reflects. Every commit
of the curation job carries the controller values it establishes in the
commit's metadata; a run that finds a newer commit than ``TableVersion`` (a
crash between the commit and this file's update) takes the values from the
commit first, so nothing is applied twice.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from conveyor.connectors.lake import layout as lay
from conveyor.connectors.lake.filesystem import CONNECT_TIMEOUT, REQUEST_TIMEOUT, LakeFS
from conveyor.connectors.lake.settings import LakeConfig, lake_config
from conveyor.core.errors import ConfigError, NotFoundError
from conveyor.core.names import did_you_mean
from conveyor.lake.declarations import LakeDeclarations, LakeTableDeclaration

CONTROLLER_FILE = "_controller.json"
CURATED_OPTION = "curated_path"
DEFAULT_CURATED = "curated"
DELTA_RETRIES = 2
"""Retries of a failed S3 request of deltalake (three attempts, as the raw side's)."""


@dataclass
class ControllerEntry:
    """One lake table's row of the controller."""

    table: str
    """``schema.table``."""
    active: bool = False
    primary_key: tuple[str, ...] = ()
    partition_key: tuple[str, ...] = ()
    last_full_load_date: str | None = None
    """ISO 8601 UTC time of the full load the curated table stands on."""
    last_incremental_file: str | None = None
    """Name of the last change file applied (``20261123-110442123.csv``)."""
    table_version: int | None = None
    declared: dict[str, Any] | None = None
    """The stack declaration last seeded into this entry."""

    @property
    def schema_name(self) -> str:
        return self.table.split(".", 1)[0]

    @property
    def table_name(self) -> str:
        return self.table.split(".", 1)[1]

    def full_load_time(self) -> datetime | None:
        return parse_time(self.last_full_load_date)

    def to_json(self) -> dict[str, Any]:
        return {
            "ActiveFlag": self.active,
            "PrimaryKey": list(self.primary_key) or None,
            "PartitionKey": list(self.partition_key) or None,
            "LastFullLoadDate": self.last_full_load_date,
            "LastIncrementalFile": self.last_incremental_file,
            "TableVersion": self.table_version,
            "Declared": self.declared,
        }

    @classmethod
    def from_json(cls, table: str, data: Mapping[str, Any]) -> ControllerEntry:
        return cls(
            table=table,
            active=bool(data.get("ActiveFlag", False)),
            primary_key=tuple(_names(data.get("PrimaryKey"))),
            partition_key=tuple(_names(data.get("PartitionKey"))),
            last_full_load_date=data.get("LastFullLoadDate"),
            last_incremental_file=data.get("LastIncrementalFile"),
            table_version=data.get("TableVersion"),
            declared=data.get("Declared"),
        )

    def public(self, lake: str) -> dict[str, Any]:
        """The entry as ``conveyor lake tables --json`` shows it."""
        return {
            "Table": self.table,
            "Lake": lake,
            "ActiveFlag": self.active,
            "PrimaryKey": ",".join(self.primary_key) or None,
            "PartitionKey": ",".join(self.partition_key) or None,
            "LastFullLoadDate": self.last_full_load_date,
            "LastIncrementalFile": self.last_incremental_file,
            "TableVersion": self.table_version,
        }


def _names(value: Any) -> list[str]:
    """A key list from JSON or the CLI: a list, a comma-separated string, or null."""
    if value is None:
        return []
    if isinstance(value, str):
        value = value.split(",")
    names = [str(v).strip() for v in value]
    return [n for n in names if n and n.lower() != "null"]


def parse_names(text: str) -> tuple[str, ...]:
    return tuple(_names(text))


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"LastFullLoadDate {text!r} is not an ISO 8601 date and time") from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def format_time(when: datetime) -> str:
    return when.astimezone(UTC).isoformat()


@dataclass
class Lake:
    """A lake endpoint with its raw area and its curated area."""

    name: str
    config: LakeConfig
    raw: LakeFS
    curated: LakeFS
    curated_root: str
    """Local absolute folder or ``s3://bucket/prefix``."""
    curated_rel: str | None
    """The curated root relative to the raw root when it lies inside it (its
    files are not raw files)."""
    declared: dict[str, LakeTableDeclaration] = field(default_factory=dict)
    curation: dict[str, str] = field(default_factory=dict)
    """The endpoint's ``curation_engine`` and ``spark_master`` when set."""

    def table_uri(self, table: str) -> str:
        schema, name = table.split(".", 1)
        return f"{self.curated_root.rstrip('/')}/{schema}/{name}"

    def storage_options(self) -> dict[str, str] | None:
        """deltalake's options for an S3 curated root (None locally)."""
        if not self.config.is_s3:
            return None
        options: dict[str, str] = {}
        settings = self.config.settings
        if self.config.endpoint_url:
            options["AWS_ENDPOINT_URL"] = self.config.endpoint_url
            if self.config.endpoint_url.startswith("http://"):
                options["AWS_ALLOW_HTTP"] = "true"
        region = self.config.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        options["AWS_REGION"] = region or "us-east-1"
        if settings.access_key_id and settings.secret_access_key:
            options["AWS_ACCESS_KEY_ID"] = settings.access_key_id
            options["AWS_SECRET_ACCESS_KEY"] = settings.secret_access_key
            if settings.session_token:
                options["AWS_SESSION_TOKEN"] = settings.session_token
        options["AWS_S3_ALLOW_UNSAFE_RENAME"] = "true"
        # bounded as the raw side's requests are: an unanswered request fails
        # after REQUEST_TIMEOUT, a table after at most DELTA_RETRIES retries
        options["connect_timeout"] = f"{CONNECT_TIMEOUT:g}s"
        options["timeout"] = f"{REQUEST_TIMEOUT:g}s"
        options["max_retries"] = str(DELTA_RETRIES)
        options["retry_timeout"] = f"{REQUEST_TIMEOUT * (DELTA_RETRIES + 1):g}s"
        return options

    def close(self) -> None:
        self.raw.close()
        self.curated.close()


def open_lake(config: LakeConfig, curated_path: str | None = None) -> Lake:
    root = config.root.rstrip("/")
    if curated_path:
        if curated_path.startswith("s3://") or os.path.isabs(curated_path):
            curated_root = curated_path.rstrip("/")
        else:
            curated_root = f"{root}/{curated_path.strip('/')}"
    else:
        curated_root = f"{root}/{DEFAULT_CURATED}"
    if config.is_s3 != curated_root.startswith("s3://"):
        raise ConfigError(
            f"endpoint {config.name!r}: {CURATED_OPTION} must be on the same kind of store as the path"
        )
    if not config.is_s3:
        curated_root = os.path.abspath(curated_root)
    curated_config = replace(config, root=curated_root)
    raw = LakeFS(config)
    curated = LakeFS(curated_config)
    inside = curated.base.removeprefix(raw.base.rstrip("/") + "/")
    curated_rel = inside if inside != curated.base else None
    return Lake(config.name, config, raw, curated, curated_root, curated_rel)


def open_lakes(stack: LakeDeclarations) -> list[Lake]:
    """Every lake endpoint of the stack, with the lake tables declared for it."""
    names = sorted(name for name, spec in stack.endpoints.items() if spec.engine == "lake")
    lakes: dict[str, Lake] = {}
    for name in names:
        endpoint = stack.endpoint_config(name)
        lakes[name] = open_lake(lake_config(endpoint), endpoint.options.get(CURATED_OPTION))
        lakes[name].curation = {
            key: str(endpoint.options[key])
            for key in ("curation_engine", "spark_master")
            if endpoint.options.get(key) is not None
        }
    problems = []
    for table, spec in sorted(stack.lake_tables.items()):
        target = spec.endpoint
        if target is None:
            if len(names) != 1:
                problems.append(
                    f"lake_tables.{table}: "
                    + (
                        "the stack declares no lake endpoint"
                        if not names
                        else f"set endpoint (the stack has several lakes: {', '.join(names)})"
                    )
                )
                continue
            target = names[0]
        lakes[target].declared[table] = spec
    if problems:
        for lake in lakes.values():
            lake.close()
        raise ConfigError("; ".join(problems))
    return [lakes[name] for name in names]


def raw_tables(lake: Lake) -> set[str]:
    """``schema.table`` of every table with a recorded full load in the raw area."""
    found = set()
    for rel in lake.raw.list_tree(lay.join(lay.STATE_DIR, "tables")):
        parts = rel.split("/")
        if len(parts) >= 2 and parts[-1].endswith(".json"):
            found.add(f"{parts[-2]}.{parts[-1].removesuffix('.json')}")
    return found


class Controller:
    """The controller entries of one lake."""

    def __init__(self, lake: Lake) -> None:
        self.lake = lake
        self.entries: dict[str, ControllerEntry] = {}
        self.load()

    def load(self) -> None:
        data = self.lake.curated.read_bytes(CONTROLLER_FILE)
        if data is None:
            self.entries = {}
            return
        try:
            document = json.loads(data)
            tables = document["tables"]
            self.entries = {
                table: ControllerEntry.from_json(table, body) for table, body in sorted(tables.items())
            }
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ConfigError(
                f"{self.lake.curated.location(CONTROLLER_FILE)} is not a controller document; "
                "fix or remove it (it is re-seeded from the stack and the curated tables)"
            ) from None

    def save(self) -> None:
        document = {
            "lake": self.lake.name,
            "updated_at": datetime.now(UTC).isoformat(),
            "tables": {table: entry.to_json() for table, entry in sorted(self.entries.items())},
        }
        self.lake.curated.write_bytes(CONTROLLER_FILE, json.dumps(document, indent=1).encode())

    def seed(self, discover: bool = True) -> bool:
        """Bring in the stack's declarations (and, with ``discover``, raw tables
        not declared, inactive). True when something changed."""
        changed = False
        for table, spec in self.lake.declared.items():
            declared = {
                "active": spec.active,
                "primary_key": list(spec.primary_key),
                "partition_key": list(spec.partition_key),
            }
            entry = self.entries.get(table)
            if entry is None:
                entry = self.entries[table] = ControllerEntry(table)
            if entry.declared != declared:
                entry.active = spec.active
                entry.primary_key = tuple(spec.primary_key)
                entry.partition_key = tuple(spec.partition_key)
                entry.declared = declared
                changed = True
        if discover:
            for table in sorted(raw_tables(self.lake) - set(self.entries)):
                self.entries[table] = ControllerEntry(table)
                changed = True
        return changed

    def get(self, table: str) -> ControllerEntry:
        entry = self.entries.get(table)
        if entry is None:
            raise NotFoundError(
                f"no lake table {table!r} in lake {self.lake.name!r}" + did_you_mean(table, self.entries)
            )
        return entry
