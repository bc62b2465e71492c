"""What an engine is: one folder under ``conveyor/connectors`` whose package
declares ``ENGINE``, naming the connector class of each role the engine plays
(as ``module:Class`` text, imported only when used, so a missing optional
driver never breaks the others). ``registry`` finds every such folder: a new
engine is one folder."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Role = Literal["source", "change_source", "target", "applier", "control_tables"]

ROLE_NAMES: dict[Role, str] = {
    "source": "source",
    "change_source": "change-capture source",
    "target": "target",
    "applier": "change target",
    "control_tables": "control-tables target",
}


@dataclass(frozen=True)
class Engine:
    """An engine's connectors by role (None: the engine does not play it)."""

    name: str
    source: str | None = None
    """Full loads read from it (``connectors.base.Source``)."""
    change_source: str | None = None
    """Changes captured from it (``connectors.changes.ChangeSource``)."""
    target: str | None = None
    """Full loads written to it (``connectors.base.Target``)."""
    applier: str | None = None
    """Changes applied to it (``connectors.changes.ChangeApplier``)."""
    control_tables: str | None = None
    """The migration service's control tables kept on it
    (``connectors.base.ControlTablesConnection``)."""

    def connector(self, role: Role) -> str | None:
        spec: str | None = getattr(self, role)
        return spec
