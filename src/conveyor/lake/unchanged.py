"""Partial updates in change files: columns the source did not send.

PostgreSQL does not send an unchanged TOASTed value with an UPDATE. The change
file holds such a column empty, which reads as NULL; the applier records the
rows and columns beside the file (``layout.unchanged_path``). Before the last
change per key is taken, each such column gets the value the row had just
before the update: from the key's previous change in the same run, else from
the table's current state (``lookup``). A key with neither is a table error
naming the column: the value is unknown, and NULL would be a silent change.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from conveyor.connectors.lake import files as lake_files
from conveyor.connectors.lake import layout as lay
from conveyor.core.errors import TerminalError
from conveyor.lake.controller import Lake

UNCHANGED = "__unchanged"
"""A change row's unchanged columns as a JSON list (null for a whole row)."""

Lookup = Callable[[pa.Table], pa.Table]
"""Rows of the table's current state whose key is one of the given key rows."""


def marks(lake: Lake, rel: str, rows: int) -> pa.Array:
    """The ``UNCHANGED`` column of change file ``rel`` (``rows`` rows)."""
    data = lake.raw.read_bytes(lay.unchanged_path(rel))
    texts: list[str | None] = [None] * rows
    if data is not None:
        for row, columns in json.loads(data)["rows"]:
            if row >= rows:
                raise TerminalError(f"{lay.unchanged_path(rel)} names row {row} of a {rows}-row file")
            texts[row] = json.dumps(columns)
    return pa.array(texts, pa.string())


def _key_rows(table: pa.Table, key: Sequence[str]) -> list[tuple[Any, ...]]:
    """Key tuples, comparable across tables (temporal keys as their integers,
    which hold every value Python's dates cannot)."""
    columns = []
    for name in key:
        column = table.column(name).combine_chunks()
        if pa.types.is_temporal(column.type):
            column = column.view(pa.int32() if pa.types.is_date32(column.type) else pa.int64())
        columns.append(column.to_pylist())
    return list(zip(*columns, strict=True))


def fill(changes: pa.Table, key: Sequence[str], op: str, seq: str, lookup: Lookup) -> pa.Table:
    """``changes`` (in ``seq`` order) with the unchanged columns of partial
    updates filled in, and without the ``UNCHANGED`` column."""
    if UNCHANGED not in changes.column_names:
        return changes
    marked = changes.column(UNCHANGED).combine_chunks()
    if marked.null_count == len(marked):
        return changes.drop_columns([UNCHANGED])
    if not key:
        raise TerminalError("a keyless table has partial updates (unchanged columns); they cannot be placed")
    data = changes.drop_columns([UNCHANGED])
    keys = _key_rows(data, key)
    ops = data.column(op).to_pylist()
    texts = marked.to_pylist()
    # (row, column) -> where its value comes from: ("c", row of changes) or ("b", key)
    sources: dict[tuple[int, str], tuple[str, Any]] = {}
    last: dict[tuple[Any, ...], int | None] = {}
    wanted = {keys[i] for i, text in enumerate(texts) if text is not None}
    for i, k in enumerate(keys):
        if k not in wanted:
            continue
        if ops[i] == "D":
            last[k] = None
            continue
        if texts[i] is not None:
            for column in json.loads(texts[i]):
                if column not in data.column_names:
                    continue
                if k in last and last[k] is None:
                    raise TerminalError(f"column {column!r}: an update of deleted key {k} left it unchanged")
                previous = last.get(k)
                origin = sources.get((previous, column)) if previous is not None else None
                sources[(i, column)] = origin or (("c", previous) if previous is not None else ("b", k))
        last[k] = i
    return _apply(data, key, sources, lookup)


def _apply(
    data: pa.Table, key: Sequence[str], sources: dict[tuple[int, str], tuple[str, Any]], lookup: Lookup
) -> pa.Table:
    from_base = sorted({where for kind, where in sources.values() if kind == "b"})
    base_rows: dict[tuple[Any, ...], int] = {}
    base = None
    if from_base:
        wanted = pa.Table.from_arrays(
            [pa.array([k[j] for k in from_base]) for j in range(len(key))], names=list(key)
        )
        base = lookup(wanted)
        for j, k in enumerate(_key_rows(base, key)):
            base_rows[k] = j
        missing = [k for k in from_base if k not in base_rows]
        if missing:
            column = next(c for (_, c), (kind, w) in sources.items() if kind == "b" and w == missing[0])
            raise TerminalError(
                f"column {column!r}: an update of key {dict(zip(key, missing[0], strict=True))} left it "
                "unchanged (an unchanged TOASTed value), and the curated table has no row for that key "
                "to keep it from; reload the table"
            )
    n = data.num_rows
    by_column: dict[str, dict[int, tuple[str, Any]]] = {}
    for (row, column), origin in sources.items():
        by_column.setdefault(column, {})[row] = origin
    arrays = []
    for name in data.column_names:
        column = data.column(name).combine_chunks()
        overrides = by_column.get(name)
        if not overrides:
            arrays.append(column)
            continue
        pool = column
        indices = list(range(n))
        if base is not None and name in base.column_names:
            pool = pa.concat_arrays([column, _as(base.column(name).combine_chunks(), column.type)])
        for row, (kind, where) in overrides.items():
            indices[row] = where if kind == "c" else n + base_rows[where]
        arrays.append(pc.take(pool, pa.array(indices, pa.int64())))
    return pa.Table.from_arrays(arrays, schema=data.schema)


def _as(values: pa.Array, dtype: pa.DataType) -> pa.Array:
    """Values of the curated table as the change files' type (Delta keeps
    times and intervals as their text)."""
    if values.type == dtype:
        return values
    if pa.types.is_string(values.type) and not pa.types.is_string(dtype):
        return lake_files.parse_column(values, dtype)
    return values.cast(dtype)
