"""The change-capture seam: what a source's change stream yields and what a
target's change applier takes.

A source captures changes of the selected tables from a position on: a
PostgreSQL replication slot (pgoutput), a MariaDB/MySQL binlog, triggers into a
change table on SQLite. Its stream yields events in source commit order:
row changes, always as captured ``ChangeBatch``es in Arrow, then the
``Commit`` that closes their transaction with the position to resume
*after* it. The runner groups committed transactions into
batches, applies each batch in one target transaction together with the task's
checkpoint, and only then acknowledges the position to the source. A crash at
any point therefore replays from the target's checkpoint, and the runner skips
what the checkpoint already covers: nothing lost, nothing applied twice.

A stream decodes each change as a ``RowChange`` and gathers them into
captured batches (``captured_rows.RowRuns``); a reducer that takes a
table's changes one at a time gets them back so (``captured_rows.row_changes``). A
``RowChange``'s values are Python values in conveyor's in-flight form, the values
``pa.array(values, type=column.type.arrow())`` takes: int, float, Decimal, str
(also uuid, json, unbounded numeric, enum), bytes, bool, date, time, datetime
(UTC-aware for timestamptz), ``pa.MonthDayNano`` for intervals, lists for
arrays. Infinite dates and timestamps (PostgreSQL's ``infinity``) have no
Python value: streams deliver them as the strings ``"infinity"`` and
``"-infinity"``, and the runner turns them into core.types' sentinels.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from conveyor.connectors.base import RejectedValue, Snapshot
from conveyor.core.batch import ChangeBatch, Checkpoint, Logged, Op
from conveyor.core.batch import LoggedChange as LoggedChange  # noqa: PLC0414  (defined in core; imported from here too)
from conveyor.core.errors import DataError
from conveyor.core.schema import TableRef, TableSchema


@dataclass(frozen=True, slots=True)
class RowChange:
    """One row's change. ``values`` holds the new image for INSERT and UPDATE
    (every column, except those in ``unchanged``: a value the source did not
    send because it did not change, such as an unchanged TOASTed value, which
    is not NULL and must not overwrite the target's value). For DELETE, and for
    an UPDATE that changed the primary key, ``old_key`` holds the key columns of
    the row as it was (the whole old row under REPLICA IDENTITY FULL).
    ``before`` is an UPDATE's whole old row where the source sends it apart
    from ``old_key`` (MySQL/MariaDB's row image), for before-image columns."""

    table: TableRef
    op: Op
    values: dict[str, Any]
    old_key: dict[str, Any] | None = None
    unchanged: frozenset[str] = frozenset()
    before: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Commit:
    """The end of a source transaction. ``position`` is where to resume to see
    only what comes after it; ``time`` is the source's commit time (latency)."""

    position: Checkpoint
    time: datetime | None = None


@dataclass(frozen=True)
class TableDefinition:
    """A table's shape as the stream now sees it (before its next changes); a
    difference from the shape known so far is DDL (ADD COLUMN, a type change ...).

    ``renamed`` maps each column renamed since the last definition (new name)
    to its old name. An empty mapping says "no column was renamed"; ``None``
    says the stream cannot tell a rename from a DROP plus an ADD, so the runner
    must not guess (a column gone and another come suspends the table).

    ``generated`` names the table's generated columns, which ``schema`` (the
    stream's view: pgoutput never sends them) leaves out; None when the
    stream cannot tell."""

    schema: TableSchema
    renamed: Mapping[str, str] | None = field(default_factory=dict)
    generated: frozenset[str] | None = None


@dataclass(frozen=True)
class TableDropped:
    """The source table was dropped (in commit order): it leaves the capture."""

    table: TableRef


@dataclass(frozen=True)
class Truncate:
    tables: tuple[TableRef, ...]


@dataclass(frozen=True)
class CaptureLost:
    """The table is still there but its changes are no longer captured
    (``LosesCapture``: SQLite's capture triggers went with a table rebuild):
    what it had is unknown from here on, until a reload of the table begins
    its capture again. ``reason`` says what was found."""

    table: TableRef
    reason: str


ChangeEvent = ChangeBatch | Commit | TableDefinition | TableDropped | Truncate | CaptureLost
"""What a stream yields: every row change in a captured ``ChangeBatch``."""


@dataclass(frozen=True)
class CaptureStart:
    """Where capture begins, and for a full-load-and-cdc task the snapshot the
    full load must read (exactly the state at ``position``: no gap, no overlap).
    ``snapshot_id`` is engine-specific (PostgreSQL's exported snapshot name)."""

    position: Checkpoint
    snapshot_id: str | None = None
    warnings: list[str] = field(default_factory=list)


class ChangeStream(Protocol):
    def events(self, idle_timeout: float) -> Iterator[ChangeEvent | None]:
        """Events in source commit order, forever; ``None`` when nothing arrived
        within ``idle_timeout`` seconds (the runner then flushes and checks for a
        stop). Raises TerminalError with "resync required" when the source can no
        longer deliver from the position (dropped slot, purged binlog)."""
        ...

    def ack(self, position: Checkpoint) -> None:
        """Everything up to ``position`` is durable on the target: the source may
        release it (a slot's flush LSN)."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class SupportsEncodedRows(Protocol):
    """A stream that can hand rows over in the source engine's own bulk text
    form (PostgreSQL: COPY text lines of pgoutput's values), for a target of the
    same engine and types to load without converting them."""

    encoded_format: str

    def encode_rows(self, tables: Mapping[TableRef, TableSchema]) -> None:
        """From now on, deliver INSERTs and UPDATEs of these tables (keyed by
        source table, with the shape the target accepted) as captured
        ``ChangeBatch``es of encoded rows (``ENCODED``, with the key columns)
        while the stream's view of a table has exactly that shape; every other
        change comes as captured rows of values."""
        ...

    def decode_row(self, table: TableRef, encoded: bytes) -> dict[str, Any]:
        """An encoded row of ``table`` as values (for the rare batch that needs them)."""
        ...


@runtime_checkable
class CapturesRowsInArrow(Protocol):
    """A stream that can hand a table's changes over as whole rows
    (PostgreSQL, MariaDB/MySQL, SQLite: runs of one table's changes,
    ``captured_rows.RowRuns``), for a table whose reducer maps them in
    Arrow: no Python value per change between the stream and the target
    batch's Arrow. Every stream delivers every change in a captured batch;
    this asks for the form the reducer maps whole."""

    def capture_rows(
        self, tables: Mapping[TableRef, TableSchema], before: AbstractSet[TableRef] = frozenset()
    ) -> None:
        """From now on, deliver the changes of these tables (keyed by source
        table, with the shape the runner knows) as captured ``ChangeBatch``es
        of whole rows while the stream's view of a table has exactly that
        shape (PostgreSQL's partial UPDATEs too, their unsent columns named in
        ``UNCHANGED``); for the tables in ``before``, with each UPDATE's old
        row (``BEFORE``) when the source sent it whole. A change it cannot
        deliver so exactly (a MariaDB/MySQL row image without every column, a
        changed key, a value no Arrow value carries) comes in a batch of its
        own form (``captured_rows.general_row``), in its place in commit
        order, and the reducer takes that batch one change at a time."""
        ...


@runtime_checkable
class AcceptsEncodedRows(Protocol):
    """An applier that can load rows in a stream's ``encoded_format``."""

    def accepts_encoded(self, table: TableSchema, encoded_format: str) -> bool:
        """Whether the target table takes ``table``'s rows in this format as they
        are (same engine, same column types, same text encoding)."""
        ...


class ChangeSource(Protocol):
    """A Source that can also capture changes."""

    def preflight(self, tables: Sequence[TableSchema]) -> list[str]:
        """Check the source can capture these tables. Raises ConfigError naming
        every blocking setting; returns warnings (a table without a primary key)."""
        ...

    def begin_capture(self, task: str, tables: Sequence[TableSchema], export_snapshot: bool) -> CaptureStart:
        """Create what capture needs (slot and publication, triggers ...), named
        after the task; idempotent for the same tables."""
        ...

    def capture_snapshot(self, start: CaptureStart) -> Snapshot:
        """The snapshot a full load reads after ``begin_capture(export_snapshot=True)``:
        it shows exactly the state at ``start.position``. Closing it releases
        whatever held that state (PostgreSQL's exporting replication connection)."""
        ...

    def open_stream(self, task: str, tables: Sequence[TableSchema], start: Checkpoint) -> ChangeStream: ...

    def end_capture(self, task: str) -> None:
        """Remove what ``begin_capture`` created."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class LooksUpValues(Protocol):
    """A stream whose log does not carry some columns exactly (PostgreSQL's
    pgoutput: generated columns not at all, xml without its declaration): the
    runner looks their current values up from the source by primary key, once
    per table per apply batch, in the applier's thread (the way the migration
    service looks up LOBs it cannot get from the log). A value looked up is the
    source's current one, which a later change of the same row in the stream
    then writes again: the target converges to the source."""

    def lookup_columns(self, table: TableSchema) -> tuple[str, ...]:
        """The columns of ``table`` (a captured source table) the stream does
        not carry exactly; empty when there are none or the table has no
        primary key to look them up by."""
        ...

    def look_up(
        self, table: TableSchema, columns: Sequence[str], keys: Sequence[tuple[Any, ...]]
    ) -> dict[tuple[Any, ...], dict[str, Any]]:
        """The current values of ``columns`` of the rows with these primary
        keys (in ``table.primary_key`` order, values as the stream gives them),
        as the stream's in-flight values, by key; a key whose row is gone is
        left out. Called from one thread (the applier's), never the stream's."""
        ...


@runtime_checkable
class ComputesColumns(Protocol):
    """An applier whose target tables may compute columns themselves
    (PostgreSQL's GENERATED ALWAYS AS ... STORED): a change must not write them."""

    def computed_columns(self, table: TableSchema) -> frozenset[str]:
        """The columns target table ``table`` computes (none when it does not exist)."""
        ...


@runtime_checkable
class ReportsPosition(Protocol):
    """A change source that can say where its change log is now (for
    StopTaskCachedChangesApplied: stop once the changes committed before the
    end of the full load are applied)."""

    def current_position(self) -> Checkpoint:
        """A position every change committed so far lies at or before, that the
        stream delivers a ``Commit`` at or after even when no captured table
        changes (PostgreSQL: a heartbeat message written after it)."""
        ...

    def position_reached(self, position: Checkpoint, end: Checkpoint) -> bool:
        """Whether a stream at ``position`` has delivered everything before ``end``."""
        ...


@runtime_checkable
class ReportsRetainedWal(Protocol):
    """A change source that can say how much log the source keeps for the task
    (PostgreSQL: the WAL its slot holds back)."""

    def retained_wal_bytes(self, task: str) -> int | None: ...


@runtime_checkable
class SupportsAddTable(Protocol):
    """A stream that can begin capturing a table while it runs (one created
    during capture that the task's selection includes)."""

    def add_table(self, table: TableSchema) -> None:
        """Stream ``table``'s changes from now on; raises ConfigError when it
        cannot (no primary key, a publication managed by the user)."""
        ...


@runtime_checkable
class LosesCapture(Protocol):
    """A stream whose capture of a table can be lost while the table stays: on
    SQLite, rebuilding a table (create a new one, copy, drop the old one,
    rename: how SQLite changes a column's type) drops the capture triggers with
    the old table. The stream says so with ``CaptureLost`` (also for a loss it
    finds when opened, after a stop or a crash); ``add_table`` captures the
    table again, which a reload of the table calls before it loads."""

    def captures(self, table: TableRef) -> bool:
        """Whether the stream captures ``table``'s changes now."""
        ...

    def add_table(self, table: TableSchema) -> None:
        """Capture ``table`` again from now on (idempotent)."""
        ...


@runtime_checkable
class CachesTargetShapes(Protocol):
    """An applier that keeps what it learnt of target tables (staging tables of
    their shape) across batches."""

    def forget_shapes(self) -> None:
        """Target tables changed outside the applier (a table reloaded): forget
        them. Called while no batch is being applied."""
        ...


@runtime_checkable
class RenamesColumns(Protocol):
    """An applier that can rename a target column, keeping its values."""

    def rename_column(self, table: TableSchema, old: str, new: str) -> None:
        """ALTER TABLE RENAME COLUMN ``old`` TO ``new`` on the target table ``table``."""
        ...


@runtime_checkable
class DropsTables(Protocol):
    """An applier that can drop a target table (HandleSourceTableDropped)."""

    def drop_table(self, table: TableSchema) -> None:
        """DROP TABLE IF EXISTS on the target table ``table``."""
        ...


@runtime_checkable
class KeepsChangeLog(Protocol):
    """An applier that publishes each change (a stream target): the runner
    hands it, in ``ChangeBatch.log``, the table's changes in commit order,
    and builds no reduced rows for it (the batch's upserts, deletes and
    partial updates are empty). It must make a replay of the same
    ``(position, index)`` harmless."""

    keeps_change_log: bool


@runtime_checkable
class TakesLoggedRows(Protocol):
    """An applier keeping the change log that takes a stream's captured rows
    as they came (``LoggedRows``: no change one by one in Python), writing a
    DELETE's old row as it is (its key, or the whole row) and needing no
    UPDATE's old row: the lake's change files. Not NATS: it builds a message
    of each change in Python, so captured rows would be made Python values
    twice (measured 13% slower, bench/cdc.py --nats)."""

    takes_logged_rows: bool


@runtime_checkable
class PacesBatches(Protocol):
    """An applier that writes one file per table per batch and has its own rule
    for when a file is due (the lake: CdcMaxBatchInterval, CdcMinFileSize).
    The runner then hands a batch over only when that rule says so (or when it
    must: a full batch, DDL, a stop), so batch boundaries are file boundaries
    and the checkpoint advances only with the files that hold the changes."""

    batch_seconds: float
    """A batch is due this long after its first change."""
    batch_min_bytes: int
    """A batch is due once one table's changes reach this size."""

    def change_bytes(self, table: TableRef, change: Logged) -> int:
        """The size ``change`` (or captured changes) adds to target table
        ``table``'s file (an estimate)."""
        ...


@runtime_checkable
class ScreensChanges(Protocol):
    """An applier that can find the changes its target would refuse before
    applying them (DuckDB: a refused statement aborts the whole batch and does
    not say which row). The runner applies the data error policy to what it
    returns; rejected changes it keeps for the log go back to ``apply_changes``
    in ``ChangeBatch.rejected``."""

    def screen_changes(self, changes: ChangeBatch, thorough: bool) -> tuple[ChangeBatch, list[RejectedValue]]:
        """``changes`` without the rows the target would refuse, and those rows.
        ``thorough`` also tries the rows on an empty copy of the table (slower;
        after the target refused a screened batch)."""
        ...


@runtime_checkable
class FindsConflicts(Protocol):
    """An applier that can judge a reduced batch's keys (``ChangeBatch.checks``)
    against its target's rows, set-wise, for the apply-conflict policies
    (ErrorBehavior.ApplyError*: replication/cdc/conflicts.py)."""

    def find_conflicts(self, changes: Sequence[ChangeBatch]) -> dict[TableRef, list[int]]:
        """Per table with ``checks``, the rows of ``checks.keys`` the target
        contradicts now: a key whose first change in the batch is an INSERT
        and that the target has, or whose first change is an UPDATE or a
        DELETE and that the target lacks. Tables without any are left out."""
        ...

    def conflict_counts(self, task: str) -> dict[TableRef, int]:
        """The task's apply conflicts per table, as the batches that committed
        left them (``apply_changes`` keeps each batch's ``ChangeBatch.conflicts``
        in its transaction, so a crash neither loses nor repeats a count)."""
        ...

    def forget_conflicts(self, task: str, table: TableRef | None = None) -> None:
        """Drop the task's counts: a new start (not a resume) counts afresh;
        with ``table``, that target table's alone (its reload)."""
        ...


class RefusedTables(DataError):
    """An applier found, before writing anything, values it cannot hold in
    some tables' changes: ``reasons`` by target table. The runner suspends
    those tables and applies the rest, without probing table by table (a
    target without transactions, such as the lake, cannot be probed)."""

    def __init__(self, reasons: Mapping[TableRef, str]) -> None:
        super().__init__("; ".join(reasons.values()))
        self.reasons = dict(reasons)


class ChangeApplier(Protocol):
    """A Target that can apply changes: each table's as a ``ChangeBatch``,
    taken as it is (Arrow in the target's types, written without rebuilding)."""

    def read_checkpoint(self, task: str) -> Checkpoint | None:
        """The position the task's last applied batch reached, from the target's
        control table (the truth after a crash), or None."""
        ...

    def apply_changes(self, task: str, changes: Sequence[ChangeBatch], checkpoint: Checkpoint) -> None:
        """Apply in one target transaction, with the checkpoint; all or nothing."""
        ...

    def add_columns(self, table: TableSchema, columns: Sequence[str]) -> None:
        """ALTER TABLE ADD COLUMN for columns of ``table`` the target lacks."""
        ...

    def drop_columns(self, table: TableSchema, columns: Sequence[str]) -> None:
        """ALTER TABLE DROP COLUMN (if it exists) on the target table ``table``."""
        ...

    def close(self) -> None: ...
