"""Engine names to connector classes, imported only when used, so a missing
optional driver never breaks ``import conveyor``: an engine whose driver is not
installed is an error naming the extra to install (core/extras.py)."""

from __future__ import annotations

import importlib
from typing import Any

from conveyor.connectors.base import ControlTablesConnection, EndpointConfig, Source, Target
from conveyor.connectors.changes import ChangeApplier, ChangeSource
from conveyor.core.errors import ConfigError
from conveyor.core.extras import needs_extra

SOURCES = {
    "postgres": "conveyor.connectors.postgres.source:PostgresSource",
    "mysql": "conveyor.connectors.mysql.source:MySQLSource",
    "sqlite": "conveyor.connectors.sqlite.source:SQLiteSource",
    "dynamodb": "conveyor.connectors.dynamodb.source:DynamoDBSource",
}
TARGETS = {
    "duckdb": "conveyor.connectors.duckdb.target:DuckDBTarget",
    "postgres": "conveyor.connectors.postgres.target:PostgresTarget",
    "lake": "conveyor.connectors.lake.target:LakeTarget",
    "nats": "conveyor.connectors.nats.target:NatsTarget",
}

# Sources that can also capture changes (connectors.changes.ChangeSource).
CHANGE_SOURCES = {
    "postgres": "conveyor.connectors.postgres.capture:PostgresChangeSource",
    "mysql": "conveyor.connectors.mysql.capture:MySQLChangeSource",
    "sqlite": "conveyor.connectors.sqlite.capture:SQLiteChangeSource",
    "dynamodb": "conveyor.connectors.dynamodb.streams:DynamoDBChangeSource",
}

# Targets that can apply changes (connectors.changes.ChangeApplier).
APPLIERS = {
    "postgres": "conveyor.connectors.postgres.apply:PostgresApplier",
    "duckdb": "conveyor.connectors.duckdb.apply:DuckDBApplier",
    "lake": "conveyor.connectors.lake.apply:LakeApplier",
    "nats": "conveyor.connectors.nats.apply:NatsApplier",
}

# Targets that keep the migration service's control tables (replication.control_tables).
CONTROL_TABLES = {
    "postgres": "conveyor.connectors.postgres.control:PostgresControlTables",
    "duckdb": "conveyor.connectors.duckdb.control:DuckDBControlTables",
}


def _load(spec: str, engine: str = "") -> Any:
    module, _, name = spec.partition(":")
    with needs_extra(f"the {engine or module} engine"):
        return getattr(importlib.import_module(module), name)


def _open(role: str, engines: dict[str, str], config: EndpointConfig) -> Any:
    spec = engines.get(config.engine)
    if spec is None:
        raise ConfigError(
            f"endpoint {config.name!r}: engine {config.engine!r} cannot be a {role} in this build "
            f"(available: {', '.join(sorted(engines))})"
        )
    return _load(spec, config.engine)(config)


def open_source(config: EndpointConfig) -> Source:
    source: Source = _open("source", SOURCES, config)
    return source


def open_change_source(config: EndpointConfig) -> ChangeSource:
    source: ChangeSource = _open("change-capture source", CHANGE_SOURCES, config)
    return source


def open_applier(config: EndpointConfig) -> ChangeApplier:
    applier: ChangeApplier = _open("change target", APPLIERS, config)
    return applier


def open_target(config: EndpointConfig) -> Target:
    target: Target = _open("target", TARGETS, config)
    return target


def open_control_tables(config: EndpointConfig) -> ControlTablesConnection:
    connection: ControlTablesConnection = _open("control-tables target", CONTROL_TABLES, config)
    return connection
