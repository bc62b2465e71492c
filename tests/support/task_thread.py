"""A task run in a thread of the test's process (``run_task``, as a worker runs it)."""

from __future__ import annotations

import threading
from pathlib import Path

from conveyor.orchestration.bus import event_sink
from conveyor.replication.task_runner import run_task
from conveyor.replication.task_states import StartMode
from conveyor.stack.loader import load_stack
from conveyor.store.store import Store

DEADLINE_S = 30.0


class RunningTask:
    """A task running in a thread of this process, stopped on exit."""

    def __init__(self, store: Store, stack_path: Path, name: str, mode: StartMode = "start") -> None:
        self.stop = threading.Event()
        self.status: str | None = None
        stack = load_stack(stack_path)
        events = event_sink(store)
        self._thread = threading.Thread(
            target=lambda: setattr(
                self, "status", run_task(store, stack, name, events=events, stop=self.stop, mode=mode)
            ),
            daemon=True,
        )

    def __enter__(self) -> RunningTask:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self._thread.join(timeout=DEADLINE_S)
        assert not self._thread.is_alive(), "the task did not stop"
