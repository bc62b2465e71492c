"""Finding the rows of an Arrow batch DuckDB would refuse, before writing them.

DuckDB has no savepoints: one refused value aborts the whole INSERT and the
table's transaction with it, and its message does not say which row. So each
batch is screened first, vectorised (pyarrow.compute, or DuckDB's own casts in
a private in-memory database), and the rows that cannot load are set aside:
NULL in a NOT NULL or key column, an enum label the type lacks, a decimal
wider than its column, text DuckDB cannot cast to JSON or UUID, a primary key
repeated within the batch. Most batches pass every check at the cost of a few
metadata reads (null counts) and one hash of the key.

``Probe`` is the slower backstop for refusals no check foresees: it inserts a
batch into an empty copy of the target table in that private database and,
when DuckDB refuses it, bisects the batch down to the refused rows (DuckDB's
own message as the reason).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from conveyor.connectors.base import RefusedRow
from conveyor.connectors.duckdb.names import fold_identifier
from conveyor.core.schema import TableRef, TableSchema
from conveyor.core.types import ColumnType, Kind

# DuckDB errors that refuse values, not the statement (as opposed to I/O, memory).
REFUSALS: tuple[type[duckdb.Error], ...] = (
    duckdb.DataError,
    duckdb.IntegrityError,
    duckdb.InvalidInputException,
)
_CHECKER_CONFIG: dict[str, str | int | float | list[str]] = {"threads": 1, "memory_limit": "64MB"}
_SOURCE_COLUMN = re.compile(r'source column "?([^"\s]+)"?')
_NOT_NULL = re.compile(r"NOT NULL constraint failed: [^.]+\.(.+)$")
_MAX_LABELS_SHOWN = 8
_VALIDATED_BY_SOURCE = {"postgres": frozenset({"json", "jsonb", "uuid"})}


def _leaves(array: pa.Array) -> tuple[pa.Array, pa.Array | None]:
    """The scalar values of a (nested) list array and, for each, the index of
    the row it belongs to (None when ``array`` is not a list)."""
    rows: pa.Array | None = None
    while pa.types.is_list(array.type) or pa.types.is_large_list(array.type):
        parents = pc.list_parent_indices(array)
        rows = parents if rows is None else rows.take(parents)
        array = pc.list_flatten(array)
    return array, rows


def _rows(mask: pa.Array, rows: pa.Array | None) -> list[int]:
    """Indices of the batch rows whose values (or leaves) ``mask`` marks."""
    hits = pc.indices_nonzero(pc.fill_null(mask, False))
    if rows is not None:
        hits = rows.take(hits)
    return sorted(set(hits.to_pylist()))


def _scalar(ctype: ColumnType) -> ColumnType:
    while ctype.kind is Kind.ARRAY:
        assert ctype.element is not None
        ctype = ctype.element
    return ctype


def _labels_text(labels: tuple[str, ...]) -> str:
    shown = ", ".join(repr(label) for label in labels[:_MAX_LABELS_SHOWN])
    return shown + (f", ... ({len(labels)} labels)" if len(labels) > _MAX_LABELS_SHOWN else "")


def _duckdb_column(message: str) -> str | None:
    for pattern in (_SOURCE_COLUMN, _NOT_NULL):
        if match := pattern.search(message):
            return match.group(1)
    return None


@dataclass(frozen=True)
class _Check:
    """One vectorised check of one column: ``bad`` maps the column's scalar
    values to a mask of refused values."""

    column: int
    name: str
    bad: Callable[[pa.Array], pa.Array | None]  # None: nothing refused (fast exit)
    reason: str


class BatchScreen:
    """The checks for batches of ``table`` (the columns a load writes, in
    order) into a DuckDB table of shape ``shape`` (its NOT NULL columns and
    primary key; the same as ``table`` unless the table existed). ``checker``
    is a private in-memory database to share (one of its own otherwise)."""

    def __init__(
        self, table: TableSchema, shape: TableSchema, checker: duckdb.DuckDBPyConnection | None = None
    ) -> None:
        self.table = table
        self._owns_checker = checker is None
        # The target's names as DuckDB resolves them (an existing table's may differ in case).
        names = [fold_identifier(n) for n in table.column_names]
        required = {fold_identifier(c.name) for c in shape.columns if not c.nullable}
        keys = [fold_identifier(k) for k in shape.primary_key]
        required |= set(keys)
        self._not_null = [(i, table.columns[i].name) for i, n in enumerate(names) if n in required]
        self._key = [names.index(k) for k in keys] if set(keys) <= set(names) else []
        self._key_names = ", ".join(shape.primary_key)
        self._checker = checker
        self._checks: list[_Check] = []
        for i, col in enumerate(table.columns):
            scalar = _scalar(col.type)
            if scalar.kind is Kind.ENUM:
                self._checks.append(
                    _Check(
                        i,
                        col.name,
                        functools.partial(_not_in, pa.array(scalar.labels, pa.string())),
                        f"the value is not a label of the target's ENUM({_labels_text(scalar.labels)})",
                    )
                )
            elif scalar.kind is Kind.TIME:
                reason = "the value is outside DuckDB's TIME range (00:00:00 to 24:00:00)"
                self._checks.append(_Check(i, col.name, _time_check, reason))
            elif scalar.kind is Kind.DECIMAL:
                self._checks.append(
                    _Check(i, col.name, _decimal_check(scalar), f"the value does not fit {scalar.describe()}")
                )
            elif scalar.kind in (Kind.JSON, Kind.UUID) and not _validated(table, scalar):
                self._checks.append(
                    _Check(
                        i,
                        col.name,
                        functools.partial(self._cast_check, kind=scalar.kind),
                        "DuckDB cannot read the value as " + scalar.kind.value.upper(),
                    )
                )

    def refusals(self, batch: pa.RecordBatch) -> list[RefusedRow]:
        """The rows of ``batch`` DuckDB would refuse, each once, by row index."""
        found: dict[int, RefusedRow] = {}
        for index, name in self._not_null:
            column = batch.column(index)
            if column.null_count:
                reason = f"column {name!r} is NOT NULL on the target and the row has no value"
                for row in _rows(column.is_null(), None):
                    found.setdefault(row, RefusedRow(row, name, reason))
        for check in self._checks:
            column = batch.column(check.column)
            if len(column) == column.null_count:
                continue
            values, rows = _leaves(column)
            mask = check.bad(values)
            if mask is None:
                continue
            reason = f"column {check.name!r}: {check.reason}"
            for row in _rows(mask, rows):
                found.setdefault(row, RefusedRow(row, check.name, reason))
        for row in self._repeated_keys(batch, found):
            found[row] = RefusedRow(
                row, None, f"duplicate primary key ({self._key_names}): an earlier row of the load has it"
            )
        return [found[row] for row in sorted(found)]

    def _repeated_keys(self, batch: pa.RecordBatch, refused: dict[int, RefusedRow]) -> list[int]:
        """Rows whose primary key an earlier row of the batch (not refused) has:
        DuckDB would refuse the whole INSERT."""
        if not self._key or batch.num_rows < 2:
            return []
        keys = [batch.column(i) for i in self._key]
        if len(keys) == 1 and not refused and pc.count_distinct(keys[0]).as_py() == batch.num_rows:
            return []
        names = [f"k{i}" for i in range(len(keys))]
        table = pa.table([*keys, pa.array(range(batch.num_rows), pa.int64())], names=[*names, "row"])
        if refused:
            table = table.filter(
                pc.invert(pc.is_in(table.column("row"), pa.array(list(refused), pa.int64())))
            )
        first = table.group_by(names, use_threads=False).aggregate([("row", "min")])
        if first.num_rows == table.num_rows:
            return []
        repeated = pc.invert(pc.is_in(table.column("row"), value_set=first.column("row_min")))
        return [int(r) for r in table.column("row").filter(repeated).to_pylist()]

    def _cast_check(self, values: pa.Array, kind: Kind) -> pa.Array | None:
        """Text DuckDB would not cast to JSON or UUID, by DuckDB's own cast
        (a private in-memory database; json_valid first, as it is cheaper)."""
        checker = self.checker()
        checker.register("conveyor_screen", pa.table({"v": values}))
        try:
            if kind is Kind.JSON:
                query = "SELECT count(*) FILTER (NOT json_valid(v)) FROM conveyor_screen"
                [(invalid,)] = checker.execute(query).fetchall()
                if invalid == 0:
                    return None
            target = "JSON" if kind is Kind.JSON else "UUID"
            result = checker.sql(
                f"SELECT TRY_CAST(v AS {target}) IS NULL AND v IS NOT NULL AS bad FROM conveyor_screen"
            ).to_arrow_table()
            mask = result.column("bad").combine_chunks()
            return mask if pc.any(mask).as_py() else None
        finally:
            checker.unregister("conveyor_screen")

    def checker(self) -> duckdb.DuckDBPyConnection:
        if self._checker is None:
            self._checker = private_database()
            self._owns_checker = True
        return self._checker

    def close(self) -> None:
        if self._checker is not None and self._owns_checker:
            self._checker.close()
        self._checker = None


def private_database() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB database for checks: one thread, little memory."""
    return duckdb.connect(":memory:", config=dict(_CHECKER_CONFIG))


def _validated(table: TableSchema, scalar: ColumnType) -> bool:
    """Whether the source engine has validated this JSON or UUID text itself
    (PostgreSQL's own types): DuckDB takes all of it, so the streamed load does
    not parse it twice. Should DuckDB refuse one all the same, the checked
    load (``write_checked``) finds it."""
    native = (scalar.native or "").lower()
    return native in _VALIDATED_BY_SOURCE.get(table.native_engine or "", frozenset())


def _not_in(labels: pa.Array, values: pa.Array) -> pa.Array:
    return pc.and_(pc.is_valid(values), pc.invert(pc.is_in(values, value_set=labels)))


_DAY_US = 86_400_000_000


def _time_check(values: pa.Array) -> pa.Array | None:
    """Times before midnight or after 24:00:00, which DuckDB would store as they
    are and print as nonsense (an Arrow time64 can hold them)."""
    micros = values.view(pa.int64())
    bounds = pc.min_max(micros)
    low, high = bounds["min"].as_py(), bounds["max"].as_py()
    if low is None or (low >= 0 and high <= _DAY_US):
        return None
    return pc.or_(pc.less(micros, 0), pc.greater(micros, _DAY_US))


def _decimal_check(ctype: ColumnType) -> Callable[[pa.Array], pa.Array | None]:
    """Decimals wider than the column (an Arrow array may hold them; DuckDB
    would store them as they are): Arrow's full validation finds out cheaply,
    the rare offending array is then looked at value by value."""
    assert ctype.precision is not None and ctype.scale is not None
    limit = 10 ** (ctype.precision - ctype.scale)
    target = pa.decimal128(ctype.precision, ctype.scale)

    def bad(values: pa.Array) -> pa.Array | None:
        if values.type == target:
            try:
                values.validate(full=True)
                return None
            except pa.ArrowInvalid:
                pass
        return pa.array([v is not None and abs(v) >= limit for v in values.to_pylist()], pa.bool_())

    return bad


class Probe:
    """An empty copy of the target table, created in a private in-memory
    database by the first of ``create_sql`` that DuckDB runs there (the
    table's own DDL, with its CHECK and UNIQUE constraints; then Conveyor's),
    to try batches on. DuckDB's refusal of a batch there is narrowed down by
    bisection to the rows it refuses."""

    def __init__(
        self,
        checker: duckdb.DuckDBPyConnection,
        ref: TableRef,
        create_sql: Sequence[str],
        columns: Iterable[str],
    ) -> None:
        self._conn = checker
        self._table = f"{_quote(ref.schema)}.{_quote(ref.name)}"
        self._conn.execute(f"CREATE SCHEMA IF NOT EXISTS {_quote(ref.schema)}")
        for statement in create_sql:
            self._conn.execute(f"DROP TABLE IF EXISTS {self._table}")
            try:
                self._conn.execute(statement)
                break
            except duckdb.Error:  # a default or type from elsewhere in the target's catalog
                continue
        quoted = ", ".join(_quote(c) for c in columns)
        self._insert = f"INSERT INTO {self._table} ({quoted}) SELECT * FROM conveyor_probe_rows"

    def refusals(self, batch: pa.RecordBatch) -> list[RefusedRow]:
        refused: list[RefusedRow] = []
        pending = [(0, batch.num_rows)]
        while pending:  # bounded: each split halves a range; at most 2 * rows ranges
            start, end = pending.pop()
            error = self._try(batch.slice(start, end - start))
            if error is None:
                continue
            if end - start == 1:
                refused.append(RefusedRow(start, _duckdb_column(error), error))
                continue
            middle = (start + end) // 2
            pending += [(middle, end), (start, middle)]
        return sorted(refused, key=lambda r: r.row)

    def _try(self, part: pa.RecordBatch) -> str | None:
        if not part.num_rows:
            return None
        self._conn.register("conveyor_probe_rows", part)
        try:
            self._conn.execute(self._insert)
            return None
        except REFUSALS as exc:
            return str(exc)
        finally:
            self._conn.unregister("conveyor_probe_rows")
            self._conn.execute(f"DELETE FROM {self._table}")


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
