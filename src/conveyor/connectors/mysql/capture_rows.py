"""A binlog rows event's rows as RowChanges: the row images decoded (straight
from the event's bytes where :class:`RowImageDecoder` can), each value
converted as the full load gives it, the old key of an update that moved its
row, and the columns an image older than the known shape did not carry."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pymysqlreplication.row_event import (  # type: ignore[import-untyped]
    DeleteRowsEvent,
    WriteRowsEvent,
)

from conveyor.connectors.arrow_rows import Unrepresentable
from conveyor.connectors.changes import RowChange
from conveyor.connectors.mysql.capture_values import Convert, UnrepresentableValue, ValueConverters
from conveyor.connectors.mysql.row_images import RowImageDecoder
from conveyor.core.batch import Op
from conveyor.core.schema import TableRef, TableSchema


class RowChanges:
    """Rows events as RowChanges, with per-table converters kept for the shape
    they were made for (a table whose shape changed gets new ones)."""

    def __init__(self, wkt: Callable[[bytes], str]) -> None:
        self._converters = ValueConverters(wkt)
        self._cache: dict[TableRef, tuple[TableSchema, dict[str, Convert]]] = {}
        self._decoder = RowImageDecoder()  # row images straight from the event's bytes

    def decode(self, event: Any) -> list[dict[str, Any]]:
        """The event's rows as pymysqlreplication gives them (``values``, or
        ``before_values``/``after_values``, and their none-sources)."""
        return self._decoder.rows(event)

    def forget(self, ref: TableRef) -> None:
        """Drop the converters of a table no longer captured (or reshaped)."""
        self._cache.pop(ref, None)

    def change(self, table: TableSchema, event: Any, row: Mapping[str, Any]) -> RowChange:
        """One decoded ``row`` of a rows ``event`` of ``table``."""
        ref = table.ref
        if isinstance(event, WriteRowsEvent):
            values = self._values(table, row["values"], row.get("none_sources", {}))
            return RowChange(ref, Op.INSERT, values, unchanged=_missing(table, values))
        if isinstance(event, DeleteRowsEvent):
            values = self._values(table, row["values"], row.get("none_sources", {}))
            return RowChange(ref, Op.DELETE, values, old_key=_key(table, values))
        before = self._values(table, row["before_values"], row.get("before_none_sources", {}))
        after = self._values(table, row["after_values"], row.get("after_none_sources", {}))
        old_key = _key(table, before)
        new_key = _key(table, after)
        return RowChange(
            ref,
            Op.UPDATE,
            after,
            old_key=old_key if old_key != new_key else None,
            unchanged=_missing(table, after),
        )

    def _table_converters(self, table: TableSchema) -> dict[str, Convert]:
        cached = self._cache.get(table.ref)
        if cached is None or cached[0] is not table:
            cached = (table, {c.name: self._converters.for_column(c) for c in table.columns})
            self._cache[table.ref] = cached
        return cached[1]

    def _values(
        self, table: TableSchema, raw: Mapping[str, Any], sources: Mapping[str, str]
    ) -> dict[str, Any]:
        converters = self._table_converters(table)
        values: dict[str, Any] = {}
        for name, value in raw.items():
            convert = converters.get(name)
            if convert is None:
                continue  # a column the known shape lacks
            source = sources.get(name, "null") if value is None else ""
            if source == "null":
                values[name] = None
                continue
            if source == "cols bitmap":
                continue  # not in a MINIMAL row image: reported as unchanged
            try:
                values[name] = convert(value, source)
            except UnrepresentableValue as exc:
                # Refused by the applier per DataErrorPolicy, as the full load's row.
                column = table.column(name)
                values[name] = Unrepresentable(
                    str(exc.value), f"not a {column.type.describe()} value: {exc.why}"
                )
            except (ArithmeticError, ValueError, TypeError) as exc:
                column = table.column(name)
                values[name] = Unrepresentable(str(value), f"not a {column.type.describe()} value: {exc}")
        return values


def _key(table: TableSchema, values: dict[str, Any]) -> dict[str, Any]:
    names = table.primary_key or tuple(values)
    return {k: values[k] for k in names if k in values}


def _missing(table: TableSchema, values: dict[str, Any]) -> frozenset[str]:
    """Columns the row event did not carry (a shape older than the catalog's)."""
    return frozenset(c.name for c in table.columns if c.name not in values)
