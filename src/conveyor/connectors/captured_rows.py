"""Changes a stream decoded to Python values, gathered into one captured
``ChangeBatch`` per run of one table's changes: one ``column_array`` per
column, the conversion the reducer would otherwise make per target column in
the applier's thread. Every row change a stream delivers goes so, in one of
two forms: whole rows (``whole_row``), which the reducer maps in Arrow, for
the tables the runner asks (``CapturesRowsInArrow``); and the changes as the
source sent them (``general_row``), which the reducer takes one at a time
(``row_changes`` gives them back)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any

import pyarrow as pa

from conveyor.connectors.arrow_rows import (
    Unrepresentable,
    UnrepresentableFound,
    captured_changes,
    column_array,
    first_unrepresentable,
    printable,
    struct_rows,
)
from conveyor.connectors.changes import ChangeEvent, RowChange
from conveyor.core.batch import (
    BEFORE,
    ENCODED,
    OLD_KEY,
    OP,
    OP_TYPE,
    REFUSED,
    REFUSED_TYPE,
    UNCHANGED,
    ChangeBatch,
    Op,
    op_array,
)
from conveyor.core.schema import Column, TableRef, TableSchema

INSERT, UPDATE, DELETE = (op.encode() for op in (Op.INSERT, Op.UPDATE, Op.DELETE))


class RowsChunk:
    """One table's changes in commit order: the new row per INSERT and
    UPDATE (the columns it did not send named), the key (or the whole old
    row) per DELETE; an UPDATE's or DELETE's whole old row (``BEFORE``) and
    a moved row's old key (``OLD_KEY``) when the stream passes them."""

    def __init__(self, table: TableSchema, whole: bool = True) -> None:
        self.table = table
        self.names = table.column_names
        self.whole = whole  # rows as ``whole_row`` says them, else as ``general_row`` does
        self._ops = bytearray()
        self._rows: list[dict[str, Any]] = []
        self._unchanged: list[list[str] | None] | None = None  # per row, once a row is partial
        self._before: list[dict[str, Any] | None] | None = None  # per row, once a row has one
        self._old_keys: list[dict[str, Any] | None] | None = None  # per row, once a row moved

    @property
    def size(self) -> int:
        return len(self._rows)

    def add(
        self,
        op: bytes,
        values: dict[str, Any],
        unchanged: AbstractSet[str] = frozenset(),
        before: dict[str, Any] | None = None,
        old_key: dict[str, Any] | None = None,
    ) -> None:
        """``op``: INSERT, UPDATE or DELETE; ``unchanged``: the columns an
        INSERT or UPDATE did not send; ``before``: the whole old row;
        ``old_key``: the old key of a row that moved to another key."""
        if before is not None or self._before is not None:
            self._before = _noted(self._before, before, len(self._rows))
        if old_key is not None or self._old_keys is not None:
            self._old_keys = _noted(self._old_keys, old_key, len(self._rows))
        if unchanged:
            if self._unchanged is None:
                self._unchanged = [None] * len(self._rows)
            self._unchanged.append([c for c in self.names if c in unchanged])
        elif self._unchanged is not None:
            self._unchanged.append(None)
        self._ops += op
        self._rows.append(values)

    def take(self) -> list[ChangeBatch]:
        """The rows as one captured batch. Values Arrow refuses (rare: an
        ``Unrepresentable``, a value out of its type's range) are left null
        and named in ``REFUSED``, for the reducer to take those changes one
        at a time and the applier to refuse them per the task's policy."""
        table, before, old_keys = self.table, self._before, self._old_keys
        rows: Sequence[dict[str, Any] | None] = self._rows
        refused: list[list[dict[str, Any]] | None] | None = None
        try:
            columns = _columns(table, table.columns, rows)
            olds = None if before is None else _old_rows(table, table.columns, before)
            moved = None if old_keys is None else _old_rows(table, _key_columns(table), old_keys)
        except _REFUSALS:
            refused = [None] * len(rows)
            rows = _refused_apart(table, table.columns, rows, refused, old=False)
            if before is not None:
                before = _refused_apart(table, table.columns, before, refused, old=True)
            if old_keys is not None:
                old_keys = _refused_apart(table, _key_columns(table), old_keys, refused, old=True)
            columns = _columns(table, table.columns, rows)
            olds = None if before is None else _old_rows(table, table.columns, before)
            moved = None if old_keys is None else _old_rows(table, _key_columns(table), old_keys)
        arrays, fields = [op_array(bytes(self._ops)), *columns], [pa.field(OP, OP_TYPE)]
        fields += [pa.field(c.name, c.type.arrow()) for c in table.columns]
        if self._unchanged is not None:
            arrays.append(pa.array(self._unchanged, _NAMES))
            fields.append(pa.field(UNCHANGED, _NAMES))
        for name, column in ((BEFORE, olds), (OLD_KEY, moved)):
            if column is not None:
                arrays.append(column)
                fields.append(pa.field(name, column.type))
        if refused is not None:
            arrays.append(pa.array(refused, REFUSED_TYPE))
            fields.append(pa.field(REFUSED, REFUSED_TYPE))
        rows_batch = pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))
        return [ChangeBatch.captured(table, rows_batch, one_at_a_time=not self.whole or refused is not None)]


_REFUSALS = (UnrepresentableFound, pa.ArrowException, ArithmeticError, TypeError, ValueError)


def _noted(
    rows: list[dict[str, Any] | None] | None, row: dict[str, Any] | None, size: int
) -> list[dict[str, Any] | None] | None:
    """``rows`` (one per change, made once a change has one) with ``row`` appended."""
    if row is not None:
        if rows is None:
            rows = [None] * size
        rows.append(row)
    elif rows is not None:
        rows.append(None)
    return rows


def _key_columns(table: TableSchema) -> list[Column]:
    return [table.column(k) for k in table.primary_key]


def _columns(
    table: TableSchema, columns: Sequence[Column], rows: Sequence[Mapping[str, Any] | None]
) -> list[pa.Array]:
    """One Arrow array per column (a row's missing value null, a missing row's too)."""
    if None not in rows:  # the new rows (old ones may be missing)
        return [column_array(c.type, [row.get(c.name) for row in rows]) for c in columns]  # type: ignore[union-attr]
    empty: dict[str, Any] = {}
    return [column_array(c.type, [(row or empty).get(c.name) for row in rows]) for c in columns]


def _old_rows(
    table: TableSchema, columns: Sequence[Column], olds: Sequence[dict[str, Any] | None]
) -> pa.StructArray:
    """A struct column of ``columns``: each old row (or key), null for the other changes."""
    children = _columns(table, columns, olds)
    struct = pa.struct([pa.field(c.name, c.type.arrow()) for c in columns])
    # A boolean array's data is a validity bitmap: no compute call (each one
    # gives the GIL up, which costs the applier's thread a switch interval).
    valid = pa.array([old is not None for old in olds], pa.bool_()).buffers()[1]
    return pa.Array.from_buffers(struct, len(olds), [valid], children=children)


def _refused_apart(
    table: TableSchema,
    columns: Sequence[Column],
    rows: Sequence[dict[str, Any] | None],
    refused: list[list[dict[str, Any]] | None],
    old: bool,
) -> list[dict[str, Any] | None]:
    """``rows`` with each value Arrow refuses set to None and named in
    ``refused`` (per row; ``old``: the values are an old row's)."""
    empty: dict[str, Any] = {}
    out = [None if row is None else dict(row) for row in rows]
    for column in columns:
        name = column.name
        try:
            column_array(column.type, [(row or empty).get(name) for row in rows])
            continue
        except _REFUSALS:
            pass  # rare: find each value it refuses
        for i, row in enumerate(out):
            if row is None or row.get(name) is None:
                continue
            value = row[name]
            found = first_unrepresentable(value)
            if found is None:
                try:
                    column_array(column.type, [value])
                    continue
                except _REFUSALS as exc:
                    reason = f"not a {column.type.describe()} value: {exc}"
                    found = Unrepresentable(printable(value) or "", reason)
            row[name] = None
            entry = {"column": name, "old": old, "text": found.text, "reason": found.reason}
            refused[i] = [*(refused[i] or ()), entry]
    return out


_NAMES = pa.list_(pa.string())


def general_row(
    change: RowChange, table: TableSchema, names: Sequence[str] | None = None
) -> tuple[bytes, dict[str, Any], frozenset[str], dict[str, Any] | None, dict[str, Any] | None]:
    """``change`` as a ``RowsChunk`` row of ``table`` (the stream's view of
    its table; ``names``: its column names), for a change ``whole_row``
    cannot say or a table whose changes go one at a time: its op letter; its
    new row (a DELETE's old row, whole or its key, as the source sent it);
    the columns it did not send; its whole old row, when the source sent
    one; its old key, when it moved to another key. ``row_changes``
    gives it back."""
    if names is None:
        names = table.column_names
    values, old = change.values, change.old_key
    if change.op is Op.DELETE:
        sent = values if len(values) > len(old or ()) else old or {}
        return DELETE, sent, _NONE, sent if _is_whole(sent, names) else None, None
    before = change.before
    if before is None or not _is_whole(before, names):
        before = old if old is not None and _is_whole(old, names) else None
    moved = None
    key = table.primary_key
    if old is not None and key and any(old.get(k) != values.get(k) for k in key):
        moved = {k: old.get(k) for k in key}
    unchanged = change.unchanged
    if len(values) + len(unchanged) != len(names) or not unchanged.isdisjoint(values):
        unchanged = frozenset(n for n in names if n not in values)  # every column not sent
    return change.op.encode(), values, unchanged, before, moved


_NONE: frozenset[str] = frozenset()


def _is_whole(row: Mapping[str, Any], names: Sequence[str]) -> bool:
    return len(row) == len(names) and all(n in row for n in names)


def whole_row(
    change: RowChange, table: TableSchema, names: AbstractSet[str], before: bool = False
) -> tuple[bytes, dict[str, Any], frozenset[str], dict[str, Any] | None] | None:
    """``change`` as a ``RowsChunk`` row of ``table`` (``names``: its column
    names), the columns it left unsent (a partial UPDATE's) and, when
    ``before`` is asked, an UPDATE's or DELETE's old row if the source sent
    it whole (else None): None when a captured batch cannot say it (a
    changed key, an unsent key column, no key), the change then going as it
    is. A partial UPDATE whose old row came whole is made whole from it. A
    DELETE's row is the old row when the source sent it whole (REPLICA
    IDENTITY FULL), else its key (a change log writes what the source sent)."""
    key = table.primary_key
    old = change.old_key
    if change.op is Op.DELETE:
        if not key or old is None or not old.keys() >= set(key):
            return None
        if old.keys() == names:
            return DELETE, old, frozenset(), old if before else None
        return DELETE, {k: old[k] for k in key}, frozenset(), None
    values, unchanged = change.values, change.unchanged
    if not key:
        return None
    whole_old = change.before if change.before is not None else old
    if whole_old is not None and whole_old.keys() != names:
        whole_old = None
    if unchanged:
        if (
            change.op is not Op.UPDATE
            or not unchanged.isdisjoint(key)
            or not values.keys().isdisjoint(unchanged)
            or values.keys() | unchanged != names
        ):
            return None
        if old is not None and unchanged <= old.keys():
            # The old row came whole (REPLICA IDENTITY FULL): an unsent value is its old one.
            values, unchanged = {**{c: old[c] for c in unchanged}, **values}, frozenset()
    elif values.keys() != names:
        return None
    if old is not None and any(old.get(k, _ABSENT) != values[k] for k in key):
        return None  # the row moved to another key
    if change.op is Op.INSERT:
        return INSERT, values, unchanged, None
    return UPDATE, values, unchanged, whole_old if before else None


_ABSENT = object()

CHUNK_ROWS = 1000
"""Changes of one captured batch at most."""

RUNS_ROWS = 10 * CHUNK_ROWS
"""Changes gathered over all tables at most, before every run is delivered."""

Captured = Mapping[TableRef, tuple[TableSchema, AbstractSet[str], bool]]
"""The tables whose whole rows go into captured batches: each with the
shape the stream reads it with, that shape's column names, and whether its
UPDATEs' and DELETEs' whole old rows go too (``BEFORE``)."""


class RowRuns:
    """A stream's runs of row changes, one per table, each delivered as one
    captured batch of up to ``CHUNK_ROWS``: every change, in one of two
    forms. The changes of ``tables`` that ``whole_row`` says go in its form
    (the reducer maps them in Arrow); any other (a table whose changes go
    one at a time, a moved key, a value Arrow refuses ...) in
    ``general_row``'s, with the stream's view of its table.

    A run holds one table's changes of one form, in commit order; runs of
    several tables are open at once, as the reducer reduces per table:
    tables written in turn in one transaction (an order, its lines, the
    next order ...) make long runs, not batches of one row. A change of
    the other form delivers its table's run first, and every run goes
    before any other event (a commit, DDL, a TRUNCATE: ``flush()``)."""

    def __init__(self, tables: Captured | None = None) -> None:
        self.tables: Captured = tables or {}
        self._runs: dict[TableRef, RowsChunk] = {}
        self._size = 0

    @property
    def pending(self) -> bool:
        """Whether a run is being gathered (deliver it before any later event)."""
        return bool(self._runs)

    def add(self, change: RowChange, table: TableSchema) -> list[ChangeEvent]:
        """Take ``change`` (of ``table``, as the stream sees it) into its
        table's run; the events to deliver first."""
        entry = self.tables.get(change.table)
        row = None if entry is None else whole_row(change, *entry)
        if row is not None and entry is not None:
            return self.add_row(entry[0], *row)
        first, run = self._run(table, whole=False)
        run.add(*general_row(change, table, run.names))
        return first

    def add_row(
        self,
        table: TableSchema,
        op: bytes,
        values: dict[str, Any],
        unchanged: AbstractSet[str] = frozenset(),
        before: dict[str, Any] | None = None,
    ) -> list[ChangeEvent]:
        """Take a row of ``table`` as ``whole_row`` says it into its run; the
        events to deliver first."""
        first, run = self._run(table, whole=True)
        run.add(op, values, unchanged, before)
        return first

    def _run(self, table: TableSchema, whole: bool) -> tuple[list[ChangeEvent], RowsChunk]:
        """The run a change of ``table`` in this form goes into (counted),
        and the events to deliver first."""
        first: list[ChangeEvent] = []
        if self._size >= RUNS_ROWS:
            first = self.flush()
        run = self._runs.get(table.ref)
        if run is not None and (run.table is not table or run.whole is not whole or run.size >= CHUNK_ROWS):
            first += self.flush(table.ref)  # full, or the table's shape or the form changed
            run = None
        if run is None:
            run = self._runs[table.ref] = RowsChunk(table, whole)
        self._size += 1
        return first, run

    def flush(self, table: TableRef | None = None) -> list[ChangeEvent]:
        """The runs gathered so far (only ``table``'s, when given), as their events."""
        if table is None:
            runs, self._runs, self._size = list(self._runs.values()), {}, 0
        else:
            run = self._runs.pop(table, None)
            if run is None:
                return []
            runs = [run]
            self._size -= run.size
        return [event for run in runs for event in run.take()]


def gather(
    events: Iterable[RowChange | ChangeEvent], tables: Captured, shapes: Mapping[TableRef, TableSchema]
) -> Iterator[ChangeEvent]:
    """``events`` with their row changes gathered into captured batches per
    table (``RowRuns``; ``shapes``: each table as the stream sees it); each
    table's changes in commit order, every other event after all changes
    before it."""
    runs = RowRuns(tables)
    for event in events:
        if isinstance(event, RowChange):
            yield from runs.add(event, shapes[event.table])
            continue
        yield from runs.flush()
        yield event
    yield from runs.flush()


def row_changes(changes: ChangeBatch) -> Iterator[RowChange]:
    """A captured ``ChangeBatch``'s changes of rows one by one, for a
    reducer that takes them so: an UPDATE's whole old row (``BEFORE``) is
    its ``before``, and its ``old_key`` when the row moved (``OLD_KEY``,
    else the key alone); a DELETE's old key is its whole row when ``BEFORE``
    says the source sent it whole, else its key; a value Arrow refused
    (``REFUSED``) is an ``Unrepresentable`` again."""
    batch = changes.changes
    if batch is None or ENCODED in batch.schema.names:
        raise ValueError("not a captured batch of rows")
    ref, key = changes.table.ref, changes.table.primary_key
    names = batch.schema.names
    befores = struct_rows(batch.column(BEFORE)) if BEFORE in names else None
    moved = struct_rows(batch.column(OLD_KEY)) if OLD_KEY in names else None
    refused = batch.column(REFUSED).to_pylist() if REFUSED in names else None
    for i, (op, row, unchanged) in enumerate(captured_changes(batch)):
        assert op is not None, "a stream's captured batch says every change"
        before = befores[i] if befores is not None else None
        old_key = moved[i] if moved is not None else None
        if refused is not None and refused[i]:
            _unrepresentable(refused[i], row, before, old_key)
        if op == DELETE:
            old = row if before is not None else {k: row[k] for k in key}
            yield RowChange(ref, Op.DELETE, old, old_key=old)
        else:
            if old_key is not None and before is not None:
                old_key = before  # the old row as the source sent it, whole
            yield RowChange(ref, Op(op.decode()), row, old_key, unchanged, before)


def _unrepresentable(
    refused: list[dict[str, Any]],
    row: dict[str, Any],
    before: dict[str, Any] | None,
    old_key: dict[str, Any] | None,
) -> None:
    """The values a captured batch names in ``REFUSED`` put back in their rows."""
    for entry in refused:
        value = Unrepresentable(entry["text"], entry["reason"])
        column = entry["column"]
        if not entry["old"]:
            row[column] = value
            continue
        for old in (before, old_key):
            if old is not None and column in old:
                old[column] = value
