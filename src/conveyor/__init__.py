"""Conveyor: self-hosted database migration and replication.

``from conveyor import Conveyor`` is the Python API (``conveyor.service``); it is
imported on first use, so ``import conveyor`` stays cheap."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Conveyor", "__version__"]

if TYPE_CHECKING:
    from conveyor.service import Conveyor


def __getattr__(name: str) -> Any:
    if name == "Conveyor":
        from conveyor.service import Conveyor

        return Conveyor
    raise AttributeError(f"module 'conveyor' has no attribute {name!r}")
