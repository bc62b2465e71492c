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
from conveyor.connectors.captured_rows import DELETE, INSERT, UPDATE
from conveyor.connectors.changes import RowChange
from conveyor.connectors.mysql.capture_values import Convert, UnrepresentableValue, ValueConverters, set_text
from conveyor.connectors.mysql.row_images import RowImageDecoder
from conveyor.core.batch import Op
from conveyor.core.schema import TableRef, TableSchema


class RowChanges:
    """Rows events as RowChanges, with per-table converters kept for the shape
    they were made for (a table whose shape changed gets new ones)."""

    def __init__(self, wkt: Callable[[bytes], str]) -> None:
        self._converters = ValueConverters(wkt)
        self._cache: dict[TableRef, tuple[TableSchema, dict[str, Convert]]] = {}
        # Per table, for its latest table map (column list): SET columns' label positions as the binlog's
        # metadata gives them. The catalog spells a 4-byte character of a label '?';
        # the table map has the labels themselves.
        self._set_orders: dict[TableRef, tuple[Any, dict[str, dict[str, int]]]] = {}
        self._decoder = RowImageDecoder()  # row images straight from the event's bytes

    def decode(self, event: Any) -> list[dict[str, Any]]:
        """The event's rows as pymysqlreplication gives them (``values``, or
        ``before_values``/``after_values``, and their none-sources)."""
        return self._decoder.rows(event)

    def forget(self, ref: TableRef) -> None:
        """Drop the converters of a table no longer captured (or reshaped)."""
        self._cache.pop(ref, None)
        self._set_orders.pop(ref, None)

    def change(self, table: TableSchema, event: Any, row: Mapping[str, Any]) -> RowChange:
        """One decoded ``row`` of a rows ``event`` of ``table``."""
        ref = table.ref
        sets = self._set_labels(ref, event)
        if isinstance(event, WriteRowsEvent):
            values = self._values(table, row["values"], row.get("none_sources", {}), sets)
            return RowChange(ref, Op.INSERT, values, unchanged=_missing(table, values))
        if isinstance(event, DeleteRowsEvent):
            values = self._values(table, row["values"], row.get("none_sources", {}), sets)
            return RowChange(ref, Op.DELETE, values, old_key=_key(table, values))
        before = self._values(table, row["before_values"], row.get("before_none_sources", {}), sets)
        after = self._values(table, row["after_values"], row.get("after_none_sources", {}), sets)
        old_key = _key(table, before)
        new_key = _key(table, after)
        return RowChange(
            ref,
            Op.UPDATE,
            after,
            old_key=old_key if old_key != new_key else None,
            unchanged=_missing(table, after),
            before=before,
        )

    def whole_row(
        self, table: TableSchema, event: Any, row: Mapping[str, Any], before: bool = False
    ) -> tuple[bytes, dict[str, Any], frozenset[str], dict[str, Any] | None] | None:
        """One decoded ``row`` as a ``RowsChunk`` row: its op letter, whole
        new row (a DELETE's old row), no unsent column, and when ``before`` is
        asked the whole old row (an UPDATE's before image if it is whole, a
        DELETE's row; else None). None when
        it is not that simple (the image lacks columns, a value no Arrow value
        carries, an UPDATE moved its row to another key): ``change`` then
        gives it. The before image's key is compared raw, before conversion."""
        sets = self._set_labels(table.ref, event)
        old = None
        if isinstance(event, WriteRowsEvent):
            op, values = INSERT, self._values(table, row["values"], row.get("none_sources", {}), sets)
        elif isinstance(event, DeleteRowsEvent):
            op, values = DELETE, self._values(table, row["values"], row.get("none_sources", {}), sets)
        else:
            image, after = row["before_values"], row["after_values"]
            if any(image.get(k, _ABSENT) != after.get(k, _ABSENT) for k in table.primary_key):
                return None
            op, values = UPDATE, self._values(table, after, row.get("after_none_sources", {}), sets)
            if before:
                old = self._values(table, image, row.get("before_none_sources", {}), sets)
                if not _whole(table, old):
                    old = None
        if not _whole(table, values):
            return None
        if before and op == DELETE:
            old = values
        return op, values, _NONE_UNSENT, old

    def _table_converters(self, table: TableSchema) -> dict[str, Convert]:
        cached = self._cache.get(table.ref)
        if cached is None or cached[0] is not table:
            cached = (table, {c.name: self._converters.for_column(c) for c in table.columns})
            self._cache[table.ref] = cached
        return cached[1]

    def _set_labels(self, ref: TableRef, event: Any) -> dict[str, dict[str, int]]:
        """The event's SET columns' label positions, from its table map's metadata."""
        columns = event.columns
        cached = self._set_orders.get(ref)
        if cached is None or cached[0] is not columns:
            orders = {
                c.name: {label: i for i, label in enumerate(c.set_values)}
                for c in columns
                if getattr(c, "set_values", None)
            }
            cached = (columns, orders)
            self._set_orders[ref] = cached
        return cached[1]

    def _values(
        self,
        table: TableSchema,
        raw: Mapping[str, Any],
        sources: Mapping[str, str],
        sets: Mapping[str, Mapping[str, int]],
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
                order = sets.get(name)
                values[name] = set_text(value, source, order) if order is not None else convert(value, source)
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


_ABSENT = object()
_NONE_UNSENT: frozenset[str] = frozenset()


def _whole(table: TableSchema, values: dict[str, Any]) -> bool:
    """Whether ``values`` holds every column, each a value Arrow carries."""
    return len(values) == len(table.columns) and Unrepresentable not in set(map(type, values.values()))


def _key(table: TableSchema, values: dict[str, Any]) -> dict[str, Any]:
    names = table.primary_key or tuple(values)
    return {k: values[k] for k in names if k in values}


def _missing(table: TableSchema, values: dict[str, Any]) -> frozenset[str]:
    """Columns the row event did not carry (a shape older than the catalog's)."""
    return frozenset(c.name for c in table.columns if c.name not in values)
