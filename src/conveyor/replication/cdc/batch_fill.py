"""When the capture loop's pending batch is due: its changes toward
BatchSplitSize, its age toward the flush interval, and, for an applier whose
batches are files with their own due rule (``PacesBatches``, the lake's
CdcMaxBatchInterval / CdcMinFileSize), the size of each table's file."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from conveyor.connectors.changes import PacesBatches
from conveyor.core.batch import Logged, LoggedRows
from conveyor.core.schema import TableRef


@dataclass
class BatchFill:
    """The pending batch's fill. ``pending`` counts its changes (a TRUNCATE
    counts one); the first of them starts its age."""

    max_changes: int
    flush_seconds: float
    pacing: PacesBatches | None = None
    pending: int = 0
    _first: float | None = None
    _file_bytes: dict[TableRef, int] = field(default_factory=dict)  # per table, when paced
    _file_full: bool = False  # one of them reached the paced size

    def note(self, changes: int = 1) -> None:
        self.pending += changes
        if self._first is None:
            self._first = time.monotonic()

    def note_logged(self, table: TableRef, logged: Logged, size: float | None = None) -> None:
        """A change log's new entry counts toward a paced applier's file
        (``size``: when measured already)."""
        pacing = self.pacing
        if pacing is None:
            return
        added = pacing.change_bytes(table, logged) if size is None else size
        total = self._file_bytes[table] = self._file_bytes.get(table, 0) + int(added)
        self._file_full = self._file_full or total >= pacing.batch_min_bytes

    def room(self, table: TableRef, captured: LoggedRows | None) -> tuple[int, float | None]:
        """How many more changes the batch has room for, before ``captured``
        (changes of ``table`` as a change log entry; None for encoded rows,
        which no file measures), and a paced applier's estimate of one of
        their rows' size in its file."""
        room = self.max_changes - self.pending
        pacing = self.pacing
        n = 0 if captured is None else captured.rows.num_rows
        if pacing is None or captured is None or not n:
            return room, None
        row_bytes = pacing.change_bytes(table, captured) / n
        left = pacing.batch_min_bytes - self._file_bytes.get(table, 0)
        return min(room, math.ceil(left / row_bytes) if row_bytes > 0 else n), row_bytes

    def paced_due(self) -> bool:
        """Whether a paced applier's batch is due (always, for the others, and
        when nothing is pending: a checkpoint alone writes no file)."""
        pacing = self.pacing
        if pacing is None or not self.pending or self._first is None:
            return True
        if time.monotonic() - self._first >= pacing.batch_seconds:
            return True
        return self._file_full

    @property
    def due(self) -> bool:
        """Whether the batch is full, or old enough (or its paced file due)."""
        if self.pending >= self.max_changes:
            return True
        if self._first is None:
            return False
        if self.pacing is None:
            return time.monotonic() - self._first >= self.flush_seconds
        return self.paced_due()

    def handed(self) -> None:
        """The batch went to the applier: the next one starts empty."""
        self.pending, self._first = 0, None
        self._file_bytes.clear()
        self._file_full = False
