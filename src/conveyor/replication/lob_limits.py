"""Limited LOB mode (TargetMetadata.LimitedSizeLobMode and LobMaxSize, or a
table-settings rule's ``lob-settings`` mode ``limited`` and its
``bulk-max-size``): text and binary LOB values longer than the limit are cut
to it, as the migration service cuts them, and every cut is said in the log
(the service logs a warning per truncated value). A user chooses this mode;
without it Conveyor copies every LOB whole.

Text is cut to at most the limit in UTF-8 bytes, never inside a character;
binary values to the limit in bytes. JSON values are never cut (a cut
document is not JSON), nor key columns (two keys could become one): they are
copied whole."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from conveyor.core.arrow_compute import pc
from conveyor.core.schema import Column, TableRef
from conveyor.core.types import Kind, is_lob

log = logging.getLogger(__name__)
_SAY_EVERY = 1000  # change capture: the first cut of a column is logged, then one in this many


def cut_columns(columns: tuple[Column, ...] | list[Column]) -> tuple[str, ...]:
    """The columns limited LOB mode cuts: text and binary LOBs (not JSON)."""
    return tuple(c.name for c in columns if is_lob(c.type) and c.type.kind in (Kind.TEXT, Kind.BYTES))


@dataclass(frozen=True)
class LobLimit:
    """One table's limited LOB mode: ``columns`` (target names) cut to
    ``kilobytes``; ``setting`` names where the limit comes from, for the log."""

    table: TableRef
    columns: tuple[str, ...]
    kilobytes: int
    setting: str
    _cuts: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    @property
    def limit(self) -> int:
        return self.kilobytes * 1024

    def array(self, column: str, values: pa.Array) -> pa.Array:
        """``values`` of ``column`` with every value over the limit cut (logged)."""
        values, count = self._cut_array(values)
        if count:
            log.warning(
                "table %s: %d value(s) of LOB column %s cut to %d KB (%s)",
                self.table,
                count,
                column,
                self.kilobytes,
                self.setting,
            )
        return values

    def cut_changes(self, column: str, values: pa.Array) -> pa.Array:
        """Change capture's ``values`` of ``column`` (captured rows in Arrow),
        cut and logged as ``cut_row`` cuts and logs them one by one."""
        values, count = self._cut_array(values)
        if count:
            self._count_cuts(column, count)
        return values

    def _cut_array(self, values: pa.Array) -> tuple[pa.Array, int]:
        limit = self.limit
        long = pc.greater(pc.binary_length(values), limit)
        count = pc.sum(long).as_py() or 0
        if not count:
            return values, 0
        rows = values.to_pylist()
        for row in pc.indices_nonzero(pc.fill_null(long, False)).to_pylist():
            rows[row] = _cut(rows[row], limit)
        return pa.array(rows, type=values.type), count

    def cut_row(self, row: dict[str, Any]) -> None:
        """A change's row (target names), cut in place; the first cut of each
        column is logged, then one in every thousand, with the count so far."""
        limit = self.limit
        for column in self.columns:
            value = row.get(column)
            if value is None or _size(value) <= limit:
                continue
            row[column] = _cut(value, limit)
            self._count_cuts(column, 1)

    def _count_cuts(self, column: str, count: int) -> None:
        """Log the first cut of ``column`` in change capture, then one in
        every thousand, with the count so far."""
        before = self._cuts.get(column, 0)
        seen = self._cuts[column] = before + count
        if before == 0 or seen // _SAY_EVERY > before // _SAY_EVERY:
            log.warning(
                "table %s: LOB column %s cut to %d KB (%s): %d value(s) cut in change capture so far",
                self.table,
                column,
                self.kilobytes,
                self.setting,
                seen,
            )


def _size(value: Any) -> int:
    if isinstance(value, str):
        return len(value.encode()) if not value.isascii() else len(value)
    return len(value)


def _cut(value: Any, limit: int) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)[:limit]
    return str(value).encode()[:limit].decode("utf-8", "ignore")
