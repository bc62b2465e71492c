"""What travels between the stages of a change batch: operations, source
positions and ``ChangeBatch``, one table's changes in Arrow, as captured or
reduced."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import pyarrow as pa

from conveyor.core.errors import DataError
from conveyor.core.schema import TableRef, TableSchema


class Op(StrEnum):
    """What a row image means. A full load is a stream of READ batches
    (Debezium's snapshot reads); CDC carries inserts, updates and deletes."""

    READ = "r"
    INSERT = "c"
    UPDATE = "u"
    DELETE = "d"


@dataclass(frozen=True)
class Checkpoint:
    """An opaque source position, serialisable to JSON (an LSN, a binlog file and
    position with its GTID, a change-table sequence number ...)."""

    engine: str
    position: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RejectedValue:
    """A value a target cannot hold, bound for the apply-exceptions table.
    ``row_loaded``: the row itself was loaded, without the value (DynamoDB's
    load_errors); otherwise the row was left out."""

    table: TableRef
    key: dict[str, Any]
    column: str | None
    value: str | None
    reason: str
    row_loaded: bool = False

    def exceptions_row(self, task: str, when: datetime) -> tuple[Any, ...]:
        """The row of the apply-exceptions table: task_name, table_owner, table_name,
        error_time, key (JSON), column_name, value, error."""
        key = json.dumps(self.key, default=str)
        return (task, self.table.schema, self.table.name, when, key, self.column, self.value, self.reason)


def rejected_row(
    table: TableSchema, row: Sequence[Any], exc: DataError, spell: Callable[[Any], str] = str
) -> RejectedValue:
    """A source row the full load left out (``exc`` names its column) as its
    exceptions-table entry: its key (every column when it has none) and the
    refused value as ``spell`` writes it."""
    values = dict(zip(table.column_names, row, strict=True))
    key = {k: values[k] for k in table.primary_key or table.column_names}
    raw = values.get(exc.column) if exc.column else None
    return RejectedValue(table.ref, key, exc.column, None if raw is None else spell(raw), str(exc))


@dataclass(slots=True)
class LoggedChange:
    """One change as the source made it, for a target that publishes every
    change rather than the reduced batch (``KeepsChangeLog``): ``op`` is ``c``,
    ``u``, ``d`` or ``t`` (TRUNCATE); rows are in target column names, mapped
    as the reduced batch's are (``after`` lacks the columns the source did not
    send). ``position`` is the last commit position before the change (the
    capture's start for the first) and ``index`` counts the changes since it:
    a replay from a checkpoint meets the same changes at the same
    ``(position, index)``, which makes them an identity for deduplication.
    ``commit_time`` is the source's commit time, when the transaction's commit
    was read before the change was handed over."""

    op: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    position: Checkpoint
    index: int
    commit_time: datetime | None = None


@dataclass(slots=True)
class LoggedRows:
    """Consecutive changes of one table, as a stream captured them in Arrow
    (``ChangeBatch.captured``), for an applier that takes the change log in
    this form (``TakesLoggedRows``): ``rows`` holds ``OP`` (``c``, ``u`` or
    ``d``) and every target column, in target names: an INSERT's or UPDATE's
    new row (its key unchanged; a partial UPDATE's unsent columns null and
    named in ``UNCHANGED``, when a row has some), a DELETE's old row (its
    key alone when the source sent no more, the other columns null). A row
    whose ``OP`` is null is a change the log leaves out (an INSERT a source
    filter moved out of the target). The ``i``-th row is the change at
    ``(position, index + i)`` (see ``LoggedChange``)."""

    rows: pa.RecordBatch
    position: Checkpoint
    index: int
    commit_time: datetime | None = None

    @property
    def last_index(self) -> int:
        return self.index + int(self.rows.num_rows) - 1


Logged = LoggedChange | LoggedRows
"""An entry of a change log: one change, or consecutive captured ones."""


@dataclass(frozen=True, slots=True)
class KeyHistory:
    """What a reduced batch did to one key, enough to judge it against the
    target's row before the batch (apply conflicts, ErrorBehavior.ApplyError*):
    ``first`` is the key's first change in the batch (an INSERT expects no row,
    an UPDATE or DELETE one), ``alone`` whether it was the key's only change,
    ``reinserted`` whether an INSERT came after it, ``partial`` whether its
    final change is a partial UPDATE (some columns unsent). ``inherited``:
    when the first change is an INSERT followed only by partial UPDATEs, the
    columns they left unsent, whose final values are still the INSERT's (a
    refused INSERT leaves them the target row's own)."""

    first: Op
    alone: bool
    reinserted: bool
    partial: bool
    inherited: frozenset[str] = frozenset()


@dataclass(frozen=True)
class KeyChecks:
    """The keys of a reduced batch to judge against the target (``keys``:
    primary key columns, one row per key, in ``history`` order)."""

    keys: pa.RecordBatch
    history: Sequence[KeyHistory]

    ROW = "conveyor_check_row"
    PRESENT = "conveyor_check_present"

    def staged(self) -> pa.RecordBatch:
        """The keys with two more columns for a target to judge them in one
        query: ``ROW`` (the key's row here) and ``PRESENT`` (whether the
        target should have the key before the batch: its first change is not
        an INSERT). A conflict is a key where the target's answer differs."""
        rows = pa.array(range(self.keys.num_rows), pa.int32())
        present = pa.array([h.first is not Op.INSERT for h in self.history], pa.bool_())
        return self.keys.append_column(self.ROW, rows).append_column(self.PRESENT, present)


OP = "conveyor_op"
"""The column of a captured ``ChangeBatch.changes`` saying what each change
is: fixed-size binary of one byte, ``Op``'s letter (b"c", b"u", b"d")."""
UNCHANGED = "conveyor_unchanged"
"""The column of a captured ``ChangeBatch.changes`` naming, for a partial
UPDATE, the columns the source did not send (an unchanged TOASTed value:
null in the row, and not NULL on the source): a list of names, null for a
whole row. Absent when every row is whole."""
ENCODED = "conveyor_encoded"
"""The column of a captured ``ChangeBatch.changes`` holding each whole new
row in the stream's encoded format (``SupportsEncodedRows``)."""
BEFORE = "conveyor_before"
"""The column of a captured ``ChangeBatch.changes`` holding an UPDATE's or a
DELETE's whole old row, when the source sent it whole (REPLICA IDENTITY
FULL, a full binlog row image) and the runner asked for it
(``CapturesRowsInArrow``): a struct of the table's columns, null for the
other rows. Absent when no row has one."""
OLD_KEY = "conveyor_old_key"
"""The column of a captured ``ChangeBatch.changes`` holding an UPDATE's old
key where the row moved to another key: a struct of the table's key columns,
null for the other rows. Absent when no row has one."""
REFUSED = "conveyor_refused"
"""The column of a captured ``ChangeBatch.changes`` naming the values no
Arrow value of their column carries (``REFUSED_TYPE``: per value, its
column, whether it is the old row's (``BEFORE``, ``OLD_KEY``), its text and
why), each null in its place; null for a row without one. Absent when no row
has one. The reducer takes such a batch one change at a time, and the
applier refuses each value as it refuses any it cannot hold."""
CONTROL = frozenset({OP, UNCHANGED, ENCODED, BEFORE, OLD_KEY, REFUSED})
"""A captured batch's columns that are not the rows' own."""
OP_TYPE = pa.binary(1)
REFUSED_TYPE = pa.list_(
    pa.struct([("column", pa.string()), ("old", pa.bool_()), ("text", pa.string()), ("reason", pa.string())])
)


def op_letters(ops: pa.Array) -> bytes:
    """An ``OP`` column without nulls as its letters, one byte per change,
    read from its data buffer (no compute call: each gives the GIL up, which
    costs a thread that waits for it a switch interval)."""
    letters = ops.buffers()[1]
    assert letters is not None and ops.null_count == 0
    return memoryview(letters)[ops.offset : ops.offset + len(ops)].tobytes()


def op_array(ops: bytes) -> pa.Array:
    """An ``OP`` column from one letter per change (built from the bytes, without
    ``pa.array``: its first call imports pandas, which capture never needs)."""
    return pa.Array.from_buffers(OP_TYPE, len(ops), [None, pa.py_buffer(ops)])


@dataclass(frozen=True)
class ChangeBatch:
    """The record type between reduce and apply, and between capture and
    reduce for a stream that captures in Arrow: one table's changes.

    Such a stream yields them as captured (``changes``: every change, in
    commit order; see ``captured``). Reduce turns them into the table's share of an
    apply batch, reduced to one final change per primary key, in Arrow with
    the target table's column types (``TableSchema.column(c).type.arrow()``).

    ``upserts`` are whole rows (``table.column_names``) to insert or replace;
    ``deletes`` the key rows (``table.primary_key``) to remove; ``partial``
    UPDATEs whose ``unchanged`` columns keep the target's value: per set of
    unchanged columns, a batch of the other columns. ``truncate`` empties the
    table first. ``encoded`` are more whole rows to insert or replace in the
    encoded format the applier accepted (columns in ``table.column_names``
    order; a list, or an Arrow (large) binary array). ``unrepresentable`` are rows
    left out because capture could not hold one of their values exactly (no
    Arrow value carries it): a target
    refuses them, a screening one per its data error policy, the others by
    suspending the table. ``rejected`` are changes taken out because the
    target would refuse them (``ScreensChanges``), to log in the
    apply-exceptions table in the batch's transaction. ``log`` holds the
    changes one by one, in commit order, for an applier that
    ``KeepsChangeLog`` (empty otherwise). ``key_is_group``: the key names a
    group of rows (a DynamoDB child table keyed by its parent alone), not one
    row: the table has no unique key, ``deletes`` remove whole groups and
    ``upserts`` hold every row of each group they replace (the appliers'
    delete-by-key-then-insert does exactly that). ``checks``: the keys to judge
    against the target's rows before the batch, when the task's apply-conflict
    policies ask (None: not judged). ``conflicts``: the table's apply
    conflicts over the task's life, this batch's included, for the applier to
    keep in the batch's transaction (None: the batch found none)."""

    table: TableSchema
    upserts: pa.RecordBatch
    deletes: pa.RecordBatch
    partial: Mapping[frozenset[str], pa.RecordBatch] = field(default_factory=dict)
    truncate: bool = False
    encoded: Sequence[bytes] | pa.Array = ()
    unrepresentable: Sequence[RejectedValue] = ()
    rejected: Sequence[RejectedValue] = ()
    log: Sequence[Logged] = ()
    key_is_group: bool = False
    checks: KeyChecks | None = None
    conflicts: int | None = None
    changes: pa.RecordBatch | None = None
    one_at_a_time: bool = False

    @classmethod
    def captured(
        cls, table: TableSchema, changes: pa.RecordBatch, one_at_a_time: bool = False
    ) -> ChangeBatch:
        """A stream's changes of ``table`` (its source table, as the stream
        sees it), not yet reduced: ``changes`` holds ``OP``, then either the
        new rows' columns (a DELETE's key columns, or its whole old row; the
        columns an INSERT or UPDATE did not send null and named in
        ``UNCHANGED``; an UPDATE's or DELETE's whole old row in ``BEFORE``,
        when asked or when the table goes one change at a time; a moved
        row's old key in ``OLD_KEY``; values Arrow refuses in ``REFUSED``)
        or the key columns and ``ENCODED``. Consecutive in commit order,
        within one source transaction or across several. Every row change a
        stream captures comes in one: this is the one type between capture,
        reduce and apply. ``one_at_a_time``: the changes are as the source
        sent them (``captured_rows.general_row``), not in the form a reducer
        maps whole in Arrow; it takes them one at a time."""
        empty = pa.RecordBatch.from_arrays([], schema=pa.schema([]))
        return cls(table, empty, empty, changes=changes, one_at_a_time=one_at_a_time)

    @property
    def num_rows(self) -> int:
        """Rows to write (upserts, deletes, partial updates, encoded rows), or
        the changes captured (``changes``)."""
        if self.changes is not None:
            return int(self.changes.num_rows)
        partial = sum(b.num_rows for b in self.partial.values())
        return int(self.upserts.num_rows + self.deletes.num_rows + partial + len(self.encoded))

    def encoded_rows(self) -> list[bytes]:
        """``encoded`` as one bytes object per row."""
        encoded = self.encoded
        return encoded.to_pylist() if isinstance(encoded, pa.Array) else list(encoded)

    def encoded_data(self) -> bytes | memoryview:
        """``encoded``'s rows one after another (an Arrow array's: its data
        buffer, not copied)."""
        encoded = self.encoded
        if not isinstance(encoded, pa.Array):
            return b"".join(encoded)
        if not len(encoded):
            return b""
        _, offsets_buffer, data = encoded.buffers()
        width = pa.int64() if pa.types.is_large_binary(encoded.type) else pa.int32()
        offsets = pa.Array.from_buffers(
            width, len(encoded) + 1, [None, offsets_buffer], offset=encoded.offset
        )  # of this slice of the array
        return memoryview(data)[offsets[0].as_py() : offsets[-1].as_py()]

    def refuse_unrepresentable(self) -> None:
        """Raise a DataError naming the column when capture could not hold a
        value of the batch exactly (for a target that suspends the table)."""
        if self.unrepresentable:
            first = self.unrepresentable[0]
            raise DataError(
                f"table {self.table.ref} column {first.column!r}: {first.reason}", column=first.column
            )
