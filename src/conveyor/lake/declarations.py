"""What the curation job reads of an applied stack: its lake endpoints and the
``lake_tables`` declared for them.

The stack model sits above the lake layer, so the job does not import it; it
names what it reads here, and ``Stack``, ``EndpointSpec`` and ``LakeTableSpec``
satisfy these protocols as they are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from conveyor.connectors.base import EndpointConfig


class EndpointDeclaration(Protocol):
    @property
    def engine(self) -> str: ...


class LakeTableDeclaration(Protocol):
    """A row of the controller table as declared (``lake_tables``)."""

    @property
    def active(self) -> bool: ...

    @property
    def primary_key(self) -> Sequence[str]: ...

    @property
    def partition_key(self) -> Sequence[str]: ...

    @property
    def endpoint(self) -> str | None:
        """The lake endpoint holding the table; None when the stack has one lake."""
        ...


class LakeDeclarations(Protocol):
    """An applied stack, as far as curating its lakes goes."""

    @property
    def endpoints(self) -> Mapping[str, EndpointDeclaration]: ...

    @property
    def lake_tables(self) -> Mapping[str, LakeTableDeclaration]: ...

    def endpoint_config(self, name: str) -> EndpointConfig:
        """The named endpoint as a connector takes it, secrets resolved."""
        ...
