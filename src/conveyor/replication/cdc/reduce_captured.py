"""Reducing captured changes (``ChangeBatch.captured``) in Arrow: the last
change of each primary key, as whole rows, encoded rows or deleted keys.

Built without ``pa.array`` and without Arrow's ``group_by`` (which imports
pyarrow.dataset), both of which import pandas: a PostgreSQL to PostgreSQL
capture never needs it (about 50 MB, up to a second)."""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from conveyor.connectors.arrow_rows import empty_batch
from conveyor.core.batch import ENCODED, OP, ChangeBatch, Logged, Op, op_array
from conveyor.core.errors import DataError
from conveyor.core.schema import TableSchema


def reduce_captured(
    table: TableSchema,
    captured: Sequence[pa.RecordBatch],
    *,
    truncate: bool = False,
    log: Sequence[Logged] = (),
) -> ChangeBatch:
    """Captured changes of ``table`` (a table with a primary key whose rows
    go to the target as the source sent them), in commit order, reduced in
    Arrow to the last change per key: its whole new row (``upserts``, or
    ``encoded`` for encoded rows) or its key (``deletes``)."""
    key = list(table.primary_key)
    changes = pa.Table.from_batches(captured) if len({b.schema for b in captured}) == 1 else None
    if changes is None:  # a shape changed between them: one schema, the first's order of columns
        changes = pa.concat_tables([pa.Table.from_batches([b]) for b in captured], promote_options="default")
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
        upserts, encoded = empty_batch(table, table.column_names), rows.column(ENCODED).combine_chunks()
    else:
        upserts, encoded = _target_batch(table, rows, table.column_names), ()
    return ChangeBatch(table, upserts, deletes, truncate=truncate, encoded=encoded, log=log)


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
    except pa.ArrowNotImplementedError:  # a key type Arrow cannot sort: in Python
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
