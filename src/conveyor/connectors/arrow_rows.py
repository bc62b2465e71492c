"""Row dictionaries (change events' values) as Arrow record batches, and the
reduced rows of a table as its ``ChangeBatch``."""

from __future__ import annotations

import contextlib
import itertools
from array import array
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa

from conveyor.core import types as t
from conveyor.core.batch import (
    CONTROL,
    OP,
    UNCHANGED,
    ChangeBatch,
    KeyChecks,
    KeyHistory,
    Logged,
    LoggedChange,
    LoggedRows,
    RejectedValue,
)
from conveyor.core.errors import DataError
from conveyor.core.schema import TableSchema
from conveyor.core.types import ColumnType, Kind

_INFINITE = {"infinity": 1, "-infinity": -1}
# Kinds whose captured values can be infinite (strings) or ``Unrepresentable``.
_CHECKED = frozenset({Kind.DATE, Kind.TIMESTAMP, Kind.TIMESTAMPTZ, Kind.TIME, Kind.INTERVAL, Kind.DECIMAL})


def carries_unrepresentable(ctype: ColumnType) -> bool:
    """Whether a captured value of this type may be ``Unrepresentable``
    (``rows_to_batch`` refuses it by column)."""
    return ctype.kind in _CHECKED


@dataclass(frozen=True, slots=True)
class Unrepresentable:
    """A captured value no in-flight Arrow value holds exactly (a timestamp
    past int64 microseconds, an array with bounds or dimensions a list cannot
    keep). It travels to the applier, which refuses it: ``rows_to_batch``
    raises a DataError naming the column, so the table is suspended with the
    reason instead of receiving a changed value."""

    text: str
    reason: str


def rows_to_batch(
    table: TableSchema, rows: Sequence[dict[str, Any]], columns: Sequence[str]
) -> pa.RecordBatch:
    """``columns`` of ``rows`` as a batch with the table's Arrow types. Infinite
    dates and timestamps arrive as the strings ``"infinity"``/``"-infinity"``
    (in arrays too); dates, timestamps and times out of Python's range as
    their raw Arrow integers (days or microseconds since 1970)."""
    try:
        return _batch(table, rows, columns)
    except UnrepresentableFound as exc:
        raise DataError(
            f"table {table.ref} column {exc.column!r}: value {exc.value.text!r}: {exc.value.reason}",
            column=exc.column,
        ) from None


def change_batch(
    table: TableSchema,
    upserts: Sequence[dict[str, Any]] = (),
    deletes: Sequence[dict[str, Any]] = (),
    partial: Mapping[frozenset[str], Sequence[dict[str, Any]]] | None = None,
    *,
    truncate: bool = False,
    encoded: Sequence[bytes] = (),
    rejected: Sequence[RejectedValue] = (),
    log: Sequence[Logged] = (),
    key_is_group: bool = False,
    checks: tuple[Sequence[tuple[Any, ...]], Sequence[KeyHistory]] | None = None,
) -> ChangeBatch:
    """A table's reduced rows as its ``ChangeBatch``: one Arrow array per
    column (the one conversion of a change batch's values). Rows holding a
    value no Arrow value carries (``Unrepresentable``) are left out into
    ``unrepresentable``. ``checks``: the keys to judge against the target
    (``KeyChecks``), as primary key tuples and their histories."""
    held: list[RejectedValue] = []
    key_checks = (
        KeyChecks(keys_to_batch(table, checks[0]), tuple(checks[1]))
        if checks is not None and checks[0]
        else None
    )
    return ChangeBatch(
        table,
        _held_out(table, upserts, table.column_names, held),
        _held_out(table, deletes, table.primary_key, held),
        {
            unchanged: _held_out(table, rows, [c for c in table.column_names if c not in unchanged], held)
            for unchanged, rows in (partial or {}).items()
        },
        truncate=truncate,
        encoded=encoded,
        unrepresentable=held,
        rejected=rejected,
        log=log,
        key_is_group=key_is_group,
        checks=key_checks,
    )


def printable(value: object) -> str | None:
    """A value as the apply-exceptions table shows it (bytes in hex, NUL escaped)."""
    if value is None:
        return None
    text = value.hex() if isinstance(value, bytes) else str(value)
    return text.replace("\x00", "\\x00")


def _held_out(
    table: TableSchema, rows: Sequence[dict[str, Any]], columns: Sequence[str], held: list[RejectedValue]
) -> pa.RecordBatch:
    """``rows`` as a batch, those with an ``Unrepresentable`` value appended to ``held``."""
    try:
        return _batch(table, rows, columns)
    except UnrepresentableFound:
        pass  # rare: find every such row, then convert the others
    kept = []
    for row in rows:
        rejected = _unrepresentable_of(table, row, columns)
        if rejected is None:
            kept.append(row)
        else:
            held.append(rejected)
    return _batch(table, kept, columns)


def _unrepresentable_of(
    table: TableSchema, row: Mapping[str, Any], columns: Sequence[str]
) -> RejectedValue | None:
    """The row's first value no Arrow value carries, as a rejected value."""
    found = next(((c, u) for c in columns if (u := first_unrepresentable(row.get(c))) is not None), None)
    if found is None:
        return None
    column, value = found
    key = {k: printable(row.get(k)) for k in table.primary_key}
    return RejectedValue(table.ref, key, column, value.text, f"value {value.text!r}: {value.reason}")


def first_unrepresentable(value: Any) -> Unrepresentable | None:
    """``value`` itself, or the first item of an array (nested too), when it is one."""
    if type(value) is Unrepresentable:
        return value
    if isinstance(value, list):
        for item in value:
            if (found := first_unrepresentable(item)) is not None:
                return found
    return None


def without_unrepresentable(
    table: TableSchema, log: Sequence[Logged]
) -> tuple[list[Logged], list[RejectedValue]]:
    """``log`` without the changes holding a value no Arrow value carries, and
    those changes as rejected values (one each: a change log publishes every
    change, so each one left out is accounted for, not only final rows).
    Captured rows (``LoggedRows``) are Arrow values already."""
    kept: list[Logged] = []
    left_out: list[RejectedValue] = []
    for change in log:
        if isinstance(change, LoggedRows):
            kept.append(change)
            continue
        row = change.after if change.after is not None else change.before
        rejected = None if row is None else _unrepresentable_of(table, row, list(row))
        if rejected is None:
            kept.append(change)
        else:
            left_out.append(rejected)
    return kept, left_out


def captured_changes(
    batch: pa.RecordBatch, names: Sequence[str] | None = None
) -> Iterator[tuple[bytes | None, dict[str, Any], frozenset[str]]]:
    """A captured batch's changes of rows (not encoded lines) one by one: the
    ``OP`` letter (None for a change a log leaves out: ``LoggedRows``), the
    row in the in-flight form (``names``' columns, or every one) without the
    columns it left unsent, and those columns (a partial UPDATE's, named in
    ``UNCHANGED``; empty for a whole row)."""
    schema = batch.schema
    if names is None:
        names = [n for n in schema.names if n not in CONTROL]
    ops = batch.column(OP).to_pylist()
    unsent = batch.column(UNCHANGED).to_pylist() if UNCHANGED in schema.names else [None] * len(ops)
    for op, row, gone in zip(ops, batch_rows(batch.select(names)), unsent, strict=True):
        if gone:
            unchanged = frozenset(gone)
            yield op, {c: v for c, v in row.items() if c not in unchanged}, unchanged
        else:
            yield op, row, _WHOLE


_WHOLE: frozenset[str] = frozenset()


def logged_changes(log: Sequence[Logged]) -> Iterator[LoggedChange]:
    """A change log's changes one by one, captured ones (``LoggedRows``)
    made Python values: a DELETE's old row, an INSERT's or UPDATE's new row
    (a partial UPDATE's without what it did not send); a row the log leaves
    out (its ``OP`` null) is skipped."""
    for entry in log:
        if not isinstance(entry, LoggedRows):
            yield entry
            continue
        for i, (op, row, _) in enumerate(captured_changes(entry.rows)):
            if op is None:
                continue
            letter = op.decode()
            before, after = (row, None) if letter == "d" else (None, row)
            yield LoggedChange(letter, before, after, entry.position, entry.index + i, entry.commit_time)


def struct_rows(column: pa.StructArray) -> list[dict[str, Any] | None]:
    """A struct column's rows in the in-flight form (``column_values``),
    None where the struct is null."""
    names = [column.type.field(i).name for i in range(column.type.num_fields)]
    rows = batch_rows(pa.RecordBatch.from_arrays(column.flatten(), names=names))
    valid = column.is_valid().to_pylist()
    return [row if ok else None for row, ok in zip(rows, valid, strict=True)]


def column_values(column: pa.Array) -> list[Any]:
    """An Arrow column's values in the in-flight form streams deliver
    (``changes.RowChange``): as ``to_pylist`` gives them, except what no
    Python value holds: infinite dates and timestamps (core.types'
    sentinels) come back as the strings "infinity" and "-infinity", a date
    or timestamp past year 9999 and a time of 24:00:00 as their raw Arrow
    integers; in lists too."""
    dtype = column.type
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
        if not _temporal(dtype.value_type):
            return list(column.to_pylist())
        import pyarrow.compute as pc  # here: a full load's start never needs it

        flat = iter(column_values(column.flatten()))
        lengths = pc.list_value_length(column).to_pylist()
        return [None if n is None else [next(flat) for _ in range(n)] for n in lengths]
    if pa.types.is_time(dtype):
        raw = column.view(pa.int64() if pa.types.is_time64(dtype) else pa.int32())
        day = 86_400 * _PER_SECOND[dtype.unit]
        # Arrow gives 24:00:00 (PostgreSQL's) as 00:00:00: the raw integer keeps it.
        return [
            r if r is not None and r >= day else v
            for v, r in zip(_in_range(column, raw), raw.to_pylist(), strict=True)
        ]
    is_date = pa.types.is_date32(dtype)
    if not (is_date or pa.types.is_timestamp(dtype)):
        return list(column.to_pylist())
    import pyarrow.compute as pc  # here: a full load's start never needs it

    infinity = t.DATE_INFINITY if is_date else t.INT64_INFINITY
    raw = column.view(pa.int32() if is_date else pa.int64())
    infinite = pc.or_(pc.equal(raw, infinity), pc.equal(raw, -infinity))
    if not pc.any(infinite).as_py():
        return _in_range(column, raw)
    finite = _in_range(pc.if_else(infinite, pa.scalar(None, dtype), column), raw)
    return [
        ("infinity" if r > 0 else "-infinity") if inf else v
        for v, r, inf in zip(finite, raw.to_pylist(), infinite.to_pylist(), strict=True)
    ]


_PER_SECOND = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
_EPOCH_UTC = datetime(1970, 1, 1, tzinfo=UTC)


def _temporal(dtype: pa.DataType) -> bool:
    """Whether values of ``dtype`` (or of its lists) are dates, times or timestamps."""
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
        return _temporal(dtype.value_type)
    return bool(pa.types.is_date32(dtype) or pa.types.is_time(dtype) or pa.types.is_timestamp(dtype))


def _in_range(column: pa.Array, raw: pa.Array) -> list[Any]:
    """A date, time or timestamp column's Python values; a value out of
    Python's range as its raw Arrow integer (the form streams deliver it in)."""
    dtype = column.type
    if pa.types.is_timestamp(dtype) and dtype.unit == "us" and dtype.tz == "UTC":
        # As streams give them (UTC-aware), and ten times faster than Arrow's
        # own conversion, which looks the time zone up for every value.
        with contextlib.suppress(OverflowError):
            return [None if r is None else _EPOCH_UTC + timedelta(microseconds=r) for r in raw.to_pylist()]
    try:
        return list(column.to_pylist())
    except (OverflowError, ValueError):
        values = []
        for value, integer in zip(column, raw.to_pylist(), strict=True):
            try:
                values.append(value.as_py())
            except (OverflowError, ValueError):
                values.append(integer)
        return values


def batch_rows(batch: pa.RecordBatch) -> list[dict[str, Any]]:
    """A batch's rows in the in-flight form (``column_values``)."""
    names = batch.schema.names
    columns = [column_values(batch.column(i)) for i in range(batch.num_columns)]
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)] if names else []


def keys_to_batch(table: TableSchema, keys: Sequence[tuple[Any, ...]]) -> pa.RecordBatch:
    """Primary key tuples (in ``table.primary_key`` order) as a batch of the key
    columns, typed as ``rows_to_batch`` types them."""
    arrays, fields = [], []
    for i, name in enumerate(table.primary_key):
        column = table.column(name)
        try:
            arrays.append(_key_array(column.type, [key[i] for key in keys]))
        except UnrepresentableFound as exc:
            raise DataError(
                f"table {table.ref} column {name!r}: value {exc.value.text!r}: {exc.value.reason}",
                column=name,
            ) from None
        fields.append(pa.field(name, column.type.arrow()))
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))


def _key_array(ctype: ColumnType, values: list[Any]) -> pa.Array:
    """A key column; integers alone (no NULL, no bool) from a buffer, not by
    ``pa.array``, whose first call imports pandas (~50 MB, up to a second),
    which a PostgreSQL to PostgreSQL capture never otherwise needs. About as
    fast as ``pa.array`` once pandas is imported."""
    code = _INT_CODES.get(ctype.kind)
    dtype = ctype.arrow()
    if code is not None and dtype.bit_width == 8 * array(code).itemsize and set(map(type, values)) == {int}:
        try:
            return pa.Array.from_buffers(dtype, len(values), [None, pa.py_buffer(array(code, values))])
        except OverflowError:
            pass  # pa.array says what does not fit
    return _array(ctype, values)


def _batch(table: TableSchema, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> pa.RecordBatch:
    if not rows:
        return empty_batch(table, columns)
    arrays = []
    fields = []
    for name in columns:
        column = table.column(name)
        values = [row.get(name) for row in rows]
        try:
            arrays.append(_array(column.type, values))
        except UnrepresentableFound as exc:
            exc.column = name
            raise
        fields.append(pa.field(name, column.type.arrow()))
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))


def empty_batch(table: TableSchema, columns: Sequence[str]) -> pa.RecordBatch:
    """No rows, without ``pa.array``: its first call imports pandas (pyarrow's
    array-like check), ~50 MB and up to a second, which a batch of encoded rows
    (PostgreSQL to PostgreSQL: every part but ``encoded`` empty) never needs."""
    fields = [pa.field(name, table.column(name).type.arrow()) for name in columns]
    return pa.RecordBatch.from_arrays([pa.nulls(0, f.type) for f in fields], schema=pa.schema(fields))


class UnrepresentableFound(Exception):
    """An ``Unrepresentable`` value among values to convert to Arrow."""

    def __init__(self, value: Unrepresentable) -> None:
        super().__init__(value.reason)
        self.value = value
        self.column = ""


def column_array(ctype: ColumnType, values: list[Any]) -> pa.Array:
    """Captured values of one column as Arrow; UnrepresentableFound when one is
    an ``Unrepresentable``."""
    return _array(ctype, values)


_INT_CODES = {Kind.INT16: "h", Kind.INT32: "i", Kind.INT64: "q"}


def large_binary_array(rows: Sequence[bytes]) -> pa.Array:
    """Byte strings as an Arrow large binary array (64-bit offsets: a batch's
    rows may hold more than 2 GiB together), built from their buffers (no
    ``pa.array``, whose first call imports pandas)."""
    offsets = array("q", [0])
    offsets.extend(itertools.accumulate(map(len, rows)))
    data = b"".join(rows)
    return pa.Array.from_buffers(
        pa.large_binary(), len(rows), [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    )


def _array(ctype: ColumnType, values: list[Any]) -> pa.Array:
    kind = ctype.kind
    dtype = ctype.arrow()
    if kind is Kind.ARRAY:
        assert ctype.element is not None
        return _list(ctype.element, values, dtype)
    if kind in _CHECKED:
        for v in values:
            if type(v) is Unrepresentable:
                raise UnrepresentableFound(v)
        if kind is not Kind.TIME and any(isinstance(v, str) for v in values):
            return _with_infinity(kind, values, dtype)
    try:
        return pa.array(values, type=dtype)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        for v in values:  # a kind not checked above may carry one too (SQLite's dynamic typing)
            if type(v) is Unrepresentable:
                raise UnrepresentableFound(v) from None
        raise


def _list(element: ColumnType, values: list[Any], dtype: pa.DataType) -> pa.Array:
    if element.kind not in _CHECKED and element.kind is not Kind.ARRAY:
        for v in values:
            if type(v) is Unrepresentable:
                raise UnrepresentableFound(v)
        return pa.array(values, type=dtype)
    offsets = [0]
    flat: list[Any] = []
    for v in values:
        if type(v) is Unrepresentable:
            raise UnrepresentableFound(v)
        if v is not None:
            flat.extend(v)
        offsets.append(len(flat))
    mask = pa.array([v is None for v in values], pa.bool_())
    return pa.ListArray.from_arrays(
        pa.array(offsets, pa.int32()), _array(element, flat), type=dtype, mask=mask
    )


def _with_infinity(kind: Kind, values: list[Any], dtype: pa.DataType) -> pa.Array:
    """Finite values through Arrow, infinite ones as core.types' sentinels."""
    raw = pa.int32() if kind is Kind.DATE else pa.int64()
    infinity = t.DATE_INFINITY if kind is Kind.DATE else t.INT64_INFINITY
    finite = pa.array([None if isinstance(v, str) else v for v in values], type=dtype).view(raw).to_pylist()
    merged = [
        infinity * _INFINITE[v] if isinstance(v, str) else f for v, f in zip(values, finite, strict=True)
    ]
    return pa.array(merged, type=raw).view(dtype)
