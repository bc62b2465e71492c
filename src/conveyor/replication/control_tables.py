"""The migration service's control tables on a relational target (PostgreSQL,
DuckDB), per the task's ControlTablesSettings.

The columns are the service's, as its documentation gives them ("Control table
task settings",
https://docs.aws.amazon.com/dms/latest/userguide/CHAP_Tasks.CustomizingTasks.TaskSettings.ControlTable.html):

- ``awsdms_status`` (StatusTableEnabled): one row per task, replaced as the task
  runs (every few seconds, and at once when the phase changes): ``FULL LOAD``
  while tables load, ``CHANGE PROCESSING`` while changes are applied, ``NOT
  RUNNING`` once the run ends.
- ``awsdms_suspended_tables`` (SuspendedTablesTableEnabled): a row per
  suspended table with the reason and the time; it goes when the table is
  reloaded (or the task starts afresh).
- ``awsdms_history`` (HistoryTableEnabled): one row per timeslot of
  HistoryTimeslotInMinutes per kind of work (FULL LOAD, CHANGE PROCESSING) with
  the records processed in it, written at each timeslot's end and, for the
  part-slot, when the run ends.

Everything goes into ControlSchema (created if missing), else the target's
default schema (``public``, ``main``). Unlike the service, Conveyor keeps these
tables for full-load tasks too (a key the user wrote is never ignored).
Values Conveyor does not measure are NULL: DISK_SWAP_SIZE and the
SOURCE_TAIL_* columns (Conveyor keeps no transactions on disk and does not
track the oldest open source transaction), TIMESLOT_VOLUME (no byte counts).
"""

from __future__ import annotations

import logging
import math
import resource
import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from conveyor.connectors.base import CONTROL_SCHEMA_OPTION, ControlTablesConnection, EndpointConfig
from conveyor.connectors.registry import open_control_tables, plays
from conveyor.core.problems import Problem
from conveyor.replication.settings import ControlTablesSettings

log = logging.getLogger(__name__)

STATUS_TABLE = "awsdms_status"
SUSPENDED_TABLE = "awsdms_suspended_tables"
HISTORY_TABLE = "awsdms_history"

FULL_LOAD = "FULL LOAD"
CHANGE_PROCESSING = "CHANGE PROCESSING"
NOT_RUNNING = "NOT RUNNING"

STATUS_REFRESH_SECONDS = 5.0
"""How often a running task's status row is rewritten (a phase change: at once)."""

_COLUMNS = {
    STATUS_TABLE: (
        "server_name varchar(128), task_name varchar(128), task_status varchar(32), "
        "status_time timestamptz, pending_changes bigint, disk_swap_size bigint, task_memory bigint, "
        "source_current_position varchar, source_current_timestamp timestamptz, "
        "source_tail_position varchar, source_tail_timestamp timestamptz, "
        "source_timestamp_applied timestamptz"
    ),
    SUSPENDED_TABLE: (
        "server_name varchar(128), task_name varchar(128), table_owner varchar(128), "
        "table_name varchar(128), suspend_reason varchar, suspend_timestamp timestamptz"
    ),
    HISTORY_TABLE: (
        "server_name varchar(128), task_name varchar(128), timeslot_type varchar(32), "
        "timeslot timestamptz, timeslot_duration integer, timeslot_latency integer, "
        "timeslot_records bigint, timeslot_volume bigint"
    ),
}

_KEYS = {
    "StatusTableEnabled": "status_table_enabled",
    "SuspendedTablesTableEnabled": "suspended_tables_table_enabled",
    "HistoryTableEnabled": "history_table_enabled",
}


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def target_problems(settings: ControlTablesSettings, engine: str) -> list[Problem]:
    """The written ControlTablesSettings a target engine without control tables
    (the lake, NATS) cannot honour, as ``(key, why)``."""
    if plays(engine, "control_tables"):
        return []
    why = f"a {engine} target keeps no control tables (PostgreSQL and DuckDB targets do)"
    problems = [
        (f"ControlTablesSettings.{key}", f"Conveyor cannot honour true: {why}")
        for key, attribute in _KEYS.items()
        if getattr(settings, attribute)
    ]
    if settings.control_schema:
        problems.append(
            (
                "ControlTablesSettings.ControlSchema",
                f"Conveyor cannot honour {settings.control_schema!r}: {why}",
            )
        )
    return problems


def with_control_schema(config: EndpointConfig, settings: ControlTablesSettings) -> EndpointConfig:
    """The target's endpoint as the task's connectors take it: with ControlSchema,
    when set, as the ``control_schema`` option."""
    if not settings.control_schema:
        return config
    options = config.options | {CONTROL_SCHEMA_OPTION: settings.control_schema}
    return replace(config, options=options)


@dataclass(frozen=True)
class Suspended:
    """A suspended table as ``awsdms_suspended_tables`` lists it."""

    owner: str
    name: str
    reason: str
    at: datetime


@dataclass
class Observed:
    """What the task's work said last: records processed so far per kind of
    work, and the capture's position, latency and pending changes."""

    records: dict[str, int] = field(default_factory=dict)
    pending: int | None = None
    position: str | None = None
    read_time: datetime | None = None
    applied_time: datetime | None = None
    latency: float | None = None


class ControlTables:
    """The control tables of one run of a task. ``phase`` and the ``observe_*``
    calls come from the run's threads; a ticker thread writes each timeslot's
    history at its end, and ``close`` the part-slot and NOT RUNNING. A write
    that fails is logged, never fails the task (they are reports, not data)."""

    def __init__(
        self,
        task: str,
        settings: ControlTablesSettings,
        connection: ControlTablesConnection,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        tick_seconds: float = 1.0,
    ) -> None:
        self.task, self.settings, self.connection = task, settings, connection
        self.schema = settings.control_schema or connection.default_schema
        self.server = socket.gethostname()
        self.clock = clock
        self.tick_seconds = tick_seconds
        self.slot = timedelta(minutes=settings.history_timeslot_in_minutes)
        self.status = NOT_RUNNING
        self.observed = Observed()
        self._lock = threading.RLock()
        self._slot_start = clock()
        self._slot_base: dict[str, int] = {}
        self._table_rows: dict[tuple[str, str], int] = {}
        self._suspended: list[Suspended] | None = None
        self._status_written = 0.0
        self._done = threading.Event()
        self._ticker: threading.Thread | None = None
        self._create()

    @classmethod
    def open(cls, task: str, settings: ControlTablesSettings, target: EndpointConfig) -> ControlTables | None:
        """The run's control tables, or None when the settings enable none or the
        target keeps none (stack validation refuses enabled ones there)."""
        wanted = any(getattr(settings, attribute) for attribute in _KEYS.values())
        if not wanted or not plays(target.engine, "control_tables"):
            return None
        tables = cls(task, settings, open_control_tables(target))
        tables.start()
        return tables

    # -- what the run reports ------------------------------------------------

    def phase(self, status: str) -> None:
        """The task's work now: FULL LOAD, CHANGE PROCESSING or NOT RUNNING."""
        with self._lock:
            if status == self.status:
                return
            self.status = status
            if status != NOT_RUNNING:
                self.observed.records.setdefault(status, 0)
            self._write_status()

    def observe_table_rows(self, schema: str, name: str, rows: int) -> None:
        """Rows of one table the full load wrote so far."""
        with self._lock:
            self._table_rows[(schema, name)] = rows
            self.observed.records[FULL_LOAD] = sum(self._table_rows.values())
            self._refresh()

    def observe_capture(
        self,
        applied: int,
        pending: int,
        position: str | None,
        read_time: datetime | None,
        applied_time: datetime | None,
        suspended: Iterable[Suspended],
    ) -> None:
        """The capture's counters after a batch, and the tables now suspended."""
        now = self.clock()
        with self._lock:
            self.observed.records[CHANGE_PROCESSING] = applied
            self.observed.pending = pending
            self.observed.position = position
            self.observed.read_time = read_time
            self.observed.applied_time = applied_time
            self.observed.latency = (now - applied_time).total_seconds() if applied_time else None
            self.suspended(list(suspended))
            self._refresh()

    def suspended(self, tables: Sequence[Suspended]) -> None:
        """The task's suspended tables now. A row stays while its table stays
        suspended for the same reason (its time is when it was suspended, also
        across runs); the rows of tables no longer suspended go."""
        if not self.settings.suspended_tables_table_enabled:
            return
        with self._lock:
            key = sorted((t.owner, t.name, t.reason) for t in tables)
            if self._suspended is not None and key == sorted(
                (t.owner, t.name, t.reason) for t in self._suspended
            ):
                return
            table = self._table(SUSPENDED_TABLE)
            names = [f"{t.owner}.{t.name}" for t in tables]
            keep = (
                f" AND table_owner || '.' || table_name NOT IN ({', '.join('?' for _ in names)})"
                if names
                else ""
            )
            statements: list[tuple[str, Sequence[Any]]] = [
                (f"DELETE FROM {table} WHERE task_name = ?{keep}", [self.task, *names])
            ]
            for t in tables:
                where = "task_name = ? AND table_owner = ? AND table_name = ?"
                statements.append(
                    (
                        f"DELETE FROM {table} WHERE {where} AND suspend_reason <> ?",
                        [self.task, t.owner, t.name, t.reason],
                    )
                )
                statements.append(
                    (
                        f"INSERT INTO {table} SELECT ?, ?, ?, ?, ?, ?"
                        f" WHERE NOT EXISTS (SELECT 1 FROM {table} WHERE {where})",
                        [self.server, self.task, t.owner, t.name, t.reason, t.at, self.task, t.owner, t.name],
                    )
                )
            if self._write(statements):
                self._suspended = list(tables)

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> None:
        self._ticker = threading.Thread(target=self._tick, name=f"control-tables-{self.task}", daemon=True)
        self._ticker.start()

    def close(self) -> None:
        """The run ended: the part-slot's history, and NOT RUNNING."""
        self._done.set()
        if self._ticker is not None:
            self._ticker.join(timeout=10)
        with self._lock:
            self._history(self.clock(), final=True)
            self.status = NOT_RUNNING
            self.observed.pending = None
            self._write_status()
        self.connection.close()

    # -- writing -----------------------------------------------------------------------

    def _table(self, name: str) -> str:
        return f"{quote(self.schema)}.{quote(name)}"

    def _create(self) -> None:
        statements: list[tuple[str, Sequence[Any]]] = [
            (f"CREATE SCHEMA IF NOT EXISTS {quote(self.schema)}", [])
        ]
        for name, attribute in (
            (STATUS_TABLE, "status_table_enabled"),
            (SUSPENDED_TABLE, "suspended_tables_table_enabled"),
            (HISTORY_TABLE, "history_table_enabled"),
        ):
            if getattr(self.settings, attribute):
                statements.append((f"CREATE TABLE IF NOT EXISTS {self._table(name)} ({_COLUMNS[name]})", []))
        self.connection.run(statements)  # a target that refuses its control tables fails the task

    def _write(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> bool:
        try:
            self.connection.run(statements)
        except Exception as exc:  # a report: logged, and written again at the next chance
            log.warning("task %s: control tables not written: %s", self.task, exc)
            return False
        return True

    def _refresh(self) -> None:
        """The status row again, at most every STATUS_REFRESH_SECONDS."""
        if time.monotonic() - self._status_written >= STATUS_REFRESH_SECONDS:
            self._write_status()

    def _write_status(self) -> None:
        if not self.settings.status_table_enabled:
            return
        o = self.observed
        row = [
            self.server,
            self.task,
            self.status,
            self.clock(),
            o.pending,
            None,
            _memory_mb(),
            o.position,
            o.read_time,
            None,
            None,
            o.applied_time,
        ]
        table = self._table(STATUS_TABLE)
        placeholders = ", ".join("?" for _ in row)
        if self._write(
            [
                (f"DELETE FROM {table} WHERE task_name = ?", [self.task]),
                (f"INSERT INTO {table} VALUES ({placeholders})", row),
            ]
        ):
            self._status_written = time.monotonic()

    def tick(self) -> None:
        """The history of a timeslot that has ended, and the status row kept current."""
        now = self.clock()
        with self._lock:
            if now - self._slot_start >= self.slot:
                self._history(now)
            self._refresh()

    def _tick(self) -> None:
        while not self._done.wait(self.tick_seconds):
            self.tick()

    def _history(self, now: datetime, final: bool = False) -> None:
        """The rows of the slot(s) ended by ``now`` (the part-slot too when ``final``)."""
        if not self.settings.history_table_enabled:
            return
        while now - self._slot_start >= self.slot or final:
            end = min(self._slot_start + self.slot, now)
            minutes = max(1, math.ceil((end - self._slot_start).total_seconds() / 60))
            statements: list[tuple[str, Sequence[Any]]] = []
            for kind, total in sorted(self.observed.records.items()):
                records = total - self._slot_base.get(kind, 0)
                if records == 0 and kind != self.status:
                    continue
                latency = self.observed.latency if kind == CHANGE_PROCESSING else None
                statements.append(
                    (
                        f"INSERT INTO {self._table(HISTORY_TABLE)} VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        [
                            self.server,
                            self.task,
                            kind,
                            end,
                            minutes,
                            None if latency is None else round(latency),
                            records,
                            None,
                        ],
                    )
                )
            if statements and not self._write(statements):
                return  # tried again at the next tick, with the counts grown
            self._slot_base = dict(self.observed.records)
            self._slot_start = end
            if final:
                return


def _memory_mb() -> int:
    """The worker process's peak memory (resident set), in MB."""
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak_kb // 1024)
