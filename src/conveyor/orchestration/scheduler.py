"""Schedules: rules with ``schedule: cron(...)`` or ``rate(...)`` start their targets.

The scheduler keeps, per rule, the last fire it handled (table ``schedule_state``).
Each :meth:`Scheduler.tick` fires what fell due since then. A rule seen for the first
time starts from "now": it never fires for instants before it was applied.

Missed fires (Conveyor was not running, or a tick came late) are fires more than
``grace`` seconds in the past; the ``missed`` policy says what happens to them:

* ``once`` (the default): fire once for all of them, with the latest missed instant;
* ``all``: fire each of them (at most ``MAX_CATCH_UP`` per rule), oldest first;
* ``skip``: do not fire them.

A fire that is due within the grace period always fires. The input a target receives
is its ``input`` (or ``input_path`` / ``input_transformer``) applied to the event
EventBridge sends for a schedule (``"detail-type": "Scheduled Event"``, ``"source":
"aws.events"``, ``time`` = the scheduled instant).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from conveyor.core.arns import ACCOUNT, REGION
from conveyor.core.errors import ConfigError, ConveyorError
from conveyor.events.schedules import Schedule
from conveyor.orchestration.bus import load_stack, rule_arn, target_input
from conveyor.store.store import Store

log = logging.getLogger(__name__)

MissedPolicy = Literal["once", "all", "skip"]
MISSED_POLICIES: tuple[str, ...] = ("once", "all", "skip")
MAX_CATCH_UP = 100


def scheduled_event(rule: str, when: datetime) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": ACCOUNT,
        "time": when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [rule_arn(rule)],
        "detail": {},
    }


class Scheduler:
    """Fires the applied stack's schedules; drive it with :meth:`tick` (``conveyor serve``
    ticks it every half second; tests pass their own ``now``)."""

    def __init__(
        self,
        store: Store,
        executions: Any,
        *,
        missed: MissedPolicy = "once",
        grace: float = 60.0,
        run: str = "thread",
        now: Callable[[], datetime] | None = None,
    ) -> None:
        if missed not in MISSED_POLICIES:
            raise ConfigError(
                f"missed-fire policy must be one of {', '.join(MISSED_POLICIES)}, got {missed!r}"
            )
        self.store = store
        self.executions = executions
        self.missed = missed
        self.grace = timedelta(seconds=grace)
        self.run = run
        self.now = now or (lambda: datetime.now(UTC))

    def schedules(self) -> dict[str, Schedule]:
        stack = load_stack(self.store)
        if stack is None:
            return {}
        found = {}
        for name, rule in sorted(stack.rules.items()):
            if not rule.enabled or rule.schedule is None:
                continue
            try:
                found[name] = Schedule.parse(
                    rule.schedule,
                    rule.timezone or "UTC",
                    f"rules.{name}.schedule",
                    start=rule.start_date,
                    end=rule.end_date,
                )
            except ConfigError as exc:
                log.error("schedule %s is skipped: %s", name, exc)
        return found

    def due(self, name: str, schedule: Schedule, now: datetime) -> list[datetime]:
        """The instants rule ``name`` fires for at ``now``, after the missed-fire policy."""
        last = self.store.schedule_last_fire(name)
        if last is None:
            self.store.set_schedule_last_fire(name, now)
            return []
        due = []
        for instant in schedule.fires_between(last, now):
            due.append(instant)
            if len(due) > 10 * MAX_CATCH_UP:
                break
        if not due:
            return []
        self.store.set_schedule_last_fire(name, due[-1])
        recent = [t for t in due if now - t <= self.grace]
        missed = [t for t in due if now - t > self.grace]
        if missed:
            log.warning("schedule %s: %d fire(s) missed (policy %s)", name, len(missed), self.missed)
        if self.missed == "all":
            return missed[-MAX_CATCH_UP:] + recent
        if self.missed == "once" and missed and not recent:
            return [missed[-1]]
        return recent

    def tick(self, now: datetime | None = None) -> list[dict[str, Any]]:
        """Fire everything due; returns ``[{"Rule", "Time", "Executions"}]``."""
        now = now or self.now()
        stack = load_stack(self.store)
        fired: list[dict[str, Any]] = []
        if stack is None:
            return fired
        for name, schedule in self.schedules().items():
            for instant in self.due(name, schedule, now):
                event = scheduled_event(name, instant)
                started = []
                for index, target in enumerate(stack.rules[name].targets):
                    try:
                        described = self.executions.start(
                            target.state_machine, target_input(target, event, name), run=self.run
                        )
                    except Exception as exc:
                        log.error("schedule %s target %d (%s): %s", name, index, target.state_machine, exc)
                        continue
                    started.append(described["executionArn"])
                fired.append({"Rule": name, "Time": event["time"], "Executions": started})
            if stack.rules[name].action_after_completion == "DELETE" and schedule.next_fire(now) is None:
                self.complete(name)
        return fired

    def complete(self, name: str) -> None:
        """ActionAfterCompletion DELETE: a schedule that can fire no more leaves the stack."""
        from conveyor.stack.entries import delete_entry

        try:
            delete_entry(self.store, "rules", name)
        except ConveyorError as exc:  # deleted meanwhile, or named by another entry
            log.warning("schedule %s completed but was not deleted: %s", name, exc)
            return
        log.info("schedule %s completed and was deleted (ActionAfterCompletion DELETE)", name)

    def describe(self, now: datetime | None = None) -> list[dict[str, Any]]:
        """Each schedule with its last handled and next fire."""
        now = now or self.now()
        rows = []
        for name, schedule in self.schedules().items():
            last = self.store.schedule_last_fire(name)
            upcoming = schedule.next_fire(max(last, now) if last is not None else now)
            rows.append(
                {
                    "Rule": name,
                    "ScheduleExpression": schedule.expression,
                    "Timezone": schedule.timezone,
                    "LastFire": None if last is None else last.isoformat(),
                    "NextFire": None if upcoming is None else upcoming.isoformat(),
                }
            )
        return rows
