"""Polled change rows as RowChanges: each changed row's current values read by
its key, converted per table and column in bulk exactly as the full load converts
them (``source.to_python``), and the operation told by whether the row is still there
(a row gone since its INSERT or UPDATE was logged is delivered as a DELETE)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from conveyor.connectors.arrow_rows import Unrepresentable
from conveyor.connectors.changes import RowChange
from conveyor.connectors.sqlite.source import quote, to_python
from conveyor.core.batch import Op
from conveyor.core.errors import DataError
from conveyor.core.schema import Column, TableSchema

PendingChange = tuple[TableSchema, str, tuple[Any, ...] | None, tuple[Any, ...], tuple[Any, ...]]
"""One change row: its table, op, the row read by its key (None: gone), old and new key."""


def row_changes(tables: Mapping[str, TableSchema], pending: list[PendingChange]) -> list[RowChange]:
    """The RowChanges of ``pending`` in order; ``tables`` are the shapes they were read with."""
    rows: dict[str, list[tuple[Any, ...]]] = {}
    keys: dict[str, list[tuple[Any, ...]]] = {}
    for table, _op, row, old, new in pending:
        name = table.ref.name
        if row is not None:
            rows.setdefault(name, []).append(row)
        keys.setdefault(name, []).extend((old, new))
    values = {name: iter(convert_rows(tables[name], tables[name].columns, r)) for name, r in rows.items()}
    converted_keys = {
        name: iter(
            convert_rows(
                tables[name],
                [tables[name].column(c) for c in tables[name].primary_key],
                k,
            )
        )
        for name, k in keys.items()
    }
    out: list[RowChange] = []
    for table, op, row, old, new in pending:
        name = table.ref.name
        old_key, new_key = next(converted_keys[name]), next(converted_keys[name])
        image = next(values[name]) if row is not None else None
        if op == Op.DELETE:
            out.append(RowChange(table.ref, Op.DELETE, {}, old_key=old_key))
        elif op == Op.INSERT:
            if image is None:  # deleted (or moved) since: a later change row says so too
                out.append(RowChange(table.ref, Op.DELETE, {}, old_key=new_key))
            else:
                out.append(RowChange(table.ref, Op.INSERT, image))
        else:
            moved = old != new
            if image is None:
                out.append(RowChange(table.ref, Op.DELETE, {}, old_key=old_key if moved else new_key))
            else:
                out.append(RowChange(table.ref, Op.UPDATE, image, old_key=old_key if moved else None))
    return out


def convert_rows(
    table: TableSchema, columns: Sequence[Column], rows: list[tuple[Any, ...]]
) -> list[dict[str, Any]]:
    if not rows:
        return []
    names = [c.name for c in columns]
    converted = [
        _column_values(table, c, list(v)) for c, v in zip(columns, zip(*rows, strict=True), strict=True)
    ]
    return [dict(zip(names, values, strict=True)) for values in zip(*converted, strict=True)]


def _column_values(table: TableSchema, column: Column, values: list[Any]) -> list[Any]:
    """A column's captured values; one the full load would refuse becomes
    ``Unrepresentable``, so the applier refuses it by column (its table
    suspended) instead of the stream failing the task."""
    try:
        return to_python(table, column, values)
    except DataError:
        found: list[Any] = []
        for value in values:
            try:
                found.extend(to_python(table, column, [value]))
            except DataError as exc:
                found.append(Unrepresentable(repr(value), str(exc)))
        return found


def row_query(table: TableSchema) -> str:
    cols = ", ".join(quote(c) for c in table.column_names)
    where = " AND ".join(f"{quote(k)} IS ?" for k in table.primary_key)
    return f"SELECT {cols} FROM {quote(table.ref.name)} WHERE {where}"
