"""Validation during change capture (``ValidationSettings.EnableValidation`` on a
``cdc`` or ``full-load-and-cdc`` task).

The keys each committed batch touched are queued per table (the runner's
``on_applied`` hook). Once a table's oldest queued change has settled
(``ValidationQueryCdcDelaySeconds``, else ``DEFAULT_SETTLE_SECONDS``), a
background thread compares the table, source against target, as
``conveyor validate`` does (``replication.validation``: canonical text of the
source type). A differing row is reported only when a second comparison, a
settle delay later, finds it still different without a change to its key in
between: a row whose change is still on its way is not a failure. With
``RecordFailureDelayLimitInMinutes`` set, a row must have differed that long
(from the comparison that first found it) before it is reported. Confirmed
failures go to ``awsdms_validation_failures_v1`` on the target.

Pending keys are kept in memory: a restarted capture queues every table whole.
Each comparison reads the whole table (its cost grows with the table, not with
the changes); the keys decide when and what is reported.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from conveyor.connectors.base import (
    EndpointConfig,
    Snapshot,
    SupportsValidationFailures,
    Target,
    ValidationFailure,
)
from conveyor.connectors.registry import open_source, open_target
from conveyor.core.canonical_text import render_column
from conveyor.core.schema import TableRef
from conveyor.replication.full_load import TablePlan
from conveyor.replication.settings import ValidationSettings
from conveyor.replication.validation import MISMATCHED, TABLE_ERROR, VALIDATED, ValidationRun, validate_table

log = logging.getLogger(__name__)

PENDING = "Pending records"
NOT_ENABLED = "Not enabled"
DEFAULT_SETTLE_SECONDS = 5.0
_WHOLE: tuple[str | None, ...] = ("<whole table>",)  # a table without a key: its rows cannot be named

Key = tuple[str | None, ...]
Sides = tuple[Snapshot, Target, Callable[[], None]]  # source snapshot, target, close both


def settle_seconds(settings: ValidationSettings) -> float:
    return float(settings.validation_query_cdc_delay_seconds) or DEFAULT_SETTLE_SECONDS


def confirm_seconds(settings: ValidationSettings) -> float:
    """How long a row must keep differing, unchanged, before it is reported:
    ``RecordFailureDelayLimitInMinutes`` when set, else one settle delay."""
    minutes = settings.record_failure_delay_limit_in_minutes
    return minutes * 60.0 if minutes > 0 else settle_seconds(settings)


@dataclass
class _Table:
    """One table's validation state during capture."""

    plan: TablePlan
    pending: set[Key] = field(default_factory=set)
    whole: bool = True  # every row pending (capture start, a TRUNCATE, rows without a key)
    since: float | None = field(default_factory=time.monotonic)  # oldest pending change
    differing: dict[Key, float] = field(default_factory=dict)
    """Keys the last comparison found different: when a comparison first found each
    (monotonic seconds), unchanged since."""
    failed: int = 0  # confirmed failures
    recorded: set[Key] | None = None  # the keys in the failures table (None: not written yet)
    reloading: bool = False
    state: str = PENDING
    reason: str | None = None
    checked: str | None = None

    def start_from(self, document: dict[str, Any]) -> None:
        """This run's full load validated the table (its statistics ``document``):
        its state stands until a change touches the table."""
        if document.get("ValidationState") in {VALIDATED, MISMATCHED, TABLE_ERROR}:
            self.state, self.reason = document["ValidationState"], document.get("ValidationStateDetails")
            self.failed = int(document.get("ValidationFailedRecords") or 0)
            self.whole, self.since = False, None

    def stats(self) -> dict[str, Any]:
        unconfirmed = len(self.differing) - self.failed if self.differing else 0
        waiting = len(self.pending) + max(unconfirmed, 0)
        state = self.state
        if state == VALIDATED and (waiting or self.whole):
            state = PENDING
        return {
            "ValidationState": state,
            "ValidationStateDetails": self.reason,
            "ValidationPendingRecords": waiting,
            "ValidationFailedRecords": self.failed,
            "ValidationLastCheck": self.checked,
        }


class CaptureValidation:
    """Queues the keys applied batches touched and re-validates settled tables
    in a background thread; ``stats`` is each table's state for `tasks describe`."""

    def __init__(
        self,
        task: str,
        settings: ValidationSettings,
        plans: Sequence[TablePlan],
        open_sides: Callable[[], Sides],
        loaded: dict[TableRef, dict[str, Any]] | None = None,
    ) -> None:
        self.task, self.settings = task, settings
        self.settle = settle_seconds(settings)
        self.confirm = confirm_seconds(settings)
        self._open_sides = open_sides
        self._publish: Callable[[], None] = lambda: None
        self._tables = {p.target.ref: _Table(p) for p in plans}
        for ref, document in (loaded or {}).items():
            if ref in self._tables:
                self._tables[ref].start_from(document)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"validate-{task}", daemon=True)

    def start(self, publish: Callable[[], None]) -> None:
        """Begin comparing; ``publish`` reports the states after each round."""
        self._publish = publish
        self._thread.start()

    def close(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def observe(self, plan: TablePlan, reloading: bool) -> None:
        """A captured table as the capture reports it: one it did not know (created
        during capture) or one whose reload just ended is compared whole."""
        with self._lock:
            table = self._tables.get(plan.target.ref)
            if table is None:
                table = self._tables[plan.target.ref] = _Table(plan)
            elif table.reloading and not reloading:
                table.plan, table.whole = plan, True
                table.since = table.since or time.monotonic()
            table.reloading = reloading

    def stats(self, ref: TableRef) -> dict[str, Any]:
        with self._lock:
            table = self._tables.get(ref)
            return table.stats() if table is not None else {"ValidationState": NOT_ENABLED}

    def applied(self, touched: dict[TableRef, list[Any] | None]) -> None:
        """A batch committed on the target: queue the keys it touched
        (target key values; None: the whole table)."""
        for ref, keys in touched.items():
            table = self._tables.get(ref)
            if table is None:
                continue
            texts = None if keys is None or not table.plan.target.primary_key else key_texts(table.plan, keys)
            with self._lock:
                if texts is None:
                    table.whole = True
                else:
                    table.pending.update(texts)
                if table.since is None:
                    table.since = time.monotonic()

    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            now = time.monotonic()
            with self._lock:
                due = [
                    t
                    for t in self._tables.values()
                    if t.since is not None and now - t.since >= self.settle and not t.reloading
                ]
            if not due:
                continue
            try:
                self._round(due)
            except Exception as exc:  # the sides could not be opened: said per table, tried again
                with self._lock:
                    for table in due:
                        table.state, table.reason = TABLE_ERROR, f"{type(exc).__name__}: {exc}"
                        table.since = time.monotonic()
                log.warning("task %s: validation during capture could not run: %s", self.task, exc)
            try:
                self._publish()
            except Exception:
                log.exception("task %s: validation state could not be reported", self.task)

    def _round(self, due: list[_Table]) -> None:
        snapshot, target, close = self._open_sides()
        try:
            for table in due:
                if self._stop.is_set():
                    return
                self._check(snapshot, target, table)
        finally:
            close()

    def _check(self, snapshot: Snapshot, target: Target, table: _Table) -> None:
        with self._lock:
            touched, table.pending = table.pending, set()
            whole_before, table.whole, table.since = table.whole, False, None
        run = ValidationRun(self.task, self.settings, record=False)
        result = validate_table(snapshot, target, table.plan, run=run)
        with self._lock:
            # Keys touched while comparing (queued again meanwhile) cannot be confirmed either.
            moved = touched | table.pending
            if whole_before or table.whole:
                moved |= set(table.differing)  # changed after the last comparison, rows unnamed
            table.checked = datetime.now(UTC).isoformat()
            if result.state == TABLE_ERROR:
                table.state, table.reason, table.differing = TABLE_ERROR, result.reason, {}
                return
            found: dict[Key, ValidationFailure] = {f.key: f for f in result.failures}
            if result.state == MISMATCHED and not table.plan.target.primary_key:
                found = {_WHOLE: ValidationFailure(_WHOLE, "RECORD_DIFF", (), "{}")}
            # Confirmed: found by an earlier comparison too, unchanged since, and
            # differing for the confirmation delay. A recorded failure stays recorded
            # while it still differs.
            now = time.monotonic()
            first = {k: table.differing[k] if k in table.differing and k not in moved else now for k in found}
            recorded = table.recorded or set()
            confirmed = [
                f
                for k, f in found.items()
                if (first[k] < now and now - first[k] >= self.confirm) or k in recorded
            ]
            table.differing = first
            table.failed = len(confirmed)
            keys = {f.key for f in confirmed}
            waiting = [first[k] for k in found if k not in keys]
            if waiting and table.since is None:
                # compare again once the first of them has differed for the delay
                table.since = max(now, min(waiting) + self.confirm - self.settle)
            unconfirmed = bool(waiting)
            table.state = MISMATCHED if confirmed else VALIDATED
            table.reason = result.reason if confirmed else None
            # First write after a (re)start: wait until what differs is confirmed.
            write = keys != table.recorded and not (table.recorded is None and unconfirmed and not keys)
            if write and table.plan.target.primary_key:
                table.recorded = keys
        if write and table.plan.target.primary_key:
            self._record(target, table.plan.target.ref, confirmed)

    def _record(self, target: Target, ref: TableRef, failures: list[ValidationFailure]) -> None:
        if not isinstance(target, SupportsValidationFailures):
            return
        try:
            target.record_validation_failures(
                self.task, ref, failures, datetime.now(UTC).replace(tzinfo=None)
            )
        except Exception as exc:
            log.warning(
                "task %s: table %s: validation failures could not be recorded: %s", self.task, ref, exc
            )


def key_texts(plan: TablePlan, keys: list[Any]) -> list[Key]:
    """Target key values as validation's key texts (canonical text of the key
    columns' types); a value that cannot be rendered so is its ``str``."""
    columns = [plan.target.column(k) for k in plan.target.primary_key]
    rendered: list[list[str | None]] = []
    for i, column in enumerate(columns):
        values = [key[i] for key in keys]
        try:
            rendered.append(render_column(pa.array(values, type=column.type.arrow()), column.type))
        except Exception:  # a key value Arrow does not take as this type: compared as its str
            rendered.append([None if v is None else str(v) for v in values])
    return list(zip(*rendered, strict=True)) if rendered else []


def opener(source_config: EndpointConfig, target_config: EndpointConfig) -> Callable[[], Sides]:
    """Opens the source (a snapshot of it) and the target for one comparison round."""

    def open_sides() -> Sides:
        source = open_source(source_config)
        try:
            snapshot = source.snapshot()
            target = open_target(target_config)
        except BaseException:
            source.close()
            raise

        def close() -> None:
            try:
                snapshot.close()
                target.close()
            finally:
                source.close()

        return snapshot, target, close

    return open_sides
