"""Where states run: the top level or a Map iteration / Parallel branch (:class:`Scope`),
and how the iterations of one Map or Parallel are told to stop (:class:`Halt`)."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from conveyor.orchestration.asl.clock import ExecutionSuspended
from conveyor.orchestration.asl.definition import StateMachine
from conveyor.orchestration.asl.store import Cursor


class Cancelled(Exception):
    """A sibling iteration or branch failed: this one stops at its next state."""


@dataclass
class Scope:
    """A running list of states: the top level (checkpointed) or a branch/iteration.

    ``key`` prefixes the checkpoint keys of what runs inside (``Map[3]/``); ``variables``
    are the scope's own (the cursor's at the top level), ``outer`` the enclosing ones'."""

    machine: StateMachine
    top: bool
    map_item: dict[str, Any] | None = None
    cursor: Cursor | None = field(default=None)
    key: str = ""
    variables: dict[str, Any] = field(default_factory=dict)
    outer: Mapping[str, Any] = field(default_factory=dict)
    halt: Halt | None = None
    parent: Scope | None = None

    def visible(self) -> dict[str, Any]:
        return {**self.outer, **self.variables}

    def check_halted(self) -> None:
        """Raise when this scope or an enclosing one was told to stop."""
        scope: Scope | None = self
        while scope is not None:
            if scope.halt is not None and scope.halt.cancelled.is_set():
                if scope.halt.suspended.is_set():
                    raise ExecutionSuspended
                raise Cancelled
            scope = scope.parent


@dataclass
class Halt:
    """Why the iterations of one Map / Parallel stop: a sibling failed (``cancelled``), or
    the execution is being suspended too (``suspended``: tokens and checkpoints stay)."""

    cancelled: threading.Event = field(default_factory=threading.Event)
    suspended: threading.Event = field(default_factory=threading.Event)
