"""Proof that a streamed load wrote no key twice: its one key column arrived in
strictly ascending order. A table read in key order (an append-only table, a
sequence-numbered key) then needs no duplicate check before its primary key is
added, which at 5M rows costs about a second of CPU and the check's hash table."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc

from conveyor.connectors.duckdb.names import fold_identifier
from conveyor.core.schema import TableSchema
from conveyor.core.types import Kind

# Kinds whose Arrow values DuckDB stores as they are: two values Arrow orders
# strictly are two different keys in DuckDB too. (Not UUIDs written as text,
# whose case DuckDB folds, nor floats, nor timestamps DuckDB may truncate.)
ORDERED_KINDS = frozenset(
    {Kind.INT16, Kind.INT32, Kind.INT64, Kind.DECIMAL, Kind.NUMERIC, Kind.TEXT, Kind.DATE}
)


class AscendingKey:
    """Watches the key column of a stream's batches (``watch``); ``holds`` stays
    true while every key is greater than the one before it."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.holds = True
        self._last: pa.Array | None = None

    @classmethod
    def of(cls, table: TableSchema, key: tuple[str, ...]) -> AscendingKey | None:
        """The watcher of ``table``'s written batches for the one-column ``key``,
        or None when the key has more columns or a kind it cannot vouch for."""
        if len(key) != 1:
            return None
        names = [fold_identifier(n) for n in table.column_names]
        if fold_identifier(key[0]) not in names:
            return None
        index = names.index(fold_identifier(key[0]))
        if table.columns[index].type.kind not in ORDERED_KINDS:
            return None
        return cls(index)

    def watch(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            self.see(batch)
            yield batch

    def see(self, batch: pa.RecordBatch) -> None:
        rows = batch.num_rows
        if not self.holds or not rows:
            return
        keys = batch.column(self.index)
        if keys.null_count:
            self.holds = False
            return
        first = keys.slice(0, 1)
        if self._last is not None and not pc.less(self._last, first)[0].as_py():
            self.holds = False
            return
        if rows > 1 and not pc.all(pc.less(keys.slice(0, rows - 1), keys.slice(1))).as_py():
            self.holds = False
            return
        self._last = keys.slice(rows - 1, 1)
