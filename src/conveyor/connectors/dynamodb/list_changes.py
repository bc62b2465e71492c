"""A child table's changes (the rows of an item's list) as one captured
``ChangeBatch``: each item's new rows, and DELETEs of the positions its list
no longer has, item by item, in Arrow as the flattener built them (no row
made a Python value and back)."""

from __future__ import annotations

from array import array
from collections.abc import Sequence

import pyarrow as pa

from conveyor.connectors.dynamodb.flatten import Flattened
from conveyor.core.batch import OP, ChangeBatch, Op, op_array
from conveyor.core.schema import TableSchema

INSERT, UPDATE, DELETE = (op.encode()[0] for op in (Op.INSERT, Op.UPDATE, Op.DELETE))


class ListChanges:
    """Gathers, item by item in commit order, which new rows (indexes into
    the flattened ``rows``) and which gone keys (indexes into ``gone``, a
    table of the key columns) make the child table's changes."""

    def __init__(self, table: TableSchema, rows: pa.RecordBatch, gone: pa.Table) -> None:
        self.table, self.rows, self.gone = table, rows, gone
        self._order = array("q")
        self._ops = bytearray()

    def add_rows(self, indexes: Sequence[int], op: int) -> None:
        """New rows (``op``: INSERT or UPDATE), in position order."""
        self._order.extend(indexes)
        self._ops.extend(bytes([op]) * len(indexes))

    def add_gone(self, indexes: Sequence[int]) -> None:
        """DELETEs of these keys of ``gone``."""
        offset = self.rows.num_rows
        self._order.extend(offset + i for i in indexes)
        self._ops.extend(bytes([DELETE]) * len(indexes))

    def batch(self) -> ChangeBatch | None:
        """The changes gathered, as a captured batch of whole new rows and
        DELETEs of a key (its other columns null); None when there are none."""
        if not self._order:
            return None
        rows, gone = self.rows, self.gone
        schema = rows.schema
        n = gone.num_rows
        keyed = pa.Table.from_arrays(
            [
                gone.column(f.name).cast(f.type) if f.name in gone.column_names else pa.nulls(n, f.type)
                for f in schema
            ],
            schema=schema,
        )
        both = pa.concat_tables([pa.Table.from_batches([rows], schema=schema), keyed])
        order = pa.Array.from_buffers(pa.int64(), len(self._order), [None, pa.py_buffer(self._order)])
        [taken] = both.take(order).combine_chunks().to_batches()
        return ChangeBatch.captured(self.table, taken.add_column(0, OP, op_array(bytes(self._ops))))


_STREAM_OPS = {"INSERT": INSERT, "MODIFY": UPDATE, "REMOVE": DELETE}


def record_changes(
    table: TableSchema, events: Sequence[str], new: Flattened, old: Flattened
) -> ChangeBatch | None:
    """A child table's changes of a page of stream records (``events``: each
    record's eventName), record by record: a DELETE of each position the
    old image's list had beyond the new one's, then the new image's rows
    (none for a REMOVE)."""
    assert new.parents is not None and old.parents is not None, "a child table's rows know their item"
    fresh, stale = by_item(new.parents), by_item(old.parents)
    keys = pa.Table.from_batches([old.batch]).select(list(table.primary_key))
    changes = ListChanges(table, new.batch, keys)
    for record, name in enumerate(events):
        rows = [] if name == "REMOVE" else fresh.get(record, [])
        changes.add_gone(stale.get(record, [])[len(rows) :])
        changes.add_rows(rows, _STREAM_OPS[name])
    return changes.batch()


def by_item(parents: pa.Array) -> dict[int, list[int]]:
    """Row indexes by the item each row came from, in position order."""
    groups: dict[int, list[int]] = {}
    for row, item in enumerate(parents.to_pylist()):
        groups.setdefault(item, []).append(row)
    return groups
