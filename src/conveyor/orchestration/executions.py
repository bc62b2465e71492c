"""State machine executions kept in the metadata store, and the threads that run them.

* :class:`StoreExecutionStore` is the engine's :class:`ExecutionStore` on the metadata
  store (tables ``executions`` and ``execution_events``): every checkpoint is one
  transaction, so an execution survives a restart and continues where it was (a Wait
  sleeps only for the time it had left).
* :class:`Executions` starts, runs, describes, lists and stops executions. An execution
  is *owned* by the process running it (``owner_pid``); one started where nothing runs
  it (an event put from the CLI, a task worker's lifecycle event) waits, unowned, for
  ``conveyor serve`` to claim it, and so does one whose owner died.
* Answers have the Step Functions API's shape (``executionArn``, ``status``, history
  events with ``stateEnteredEventDetails`` ...).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from conveyor.core.arns import ACCOUNT, REGION
from conveyor.core.errors import ConfigError, NotFoundError
from conveyor.events.lifecycle import EventSink
from conveyor.orchestration.asl.clock import Clock, ExecutionSuspended, SystemClock
from conveyor.orchestration.asl.engine import Execution
from conveyor.orchestration.asl.integrations import Integrations
from conveyor.orchestration.asl.store import Cursor, ExecutionRecord, HistoryEvent
from conveyor.orchestration.statements import StackProvider, Statements
from conveyor.orchestration.task_tokens import StoreTaskTokens
from conveyor.stack.model import Stack
from conveyor.store.rows import ExecutionEventRow, ExecutionRow
from conveyor.store.store import Store

log = logging.getLogger(__name__)

RUNNING, SUCCEEDED, FAILED, ABORTED = "RUNNING", "SUCCEEDED", "FAILED", "ABORTED"
RunMode = Literal["thread", "inline", "none"]

EXPRESS_MAX_SECONDS = 300
"""An EXPRESS execution runs five minutes at most, as the service's do: past them it ends
TIMED_OUT (``States.Timeout``). Not a setting; ``CONVEYOR_EXPRESS_MAX_SECONDS`` may only
lower it (tests, to see the limit without waiting five minutes)."""


def express_max_seconds() -> int:
    """:data:`EXPRESS_MAX_SECONDS`, or ``CONVEYOR_EXPRESS_MAX_SECONDS`` when that is lower."""
    raw = os.environ.get("CONVEYOR_EXPRESS_MAX_SECONDS", "").strip()
    if not raw:
        return EXPRESS_MAX_SECONDS
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(f"CONVEYOR_EXPRESS_MAX_SECONDS={raw!r}: a whole number of seconds, 1 at least")
    return min(int(raw), EXPRESS_MAX_SECONDS)


def state_machine_arn(name: str) -> str:
    return f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{name}"


def execution_arn(state_machine: str, name: str, express_id: str | None = None) -> str:
    """A STANDARD execution's ARN, or with ``express_id`` an EXPRESS one's: as the service
    shapes it (``express:MACHINE:NAME:ID``), since an EXPRESS name need not be unique."""
    if express_id is not None:
        return f"arn:aws:states:{REGION}:{ACCOUNT}:express:{state_machine}:{name}:{express_id}"
    return f"arn:aws:states:{REGION}:{ACCOUNT}:execution:{state_machine}:{name}"


def is_express(row: Mapping[str, Any]) -> bool:
    """Whether the execution row is of a machine that was EXPRESS when it started."""
    return bool(row["record"].get("state_machine_type") == "EXPRESS")


def row_arn(row: Mapping[str, Any]) -> str:
    return execution_arn(row["state_machine"], row["name"], row["id"] if is_express(row) else None)


def state_machine_name(ref: str) -> str:
    """A state machine's name from its name or ARN."""
    return ref.split(":stateMachine:", 1)[1] if ":stateMachine:" in ref else ref


def _parse_time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00"))


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def record_from_dict(data: dict[str, Any]) -> ExecutionRecord:
    fields = dict(data)
    cursor = fields.pop("cursor", None)
    return ExecutionRecord(**fields, cursor=None if cursor is None else Cursor(**cursor))


def _record_values(record: ExecutionRecord) -> dict[str, Any]:
    """The record as the store keeps it: a shallow conversion (its values are plain JSON,
    serialised by the store at once), not ``asdict``'s deep copy of a Map's every input
    and checkpoint at every commit."""
    values = dict(vars(record))
    if record.cursor is not None:
        values["cursor"] = dict(vars(record.cursor))
    return values


class StoreExecutionStore:
    """The engine's ExecutionStore on the metadata store. A commit for an execution that
    was aborted meanwhile writes nothing and suspends the engine."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def commit(self, record: ExecutionRecord, events: list[HistoryEvent]) -> None:
        start = _parse_time(record.start_time)
        assert start is not None
        values = {
            "name": record.name,
            "state_machine": record.state_machine_name,
            "status": record.status,
            "record": _record_values(record),
            "start_time": start,
            "stop_time": _parse_time(record.stop_time),
        }
        if not self.store.commit_execution(record.execution_id, values, [asdict(e) for e in events]):
            raise ExecutionSuspended  # aborted by `executions stop`: stop running it

    def load(self, execution_id: str) -> ExecutionRecord:
        row = self.store.execution(execution_id)
        if row is None:
            raise NotFoundError(f"no execution with id {execution_id!r}")
        return record_from_dict(row["record"])

    def history(self, execution_id: str) -> list[HistoryEvent]:
        return [HistoryEvent(**e) for e in self.store.execution_events(execution_id)]


class ServiceClock(SystemClock):
    """Wall-clock time whose sleeps end early (ExecutionSuspended) when the process is
    shutting down or the execution was aborted from elsewhere."""

    def __init__(self, aborted: Callable[[], bool], check_every: float = 1.0) -> None:
        super().__init__()
        self._aborted = aborted
        self._check_every = check_every

    def sleep_until(self, when: datetime) -> None:
        next_check = time.monotonic() + self._check_every
        while True:
            remaining = (when - self.now()).total_seconds()
            if remaining <= 0:
                return
            if self._stop.wait(min(remaining, 0.25)):
                raise ExecutionSuspended
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + self._check_every
                if self._aborted():
                    raise ExecutionSuspended


class ScaledClock(ServiceClock):
    """A service clock whose time runs ``factor`` times faster than the wall clock from
    its creation on (tests and demos: a 30-second Wait takes 30/factor seconds)."""

    def __init__(self, aborted: Callable[[], bool], factor: float) -> None:
        super().__init__(aborted, check_every=0.2)
        self.factor = factor
        self._origin = datetime.now(UTC)
        self._started = time.monotonic()

    def now(self) -> datetime:
        return self._origin + timedelta(seconds=(time.monotonic() - self._started) * self.factor)


ClockFactory = Callable[[Callable[[], bool]], Clock]


class Executions:
    """Start, run, describe, list and stop executions of the applied stack's state machines."""

    def __init__(
        self,
        store: Store,
        stack: StackProvider,
        *,
        events: EventSink,
        statements: Statements | None = None,
        clock_factory: ClockFactory | None = None,
        integrations: Integrations | None = None,
    ) -> None:
        from conveyor.orchestration.integrations_aws import build_integrations

        self.store = store
        self.stack = stack
        self.events = events
        """Where the replication tasks its integrations start send their lifecycle events
        (``bus.event_sink``): handed in, as this module is below the bus."""
        self.statements = statements or Statements(store, stack)
        self.exec_store = StoreExecutionStore(store)
        self.tokens = StoreTaskTokens(store)
        self.clock_factory: ClockFactory = clock_factory or (ServiceClock)
        self.integrations = integrations or build_integrations(self)
        self.pid = os.getpid()
        self._lock = threading.Lock()
        self._threads: dict[str, threading.Thread] = {}
        self._clocks: dict[str, Clock] = {}
        self._closing = threading.Event()
        self.started_tasks: set[str] = set()
        """Tasks this process started through ``startReplicationTask`` (stopped on shutdown)."""
        self.aws_endpoint: str | None = None
        """Where the AWS APIs of this process answer (``conveyor serve``), for Lambda functions."""

    # --- starting and running ----------------------------------------------------------

    def definition(self, state_machine: str) -> dict[str, Any]:
        stack = self.stack()
        name = state_machine_name(state_machine)
        spec = stack.state_machines.get(name)
        if spec is None:
            known = ", ".join(sorted(stack.state_machines)) or "-"
            raise NotFoundError(f"no state machine named {name!r} (declared: {known})")
        return spec.definition

    def validate(self, state_machine: str) -> list[str]:
        """Parse the definition against the integrations; returns its warnings."""
        from conveyor.orchestration.asl.definition import parse_definition

        try:
            machine = parse_definition(self.definition(state_machine), resources=self.integrations)
        except ConfigError as exc:
            raise ConfigError(
                f"state_machines.{state_machine_name(state_machine)}.definition: {exc}"
            ) from None
        return machine.warnings

    def start(
        self,
        state_machine: str,
        execution_input: Any = None,
        *,
        name: str | None = None,
        run: RunMode = "none",
    ) -> dict[str, Any]:
        """Record a new execution; ``run`` says who runs it: a thread of this process,
        this thread until it ends, or whoever claims it later (``conveyor serve``)."""
        sm = state_machine_name(state_machine)
        self.validate(sm)
        kind = self.stack().state_machines[sm].type
        # a STANDARD name is unique; an EXPRESS one need not be (its ARN carries the id)
        if kind != "EXPRESS" and name is not None:
            existing = self._same_name(sm, name, execution_input, run)
            if existing is not None:
                return existing
        execution_id = str(uuid.uuid4())
        express = kind == "EXPRESS"
        execution = Execution.start(
            self.definition(sm),
            execution_input,
            store=self.exec_store,
            integrations=self.integrations,
            clock=SystemClock(),
            name=name,
            state_machine_name=sm,
            state_machine_type=kind,
            at_most_once=express and run == "inline",
            tokens=self.tokens,
            execution_id=execution_id,
            execution_arn=execution_arn(sm, name or execution_id, execution_id if express else None),
            state_machine_arn=state_machine_arn(sm),
            max_seconds=express_max_seconds() if express else None,
        )
        if run == "thread":
            self.run_in_thread(execution.execution_id)
        elif run == "inline":
            self.run(execution.execution_id)
        return self.describe(execution.execution_id)

    def _same_name(self, sm: str, name: str, execution_input: Any, run: RunMode) -> dict[str, Any] | None:
        """StartExecution of a STANDARD name already used: the service answers the
        existing execution while it runs with the same input (the call is idempotent),
        and ExecutionAlreadyExists otherwise. A caller that would run it here and wait
        (``inline``) is refused too: another thread or process runs that execution."""
        found = self.store.find_executions(state_machine=sm, name=name, limit=1)
        if not found:
            return None
        row = found[0]
        given = {} if execution_input is None else execution_input
        same = json.dumps(row["record"]["input"], sort_keys=True) == json.dumps(given, sort_keys=True)
        if run != "inline" and row["status"] == RUNNING and same:
            return self.describe(row["id"])
        why = "it is " + row["status"] if row["status"] != RUNNING else "with another input"
        raise ConfigError(f"state machine {sm!r} already has an execution named {name!r} ({why})")

    def run(self, execution_id: str) -> dict[str, Any]:
        """Run an execution in this thread until it ends or is suspended (claims it first)."""
        if not self._claim(execution_id):
            raise ConfigError(f"execution {execution_id} is not running or another process runs it")
        self._drive(execution_id)
        return self.describe(execution_id)

    def run_in_thread(self, execution_id: str) -> bool:
        if self._closing.is_set() or not self._claim(execution_id):
            return False
        thread = threading.Thread(
            target=self._drive, args=(execution_id,), name=f"execution-{execution_id[:8]}"
        )
        thread.daemon = True
        with self._lock:
            self._threads[execution_id] = thread
        thread.start()
        return True

    def _claim(self, execution_id: str) -> bool:
        from conveyor.replication.worker import pid_alive

        row = self.store.execution(execution_id)
        if row is None or row["status"] != RUNNING:
            return False
        owner = row["owner_pid"]
        if owner == self.pid:
            with self._lock:
                return execution_id not in self._threads
        if owner is not None and pid_alive(owner):
            return False
        return self.store.claim_execution(execution_id, self.pid, owner)

    def _aborted_check(self, execution_id: str) -> Callable[[], bool]:
        def aborted() -> bool:
            row = self.store.execution(execution_id)
            return row is None or row["status"] == ABORTED

        return aborted

    def _drive(self, execution_id: str) -> None:
        clock = self.clock_factory(self._aborted_check(execution_id))
        with self._lock:
            self._clocks[execution_id] = clock
        try:
            if self._closing.is_set():
                return
            execution = Execution.resume(
                self.exec_store, execution_id, integrations=self.integrations, clock=clock, tokens=self.tokens
            )
            execution.run()
        except Exception:
            log.exception("execution %s stopped on an internal error", execution_id)
        finally:
            with self._lock:
                self._clocks.pop(execution_id, None)
                if self._threads.get(execution_id) is threading.current_thread():
                    self._threads.pop(execution_id, None)
            self.store.release_execution(execution_id, self.pid)

    def resume_unowned(self) -> list[str]:
        """Claim and run (in threads) every RUNNING execution that nothing live runs; a
        synchronous EXPRESS one whose caller is gone is failed instead (at most once,
        as the service runs them)."""
        taken = []
        for row in self.store.find_executions(status=RUNNING, limit=1000):
            with self._lock:
                mine = row["id"] in self._threads
            if mine or row["owner_pid"] == self.pid:
                continue
            if row["record"].get("at_most_once"):
                self._fail_abandoned(row)
            elif self.run_in_thread(row["id"]):
                taken.append(row["id"])
        return taken

    ABANDONED_AFTER = timedelta(seconds=60)
    """How long an unowned synchronous EXPRESS execution may wait for its caller to claim it."""

    def _fail_abandoned(self, row: Mapping[str, Any]) -> None:
        from conveyor.replication.worker import pid_alive

        owner = row["owner_pid"]
        if owner is not None and pid_alive(owner):
            return
        started = _parse_time(row["record"]["start_time"])
        if owner is None and started is not None and datetime.now(UTC) - started < self.ABANDONED_AFTER:
            return  # its caller is about to claim it, or a suspended one it still answers
        if not self.store.claim_execution(row["id"], self.pid, owner):
            return
        try:
            record = self.exec_store.load(row["id"])
            now = _iso(datetime.now(UTC))
            cause = "the process running this synchronous EXPRESS execution ended; it runs at most once"
            record.status, record.error, record.cause = FAILED, "States.Runtime", cause
            record.cursor, record.stop_time = None, now
            event_id = len(self.store.execution_events(row["id"])) + 1
            details = {"error": record.error, "cause": cause}
            failed = HistoryEvent(event_id, "ExecutionFailed", now or "", details)
            self.exec_store.commit(record, [failed])
        except ExecutionSuspended:
            pass  # stopped meanwhile
        finally:
            self.store.release_execution(row["id"], self.pid)

    def running(self) -> list[str]:
        with self._lock:
            return list(self._threads)

    def shutdown(self, timeout: float = 10.0) -> None:
        """Suspend every execution this process runs (their state is in the store) and
        wait up to ``timeout`` seconds for their threads."""
        self._closing.set()
        with self._lock:
            clocks = list(self._clocks.values())
            threads = list(self._threads.values())
        for clock in clocks:
            stop = getattr(clock, "stop", None)
            if stop is not None:
                stop()
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    # --- reading ---------------------------------------------------------------------

    def resolve(self, ref: str) -> ExecutionRow:
        """The execution row named by id, ARN or name."""
        row = self.store.execution(ref)
        if row is not None:
            return row
        if ref.startswith("arn:") and ":express:" in ref:
            sm, _, rest = ref.split(":express:", 1)[1].partition(":")
            name, _, execution_id = rest.rpartition(":")
            row = self.store.execution(execution_id)
            if row is not None and (row["state_machine"], row["name"]) == (sm, name) and is_express(row):
                return row
            raise NotFoundError(f"no execution with id, ARN or name {ref!r}")
        if ref.startswith("arn:") and ":execution:" in ref:
            sm, _, name = ref.split(":execution:", 1)[1].partition(":")
            found = self.store.find_executions(state_machine=sm, name=name, limit=2)
        else:
            found = self.store.find_executions(name=ref, limit=2)
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise ConfigError(f"several executions are named {ref!r}: give its id or ARN")
        raise NotFoundError(f"no execution with id, ARN or name {ref!r}")

    def describe(self, ref: str) -> dict[str, Any]:
        """DescribeExecution's answer (plus ``executionId`` and ``stateMachineName``)."""
        row = self.resolve(ref)
        record = row["record"]
        described: dict[str, Any] = {
            "executionArn": row_arn(row),
            "executionId": row["id"],
            "stateMachineArn": state_machine_arn(row["state_machine"]),
            "stateMachineName": row["state_machine"],
            "stateMachineType": record.get("state_machine_type", "STANDARD"),
            "name": row["name"],
            "status": row["status"],
            "startDate": record["start_time"],
            "input": json.dumps(record["input"]),
        }
        if row["stop_time"] is not None:
            described["stopDate"] = _iso(row["stop_time"])
        if row["status"] == SUCCEEDED:
            described["output"] = json.dumps(record["output"])
        if record.get("error"):
            described["error"] = record["error"]
        if record.get("cause"):
            described["cause"] = record["cause"]
        cursor = record.get("cursor")
        if row["status"] == RUNNING and cursor:
            described["currentState"] = cursor["state"]
            if cursor.get("wake_at"):
                described["wakeAt"] = cursor["wake_at"]
        return described

    def list(
        self, *, state_machine: str | None = None, status: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        rows = self.store.find_executions(
            status=status,
            state_machine=None if state_machine is None else state_machine_name(state_machine),
            limit=limit,
        )
        return [
            {
                "executionArn": row_arn(r),
                "executionId": r["id"],
                "stateMachineArn": state_machine_arn(r["state_machine"]),
                "stateMachineName": r["state_machine"],
                "stateMachineType": r["record"].get("state_machine_type", "STANDARD"),
                "name": r["name"],
                "status": r["status"],
                "startDate": r["record"]["start_time"],
                "stopDate": _iso(r["stop_time"]),
            }
            for r in rows
        ]

    def history(self, ref: str) -> dict[str, Any]:
        """GetExecutionHistory's answer: ``{"events": [...]}``, oldest first."""
        row = self.resolve(ref)
        events = []
        previous = 0
        for event in self.store.execution_events(row["id"]):
            events.append(aws_history_event(event, previous))
            previous = event["id"]
        return {"events": events}

    # --- stopping ----------------------------------------------------------------------

    def stop(self, ref: str, error: str | None = None, cause: str | None = None) -> dict[str, Any]:
        """StopExecution: the execution ends ABORTED; a running Wait or Task notices soon."""
        row = self.resolve(ref)
        if row["status"] != RUNNING:
            raise ConfigError(f"execution {row['id']} is {row['status']}, not RUNNING")
        record = dict(row["record"])
        now = datetime.now(UTC)
        record |= {"status": ABORTED, "cursor": None, "stop_time": _iso(now), "error": error, "cause": cause}
        next_id = len(self.store.execution_events(row["id"])) + 1
        event = {
            "id": next_id,
            "type": "ExecutionAborted",
            "timestamp": _iso(now),
            "details": {"error": error, "cause": cause},
        }
        if not self.store.abort_execution(row["id"], record, event):
            raise ConfigError(f"execution {row['id']} ended before it could be stopped")
        with self._lock:
            clock = self._clocks.get(row["id"])
        stop = getattr(clock, "stop", None)
        if stop is not None:
            stop()
        return {"stopDate": _iso(now), "executionArn": row_arn(row)}


_JSON_DETAILS = ("input", "output", "parameters")


def aws_history_event(event: ExecutionEventRow, previous: int) -> dict[str, Any]:
    """One engine history event in GetExecutionHistory's shape (JSON payloads as strings)."""
    kind = event["type"]
    details = dict(event["details"])
    for key in _JSON_DETAILS:
        if key in details:
            details[key] = json.dumps(details[key])
    if kind.endswith("StateEntered"):
        key = "stateEnteredEventDetails"
    elif kind.endswith("StateExited"):
        key = "stateExitedEventDetails"
    else:
        key = kind[0].lower() + kind[1:] + "EventDetails"
    shaped: dict[str, Any] = {
        "id": event["id"],
        "previousEventId": previous,
        "timestamp": event["timestamp"],
        "type": kind,
    }
    if details:
        shaped[key] = {k: v for k, v in details.items() if v is not None}
    return shaped


def _no_events(event: dict[str, Any]) -> None:
    raise RuntimeError(f"validating definitions starts no task, yet an event came: {event}")


def validate_definitions(stack: Stack) -> list[str]:
    """Parse every state machine of ``stack`` against the integrations Conveyor has
    (an unknown Task resource is an error), at `conveyor apply` time; raises one
    ConfigError listing every problem, returns the warnings. Touches no store."""
    from sqlalchemy import create_engine

    store = Store(create_engine("sqlite://"))
    try:
        executions = Executions(store, lambda: stack, events=_no_events)
        warnings: list[str] = []
        problems: list[str] = []
        for name in sorted(stack.state_machines):
            try:
                warnings += [f"state_machines.{name}.definition: {w}" for w in executions.validate(name)]
            except ConfigError as exc:
                problems.append(str(exc))
        if problems:
            raise ConfigError("\n".join(problems))
        return warnings
    finally:
        store.close()
