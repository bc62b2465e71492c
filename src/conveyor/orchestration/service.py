"""The long-running side of Conveyor (``conveyor serve``): one process running the
scheduler, the event bus, the executions (each in a thread) and the statement service,
and starting task workers.

* On start it installs its bus (lifecycle events of tasks run in this process start
  their rules' executions here at once), resumes every RUNNING execution that no live
  process owns (a Wait continues with the time it had left), and runs its loop: every
  ``poll`` seconds the scheduler ticks and executions recorded by other processes (task
  workers, ``conveyor events put``) are claimed and run.
* :meth:`Service.stop` (SIGTERM) stops the scheduler, asks the tasks this process
  started to stop between batches (they checkpoint; see ``request_stop``), suspends the
  executions (their state is in the store; they resume on the next start) and returns.
"""

from __future__ import annotations

import logging
import threading
from contextlib import suppress
from typing import Any

from conveyor.core.errors import ConfigError, ConveyorError
from conveyor.orchestration.bus import Bus, event_sink, install, load_stack
from conveyor.orchestration.executions import ClockFactory, Executions, state_machine_arn
from conveyor.orchestration.scheduler import MissedPolicy, Scheduler
from conveyor.orchestration.statements import Statements
from conveyor.stack.model import Stack
from conveyor.store.store import Store

log = logging.getLogger(__name__)


class Service:
    def __init__(
        self,
        store: Store,
        *,
        missed: MissedPolicy = "once",
        poll: float = 0.5,
        clock_factory: ClockFactory | None = None,
    ) -> None:
        self.store = store
        self.poll = poll
        self.statements = Statements(store, self.stack)
        self.executions = Executions(
            store,
            self.stack,
            events=event_sink(store),
            statements=self.statements,
            clock_factory=clock_factory,
        )
        self.bus = Bus(store, self.executions, run="thread")
        self.scheduler = Scheduler(store, self.executions, missed=missed)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def stack(self) -> Stack:
        found = load_stack(self.store)
        if found is None:
            raise ConveyorError("nothing is applied yet: run `conveyor apply conveyor.yaml` first")
        return found

    def start(self) -> None:
        install(self.bus)
        resumed = self.executions.resume_unowned()
        if resumed:
            log.info("resumed %d execution(s)", len(resumed))
        self._thread = threading.Thread(target=self._loop, name="conveyor-service", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.poll):
            self.tick()

    def tick(self) -> None:
        try:
            self.scheduler.tick()
        except Exception:
            log.exception("scheduler tick failed")
        try:
            self.executions.resume_unowned()
        except Exception:
            log.exception("could not pick up waiting executions")

    def stop(self, timeout: float = 10.0) -> dict[str, Any]:
        """Stop the scheduler, ask started tasks to stop, suspend executions."""
        from conveyor.replication.worker import request_stop

        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        stopped = []
        for task in sorted(self.executions.started_tasks):
            with suppress(ConveyorError):
                request_stop(self.store, task, events=event_sink(self.store))
                stopped.append(task)
        self.executions.shutdown(timeout)
        install(None)
        return {"tasks_stopping": stopped, "executions_suspended": self.executions.running()}


def rules_listing(service: Service) -> list[dict[str, Any]]:
    """Every applied rule with its pattern or schedule (and last / next fire), as the API lists it."""
    stack = service.stack()
    schedules = {row["Rule"]: row for row in service.scheduler.describe()}
    rows = []
    for name, rule in sorted(stack.rules.items()):
        row: dict[str, Any] = {
            "Name": name,
            "State": "ENABLED" if rule.enabled else "DISABLED",
            "Targets": [t.model_dump(exclude_none=True) for t in rule.targets],
        }
        if rule.event_pattern is not None:
            row["EventPattern"] = rule.event_pattern
        if rule.schedule is not None:
            row["ScheduleExpression"] = rule.schedule
            row |= {k: v for k, v in schedules.get(name, {}).items() if k in ("LastFire", "NextFire")}
        rows.append(row)
    return rows


def state_machines_listing(service: Service) -> list[dict[str, Any]]:
    """Every applied state machine, validated against the integrations Conveyor has."""
    stack = service.stack()
    rows = []
    for name in sorted(stack.state_machines):
        row: dict[str, Any] = {"name": name, "stateMachineArn": state_machine_arn(name)}
        try:
            row["warnings"] = service.executions.validate(name)
            row["valid"] = True
        except ConfigError as exc:
            row["valid"], row["error"] = False, str(exc)
        rows.append(row)
    return rows
