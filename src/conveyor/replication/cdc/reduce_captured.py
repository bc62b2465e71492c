"""Reducing captured changes (``ChangeBatch.captured``) in Arrow: the last
change of each primary key, as whole rows, encoded rows, deleted keys or
partial updates (the columns no change of the key sent keep the target's value).

Built without ``pa.array`` and without Arrow's ``group_by`` (which imports
pyarrow.dataset), both of which import pandas: a PostgreSQL to PostgreSQL
capture never needs it (about 50 MB, up to a second)."""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from conveyor.connectors.arrow_rows import empty_batch
from conveyor.core.batch import (
    ENCODED,
    OP,
    UNCHANGED,
    ChangeBatch,
    KeyChecks,
    KeyHistory,
    Logged,
    Op,
    op_array,
)
from conveyor.core.errors import DataError
from conveyor.core.schema import TableSchema
from conveyor.replication.cdc.change_filter import MOVED_OUT


def reduce_captured(
    table: TableSchema,
    captured: Sequence[pa.RecordBatch],
    *,
    truncate: bool = False,
    log: Sequence[Logged] = (),
    check_keys: bool = False,
) -> ChangeBatch:
    """Captured changes of ``table`` (a table with a primary key whose rows
    go to the target as the source sent them), in commit order, reduced in
    Arrow to the last change per key: its whole new row (``upserts``, or
    ``encoded`` for encoded rows), its key (``deletes``), or, when no change
    of the key in the batch sent some columns (partial UPDATEs), its row
    without them (``partial``). ``check_keys``: with each key's history, to
    judge against the target (``ChangeBatch.checks``)."""
    key = list(table.primary_key)
    changes = pa.Table.from_batches(captured) if len({b.schema for b in captured}) == 1 else None
    if changes is None:  # a shape changed between them: one schema, the first's order of columns
        changes = pa.concat_tables([pa.Table.from_batches([b]) for b in captured], promote_options="default")
    partial: dict[frozenset[str], pa.RecordBatch] = {}
    checks: KeyChecks | None = None
    if UNCHANGED in changes.column_names and changes.column(UNCHANGED).null_count == changes.num_rows:
        changes = changes.drop_columns([UNCHANGED])  # every row whole
    if UNCHANGED in changes.column_names:
        runs = _runs(changes, key)
        changes, unsent = _merged(runs, table.column_names)
        if check_keys:
            checks = _key_checks(table, runs, unsent)
        for columns, rows in _by_unsent(changes, unsent).items():
            sent = [c for c in table.column_names if c not in columns]
            partial[columns] = _target_batch(table, rows, sent)
        if partial:
            changes = changes.filter(unsent.is_null())
    else:
        if check_keys:
            checks = _key_checks(table, _runs(changes, key), None)
        last = _last_per_key(changes, key)
        if last is not None:
            changes = changes.take(last)
    deleted = pc.equal(changes.column(OP), _DELETE)
    if pc.any(deleted).as_py():
        deletes = _target_batch(table, changes.filter(deleted), key)
        rows = changes.filter(pc.invert(deleted))
    else:
        deletes, rows = empty_batch(table, key), changes
    if ENCODED in changes.column_names:
        lines = rows.column(ENCODED)
        if lines.null_count:  # whole rows in Arrow among the lines (a line could not hold them)
            values = rows.filter(lines.is_null())
            upserts, rows = _target_batch(table, values, table.column_names), rows.filter(lines.is_valid())
        else:
            upserts = empty_batch(table, table.column_names)
        encoded = rows.column(ENCODED).combine_chunks()
    else:
        upserts, encoded = _target_batch(table, rows, table.column_names), ()
    return ChangeBatch(
        table, upserts, deletes, partial, truncate=truncate, encoded=encoded, log=log, checks=checks
    )


_DELETE = op_array(Op.DELETE.encode())[0]


def _last_per_key(changes: pa.Table, key: list[str]) -> pa.Array | None:
    """The rows holding each key's last change, in commit order; None when
    every key changed once. By sorting (keys, then latest first) and keeping
    each run's first."""
    n = changes.num_rows
    if len(key) == 1 and pc.count_distinct(changes.column(key[0])).as_py() == n:
        return None  # the common case, found by hashing rather than sorting
    order = _int64s(range(n))
    keys = changes.select(key).append_column(_ORDER, order)
    try:
        ranked = pc.sort_indices(keys, sort_keys=[*((k, "ascending") for k in key), (_ORDER, "descending")])
    except _UNSORTABLE:  # a key type Arrow cannot sort: in Python
        found: dict[tuple[Any, ...], int] = {}
        for i, values in enumerate(zip(*(changes.column(c).to_pylist() for c in key), strict=True)):
            found[values] = i
        if len(found) == n:
            return None
        return _int64s(sorted(found.values()))
    if n < 2:
        return None
    new_run = None  # where a sorted row's key differs from the row before it
    for name in key:
        column = keys.column(name).take(ranked)
        differs = pc.not_equal(column.slice(1), column.slice(0, n - 1))
        new_run = differs if new_run is None else pc.or_(new_run, differs)
    assert new_run is not None
    if pc.all(new_run).as_py():
        return None
    first = pa.concat_arrays([_TRUE, new_run.combine_chunks()])  # each run's first: its latest change
    latest = ranked.filter(first)
    return latest.take(pc.sort_indices(latest))


def _int64s(values: Iterable[int]) -> pa.Array:
    return pa.Array.from_buffers(pa.int64(), len(a := array("q", values)), [None, pa.py_buffer(a)])


_TRUE = pa.Array.from_buffers(pa.bool_(), 1, [None, pa.py_buffer(b"\x01")])


_ORDER = "conveyor_order"


def _target_batch(table: TableSchema, rows: pa.Table, columns: Sequence[str]) -> pa.RecordBatch:
    """``columns`` of ``rows`` as one batch in the target table's types."""
    if not rows.num_rows:
        return empty_batch(table, columns)
    schema = pa.schema([pa.field(c, table.column(c).type.arrow()) for c in columns])
    picked = rows.select(list(columns)).combine_chunks()
    if picked.schema != schema:
        try:
            picked = picked.cast(schema)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise DataError(f"table {table.ref}: a captured value does not fit the target: {exc}") from None
    return picked.to_batches()[0]


@dataclass(frozen=True)
class _Runs:
    """Changes sorted by key, then commit order (``ordered``), and where each
    key's run of changes starts and ends."""

    ordered: pa.Table
    starts: pa.Array
    ends: pa.Array
    key: list[str]


def _runs(changes: pa.Table, key: list[str]) -> _Runs:
    positions = _int64s(range(changes.num_rows))
    try:
        return _Runs(*_key_runs(changes, key, positions), key)
    except _UNSORTABLE:  # a key type Arrow cannot sort or compare: grouped in Python
        groups: dict[tuple[Any, ...], list[int]] = {}
        for i, values in enumerate(zip(*(changes.column(c).to_pylist() for c in key), strict=True)):
            groups.setdefault(values, []).append(i)
        ordered = changes.take(_int64s(i for run in groups.values() for i in run))
        bounds = [(j == 0, j == len(run) - 1) for run in groups.values() for j in range(len(run))]
        starts = pa.array([first for first, _ in bounds], pa.bool_())
        ends = pa.array([final for _, final in bounds], pa.bool_())
        return _Runs(ordered, starts, ends, key)


def _merged(runs: _Runs, columns: Sequence[str]) -> tuple[pa.Table, pa.Array]:
    """Each key's last change with the values its partial UPDATEs left
    unsent taken from the key's latest earlier change that sent them (since
    its last DELETE), and per row the columns no such change sent (a list
    of names, null when none: the row is whole), in the order of ``runs``.
    Like the change-by-change path's merge, by a forward fill of each
    column's source row within each key's run of changes sorted by key, then
    commit order."""
    ordered, starts, ends = runs.ordered, runs.starts, runs.ends
    positions = _int64s(range(ordered.num_rows))
    last = positions.filter(ends)
    deleted = pc.equal(ordered.column(OP), _DELETE).combine_chunks()
    lists = ordered.column(UNCHANGED).combine_chunks()
    names, owners = pc.list_flatten(lists), pc.list_parent_indices(lists).cast(pa.int64())
    picked: list[pa.Array] = []
    gone: dict[str, pa.Array] = {}
    for name in ordered.column_names:
        rows = owners.filter(pc.equal(names, name)) if name in columns else None
        if rows is None or not len(rows):
            picked.append(ordered.column(name).take(last))
            continue
        sent = pc.invert(pc.or_(pc.is_in(positions, value_set=rows), deleted))
        # A row sending the column is its own source; a key's first change, or
        # a DELETE, has none (-1); the others carry the one before them.
        source = pc.if_else(sent, positions, pc.if_else(pc.or_(starts, deleted), _NONE, _NULL))
        found = pc.fill_null_forward(source).take(last)
        missing = pc.equal(found, _NONE)
        gone[name] = missing
        picked.append(ordered.column(name).take(pc.if_else(missing, last, found)))
    merged = pa.Table.from_arrays(picked, names=ordered.column_names).drop_columns([UNCHANGED])
    return merged, _unsent_lists(gone, len(last), pc.equal(merged.column(OP), _DELETE))


def _key_runs(changes: pa.Table, key: list[str], positions: pa.Array) -> tuple[pa.Table, pa.Array, pa.Array]:
    """``changes`` sorted by key, then commit order, and where each key's run
    of changes starts and ends."""
    n = changes.num_rows
    ranked = pc.sort_indices(
        changes.select(key).append_column(_ORDER, positions),
        sort_keys=[*((k, "ascending") for k in key), (_ORDER, "ascending")],
    )
    ordered = changes.take(ranked)
    if n < 2:
        return ordered, _TRUE.slice(0, n), _TRUE.slice(0, n)
    differs = None
    for name in key:
        column = ordered.column(name)
        step = pc.not_equal(column.slice(1), column.slice(0, n - 1)).combine_chunks()
        differs = step if differs is None else pc.or_(differs, step)
    assert differs is not None
    return ordered, pa.concat_arrays([_TRUE, differs]), pa.concat_arrays([differs, _TRUE])


_UNSORTABLE = (pa.ArrowNotImplementedError, pa.ArrowTypeError)
"""What Arrow raises for a key it cannot sort or compare (an interval: the
first for a column, the second for a table)."""
_NONE = _int64s([-1])[0]
_NULL = pa.nulls(1, pa.int64())[0]


def _key_checks(table: TableSchema, runs: _Runs, unsent: pa.Array | None) -> KeyChecks | None:
    """Each key's history in the batch (``KeyHistory``, as the change-by-change
    reducer notes it), in the order of ``runs``; ``unsent``: the columns each
    key's final row lacks (``_merged``), None when every change was whole."""
    ordered, starts, ends = runs.ordered, runs.starts, runs.ends
    if not ordered.num_rows:
        return None
    ops = ordered.column(OP).combine_chunks()
    firsts = ops.filter(starts).to_pylist()
    alone = pc.and_(starts, ends).filter(starts).to_pylist()
    later_inserts = pc.and_(pc.equal(ops, _INSERT), pc.invert(starts)).cast(pa.int64())
    counted = pc.cumulative_sum(later_inserts)
    reinserted = pc.greater(pc.subtract(counted.filter(ends), counted.filter(starts)), 0).to_pylist()
    partial = [False] * len(firsts) if unsent is None else unsent.is_valid().to_pylist()
    inherited = _inherited(table, ordered, starts, firsts, alone) if unsent is not None else {}
    shared: dict[KeyHistory, KeyHistory] = {}  # few distinct ones
    histories = []
    for i, (first, one, again, part) in enumerate(zip(firsts, alone, reinserted, partial, strict=True)):
        history = KeyHistory(Op(first.decode()), one, again, part, inherited.get(i, frozenset()))
        histories.append(shared.setdefault(history, history))
    keys = ordered.select(runs.key).filter(starts)
    if MOVED_OUT in ordered.column_names:
        # A key whose first change a filter moved out is not judged (as one by one).
        judged = pc.invert(pc.fill_null(ordered.column(MOVED_OUT), False).combine_chunks().filter(starts))
        keys = keys.filter(judged)
        histories = [h for h, keep in zip(histories, judged.to_pylist(), strict=True) if keep]
        if not histories:
            return None
    return KeyChecks(_target_batch(table, keys, runs.key), histories)


def _inherited(
    table: TableSchema, ordered: pa.Table, starts: pa.Array, firsts: list[bytes], alone: list[bool]
) -> dict[int, frozenset[str]]:
    """By key (its run's index): the columns whose final value is still its
    first change's, an INSERT followed only by partial UPDATEs: those every
    one of them left unsent."""
    wanted = [
        i for i, (first, one) in enumerate(zip(firsts, alone, strict=True)) if first == _INSERT_OP and not one
    ]
    if not wanted:
        return {}
    begins = pc.indices_nonzero(starts).to_pylist()
    ops = ordered.column(OP).to_pylist()
    lists = ordered.column(UNCHANGED).to_pylist()
    out: dict[int, frozenset[str]] = {}
    for run in wanted:
        end = begins[run + 1] if run + 1 < len(begins) else len(ops)
        left = frozenset(table.column_names)
        for row in range(begins[run] + 1, end):
            if ops[row] != _UPDATE_OP or not lists[row]:
                left = frozenset()
                break
            left &= frozenset(lists[row])
        if left:
            out[run] = left
    return out


_INSERT_OP, _UPDATE_OP = Op.INSERT.encode(), Op.UPDATE.encode()
_INSERT = op_array(_INSERT_OP)[0]


def _unsent_lists(gone: dict[str, pa.Array], n: int, deleted: pa.ChunkedArray) -> pa.Array:
    """Per row, the columns in ``gone`` it lacks, as a list (null when none,
    and for a DELETE)."""
    flags = [column.to_pylist() for column in gone.values()]
    names = list(gone)
    is_deleted = deleted.to_pylist()
    lists = [
        None if dead or not any(row) else [name for name, flag in zip(names, row, strict=True) if flag]
        for dead, row in zip(is_deleted, zip(*flags, strict=True) if flags else [()] * n, strict=True)
    ]
    return pa.array(lists, pa.list_(pa.string()))


def _by_unsent(rows: pa.Table, unsent: pa.Array) -> dict[frozenset[str], pa.Table]:
    """The rows lacking columns, grouped by the columns they lack."""
    groups: dict[frozenset[str], list[int]] = {}
    for i, columns in enumerate(unsent.to_pylist()):
        if columns:
            groups.setdefault(frozenset(columns), []).append(i)
    return {columns: rows.take(_int64s(indices)) for columns, indices in groups.items()}
