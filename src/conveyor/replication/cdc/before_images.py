"""add-before-image-columns in change capture: each before-image column
holds its column's value before an UPDATE (NULL for an INSERT and in the
full load). A key column the source sent no old value of did not change; any
other value the source did not send is a DataError (the table is
suspended), never a guess. Change by change (``of_change``), and in Arrow
for captured batches (``of_batch``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from conveyor.connectors.changes import RowChange
from conveyor.core.arrow_compute import pc
from conveyor.core.batch import Op, op_array
from conveyor.core.errors import DataError
from conveyor.core.schema import TableSchema

_UPDATE = op_array(Op.UPDATE.encode())[0]


@dataclass(frozen=True)
class BeforeImages:
    """``pairs``: (before-image column, its column), target names;
    ``looked_up``: target columns whose values the source is asked for
    (the stream does not carry them exactly, so it has no value before)."""

    table: TableSchema
    pairs: tuple[tuple[str, str], ...]
    looked_up: frozenset[str] = frozenset()

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.pairs]

    def of_change(
        self,
        change: RowChange,
        values: Mapping[str, Any],
        old: Mapping[str, Any] | None,
        target: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> dict[str, Any]:
        """An INSERT's or UPDATE's before-image values: ``values`` is its row
        and ``old`` its old row (``change.old_key``), in target columns;
        ``target`` maps a source row (MySQL's before image) to them."""
        if change.op is Op.INSERT:
            return dict.fromkeys(self.names)
        if change.before is not None:
            old = target(change.before)
        out: dict[str, Any] = {}
        for name, column in self.pairs:
            if column in self.looked_up:
                raise DataError(
                    f"table {self.table.ref}: before-image column {name!r}: the change stream does not "
                    f"carry {column!r} exactly (its values are looked up from the source, which has "
                    "only the value after)",
                    column=name,
                )
            if old is not None and column in old:
                out[name] = old[column]
            elif column in self.table.primary_key and column in values:
                out[name] = values[column]
            else:
                raise DataError(
                    f"table {self.table.ref}: before-image column {name!r} needs the value of {column!r} "
                    "before the UPDATE, which the source did not send (a PostgreSQL table needs REPLICA "
                    "IDENTITY FULL, a MySQL/MariaDB server binlog_row_image=FULL; SQLite and DynamoDB "
                    "sources send only the key's: column-filter pk-only)",
                    column=name,
                )
        return out

    def of_batch(
        self, ops: pa.Array, old: pa.RecordBatch, whole: pa.Array | None
    ) -> dict[str, pa.Array] | None:
        """The before-image columns of captured changes (``ops``: their
        ``OP``): an UPDATE's old value of each column, from ``old`` (each
        change's old row in target columns, converted: whole where
        ``whole`` says the source sent it, else its key), NULL for the other
        changes; None when an UPDATE came without the old value of a column
        that is not a key column (its changes then go one by one, where
        ``of_change`` names it)."""
        updated = pc.equal(ops, _UPDATE)
        without = updated if whole is None else pc.and_(updated, pc.invert(whole))
        if pc.any(without).as_py() and any(c not in self.table.primary_key for _, c in self.pairs):
            return None
        out: dict[str, pa.Array] = {}
        for name, column in self.pairs:
            value = old.column(column)
            image = pc.if_else(updated, value, pa.nulls(1, value.type)[0])
            wanted = self.table.column(name).type.arrow()
            out[name] = image if image.type == wanted else image.cast(wanted)
        return out
