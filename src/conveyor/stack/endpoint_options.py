"""The options each engine's connector reads, as an endpoint's ``settings``.

A stack file writes them under the endpoint's ``settings``::

    sales-db:
      engine: postgres
      url: postgresql://app@127.0.0.1/sales
      settings: {slot_name: sales_slot, publication_name: sales_pub, heartbeat_seconds: 30}

Each engine's model below declares every option its connector reads (with
types and ranges), so a typo is refused at `conveyor apply` with the closest
name instead of being ignored. ``EndpointSpec.to_config`` hands the options
to the connector in ``EndpointConfig.options`` (a lake reads its S3 settings,
validated by ``connectors.lake.settings``). A test compares these models with
the keys the connectors' code reads.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

from conveyor.core.names import closest, did_you_mean
from conveyor.core.problems import Problem, located, problems_from_validation_error


class _Options(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


PG_NAME = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]{1,63}$")]
"""A replication slot's name: lower-case letters, digits and underscores, at most 63."""
MEMORY_PATTERN = re.compile(r"(?i)^\s*\d+(\.\d+)?\s*(b|kb|mb|gb|tb|kib|mib|gib|tib)\s*$")


class PostgresOptions(_Options):
    slot_name: PG_NAME | None = Field(
        default=None,
        description="an existing logical slot (pgoutput) to capture from; Conveyor never drops it",
    )
    publication_name: Annotated[str, StringConstraints(min_length=1, max_length=63)] | None = Field(
        default=None, description="an existing publication of the task's tables; Conveyor never alters it"
    )
    heartbeat_seconds: float = Field(
        default=60, ge=0, le=86400, description="idle seconds before a WAL heartbeat (0: never)"
    )


class MySQLOptions(_Options):
    pass


class SQLiteOptions(_Options):
    busy_timeout: float = Field(default=5, gt=0, le=3600, description="seconds to wait for a lock")
    batch_rows: int = Field(default=1000, ge=1, le=1_000_000, description="change rows per polled group")


class DuckDBOptions(_Options):
    memory_limit: str = Field(default="1GB", description="DuckDB's memory_limit, e.g. 128MB or 2GB")

    @field_validator("memory_limit")
    @classmethod
    def _size(cls, value: str) -> str:
        if not MEMORY_PATTERN.match(value):
            raise ValueError("expected a size such as 128MB, 1.5GB or 512MiB")
        return value


class DynamoDBIncremental(_Options):
    attribute: str
    interval_seconds: float = Field(default=60, ge=0)
    type: Literal["string", "number", "S", "N", "s", "n"] | None = None
    start: str | int | float | None = None
    overlap_seconds: float = Field(default=0, ge=0)
    number_unit: Literal["s", "ms", "us", "ns"] = "s"
    high_water_mark_store: Literal["target"] = "target"


class DynamoDBOptions(_Options):
    endpoint_url: str | None = None
    region: str | None = None
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = Field(default=None, repr=False)
    aws_session_token: str | None = Field(default=None, repr=False)
    profile: str | None = None
    retry_base_seconds: float = Field(default=0.05, gt=0)
    retry_cap_seconds: float = Field(default=5, gt=0)
    max_attempts: int = Field(default=10, ge=1)
    read_capacity_per_second: float | None = Field(default=None, gt=0)
    connect_timeout_seconds: float = Field(default=10, gt=0)
    read_timeout_seconds: float = Field(default=60, gt=0)
    total_segments: int = Field(default=4, ge=1, le=1_000_000)
    page_size: int | None = Field(default=None, ge=1)
    schema_: str | None = Field(default=None, alias="schema", min_length=1)
    sample_size: int = Field(default=1000, ge=1)
    consistent_read: bool = False
    variant_column: str | None = "_variant"
    conflicting_values: Literal["variant", "fail", "load_errors"] | None = None
    resume_scan: bool = False
    tables: list[str] | None = None
    column_types: dict[str, dict[str, str]] = Field(default_factory=dict)
    child_tables: dict[str, str] = Field(default_factory=dict)
    incremental: Any = None
    """The modified-at attribute's name, or a mapping (``DynamoDBIncremental``)."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    @field_validator("incremental")
    @classmethod
    def _incremental(cls, value: Any) -> Any:
        if value is None or isinstance(value, str):
            return value
        try:
            DynamoDBIncremental.model_validate(value)
        except ValidationError as exc:
            raise located(problems_from_validation_error(exc, DynamoDBIncremental)) from None
        return value


class NatsOptions(_Options):
    stream: Annotated[str, StringConstraints(pattern=r"^[^\s.*>/\\]+$")] = Field(
        default="CONVEYOR", description="the JetStream stream (created when missing)"
    )
    subject_prefix: Annotated[str, StringConstraints(pattern=r"^[^\s*>.]+(\.[^\s*>.]+)*$")] = Field(
        default="conveyor", description="subjects are PREFIX.SCHEMA.TABLE"
    )
    duplicate_window_seconds: float = Field(
        default=7200, gt=0, le=7 * 86400, description="the stream's deduplication window"
    )
    max_in_flight: int = Field(default=1000, ge=1, le=100_000, description="unacknowledged publishes")
    publish_timeout_seconds: float = Field(default=30, gt=0, le=3600)
    connect_timeout_seconds: float = Field(default=5, gt=0, le=600)
    checkpoint_bucket: Annotated[str, StringConstraints(pattern=r"^[a-zA-Z0-9_-]+$")] = Field(
        default="conveyor_checkpoints", description="the key-value bucket of the tasks' checkpoints"
    )
    storage: Literal["file", "memory"] = "file"
    replicas: int = Field(default=1, ge=1, le=5)
    token: str | None = Field(default=None, repr=False)
    credentials_file: str | None = Field(default=None, description="a NATS .creds file (JWT and NKey)")


ENGINE_OPTIONS: Mapping[str, type[_Options]] = {
    "postgres": PostgresOptions,
    "mysql": MySQLOptions,
    "sqlite": SQLiteOptions,
    "duckdb": DuckDBOptions,
    "dynamodb": DynamoDBOptions,
    "nats": NatsOptions,
}
"""Each engine's options; a lake's settings are the S3 settings of ``connectors.lake.settings``."""


def option_names(engine: str) -> list[str]:
    """The option keys an engine takes (a lake's: its S3 setting names)."""
    if engine == "lake":
        from conveyor.connectors.lake.settings import IGNORED_SETTINGS, LakeSettings

        return [f.alias or n for n, f in LakeSettings.model_fields.items()] + sorted(IGNORED_SETTINGS)
    model = ENGINE_OPTIONS[engine]
    return [f.alias or n for n, f in model.model_fields.items()]


def unknown_endpoint_key(engine: str, key: str, keys: Collection[str]) -> str:
    """What is wrong with ``key`` beside an endpoint's ``keys``: an option that
    belongs under ``settings``, or an unknown key with the closest name."""
    options = option_names(engine)
    if key in options:
        return f"an option of a {engine} endpoint: write it under settings ({{{key}: ...}})"
    match = closest(key, [*keys, *options])
    if match in options:
        return f"unknown key; did you mean '{match}'? (an option of a {engine} endpoint: under settings)"
    listed = ", ".join(sorted(keys))
    return f"unknown key of a {engine} endpoint" + did_you_mean(key, keys) + f" (it takes: {listed})"


def option_problems(engine: str, settings: Mapping[str, Any]) -> list[Problem]:
    """Problems of an endpoint's ``settings`` as ``(settings.KEY, problem)``:
    unknown keys (with the closest name and the keys the engine takes), wrong
    types, values out of range. Values that are secret references are not
    type-checked (they are resolved only when a connector connects)."""
    from conveyor.stack import secrets

    if engine == "lake":
        return _lake_problems(settings)
    model = ENGINE_OPTIONS[engine]
    names = option_names(engine)
    problems: list[Problem] = []
    checked: dict[str, Any] = {}
    for key, value in settings.items():
        if key not in names:
            takes = ", ".join(names) if names else "no settings"
            problems.append(
                (f"settings.{key}", f"unknown option of a {engine} endpoint" + did_you_mean(str(key), names)
                 + f" (it takes: {takes})")
            )  # fmt: skip
        elif not (isinstance(value, str) and secrets.has_reference(value)):
            checked[key] = value
    try:
        model.model_validate(checked)
    except ValidationError as exc:
        problems += problems_from_validation_error(exc, model, prefix=("settings",))
    return problems


def _lake_problems(settings: Mapping[str, Any]) -> list[Problem]:
    from conveyor.connectors.lake.settings import IGNORED_SETTINGS, LakeSettings

    kept = {key: value for key, value in settings.items() if key not in IGNORED_SETTINGS}
    try:
        LakeSettings.model_validate(kept)
    except ValidationError as exc:
        return problems_from_validation_error(exc, LakeSettings, prefix=("settings",))
    return []


def lake_ignored(settings: Mapping[str, Any]) -> tuple[str, ...]:
    """The S3 settings written that the lake accepts and does not act on."""
    from conveyor.connectors.lake.settings import IGNORED_SETTINGS

    return tuple(sorted(key for key in settings if key in IGNORED_SETTINGS))
