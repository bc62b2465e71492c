"""``pc``: ``pyarrow.compute``, imported on its first use.

Importing ``pyarrow.compute`` builds a Python wrapper with a signature and a
docstring for each of Arrow's several hundred kernels: about 30 ms of CPU, a
tenth of a short command's imports (bench/profiles/README.md). A command that
moves its rows by raw ``COPY``, or moves none, calls no kernel, so the modules
on its path take ``pc`` from here instead of importing it themselves."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING, Any

__all__ = ["pc"]


class _OnFirstUse(ModuleType):
    """Stands for a module until an attribute is read; then imports it and
    keeps each attribute read, so later reads cost a dict lookup."""

    def __getattr__(self, name: str) -> Any:
        value = getattr(importlib.import_module(self.__name__), name)
        setattr(self, name, value)
        return value


if TYPE_CHECKING:
    import pyarrow.compute as pc
else:
    pc = _OnFirstUse("pyarrow.compute")
