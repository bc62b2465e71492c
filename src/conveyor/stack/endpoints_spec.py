"""A stack file's endpoints: which engines there are, the keys each takes, and
the ``EndpointSpec`` model that checks them (URL, paths, secret references,
connector options) and turns them into a connector's ``EndpointConfig``.

``Spec`` is the base of every stack model: frozen, unknown keys refused."""

from __future__ import annotations

import os
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from conveyor.connectors.base import EndpointConfig
from conveyor.core.errors import ConfigError
from conveyor.core.names import did_you_mean
from conveyor.core.problems import Problem, located, problems_from_validation_error
from conveyor.stack import secrets
from conveyor.stack.endpoint_options import lake_ignored, option_problems, unknown_endpoint_key

ENGINES: tuple[str, ...] = ("postgres", "mysql", "sqlite", "duckdb", "lake", "dynamodb", "nats")
ENGINE_ALIASES: Mapping[str, str] = {"mariadb": "mysql", "postgresql": "postgres"}
SOURCE_ENGINES: frozenset[str] = frozenset({"postgres", "mysql", "sqlite", "dynamodb"})
TARGET_ENGINES: frozenset[str] = frozenset({"postgres", "duckdb", "lake", "nats"})

COMMON_KEYS: frozenset[str] = frozenset({"engine", "settings"})
ENGINE_KEYS: Mapping[str, frozenset[str]] = {
    "postgres": frozenset({"url", "password", "dialect"}),
    "mysql": frozenset({"url", "password"}),
    "sqlite": frozenset({"path"}),
    "duckdb": frozenset({"path", "dialect"}),
    "lake": frozenset(
        {
            "path",
            "format",
            "bucket_path",
            "curated_path",
            "endpoint_url",
            "region",
            "curation_engine",
            "spark_master",
        }
    ),
    "dynamodb": frozenset({"endpoint_url", "region"}),
    "nats": frozenset({"url", "password"}),
}
"""The keys each engine takes besides ``engine`` and ``settings``."""
REQUIRED_KEYS: Mapping[str, tuple[str, ...]] = {
    "postgres": ("url",),
    "mysql": ("url",),
    "sqlite": ("path",),
    "duckdb": ("path",),
    "lake": ("path",),
    "dynamodb": (),
    "nats": ("url",),
}
URL_SCHEMES: Mapping[str, tuple[str, ...]] = {
    "postgres": ("postgresql", "postgres"),
    "mysql": ("mysql", "mariadb"),
    "nats": ("nats", "tls"),
}


class Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class EndpointSpec(Spec):
    """One endpoint. Which keys an engine takes is ``ENGINE_KEYS``; string values
    may hold secret references, kept as written until ``to_config``."""

    engine: str
    url: str | None = None
    path: str | None = None
    password: str | None = Field(default=None, repr=False)
    endpoint_url: str | None = None
    region: str | None = None
    format: Literal["csv", "parquet"] | None = None
    bucket_path: str | None = None
    curated_path: str | None = None
    """Lake: where the curated tables and their controller live (relative to
    ``path`` unless absolute or ``s3://``; default ``<path>/curated``)."""
    curation_engine: Literal["embedded", "spark"] | None = None
    """Lake: what `conveyor lake process` curates with unless ``--engine`` says (default embedded)."""
    spark_master: str | None = None
    """Lake: the Spark master (``spark://HOST:7077``) for ``curation_engine: spark``."""
    dialect: Literal["redshift"] | None = None
    """Warehouses: the SQL dialect statements and procedures are written in
    (``redshift``: translated to the warehouse's own; see orchestration/redshift_sql.py)."""
    settings: dict[str, Any] = Field(default_factory=dict)

    @field_validator("engine", mode="before")
    @classmethod
    def _known_engine(cls, value: object) -> str:
        if not isinstance(value, str):
            raise ValueError(f"must be one of: {', '.join(sorted(ENGINES))}")
        name = ENGINE_ALIASES.get(value.strip().lower(), value.strip().lower())
        if name not in ENGINES:
            known = sorted([*ENGINES, *ENGINE_ALIASES])
            raise ValueError(
                f"unknown engine {value!r} (expected one of: {', '.join(sorted(ENGINES))})"
                + did_you_mean(value, known)
            )
        return name

    @model_validator(mode="wrap")
    @classmethod
    def _fits_engine(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        """The keys fit the engine, all problems in one pass: an unknown key is
        named with the closest key or option of the engine; an engine option
        written beside ``url`` or ``path`` belongs in ``settings``."""
        problems: list[Problem] = []
        if isinstance(data, Mapping) and isinstance(data.get("engine"), str):
            engine = ENGINE_ALIASES.get(data["engine"].strip().lower(), data["engine"].strip().lower())
            if engine in ENGINES:
                unknown = [key for key in data if key not in cls.model_fields]
                keys = COMMON_KEYS | ENGINE_KEYS[engine]
                problems = [(str(key), unknown_endpoint_key(engine, str(key), keys)) for key in unknown]
                data = {key: value for key, value in data.items() if key not in unknown}
        try:
            spec = handler(data)
        except ValidationError as exc:
            if not problems:
                raise
            raise located(problems + problems_from_validation_error(exc, cls)) from None
        problems += spec._engine_problems()
        if problems:
            raise located(problems)
        return spec

    @field_validator("path")
    @classmethod
    def _absolute_path(cls, value: str | None, info: ValidationInfo) -> str | None:
        base_dir = (info.context or {}).get("base_dir")
        if value is None or base_dir is None:
            return value
        return absolute_path(value, Path(base_dir))

    def _engine_problems(self) -> list[Problem]:
        engine = self.engine
        problems: list[Problem] = []
        allowed = COMMON_KEYS | ENGINE_KEYS[engine]
        given = {key for key in self.model_fields_set if getattr(self, key) is not None}
        for key in sorted(given - allowed):
            problems.append(
                (key, f"not a key of a {engine} endpoint (it takes: {', '.join(sorted(allowed))})")
            )
        for key in REQUIRED_KEYS[engine]:
            if getattr(self, key) is None:
                problems.append((key, f"required for a {engine} endpoint"))
        for key in ("url", "path", "password", "endpoint_url", "region", "bucket_path", "curated_path"):
            value = getattr(self, key)
            if isinstance(value, str):
                problems += [(key, text) for text in secrets.reference_problems(value)]
        problems += [
            (f"settings.{key}", text) for key, text in secrets.nested_reference_problems(self.settings)
        ]
        problems += option_problems(engine, self.settings)
        if self.url is not None and engine in URL_SCHEMES:
            problems += [("url", text) for text in _url_problems(engine, self.url)]
        if self.bucket_path is not None:
            try:
                list(string.Formatter().parse(self.bucket_path))
            except ValueError as exc:
                problems.append(("bucket_path", f"not a valid template: {exc}"))
        return problems

    def warnings(self) -> list[Problem]:
        """Plain-text secrets: allowed, but stored as written."""
        found: list[Problem] = []
        advice = f"use a reference ({secrets.REFERENCE_HINT}) instead"
        if self.password is not None and not secrets.has_reference(self.password):
            found.append(
                ("password", f"plain-text password; it is stored as written in the metadata store, {advice}")
            )
        for key, value in secrets.leaves(self.settings):
            if (
                secrets.SECRET_KEY.search(key)
                and isinstance(value, str)
                and value
                and not secrets.has_reference(value)
            ):
                found.append((f"settings.{key}", f"plain-text secret; {advice}"))
        if self.engine == "lake":
            found += [
                (f"settings.{key}", "accepted and not acted on by the lake (the service's S3 concern)")
                for key in lake_ignored(self.settings)
            ]
        return found

    def redacted(self) -> dict[str, Any]:
        """The endpoint for output: references shown as written, plain secrets as ``***``."""
        data = self.model_dump(mode="json", exclude_none=True)
        if self.password is not None and not secrets.is_reference(self.password):
            data["password"] = "***"
        data["settings"] = secrets.redact(self.settings)
        return data

    def to_config(self, name: str, base_dir: Path) -> EndpointConfig:
        """The endpoint as a connector takes it, secrets resolved (``base_dir``
        is the stack file's folder). Besides ``settings``, ``options`` carries
        ``format``, ``bucket_path``, ``curated_path``, ``endpoint_url`` and
        ``region`` when set, and a database engine's options (its ``settings``,
        see ``stack.endpoint_options``) (``format`` defaults to ``csv`` for a lake). Raises
        ConfigError naming the key and the reference when a secret cannot be
        resolved."""

        def resolve(key: str, value: Any) -> Any:
            try:
                return secrets.resolve_all(value, base_dir)
            except ConfigError as exc:
                raise ConfigError(f"endpoints.{name}.{key}: {exc}") from None

        url = resolve("url", self.url)
        password = resolve("password", self.password)
        if url is not None:
            url, embedded = secrets.split_password(url)
            if embedded is not None and password is not None:
                raise ConfigError(f"endpoints.{name}.url: the URL holds a password and password is set too")
            password = password if embedded is None else embedded
        path = resolve("path", self.path)
        settings = resolve("settings", self.settings)
        options: dict[str, Any] = {"settings": settings}
        if self.engine in ("postgres", "mysql", "sqlite", "duckdb", "nats"):
            options.update(settings)  # the connectors read their options at the top level
        for key in (
            "endpoint_url",
            "region",
            "bucket_path",
            "curated_path",
            "format",
            "dialect",
            "curation_engine",
            "spark_master",
        ):
            value = getattr(self, key)
            if value is not None:
                options[key] = resolve(key, value)
        if self.engine == "lake":
            options.setdefault("format", "csv")
        return EndpointConfig(
            name=name,
            engine=self.engine,
            url=url,
            path=None if path is None else absolute_path(path, base_dir),
            password=password,
            options=options,
        )


def absolute_path(value: str, base_dir: Path) -> str:
    """A local path made absolute against ``base_dir``; URLs (``s3://...``),
    ``:memory:`` and values holding references are returned unchanged."""
    if "://" in value or value == ":memory:" or secrets.has_reference(value):
        return value
    path = Path(value).expanduser()
    return os.path.normpath(path if path.is_absolute() else base_dir / path)


def _url_problems(engine: str, url: str) -> list[str]:
    if secrets.is_reference(url):
        return []
    schemes = URL_SCHEMES[engine]
    try:
        parts = urlsplit(url)
    except ValueError:
        return [f"not a valid URL (expected {schemes[0]}://user@host:port/database)"]
    problems: list[str] = []
    if parts.scheme.split("+")[0].lower() not in schemes:
        problems.append(f"expected a {engine} URL ({schemes[0]}://user@host:port/database)")
    userinfo, at, _ = parts.netloc.rpartition("@")
    _, colon, password = userinfo.partition(":")
    if at and colon and password and not secrets.is_reference(password):
        problems.append(
            "the URL contains a password; remove it from the URL and set "
            "password: ${env:DB_PASSWORD} (or ${file:PATH}) on the endpoint"
        )
    return problems
