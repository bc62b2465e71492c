"""Running a state machine: :class:`Execution` advances state by state and checkpoints.

Contract
--------
* ``Execution.start`` validates the definition, records ``ExecutionStarted`` and commits.
  ``run()`` then executes until the execution ends or the clock suspends it
  (:class:`~conveyor.orchestration.asl.clock.ExecutionSuspended`).
* Checkpoints are top-level: after every top-level state, and before each Wait or Retry
  delay, the store receives the new events and the cursor (state, input, wake-up time,
  retry counts). ``Execution.resume`` continues from the last checkpoint, so a Wait
  restored from the store sleeps only for the time left, and a state that was
  interrupted while running is run again (tasks are at-least-once, as in Step Functions).
* A Task whose resource ends in ``.waitForTaskToken`` gets a token (``$$.Task.Token``)
  issued before its integration is called, then waits, polling its :class:`TaskTokens`,
  for the token's answer (SendTaskSuccess / SendTaskFailure), honouring TimeoutSeconds
  and HeartbeatSeconds (SendTaskHeartbeat) from when the token was issued. The token is
  checkpointed: a resumed execution waits for the same token without calling the
  integration again. Each retry attempt gets a new token.
* Parallel branches and Map iterations run concurrently in threads, up to the Map's
  MaxConcurrency (0 = at most :data:`MAX_CONCURRENCY`, as Step Functions caps an inline
  Map at 40). Each finished iteration / branch is checkpointed (``Cursor.done``): a
  resumed Map or Parallel runs only those that had not finished. A ``.waitForTaskToken``
  Task inside one keeps its token in ``Cursor.tokens`` and waits for the same token
  after a restart; the states before it in the iteration run again (at least once).
  When one fails, the iterations not started are not started and the running ones
  stop at their next state (a Distributed Map tolerates ``ToleratedFailure*``).
* ``QueryLanguage: JSONata`` states evaluate ``{% %}`` expressions (jsonata_eval);
  ``Assign`` sets workflow variables, read as ``$name`` in both languages, kept in the
  cursor. A Map iteration or Parallel branch reads the outer variables and has its own.

This module is the driver (start, resume, steps, events, checkpoints, the execution's
timeout); the states run in the parts it is assembled from (``parts`` lists them).
"""

from __future__ import annotations

import json
import random
import threading
import uuid
from datetime import datetime, timedelta
from typing import Any

from conveyor.orchestration.asl import errors as E
from conveyor.orchestration.asl.clock import Clock, ExecutionSuspended, SystemClock
from conveyor.orchestration.asl.dataflow import DataFlow
from conveyor.orchestration.asl.definition import StateMachine, parse_definition
from conveyor.orchestration.asl.errors import StatesError
from conveyor.orchestration.asl.fanout import FanOut
from conveyor.orchestration.asl.flow_states import FlowStates
from conveyor.orchestration.asl.integrations import Integrations
from conveyor.orchestration.asl.intrinsics import IntrinsicEnv
from conveyor.orchestration.asl.jsonata_eval import JsonataEnv
from conveyor.orchestration.asl.parts import ExecutionTimedOut, iso, parse_iso
from conveyor.orchestration.asl.recovery import Recovery
from conveyor.orchestration.asl.scope import Scope
from conveyor.orchestration.asl.store import Cursor, ExecutionRecord, ExecutionStore, HistoryEvent
from conveyor.orchestration.asl.task_state import TaskState
from conveyor.orchestration.asl.tokens import InMemoryTaskTokens, TaskTokens


class Execution(FlowStates, Recovery, TaskState, FanOut, DataFlow):
    """One execution of a state machine. Not thread-safe: drive it from one thread."""

    def __init__(
        self,
        machine: StateMachine,
        record: ExecutionRecord,
        *,
        store: ExecutionStore,
        integrations: Integrations,
        clock: Clock | None = None,
        seed: int | None = None,
        tokens: TaskTokens | None = None,
    ) -> None:
        self.machine = machine
        self.tokens: TaskTokens = tokens or InMemoryTaskTokens()
        self.record = record
        self.store = store
        self.integrations = integrations
        self.clock: Clock = clock or SystemClock()
        self.rng = random.Random(seed)
        self._intrinsics = IntrinsicEnv(self.rng)
        self._jsonata_env = JsonataEnv(self.rng)
        self._lock = threading.RLock()
        self._nested_checkpoints = record.cursor is not None and any(
            "/" in key for key in (*record.cursor.done, *record.cursor.tokens)
        )
        self._pending: list[HistoryEvent] = []
        self._next_event_id = len(store.history(record.execution_id)) + 1

    # --- lifecycle ------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        definition: str | dict[str, Any] | StateMachine,
        execution_input: Any = None,
        *,
        store: ExecutionStore,
        integrations: Integrations,
        clock: Clock | None = None,
        name: str | None = None,
        execution_id: str | None = None,
        state_machine_name: str = "StateMachine",
        state_machine_type: str = "STANDARD",
        at_most_once: bool = False,
        seed: int | None = None,
        tokens: TaskTokens | None = None,
        execution_arn: str | None = None,
        state_machine_arn: str | None = None,
        max_seconds: int | None = None,
    ) -> Execution:
        """Validate ``definition`` (ConfigError when invalid), record ExecutionStarted and commit.
        The ARNs are what the context object shows; ``max_seconds`` caps the duration as
        TimeoutSeconds does (an EXPRESS execution's five minutes)."""
        machine = (
            definition
            if isinstance(definition, StateMachine)
            else parse_definition(definition, resources=integrations)
        )
        clock = clock or SystemClock()
        execution_input = {} if execution_input is None else execution_input
        json.dumps(execution_input)  # the input must be JSON
        exec_id = execution_id or str(uuid.uuid4())
        now = iso(clock.now())
        record = ExecutionRecord(
            execution_id=exec_id,
            name=name or exec_id,
            definition=machine.source,
            input=execution_input,
            start_time=now,
            cursor=Cursor(state=machine.start_at, input=execution_input, entered_time=now),
            state_machine_name=state_machine_name,
            state_machine_type=state_machine_type,
            at_most_once=at_most_once,
            execution_arn=execution_arn,
            state_machine_arn=state_machine_arn,
            max_seconds=max_seconds,
        )
        execution = cls(
            machine, record, store=store, integrations=integrations, clock=clock, seed=seed, tokens=tokens
        )
        execution._event("ExecutionStarted", input=execution_input)
        execution._commit()
        return execution

    @classmethod
    def resume(
        cls,
        store: ExecutionStore,
        execution_id: str,
        *,
        integrations: Integrations,
        clock: Clock | None = None,
        seed: int | None = None,
        tokens: TaskTokens | None = None,
    ) -> Execution:
        """Continue an execution from its last checkpoint."""
        record = store.load(execution_id)
        machine = parse_definition(record.definition, resources=integrations)
        return cls(
            machine, record, store=store, integrations=integrations, clock=clock, seed=seed, tokens=tokens
        )

    @property
    def execution_id(self) -> str:
        return self.record.execution_id

    @property
    def status(self) -> str:
        return self.record.status

    @property
    def output(self) -> Any:
        return self.record.output

    def history(self) -> list[HistoryEvent]:
        return self.store.history(self.execution_id)

    def run(self) -> ExecutionRecord:
        """Run until the execution ends or the clock suspends it; returns the record."""
        try:
            while self.step():
                pass
        except ExecutionSuspended:
            self._pending.clear()
            self._next_event_id = len(self.history()) + 1
        return self.record

    def step(self) -> bool:
        """Run the current top-level state; False once the execution has ended."""
        cursor = self.record.cursor
        if self.record.status != "RUNNING" or cursor is None:
            return False
        state = self.machine.states[cursor.state]
        scope = Scope(self.machine, top=True, cursor=cursor, variables=cursor.variables)
        try:
            self._check_execution_timeout()
            outcome = self._run_state(state, cursor.input, scope)
        except ExecutionTimedOut as exc:
            self._finish_failed(exc.error, exc.cause, status="TIMED_OUT")
            return False
        except StatesError as exc:
            self._finish_failed(exc.error, exc.cause)
            return False
        if outcome.next is None:
            self.record.status, self.record.output = "SUCCEEDED", outcome.output
            self.record.cursor, self.record.stop_time = None, iso(self.clock.now())
            self._event("ExecutionSucceeded", output=outcome.output)
            self._commit()
            return False
        now = iso(self.clock.now())
        self.record.cursor = Cursor(
            state=outcome.next, input=outcome.output, entered_time=now, variables=scope.variables
        )
        self._commit()
        return True

    def _finish_failed(self, error: str, cause: str | None, status: str = "FAILED") -> None:
        """End the execution FAILED (ExecutionFailed) or TIMED_OUT (ExecutionTimedOut)."""
        self.record.status, self.record.error, self.record.cause = status, error, cause
        self.record.cursor, self.record.stop_time = None, iso(self.clock.now())
        kind = "ExecutionTimedOut" if status == "TIMED_OUT" else "ExecutionFailed"
        self._event(kind, error=error, cause=cause)
        self._commit()

    def _time_limit(self) -> tuple[float, str] | None:
        """The execution's limit in seconds and what sets it: the definition's
        TimeoutSeconds or the record's hard limit, whichever is shorter."""
        limits = []
        if self.machine.timeout_seconds is not None:
            limits.append((float(self.machine.timeout_seconds), "the state machine's TimeoutSeconds"))
        if self.record.max_seconds is not None:
            kind = self.record.state_machine_type
            what = f"the {self.record.max_seconds}-second limit of an {kind} execution"
            limits.append((float(self.record.max_seconds), what))
        return min(limits) if limits else None

    def _execution_deadline(self) -> datetime | None:
        limit = self._time_limit()
        if limit is None:
            return None
        return parse_iso(self.record.start_time) + timedelta(seconds=limit[0])

    def _check_execution_timeout(self) -> None:
        deadline = self._execution_deadline()
        if deadline is not None and self.clock.now() >= deadline:
            limit = self._time_limit()
            assert limit is not None
            raise ExecutionTimedOut(E.TIMEOUT, f"The execution ran past {limit[1]}")

    # --- events and checkpoints ------------------------------------------------------

    def _event(self, kind: str, **details: Any) -> None:
        with self._lock:
            event = HistoryEvent(self._next_event_id, kind, iso(self.clock.now()), details)
            self._next_event_id += 1
            self._pending.append(event)

    def _commit(self) -> None:
        with self._lock:
            self.store.commit(self.record, self._pending)
            self._pending = []

    def _sleep(self, scope: Scope, wake_at: datetime, phase: str, attempts: list[int]) -> None:
        if scope.top and scope.cursor is not None:
            scope.cursor.phase, scope.cursor.wake_at = phase, iso(wake_at)
            scope.cursor.attempts = list(attempts)
            self._commit()
        deadline = self._execution_deadline()
        if deadline is not None and wake_at >= deadline:
            self.clock.sleep_until(deadline)
            self._check_execution_timeout()
        self.clock.sleep_until(wake_at)
        if scope.top and scope.cursor is not None:
            scope.cursor.phase, scope.cursor.wake_at = "enter", None
