"""DMS transformation expressions (``add-column``), evaluated by SQLite.

DMS writes expressions in SQLite syntax and evaluates them with SQLite, so
Conveyor does too: every value the expression sees, every function and every
operator behaves exactly as in SQLite (``NULL || 'x'`` is NULL, ``5 / 2`` is 2,
``upper``, ``substr``, ``CASE``, ``datetime('now')`` ...). A batch is evaluated
in one statement: the referenced source columns go into an in-memory temporary
table (one ``executemany``) and a single ``SELECT`` computes every added column
of the table (20-40 ms for 10,000 rows and three expressions; DuckDB would be
faster, 3-10 ms, but is not SQLite: ``7/2`` is 3.5, ``hex(NULL)`` NULL, ``1 = '1'`` true,
``date(x, '+1 day')`` does not exist).

References:

* ``$name`` is the value of source column ``name`` (letters, digits, ``_``);
  ``$"any name"`` (a Conveyor extension, ``""`` for a quote) names any other
  column. References always mean the *source* columns as the source table has
  them, whatever other rules rename or remove (as in DMS); they become column
  references of the temporary table (``"c0"``, ``"c1"`` ...), never text
  spliced into the statement.
* ``$AR_M_SOURCE_SCHEMA`` and ``$AR_M_SOURCE_TABLE_NAME``: the source table's
  schema and name. ``$AR_H_OPERATION``: ``'INSERT'`` during the full load (as
  DMS does), ``'INSERT'`` / ``'UPDATE'`` / ``'DELETE'`` during CDC.
  ``$AR_H_TIMESTAMP``: during the full load the time the batch is loaded, during
  CDC the time given for the change (when the change is applied otherwise), as
  UTC text ``YYYY-MM-DD HH:MM:SS.ffffff``. Other ``$AR_H_*`` / ``$AR_M_*``
  variables are refused by name. These names win over a source column of the
  same name.

Values reach SQLite as DMS hands them over: integers and booleans as INTEGER
(1/0), floats as REAL (NaN as NULL), decimals as NUMERIC (INTEGER or REAL),
text as TEXT, bytes as BLOB, dates, times and timestamps as ISO text
(``2024-01-31``, ``10:11:12.000000``, ``2024-01-31 10:11:12.000000``, UTC for
timestamptz). Interval and array columns cannot be referenced.

The result is converted to the rule's ``data-type``: to text and bytes with
SQLite's own ``CAST``; to numbers from INTEGER/REAL (a REAL going to an integer
type is truncated toward zero, as SQLite's CAST does) or from TEXT that is a
well-formed number; to boolean from a number (non-zero is true) or from
``true``/``false``/``t``/``f``/``yes``/``no``/``y``/``n``/``1``/``0``; to date, time
and datetime from ISO text. Anything else, or a value out of the type's range,
is a :class:`DataError` naming the rule, the column and the row.
"""

from __future__ import annotations

import sqlite3
import threading
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa

from conveyor.core.errors import ConfigError, DataError
from conveyor.core.schema import TableSchema
from conveyor.core.types import MAX_DECIMAL_PRECISION, ColumnType, Kind, decimal, simple, varchar
from conveyor.replication.expression_values import (
    AFFINITY,
    NOT_REFERABLE,
    Unconvertible,
    converter,
    sqlite_value,
    sqlite_values,
    timestamp_text,
)

HEADER_VARIABLES = ("AR_M_SOURCE_SCHEMA", "AR_M_SOURCE_TABLE_NAME", "AR_H_OPERATION", "AR_H_TIMESTAMP")
FULL_LOAD_OPERATION = "INSERT"


class ExpressionError(ValueError):
    """An expression or data-type that cannot be used (the caller adds the rule)."""


@dataclass(frozen=True)
class Ref:
    """``$name`` in an expression: a source column, or a header variable."""

    name: str
    header: bool = False


@dataclass(frozen=True)
class Expression:
    text: str
    parts: tuple[str | Ref, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        """Referenced source columns, in order of first use."""
        seen: dict[str, None] = {}
        for part in self.parts:
            if isinstance(part, Ref) and not part.header:
                seen.setdefault(part.name)
        return tuple(seen)

    def render(self, columns: Mapping[str, str]) -> str:
        """The SQL text: columns become ``columns[name]`` (an identifier or
        literal the caller chose), headers named parameters."""
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
            elif part.header:
                out.append(f":{part.name.lower()}")
            else:
                out.append(columns[part.name])
        return "".join(out)


def _quoted_end(text: str, start: int, close: str) -> int:
    """Index just past the literal or quoted identifier opened at ``start``."""
    i = start + 1
    while True:
        j = text.find(close, i)
        if j < 0:
            raise ExpressionError(f"unterminated {text[start]} at offset {start}")
        if close != "]" and text.startswith(close * 2, j):
            i = j + 2
            continue
        return j + 1


def _ident_char(ch: str) -> bool:
    return ch.isalnum() or ch in "_$"


def parse_expression(text: str) -> Expression:
    """Split ``$`` references out of an SQLite expression and check that SQLite
    can compile it (syntax, function names, argument counts)."""
    parts: list[str | Ref] = []
    chunk: list[str] = []
    depth = 0
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in "'\"`[":
            end = _quoted_end(text, i, "]" if ch == "[" else ch)
            chunk.append(text[i:end])
            i = end
            continue
        if text.startswith("--", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
            chunk.append(" ")
            continue
        if text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                raise ExpressionError(f"unterminated comment at offset {i}")
            i = end + 2
            chunk.append(" ")
            continue
        if ch == "$" and not (i > 0 and _ident_char(text[i - 1])):
            if text.startswith('$"', i):
                end = _quoted_end(text, i + 1, '"')
                name = text[i + 2 : end - 1].replace('""', '"')
            else:
                end = i + 1
                while end < n and (text[end].isalnum() or text[end] == "_"):
                    end += 1
                name = text[i + 1 : end]
            if not name:
                raise ExpressionError(f"'$' at offset {i} names no column")
            ref = Ref(name)
            if name.startswith(("AR_H_", "AR_M_")):
                if name not in HEADER_VARIABLES:
                    raise ExpressionError(
                        f"header variable ${name} is not supported (supported: "
                        + ", ".join(f"${h}" for h in HEADER_VARIABLES)
                        + ")"
                    )
                ref = Ref(name, header=True)
            parts.extend(["".join(chunk), ref])
            chunk = []
            i = end
            continue
        if ch == "?" or (ch in ":@" and i + 1 < n and _ident_char(text[i + 1])):
            raise ExpressionError(f"SQL parameters ({ch}) are not allowed; use $column")
        if ch == ";":
            raise ExpressionError("';' is not allowed: an expression is not a statement")
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise ExpressionError(f"unbalanced ')' at offset {i}")
        chunk.append(ch)
        i += 1
    if depth:
        raise ExpressionError("unbalanced '('")
    parts.append("".join(chunk))
    expression = Expression(text, tuple(p for p in parts if p != ""))
    if not "".join(p for p in expression.parts if isinstance(p, str)).strip() and not any(
        isinstance(p, Ref) for p in expression.parts
    ):
        raise ExpressionError("the expression is empty")
    sql = f"SELECT {expression.render(dict.fromkeys(expression.columns, '(NULL)'))}\n"
    conn = sqlite3.connect(":memory:")
    try:
        _compile(conn, sql)
    finally:
        conn.close()
    return expression


def _compile(conn: sqlite3.Connection, sql: str) -> None:
    try:
        conn.execute(f"EXPLAIN {sql}", dict.fromkeys((h.lower() for h in HEADER_VARIABLES), None))
    except (sqlite3.Error, sqlite3.Warning) as exc:
        raise ExpressionError(f"SQLite cannot compile the expression: {exc}") from None


# DMS data-type names (change-data-type / add-column) and Conveyor's kinds.
_SIMPLE_TYPES: dict[str, ColumnType] = {
    "int1": simple(Kind.INT16),
    "int2": simple(Kind.INT16),
    "int4": simple(Kind.INT32),
    "int8": simple(Kind.INT64),
    "uint1": simple(Kind.INT16),
    "uint2": simple(Kind.INT32),
    "uint4": simple(Kind.INT64),
    "uint8": decimal(20, 0),
    "real4": simple(Kind.FLOAT32),
    "real8": simple(Kind.FLOAT64),
    "boolean": simple(Kind.BOOLEAN),
    "date": simple(Kind.DATE),
    "time": simple(Kind.TIME),
    "datetime": simple(Kind.TIMESTAMP),
    "bytes": simple(Kind.BYTES),
    "blob": simple(Kind.BYTES),
    "clob": simple(Kind.TEXT),
    "nclob": simple(Kind.TEXT),
}
_DATA_TYPE_KEYS = frozenset({"type", "length", "precision", "scale"})


def _positive(raw: Mapping[str, Any], key: str, minimum: int) -> int | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ExpressionError(f"data-type '{key}' must be an integer >= {minimum}, not {value!r}")
    return value


def parse_data_type(raw: object) -> ColumnType:
    """The column type of a DMS ``data-type`` object."""
    if not isinstance(raw, Mapping):
        raise ExpressionError(f"'data-type' must be an object, not {type(raw).__name__}")
    unknown = sorted(set(raw) - _DATA_TYPE_KEYS)
    if unknown:
        raise ExpressionError(f"data-type has unknown keys: {', '.join(unknown)}")
    name = raw.get("type")
    if not isinstance(name, str) or not name:
        raise ExpressionError("data-type needs 'type' (a string such as 'string', 'int8', 'numeric')")
    length = _positive(raw, "length", 1)
    precision = _positive(raw, "precision", 1)
    scale = _positive(raw, "scale", 0)
    key = name.lower()
    if key in ("string", "wstring"):
        return varchar(length)
    if key == "numeric":
        if precision is None or precision > MAX_DECIMAL_PRECISION:
            return simple(Kind.NUMERIC)
        if (scale or 0) > precision:
            raise ExpressionError(f"data-type scale {scale} is larger than precision {precision}")
        return decimal(precision, scale or 0)
    if key in _SIMPLE_TYPES:
        return _SIMPLE_TYPES[key]
    raise ExpressionError(
        f"data-type '{name}' is not supported (use string, wstring, int1, int2, int4, int8, uint1, "
        "uint2, uint4, uint8, numeric, real4, real8, boolean, date, time, datetime, bytes, blob, "
        "clob or nclob)"
    )


@dataclass(frozen=True)
class AddedColumn:
    """A column an ``add-column`` rule adds; ``rule`` names the rule in messages."""

    name: str
    type: ColumnType
    expression: Expression
    rule: str


class Evaluator:
    """The added columns of one source table, compiled against its columns.

    Raises :class:`ConfigError` (``origin`` and the rule) when an expression
    names a column the table lacks, one that cannot be referenced, or does not
    compile against the table. Safe to use from several threads (one SQLite
    connection per thread)."""

    def __init__(self, source: TableSchema, added: Sequence[AddedColumn], origin: str) -> None:
        self.source = source
        self.added = tuple(added)
        by_name = {c.name: c for c in source.columns}
        used: dict[str, None] = {}
        for col in self.added:
            for name in col.expression.columns:
                if name not in by_name:
                    near = [c for c in by_name if c.lower() == name.lower()]
                    hint = f" (did you mean ${near[0]}?)" if near else ""
                    raise ConfigError(
                        f"{origin}: {col.rule}: the expression of column {col.name!r} names "
                        f"${name}, which table {source.ref} does not have{hint}"
                    )
                if by_name[name].type.kind in NOT_REFERABLE:
                    raise ConfigError(
                        f"{origin}: {col.rule}: the expression of column {col.name!r} names "
                        f"${name}, a {by_name[name].type.describe()} column expressions cannot use"
                    )
                used.setdefault(name)
        self.inputs = tuple(by_name[name] for name in used)
        idents = {c.name: f'"c{i}"' for i, c in enumerate(self.inputs)}
        self._create = "CREATE TEMP TABLE b (r INTEGER PRIMARY KEY{})".format(
            "".join(f', "c{i}" {AFFINITY.get(c.type.kind, "TEXT")}' for i, c in enumerate(self.inputs))
        )
        self._insert = f"INSERT INTO b VALUES ({', '.join('?' * (len(self.inputs) + 1))})"
        selects = []
        for col in self.added:
            sql = f"(\n{col.expression.render(idents)}\n)"
            if col.type.kind is Kind.TEXT:
                sql = f"CAST({sql} AS TEXT)"
            elif col.type.kind is Kind.BYTES:
                sql = f"CAST({sql} AS BLOB)"
            selects.append(sql)
        self._select = f"SELECT {', '.join(selects)} FROM b ORDER BY r"
        self._converters = [converter(c.type) for c in self.added]
        self._needs = [c.expression.columns for c in self.added]
        self._local = threading.local()
        conn = self._connection()
        for col in self.added:  # one at a time, so the message names the rule
            try:
                _compile(conn, f"SELECT (\n{col.expression.render(idents)}\n) FROM b")
            except ExpressionError as exc:
                raise ConfigError(f"{origin}: {col.rule}: column {col.name!r}: {exc}") from None

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            # Used by this thread only; closed when the evaluator goes (from any thread).
            conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            weakref.finalize(self, conn.close)
            conn.execute(self._create)
            self._local.conn = conn
        return conn

    def evaluate(
        self, batch: pa.RecordBatch, operation: str = FULL_LOAD_OPERATION, timestamp: datetime | None = None
    ) -> list[pa.Array]:
        """The added columns' values for a batch of source rows, in ``added`` order."""
        columns: list[list[Any]] = []
        for col in self.inputs:
            index = batch.schema.get_field_index(col.name)
            if index < 0:
                raise ValueError(f"batch for {self.source.ref} has no column {col.name!r}")
            columns.append(sqlite_values(batch.column(index), col.type.kind))
        return self._run(batch.num_rows, columns, operation, timestamp)

    def evaluate_rows(
        self,
        rows: Sequence[Mapping[str, Any]],
        operation: str = FULL_LOAD_OPERATION,
        timestamp: datetime | None = None,
    ) -> list[dict[str, Any]]:
        """The added columns for rows of source values (CDC's Python values), by
        target name. A column whose expression reads a source column a row lacks
        (an unchanged value the source did not send) is left out of that row."""
        if not rows or not self.added:
            return [{} for _ in rows]
        inputs = {col.name: [row.get(col.name) for row in rows] for col in self.inputs}
        arrays = self.evaluate_values(inputs, len(rows), operation, timestamp)
        values_by_col = [a.to_pylist() for a in arrays]
        result: list[dict[str, Any]] = []
        for i, row in enumerate(rows):
            out: dict[str, Any] = {}
            for added, needs, values in zip(self.added, self._needs, values_by_col, strict=True):
                if all(name in row for name in needs):
                    out[added.name] = values[i]
            result.append(out)
        return result

    def evaluate_values(
        self,
        inputs: Mapping[str, Sequence[Any]],
        num_rows: int,
        operation: str = FULL_LOAD_OPERATION,
        timestamp: datetime | None = None,
    ) -> list[pa.Array]:
        """The added columns' values, in ``added`` order, for ``num_rows`` rows
        of in-flight source values given per input column (CDC's values; a
        value not sent is None here)."""
        columns: list[list[Any]] = []
        for col in self.inputs:
            kind = col.type.kind
            try:
                columns.append([sqlite_value(value, kind) for value in inputs[col.name]])
            except Unconvertible as exc:
                raise DataError(
                    f"table {self.source.ref}: column {col.name!r} holds {exc.args[0]!r}, "
                    f"which an expression cannot use as a {col.type.describe()}",
                    column=col.name,
                ) from None
        return self._run(num_rows, columns, operation, timestamp)

    @property
    def needs(self) -> tuple[tuple[str, ...], ...]:
        """The source columns each added column's expression reads, in ``added`` order."""
        return tuple(self._needs)

    def _run(
        self, num_rows: int, columns: list[list[Any]], operation: str, timestamp: datetime | None
    ) -> list[pa.Array]:
        params = {
            "ar_m_source_schema": self.source.ref.schema,
            "ar_m_source_table_name": self.source.ref.name,
            "ar_h_operation": operation,
            "ar_h_timestamp": timestamp_text(timestamp),
        }
        conn = self._connection()
        conn.execute("BEGIN")
        try:  # the rows live only in this transaction: the ROLLBACK empties the table
            conn.executemany(self._insert, zip(range(num_rows), *columns, strict=True))
            try:
                results = conn.execute(self._select, params).fetchall()
            except (sqlite3.Error, sqlite3.Warning) as exc:
                names = ", ".join(repr(c.name) for c in self.added)
                raise DataError(
                    f"table {self.source.ref}: evaluating added column(s) {names} failed in SQLite: {exc}"
                ) from None
        finally:
            conn.execute("ROLLBACK")
        return [self._column(index, [row[index] for row in results]) for index in range(len(self.added))]

    def _column(self, index: int, values: list[Any]) -> pa.Array:
        col = self.added[index]
        convert = self._converters[index]
        if convert is not None:
            converted: list[Any] = []
            for row, value in enumerate(values):
                if value is None:
                    converted.append(None)
                    continue
                try:
                    converted.append(convert(value))
                except Unconvertible:
                    raise self._error(col, row, value) from None
            values = converted
        try:
            return pa.array(values, type=col.type.arrow())
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            pass
        for row, value in enumerate(values):  # find the row that does not fit
            try:
                pa.array([value], type=col.type.arrow())
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
                raise self._error(col, row, value) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _error(self, col: AddedColumn, row: int, value: object) -> DataError:
        return DataError(
            f"table {self.source.ref}: {col.rule}: added column {col.name!r}: row {row}: "
            f"the expression's value {value!r} is not a {col.type.describe()}",
            row=row,
            column=col.name,
        )
