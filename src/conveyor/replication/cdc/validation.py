"""Validation during change capture (``ValidationSettings.EnableValidation`` on a
``cdc`` or ``full-load-and-cdc`` task).

The keys each committed batch touched are queued per table (the runner's
``on_applied`` hook). Once a table's oldest queued change has settled
(``ValidationQueryCdcDelaySeconds``, else ``DEFAULT_SETTLE_SECONDS``), a
background thread compares those keys' rows, source against target, as
``conveyor validate`` compares rows (``replication.validation_keys``: read by
key, in partitions); a table is compared whole only at first (no validation of
it yet: a ``cdc`` task's start, a TRUNCATE, a reload, rows without a key) or
where its rows cannot be read by key. A differing row is reported only when a
later comparison, a settle delay later, finds it still different without a
change to its key in between: a row whose change is still on its way is not a
failure. With ``RecordFailureDelayLimitInMinutes`` set, a row must have
differed that long (from the comparison that first found it) before it is
reported. A differing row is compared again each confirmation delay, changed
or not, until it is equal (a fix made behind Conveyor's back shows then).
Confirmed failures go to ``awsdms_validation_failures_v1`` on the target.

What is left to compare is kept in the store (``validation_keys``): the keys of
a batch are written as it is handed to the applier, before it can commit, and
leave once a comparison found them equal; so a resumed task, or one whose worker
was killed, compares what was pending and differing, not every table again.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
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
from conveyor.replication.settings import ValidationSettings
from conveyor.replication.table_plan import TablePlan
from conveyor.replication.validation import MISMATCHED, TABLE_ERROR, VALIDATED, ValidationRun, validate_table
from conveyor.replication.validation_keys import validate_keys
from conveyor.store.validation_keys import TABLE_ROW, KeyRow, ValidationKeys

log = logging.getLogger(__name__)

PENDING = "Pending records"
NOT_ENABLED = "Not enabled"
DEFAULT_SETTLE_SECONDS = 5.0
_UNCAPPED = 1 << 62
_WHOLE: tuple[str | None, ...] = ("<whole table>",)  # a table without a key: its rows cannot be named
WHOLE, KEYS = "whole", "keys"  # a table's row in the store: compared whole next, or by key
QUEUED, DIFFERING = "pending", "differing"  # a key's row

Key = tuple[str | None, ...]
Sides = tuple[Snapshot, Target, Callable[[], None]]  # source snapshot, target, close both


def settle_seconds(settings: ValidationSettings) -> float:
    return float(settings.validation_query_cdc_delay_seconds) or DEFAULT_SETTLE_SECONDS


def confirm_seconds(settings: ValidationSettings) -> float:
    """How long a row must keep differing, unchanged, before it is reported:
    ``RecordFailureDelayLimitInMinutes`` when set, else ``RecordFailureDelayInMinutes``
    when the task's settings write it (its default of 5 minutes is not applied
    unasked), else one settle delay."""
    minutes = settings.record_failure_delay_limit_in_minutes
    if minutes <= 0 and "record_failure_delay_in_minutes" in settings.model_fields_set:
        minutes = settings.record_failure_delay_in_minutes
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
    handed: dict[Key, int] = field(default_factory=dict)  # keys of batches handed, not yet committed
    handed_whole: int = 0  # batches handed, not yet committed, that touched the whole table
    stored: dict[Key, str] = field(default_factory=dict)  # each key's row in the store (its state)
    mode: str | None = None  # the table's row in the store (WHOLE, KEYS; None: none)
    by_key: bool = False
    """Compared whole (or Validated by this run's full load) once: changed keys only from then on."""

    @property
    def ref(self) -> TableRef:
        return self.plan.target.ref

    def start_from(self, document: dict[str, Any]) -> bool:
        """This run's full load validated the table (its statistics ``document``):
        its state stands until a change touches the table. Whether it did."""
        if document.get("ValidationState") in {VALIDATED, MISMATCHED, TABLE_ERROR}:
            self.state, self.reason = document["ValidationState"], document.get("ValidationStateDetails")
            self.failed = int(document.get("ValidationFailedRecords") or 0)
            self.whole, self.since = False, None
            # differences the load found are not named here: the next comparison is whole
            self.by_key = self.state == VALIDATED
            return True
        return False

    def resume(self, rows: list[KeyRow], now: float, wall: float) -> None:
        """What an earlier run left to compare (the store's rows of the table)."""
        for row in rows:
            if row.key == TABLE_ROW:
                self.mode = row.state
                continue
            key: Key = tuple(json.loads(row.key))
            self.stored[key] = row.state
            if row.state == DIFFERING and row.since is not None:
                self.differing[key] = now - max(0.0, wall - row.since)
            else:
                self.pending.add(key)
        if self.mode != KEYS:
            return  # never compared whole: compared whole first
        self.whole, self.state, self.by_key = False, VALIDATED, True
        self.since = now if self.pending or self.differing else None

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
    """Queues the keys applied batches touched and re-validates them once settled
    in a background thread; ``stats`` is each table's state for `tasks describe`.
    With ``keys`` (the store's ``validation_keys``), what is left to compare is
    kept there and taken up again from there."""

    def __init__(
        self,
        task: str,
        settings: ValidationSettings,
        plans: Sequence[TablePlan],
        open_sides: Callable[[], Sides],
        loaded: dict[TableRef, dict[str, Any]] | None = None,
        keys: ValidationKeys | None = None,
    ) -> None:
        self.task, self.settings = task, settings
        self.settle = settle_seconds(settings)
        self.confirm = confirm_seconds(settings)
        self._open_sides = open_sides
        self._keys = keys
        self._rendered: dict[int, list[Key]] = {}  # a handed batch's key texts, by its key list
        self._publish: Callable[[], None] = lambda: None
        self._tables = {p.target.ref: _Table(p) for p in plans}
        rows: dict[TableRef, list[KeyRow]] = {}
        for row in keys.of_task(task) if keys is not None else []:
            rows.setdefault(TableRef(row.schema_name, row.table_name), []).append(row)
        now, wall = time.monotonic(), _wall()
        marks: list[KeyRow] = []
        for ref, table in self._tables.items():
            document = (loaded or {}).get(ref)
            if document is not None and table.start_from(document):
                if table.by_key:
                    table.mode = KEYS
                    marks.append(KeyRow(ref.schema, ref.name, TABLE_ROW, KEYS))
            elif ref in rows:
                table.resume(rows[ref], now, wall)
        self._put(marks)
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
                table.plan, table.whole, table.by_key = plan, True, False
                table.pending.clear()
                table.differing.clear()
                table.since = table.since or time.monotonic()
                if self._keys is not None:
                    self._keys.clear(self.task, table.ref.schema, table.ref.name)
                table.stored, table.mode = {}, None
            table.reloading = reloading

    def stats(self, ref: TableRef) -> dict[str, Any]:
        with self._lock:
            table = self._tables.get(ref)
            return table.stats() if table is not None else {"ValidationState": NOT_ENABLED}

    def handed(self, touched: dict[TableRef, list[Any] | None]) -> None:
        """A batch goes to the applier (it may commit from now on): its keys are
        kept in the store first, so a crash after its commit leaves them to compare."""
        rows: list[KeyRow] = []
        new: list[KeyRow] = []  # keys the store does not hold yet
        with self._lock:
            for ref, keys in touched.items():
                table = self._tables.get(ref)
                if table is None:
                    continue
                texts = self._texts(table, keys)
                if texts is None:
                    table.handed_whole += 1
                    if table.mode != WHOLE:
                        table.mode = WHOLE
                        rows.append(KeyRow(ref.schema, ref.name, TABLE_ROW, WHOLE))
                    continue
                assert keys is not None
                self._rendered[id(keys)] = texts  # the list lives on with its batch until applied
                for key in texts:
                    table.handed[key] = table.handed.get(key, 0) + 1
                    held = table.stored.get(key)
                    if held != QUEUED:
                        table.stored[key] = QUEUED
                        (new if held is None else rows).append(
                            KeyRow(ref.schema, ref.name, _key_text(key), QUEUED)
                        )
            if (rows or new) and self._keys is not None:
                self._keys.put(self.task, rows, new)

    def applied(self, touched: dict[TableRef, list[Any] | None]) -> None:
        """A batch committed on the target: queue the keys it touched
        (target key values; None: the whole table)."""
        for ref, keys in touched.items():
            table = self._tables.get(ref)
            if table is None:
                continue
            texts = self._rendered.pop(id(keys), None) if keys is not None else None
            if texts is None:
                texts = self._texts(table, keys)
            with self._lock:
                if texts is None:
                    table.whole = True
                    table.handed_whole = max(0, table.handed_whole - 1)
                else:
                    table.pending.update(texts)
                    for key in texts:
                        left = table.handed.get(key, 0) - 1
                        if left > 0:
                            table.handed[key] = left
                        else:
                            table.handed.pop(key, None)
                if table.since is None:
                    table.since = time.monotonic()

    @staticmethod
    def _texts(table: _Table, keys: list[Any] | None) -> list[Key] | None:
        if keys is None or not table.plan.target.primary_key:
            return None
        return key_texts(table.plan, keys)

    def _put(self, rows: list[KeyRow]) -> None:
        if rows and self._keys is not None:
            self._keys.put(self.task, rows)

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
            asked = touched | set(table.differing)  # the changed keys, and those that differed
        # Every differing row is kept (its key is compared again until it is equal);
        # TableFailureMaxCount caps what the failures table gets (``_record``).
        every = {"table_failure_max_count": _UNCAPPED, "failure_max_count": _UNCAPPED}
        run = ValidationRun(self.task, self.settings.model_copy(update=every), record=False)
        whole = whole_before or not table.by_key
        result = None if whole else validate_keys(snapshot, target, table.plan, asked, run)
        by_key = result is not None
        if result is None:
            result = validate_table(snapshot, target, table.plan, run=run)
        with self._lock:
            # Keys touched while comparing (queued again meanwhile) cannot be confirmed either.
            moved = touched | table.pending
            if whole_before or table.whole:
                moved |= set(table.differing)  # changed after the last comparison, rows unnamed
            table.checked = datetime.now(UTC).isoformat()
            now = time.monotonic()
            if result.state == TABLE_ERROR:
                table.state, table.reason = TABLE_ERROR, result.reason
                table.pending |= touched  # compared again, a confirmation delay later
                table.whole = table.whole or whole_before
                table.since = now + self.confirm - self.settle
                return
            found: dict[Key, ValidationFailure] = {f.key: f for f in result.failures}
            if result.state == MISMATCHED and not table.plan.target.primary_key:
                found = {_WHOLE: ValidationFailure(_WHOLE, "RECORD_DIFF", (), "{}")}
            # Confirmed: found by an earlier comparison too, unchanged since, and
            # differing for the confirmation delay. A recorded failure stays recorded
            # while it still differs.
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
            if first and table.since is None:
                # compare again once the first of the waiting ones has differed for the
                # delay, and the confirmed ones a delay from now (fixed or not)
                waiting = [first[k] for k in found if k not in keys]
                due = min([now + self.confirm, *(w + self.confirm for w in waiting)])
                table.since = max(now, due - self.settle)
            unconfirmed = len(found) > len(keys)
            table.state = MISMATCHED if confirmed else VALIDATED
            table.reason = result.reason if confirmed else None
            # First write after a (re)start: wait until what differs is confirmed.
            write = keys != table.recorded and not (table.recorded is None and unconfirmed and not keys)
            if write and table.plan.target.primary_key:
                table.recorded = keys
            self._keep(table, asked if by_key else None, found)
        if write and table.plan.target.primary_key:
            self._record(target, table.plan.target.ref, confirmed)

    def _keep(self, table: _Table, asked: Iterable[Key] | None, found: dict[Key, Any]) -> None:
        """The store after a comparison (under the lock): differing keys kept with
        when they were first found, those found equal (``asked``; None: every key
        the store held) forgotten unless changed again meanwhile, and a table
        compared whole marked as compared by key from now on."""
        whole = asked is None and not table.whole and not table.handed_whole
        if whole and table.plan.target.primary_key:
            table.by_key = True
        if self._keys is None:
            return
        ref, wall, now = table.ref, _wall(), time.monotonic()
        again = table.pending | set(table.handed)
        rows = [
            KeyRow(ref.schema, ref.name, _key_text(k), DIFFERING, wall - (now - table.differing[k]))
            for k in found
            if k not in again and k != _WHOLE
        ]
        for row, k in zip(rows, [k for k in found if k not in again and k != _WHOLE], strict=True):
            table.stored[k] = row.state
        equal = [
            k
            for k in (set(table.stored) if asked is None else set(asked) & set(table.stored))
            if k not in found and k not in again
        ]
        if whole and table.plan.target.primary_key and table.mode != KEYS:
            table.mode = KEYS
            rows.append(KeyRow(ref.schema, ref.name, TABLE_ROW, KEYS))
        self._keys.put(self.task, rows)
        if equal:
            self._keys.drop(self.task, ref.schema, ref.name, [_key_text(k) for k in equal])
            for k in equal:
                table.stored.pop(k, None)

    def _record(self, target: Target, ref: TableRef, failures: list[ValidationFailure]) -> None:
        if not isinstance(target, SupportsValidationFailures):
            return
        kept = failures[: self.settings.table_failure_max_count]
        try:
            target.record_validation_failures(self.task, ref, kept, datetime.now(UTC).replace(tzinfo=None))
        except Exception as exc:
            log.warning(
                "task %s: table %s: validation failures could not be recorded: %s", self.task, ref, exc
            )


def _wall() -> float:
    return datetime.now(UTC).timestamp()


def _key_text(key: Key) -> str:
    return json.dumps(list(key), ensure_ascii=False)


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
