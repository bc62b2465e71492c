"""The form a stream delivers each table's rows in, as the capture loop asks
it: the one that costs least to apply."""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping

from conveyor.connectors.changes import (
    AcceptsEncodedRows,
    CapturesRowsInArrow,
    ChangeApplier,
    ChangeStream,
    SupportsEncodedRows,
)
from conveyor.core.schema import TableRef, TableSchema
from conveyor.replication.cdc.capture_table import CaptureTable

log = logging.getLogger(__name__)


def request_row_forms(
    task: str, stream: ChangeStream, applier: ChangeApplier, tables: Mapping[TableRef, CaptureTable]
) -> None:
    """Ask ``stream`` for rows in the form that costs least to apply, per
    table: in the source's own encoding where the applier accepts that
    (PostgreSQL to PostgreSQL with the same column types and an identity
    mapping: no conversion to Python values and back), and in Arrow where
    the table's reducer takes captured rows whole (an encoded table's rows
    its encoding cannot hold: partial UPDATEs, DELETEs). Asked at the start
    and after DDL, while no batch is in flight."""
    encoded: dict[TableRef, TableSchema] = {}
    if isinstance(stream, SupportsEncodedRows) and isinstance(applier, AcceptsEncodedRows):
        for ref, table in tables.items():
            table.decode = functools.partial(stream.decode_row, ref)
            table.renew()
            if (
                table.suspended is None
                and table.reducer.passes_encoded
                and table.mapped.target.column_names == table.mapped.source.column_names
                and table.mapped.target.primary_key == table.mapped.source.primary_key
                and applier.accepts_encoded(table.mapped.target, stream.encoded_format)
            ):
                encoded[ref] = table.mapped.source
        stream.encode_rows(encoded)
        if encoded:
            log.info(
                "task %s: %d of %d tables pass to the target without conversion",
                task,
                len(encoded),
                len(tables),
            )
    if isinstance(stream, CapturesRowsInArrow):
        in_arrow = {
            ref: table.mapped.source
            for ref, table in tables.items()
            if table.suspended is None and table.reducer.takes_whole
        }
        stream.capture_rows(in_arrow, {ref for ref in in_arrow if tables[ref].reducer.keeps_before})
        if in_arrow:
            log.info("task %s: %d of %d tables captured in Arrow", task, len(in_arrow), len(tables))
