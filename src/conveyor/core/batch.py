"""The one record type between stages: a batch of row images."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import pyarrow as pa

from conveyor.core.schema import TableRef


class Op(StrEnum):
    """What a row image means. A full load is a stream of READ batches
    (Debezium's snapshot reads); CDC carries inserts, updates and deletes."""

    READ = "r"
    INSERT = "c"
    UPDATE = "u"
    DELETE = "d"


@dataclass(frozen=True)
class Checkpoint:
    """An opaque source position, serialisable to JSON (an LSN, a binlog file and
    position with its GTID, a change-table sequence number ...)."""

    engine: str
    position: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ChangeBatch:
    """Row images of one table. ``records`` holds the table's columns in the
    source schema's order; for CDC an ``op`` array of the same length says what
    each row is (None for full-load batches, where every row is a READ)."""

    table: TableRef
    records: pa.RecordBatch
    op: pa.Array | None = None
    checkpoint: Checkpoint | None = None

    @property
    def num_rows(self) -> int:
        return int(self.records.num_rows)
