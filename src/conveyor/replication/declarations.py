"""What replication reads of an applied stack: its tasks and endpoints.

The stack model (``conveyor.stack.model``) sits above replication: it validates a
task's settings with replication's own parser (``replication.settings``). So
replication does not import it; it names what it reads here, and ``Stack``,
``TaskSpec`` and ``EndpointSpec`` satisfy these protocols as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from conveyor.connectors.base import EndpointConfig
from conveyor.replication.settings import TaskSettings


class EndpointDeclaration(Protocol):
    @property
    def engine(self) -> str: ...


class TaskDeclaration(Protocol):
    """A task as declared: endpoint names, migration type, and the migration
    service's table-mapping and task-settings JSON (validated when applied)."""

    @property
    def source(self) -> str: ...

    @property
    def target(self) -> str: ...

    @property
    def migration_type(self) -> str: ...

    @property
    def table_mappings(self) -> Mapping[str, Any]: ...

    def task_settings(self) -> TaskSettings: ...


class Declarations(Protocol):
    """An applied stack, as far as running its tasks goes."""

    @property
    def tasks(self) -> Mapping[str, TaskDeclaration]: ...

    @property
    def endpoints(self) -> Mapping[str, EndpointDeclaration]: ...

    def endpoint_config(self, name: str) -> EndpointConfig:
        """The named endpoint as a connector takes it, secrets resolved."""
        ...
