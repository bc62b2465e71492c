"""Row filters: which source rows a table's load and capture carry.

A :class:`RowFilter` is an AND of :class:`ColumnFilter` s, each an OR of
:class:`Condition` s on one column (the migration service's source filters).
Condition values are typed already (the column's in-flight Python type), so
every engine compares the same values:

* text compares by code point, case-sensitively, with no trailing-space
  padding (PostgreSQL ``COLLATE "C"``, MariaDB/MySQL as binary UTF-8, SQLite
  ``BINARY``), in the full load and in change capture alike;
* NULL passes only ``null``; every other operator (``noteq`` and
  ``notbetween`` too) is false for NULL, as in SQL.

Sources push a filter down into their SELECT; :meth:`RowFilter.matches`
evaluates it on a change's values (CDC), :meth:`RowFilter.mask` on an Arrow
batch (sources that cannot push it down).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

import pyarrow as pa

from conveyor.core.arrow_compute import pc
from conveyor.core.types import Kind


class FilterOp(StrEnum):
    EQ = "eq"
    NOTEQ = "noteq"
    LTE = "lte"
    GTE = "gte"
    BETWEEN = "between"
    NOTBETWEEN = "notbetween"
    NULL = "null"
    NOTNULL = "notnull"
    # Not written by users: the bounds of parallel-load range segments.
    LT = "lt"
    GT = "gt"


FILTERABLE_KINDS = frozenset(
    {
        Kind.INT16,
        Kind.INT32,
        Kind.INT64,
        Kind.DECIMAL,
        Kind.NUMERIC,
        Kind.FLOAT32,
        Kind.FLOAT64,
        Kind.TEXT,
        Kind.BOOLEAN,
        Kind.DATE,
        Kind.TIMESTAMP,
        Kind.TIMESTAMPTZ,
    }
)


@dataclass(frozen=True)
class Condition:
    """``op`` with its values: one (eq, noteq, lte, gte), two (between,
    notbetween: start and end, inclusive) or none (null, notnull)."""

    op: FilterOp
    values: tuple[Any, ...] = ()

    def test(self, value: Any) -> bool:
        op = self.op
        if op is FilterOp.NULL:
            return value is None
        if value is None:
            return False
        if op is FilterOp.NOTNULL:
            return True
        if op is FilterOp.EQ:
            return bool(value == self.values[0])
        if op is FilterOp.NOTEQ:
            return bool(value != self.values[0])
        if op is FilterOp.LTE:
            return bool(value <= self.values[0])
        if op is FilterOp.GTE:
            return bool(value >= self.values[0])
        if op is FilterOp.GT:
            return bool(value > self.values[0])
        if op is FilterOp.LT:
            return bool(value < self.values[0])
        inside = bool(self.values[0] <= value <= self.values[1])
        return inside if op is FilterOp.BETWEEN else not inside


@dataclass(frozen=True)
class ColumnFilter:
    """Conditions on one source column, OR'ed."""

    column: str
    kind: Kind
    conditions: tuple[Condition, ...]

    def test(self, value: Any) -> bool:
        value = comparable(value, self.kind)
        return any(c.test(value) for c in self.conditions)

    def passing(self, values: pa.Array | pa.ChunkedArray) -> pa.Array | None:
        """Which ``values`` pass, by Arrow's comparison kernels, for an integer
        or text column, whose order Arrow shares with Python's (text by code
        point); None for another kind (judged value by value, ``test``)."""
        dtype = values.type
        if self.kind not in _IN_ARROW or not (
            pa.types.is_integer(dtype) or pa.types.is_string(dtype) or pa.types.is_large_string(dtype)
        ):
            return None
        passes: pa.Array | None = None
        try:
            for condition in self.conditions:
                meets = pc.fill_null(_meets(condition, values), False)  # NULL fails but for ``null``
                passes = meets if passes is None else pc.or_(passes, meets)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, OverflowError):
            return None  # a value the column's type cannot compare with (an integer out of range)
        return passes


_IN_ARROW = frozenset({Kind.INT16, Kind.INT32, Kind.INT64, Kind.TEXT})


def _meets(condition: Condition, values: pa.Array | pa.ChunkedArray) -> Any:
    op, bounds = condition.op, condition.values
    if op is FilterOp.NULL:
        return values.is_null()
    if op is FilterOp.NOTNULL:
        return values.is_valid()
    if op is FilterOp.BETWEEN:
        return pc.and_(pc.greater_equal(values, bounds[0]), pc.less_equal(values, bounds[1]))
    if op is FilterOp.NOTBETWEEN:
        return pc.or_(pc.less(values, bounds[0]), pc.greater(values, bounds[1]))
    compare = {
        FilterOp.EQ: pc.equal,
        FilterOp.NOTEQ: pc.not_equal,
        FilterOp.LTE: pc.less_equal,
        FilterOp.GTE: pc.greater_equal,
        FilterOp.LT: pc.less,
        FilterOp.GT: pc.greater,
    }[op]
    return compare(values, bounds[0])


@dataclass(frozen=True)
class RowFilter:
    """Column filters, AND'ed; ``origin`` names the rules in messages."""

    columns: tuple[ColumnFilter, ...]
    origin: str = ""

    @property
    def column_names(self) -> frozenset[str]:
        return frozenset(f.column for f in self.columns)

    def matches(self, values: Mapping[str, Any]) -> bool:
        """Whether a row of source values (every filtered column present) passes."""
        return all(f.test(values.get(f.column)) for f in self.columns)

    def mask(self, batch: pa.RecordBatch) -> pa.BooleanArray:
        """Which rows of a batch of source columns pass."""
        keep: Any = pa.array([True] * batch.num_rows, type=pa.bool_())
        for f in self.columns:
            values = batch.column(batch.schema.get_field_index(f.column))
            passes = f.passing(values)
            if passes is None:
                passes = pa.array([f.test(value) for value in values.to_pylist()], type=pa.bool_())
            keep = pc.and_(keep, passes)
        return keep

    def apply(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        return batch.filter(self.mask(batch))

    def also(self, other: RowFilter | None) -> RowFilter:
        """Both filters (AND)."""
        if other is None:
            return self
        return RowFilter(self.columns + other.columns, self.origin or other.origin)


def range_segments(column: str, kind: Kind, boundaries: tuple[Any, ...]) -> tuple[RowFilter, ...]:
    """Filters that split a table by ``column`` into segments ending at each
    boundary (inclusive), one past the last, and one for NULL: every row is in
    exactly one of them."""
    segments: list[RowFilter] = []
    lower: Any = None
    for bound in [*boundaries, None]:
        conditions: list[ColumnFilter] = []
        if lower is not None:
            conditions.append(ColumnFilter(column, kind, (Condition(FilterOp.GT, (lower,)),)))
        if bound is not None:
            conditions.append(ColumnFilter(column, kind, (Condition(FilterOp.LTE, (bound,)),)))
        else:
            conditions.append(ColumnFilter(column, kind, (Condition(FilterOp.NOTNULL),)))
        segments.append(RowFilter(tuple(conditions)))
        lower = bound
    segments.append(RowFilter((ColumnFilter(column, kind, (Condition(FilterOp.NULL),)),)))
    return tuple(segments)


_INFINITE = {"infinity": 1, "-infinity": -1}


class _Infinite:
    """PostgreSQL's +/-infinity dates and timestamps (CDC sends them as text)."""

    def __init__(self, sign: int) -> None:
        self.sign = sign

    def __lt__(self, other: object) -> bool:
        return self.sign < 0

    def __le__(self, other: object) -> bool:
        return self.sign < 0

    def __gt__(self, other: object) -> bool:
        return self.sign > 0

    def __ge__(self, other: object) -> bool:
        return self.sign > 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Infinite) and other.sign == self.sign

    def __hash__(self) -> int:
        return self.sign


def comparable(value: Any, kind: Kind) -> Any:
    """An in-flight value in the form conditions compare against."""
    if value is None:
        return None
    if kind is Kind.NUMERIC and isinstance(value, str):
        try:
            return Decimal(value)
        except InvalidOperation:
            return None
    if kind in (Kind.DATE, Kind.TIMESTAMP, Kind.TIMESTAMPTZ) and isinstance(value, str):
        sign = _INFINITE.get(value)
        return _Infinite(sign) if sign else value
    if kind is Kind.TIMESTAMPTZ and isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    if kind is Kind.DECIMAL and isinstance(value, (int, float)):
        return Decimal(str(value))
    if kind is Kind.FLOAT32 and isinstance(value, float):
        return _single(value)  # as the source stores it, whatever text it was sent as
    return value


def _single(value: float) -> float:
    try:
        return float(struct.unpack("f", struct.pack("f", value))[0])
    except OverflowError:
        return value


_TRUE = frozenset({"true", "t", "1", "yes", "y"})
_FALSE = frozenset({"false", "f", "0", "no", "n"})


def parse_value(text: str, kind: Kind) -> Any:
    """A filter value as written (text) as the column's in-flight value; raises
    ValueError saying what was expected."""
    text = text.strip() if kind is not Kind.TEXT else text
    try:
        if kind in (Kind.INT16, Kind.INT32, Kind.INT64):
            return int(text)
        if kind in (Kind.DECIMAL, Kind.NUMERIC):
            number = Decimal(text)
            if not number.is_finite():
                raise ValueError
            return number
        if kind in (Kind.FLOAT32, Kind.FLOAT64):
            return float(text)
        if kind is Kind.BOOLEAN:
            if text.lower() in _TRUE:
                return True
            if text.lower() in _FALSE:
                return False
            raise ValueError
        if kind is Kind.DATE:
            return date.fromisoformat(text)
        if kind is Kind.TIMESTAMP:
            stamp = datetime.fromisoformat(text)
            if stamp.tzinfo is not None:
                raise ValueError
            return stamp
        if kind is Kind.TIMESTAMPTZ:
            stamp = datetime.fromisoformat(text)
            return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)
    except (ValueError, InvalidOperation):
        raise ValueError(f"{text!r} is not {_EXPECTED[kind]}") from None
    return text


_EXPECTED = {
    Kind.INT16: "an integer",
    Kind.INT32: "an integer",
    Kind.INT64: "an integer",
    Kind.DECIMAL: "a finite decimal number",
    Kind.NUMERIC: "a finite decimal number",
    Kind.FLOAT32: "a number",
    Kind.FLOAT64: "a number",
    Kind.BOOLEAN: "true or false",
    Kind.DATE: "a date (YYYY-MM-DD)",
    Kind.TIMESTAMP: "a timestamp without time zone (YYYY-MM-DD HH:MM:SS[.ffffff])",
    Kind.TIMESTAMPTZ: "a timestamp (YYYY-MM-DD HH:MM:SS[.ffffff][+HH:MM], UTC when no offset)",
}


def render_sql(
    where: RowFilter, column: Callable[[ColumnFilter], str], literal: Callable[[Any, Kind], str]
) -> str:
    """The filter as an SQL condition: ``column`` gives a column's comparable
    expression, ``literal`` a value's quoted literal of the dialect."""
    parts = []
    for f in where.columns:
        col = column(f)
        terms = []
        for c in f.conditions:
            values = [literal(v, f.kind) for v in c.values]
            if c.op is FilterOp.NULL:
                terms.append(f"{col} IS NULL")
            elif c.op is FilterOp.NOTNULL:
                terms.append(f"{col} IS NOT NULL")
            elif c.op in (FilterOp.BETWEEN, FilterOp.NOTBETWEEN):
                negate = "NOT " if c.op is FilterOp.NOTBETWEEN else ""
                terms.append(f"{col} {negate}BETWEEN {values[0]} AND {values[1]}")
            else:
                terms.append(f"{col} {_SQL_OPERATORS[c.op]} {values[0]}")
        parts.append("(" + " OR ".join(terms) + ")")
    return " AND ".join(parts)


_SQL_OPERATORS = {
    FilterOp.EQ: "=",
    FilterOp.NOTEQ: "<>",
    FilterOp.LTE: "<=",
    FilterOp.GTE: ">=",
    FilterOp.LT: "<",
    FilterOp.GT: ">",
}


def literal_text(value: Any) -> str:
    """A typed filter value as text an SQL cast reads (not yet quoted)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)
