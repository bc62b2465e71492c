"""Last operation wins: change rows reduced to one per key, and applied to a
table's rows in memory."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

OP = "__op"
SEQ = "__seq"


def last_per_key(changes: pa.Table, key: Sequence[str]) -> pa.Table:
    """The last row (highest ``__seq``) of every key, in ``__seq`` order."""
    if changes.num_rows == 0 or not key:
        return changes
    last = changes.group_by(list(key), use_threads=False).aggregate([(SEQ, "max")])
    positions = pc.sort_indices(last.column(f"{SEQ}_max"))
    return changes.take(pc.take(last.column(f"{SEQ}_max"), positions))


def apply_in_memory(base: pa.Table, reduced: pa.Table, key: Sequence[str]) -> pa.Table:
    """``base`` with the reduced changes applied: with a key, rows of changed
    keys are replaced by the upserts (deleted ones dropped); without one, the
    non-delete rows are appended."""
    upserts = reduced.filter(pc.not_equal(reduced.column(OP), "D"))
    upserts = upserts.select(list(base.column_names))
    if key and base.num_rows and reduced.num_rows:
        if len(key) == 1:  # a hash-set lookup keeps the base's row order
            column = base.column(key[0])
            changed = reduced.column(key[0]).cast(column.type, safe=False).combine_chunks()
            base = base.filter(pc.invert(pc.is_in(column, value_set=changed)))
        else:
            changed_keys = reduced.select(list(key)).cast(base.select(list(key)).schema, safe=False)
            base = base.join(changed_keys, keys=list(key), join_type="left anti", use_threads=True)
            base = base.select(upserts.column_names)
    return pa.concat_tables([base, upserts.cast(base.schema)])
