"""What DynamoDB capture (Streams and incremental passes) does when items carry
attributes the tables' layouts lack: the layouts widened, and the flattened rows
grouped by the item they came from."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

from conveyor.connectors.dynamodb.flatten import flatten
from conveyor.connectors.dynamodb.infer import TableLayout, merge_layout
from conveyor.connectors.dynamodb.source import DynamoDBSource


def widen_layouts(
    source: DynamoDBSource, name: str, layouts: Sequence[TableLayout], items: pa.Array
) -> list[TableLayout | None]:
    """New layouts for the tables of DynamoDB table ``name`` whose ``items``
    now carry attributes they lack (None: unchanged)."""
    drift = [flatten(items, table, reject=True).drift for table in layouts]
    if not any(drift):
        return [None] * len(layouts)
    for table, found in zip(layouts, drift, strict=True):
        if found:
            source.widen(name, items, table.schema.ref, found)
    document = source.document(name)
    fresh = {t.schema.ref: t for t in document.tables()}
    out: list[TableLayout | None] = []
    for table in layouts:
        widened = fresh.get(table.schema.ref)
        merged = merge_layout(table, widened) if widened is not None else table
        out.append(merged if merged.schema.column_names != table.schema.column_names else None)
    return out
