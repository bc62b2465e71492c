"""The one registry of engines: every package under ``conveyor/connectors``
that declares ``ENGINE`` (``connectors.engine``). Connector classes are
imported only when used, so a missing optional driver never breaks ``import
conveyor``: an engine whose driver is not installed is an error naming the
extra to install (core/extras.py)."""

from __future__ import annotations

import functools
import importlib
import pkgutil
from typing import Any

from conveyor.connectors.base import ControlTablesConnection, EndpointConfig, Source, Target
from conveyor.connectors.changes import ChangeApplier, ChangeSource
from conveyor.connectors.engine import ROLE_NAMES, Engine, Role
from conveyor.core.errors import ConfigError
from conveyor.core.extras import needs_extra


@functools.cache
def engines() -> dict[str, Engine]:
    """Every engine, by name: the packages beside this module that declare one."""
    import conveyor.connectors as package

    found: dict[str, Engine] = {}
    for module in pkgutil.iter_modules(package.__path__):
        if not module.ispkg:
            continue
        engine = getattr(importlib.import_module(f"{package.__name__}.{module.name}"), "ENGINE", None)
        if isinstance(engine, Engine):
            found[engine.name] = engine
    return found


def engines_for(role: Role) -> list[str]:
    """The names of the engines that play ``role``, sorted."""
    return sorted(name for name, engine in engines().items() if engine.connector(role))


def plays(engine: str, role: Role) -> bool:
    known = engines().get(engine)
    return known is not None and known.connector(role) is not None


def _load(spec: str, engine: str = "") -> Any:
    module, _, name = spec.partition(":")
    with needs_extra(f"the {engine or module} engine"):
        return getattr(importlib.import_module(module), name)


def _open(role: Role, config: EndpointConfig) -> Any:
    engine = engines().get(config.engine)
    spec = None if engine is None else engine.connector(role)
    if spec is None:
        raise ConfigError(
            f"endpoint {config.name!r}: engine {config.engine!r} cannot be a {ROLE_NAMES[role]} in this "
            f"build (available: {', '.join(engines_for(role))})"
        )
    return _load(spec, config.engine)(config)


def open_source(config: EndpointConfig) -> Source:
    source: Source = _open("source", config)
    return source


def open_change_source(config: EndpointConfig) -> ChangeSource:
    source: ChangeSource = _open("change_source", config)
    return source


def open_applier(config: EndpointConfig) -> ChangeApplier:
    applier: ChangeApplier = _open("applier", config)
    return applier


def open_target(config: EndpointConfig) -> Target:
    target: Target = _open("target", config)
    return target


def open_control_tables(config: EndpointConfig) -> ControlTablesConnection:
    connection: ControlTablesConnection = _open("control_tables", config)
    return connection
