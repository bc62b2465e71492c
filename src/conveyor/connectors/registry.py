"""Engine names to connector classes, imported only when used, so a missing
optional driver never breaks ``import conveyor``."""

from __future__ import annotations

import importlib
from typing import Any

from conveyor.connectors.base import EndpointConfig, Source, Target
from conveyor.core.errors import ConfigError

SOURCES = {
    "postgres": "conveyor.connectors.postgres.source:PostgresSource",
    "sqlite": "conveyor.connectors.sqlite.source:SQLiteSource",
}
TARGETS = {
    "duckdb": "conveyor.connectors.duckdb.target:DuckDBTarget",
}


def _load(spec: str) -> Any:
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)


def open_source(config: EndpointConfig) -> Source:
    spec = SOURCES.get(config.engine)
    if spec is None:
        raise ConfigError(
            f"endpoint {config.name!r}: engine {config.engine!r} cannot be a source in this build "
            f"(available: {', '.join(sorted(SOURCES))})"
        )
    source: Source = _load(spec)(config)
    return source


def open_target(config: EndpointConfig) -> Target:
    spec = TARGETS.get(config.engine)
    if spec is None:
        raise ConfigError(
            f"endpoint {config.name!r}: engine {config.engine!r} cannot be a target in this build "
            f"(available: {', '.join(sorted(TARGETS))})"
        )
    target: Target = _load(spec)(config)
    return target
