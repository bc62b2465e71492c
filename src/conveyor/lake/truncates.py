"""TRUNCATEs in the raw area: the change-file layout has no row form for one,
so the lake target records it beside the batch's file
(``layout.truncated_path``: the table was emptied before row N of that file).
Curation takes the table's changes from the last one on, over an empty table."""

from __future__ import annotations

import json
from collections.abc import Sequence

from conveyor.connectors.lake import layout as lay
from conveyor.core.errors import TerminalError
from conveyor.lake.controller import Lake
from conveyor.lake.raw_index import ChangeFile


def last_truncate(lake: Lake, files: Sequence[ChangeFile], truncated: set[str]) -> tuple[int, int] | None:
    """Where the last TRUNCATE among ``files`` (in order) emptied the table: the
    index of its file and the row of that file before which it did (None: no
    TRUNCATE)."""
    for index in range(len(files) - 1, -1, -1):
        rel = files[index].rel
        if rel not in truncated:
            continue
        record = lay.truncated_path(rel)
        data = lake.raw.read_bytes(record)
        if data is None:
            raise TerminalError(f"{lake.raw.location(record)} disappeared while being read")
        try:
            row = json.loads(data).get("row")
        except (ValueError, AttributeError):
            row = None
        if not isinstance(row, int) or isinstance(row, bool) or row < 0:
            where = lake.raw.location(record)
            raise TerminalError(f"{where} does not name a row of {lake.raw.location(rel)}")
        return index, row
    return None
