"""Finding the rows of a change batch a PostgreSQL target refuses: a CHECK,
a NOT NULL, a foreign key, a unique index other than the key, a value the
target's column type cannot take (a MariaDB enum label PostgreSQL's enum
does not have).

PostgreSQL refuses a whole statement and names at most one row, so the
batch's rows are tried in a transaction the caller rolls back: all of them
under a savepoint and, when the target refuses, each half again, down to the
single rows it refuses (k refused rows among n cost about 2k·log2(n)
statements; a batch the target takes costs one). Constraints are checked per
statement (``SET CONSTRAINTS ALL IMMEDIATE``), so a deferred one names its
row too. The caller then applies the batch without those rows, in the
batch's own transaction with its checkpoint: every other row is applied
exactly once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import psycopg
import pyarrow as pa

from conveyor.connectors.arrow_rows import printable
from conveyor.connectors.postgres.copy_lines import line_values
from conveyor.connectors.postgres.target import constraint_columns, nul_column, refused_at
from conveyor.connectors.postgres.text_values import converter
from conveyor.core.batch import ChangeBatch, RejectedValue
from conveyor.core.schema import TableSchema

Attempt = Callable[[ChangeBatch], psycopg.Error | None]
"""Apply a part of the batch under a savepoint: None when the target took it
(the savepoint released), or the target's refusal (rolled back to it)."""


@dataclass
class _Part:
    """One kind of row of the batch (deleted keys, whole rows, encoded lines,
    one group of partial updates): how many, a batch of some of them, and a
    row's key and values by column."""

    size: int
    build: Callable[[list[int]], ChangeBatch]
    values: Callable[[int], dict[str, Any]]
    refused: dict[int, psycopg.Error]


def refused_rows(
    conn: psycopg.Connection[Any], changes: ChangeBatch, attempt: Attempt, encoding: str
) -> tuple[ChangeBatch, list[RejectedValue]]:
    """``changes`` without the rows the target refuses, and those rows as
    apply-exceptions entries (key, column and value when the server names
    the column, its message). Leaves the transaction open: the caller rolls
    it back. After a refused TRUNCATE (the table emptied) nothing is left
    out: no row of it can be, and the batch's apply fails as it did."""
    table = changes.table
    changes = replace(changes, encoded=changes.encoded_rows())  # one bytes object per row, to pick from
    base = replace(
        changes,
        upserts=changes.upserts.slice(0, 0),
        deletes=changes.deletes.slice(0, 0),
        partial={},
        truncate=False,
        encoded=(),
        unrepresentable=(),
        rejected=(),
        log=(),
        checks=None,
    )
    conn.execute("SET CONSTRAINTS ALL IMMEDIATE")
    if changes.truncate and attempt(replace(base, truncate=True)) is not None:
        return changes, []
    parts = _parts(changes, base, encoding)
    for part in parts:
        _bisect(part, attempt)
    if not any(p.refused for p in parts):
        return changes, []
    rejected = [
        _rejection(conn, table, part.values(row), refusal)
        for part in parts
        for row, refusal in sorted(part.refused.items())
    ]
    deletes, upserts, encoded, *partial = parts
    kept = replace(
        changes,
        deletes=_kept_rows(changes.deletes, deletes),
        upserts=_kept_rows(changes.upserts, upserts),
        encoded=[line for i, line in enumerate(changes.encoded) if i not in encoded.refused],
        partial={
            unchanged: _kept_rows(rows, part)
            for (unchanged, rows), part in zip(changes.partial.items(), partial, strict=True)
            if len(part.refused) < rows.num_rows
        },
    )
    return kept, rejected


def _parts(changes: ChangeBatch, base: ChangeBatch, encoding: str) -> list[_Part]:
    """The batch's rows in the order the applier writes them: deleted keys,
    whole rows (Arrow, then encoded lines), partial updates by group."""
    table = changes.table
    keys = set(table.primary_key)
    # The key's values as the Arrow path gives them (an integer key as a number); the rest as text.
    typed = [converter(c.type) if c.name in keys else str for c in table.columns]
    parts = [
        _Part(
            changes.deletes.num_rows,
            lambda rows: replace(base, deletes=changes.deletes.take(rows)),
            lambda row: _row(changes.deletes, row),
            {},
        ),
        _Part(
            changes.upserts.num_rows,
            lambda rows: replace(base, upserts=changes.upserts.take(rows)),
            lambda row: _row(changes.upserts, row),
            {},
        ),
        _Part(
            len(changes.encoded),
            lambda rows: replace(base, encoded=[changes.encoded[i] for i in rows]),
            lambda row: line_values(changes.encoded[row], table.column_names, typed, encoding),
            {},
        ),
    ]
    for unchanged, batch in changes.partial.items():
        parts.append(
            _Part(
                batch.num_rows,
                lambda rows, u=unchanged, b=batch: replace(base, partial={u: b.take(rows)}),  # type: ignore[misc]
                lambda row, b=batch: _row(b, row),  # type: ignore[misc]
                {},
            )
        )
    return parts


def _bisect(part: _Part, attempt: Attempt) -> None:
    """Fill ``part.refused``: the rows the target refuses even alone. At
    most 2n-1 attempts for n rows; rows taken stay applied (in order), so a
    row that conflicts with an earlier one of the batch is the one refused."""
    pending = [(0, part.size)] if part.size else []
    while pending:
        low, high = pending.pop()
        refusal = attempt(part.build(list(range(low, high))))
        if refusal is None:
            continue
        if high - low == 1:
            part.refused[low] = refusal
            continue
        middle = (low + high) // 2
        pending += [(middle, high), (low, middle)]  # the first half first


def _kept_rows(batch: pa.RecordBatch, part: _Part) -> pa.RecordBatch:
    if not part.refused:
        return batch
    return batch.filter(pa.array([i not in part.refused for i in range(batch.num_rows)]))


def _row(batch: pa.RecordBatch, row: int) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name in batch.schema.names:
        scalar = batch.column(name)[row]
        try:
            values[name] = scalar.as_py()
        except (ValueError, OverflowError):  # past Python's range (an infinite timestamp's sentinel)
            values[name] = getattr(scalar, "value", None)
    return values


def _rejection(
    conn: psycopg.Connection[Any], table: TableSchema, values: dict[str, Any], exc: psycopg.Error
) -> RejectedValue:
    """The apply-exceptions entry of a refused row: its key, the column the
    server names or the columns of the constraint it broke (a CHECK names
    none), the value when that is one column, and the server's message."""
    message, _, column = refused_at(exc)
    column = (
        column
        or constraint_columns(conn, table.ref, exc)
        or (nul_column(values) if "0x00" in message else None)
    )
    detail = exc.diag
    if detail.constraint_name and detail.constraint_name not in message:
        message += f" (constraint {detail.constraint_name})"
    key_columns: Sequence[str] = table.primary_key or table.column_names
    key = {k: values[k] for k in key_columns if k in values}
    value = printable(values.get(column)) if column in values else None
    where = f" (column {column})" if column else ""
    return RejectedValue(table.ref, key, column, value, f"table {table.ref}: {message}{where}")
