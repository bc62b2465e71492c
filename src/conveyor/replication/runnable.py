"""Whether this build can run a declared task: checked when a run is claimed,
before a worker starts, so a task it cannot run fails at once with the reason."""

from __future__ import annotations

from conveyor.connectors.registry import engines_for, plays
from conveyor.core.errors import ConfigError
from conveyor.replication.declarations import Declarations


def check_runnable(stack: Declarations, name: str) -> None:
    """Raise unless this build can run task ``name`` of ``stack``."""
    spec = stack.tasks.get(name)
    if spec is None:
        raise ConfigError(f"no task named {name!r}; known: {', '.join(sorted(stack.tasks)) or '-'}")
    engine = stack.endpoints[spec.source].engine
    if spec.migration_type != "full-load" and spec.task_settings().validation_settings.validation_only:
        raise ConfigError(
            f"task {name!r}: ValidationSettings.ValidationOnly works with migration_type full-load only; "
            "for change capture, EnableValidation validates changed rows as they settle"
        )
    if spec.migration_type != "full-load" and not plays(engine, "change_source"):
        raise ConfigError(
            f"task {name!r}: migration_type {spec.migration_type!r} needs change capture, "
            f"which a {engine} source does not have (available: {', '.join(engines_for('change_source'))})"
        )
