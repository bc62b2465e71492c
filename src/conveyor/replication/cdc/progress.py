"""What `tasks describe` shows of a capture while it runs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from conveyor.core.batch import Checkpoint


@dataclass
class CaptureProgress:
    """What `tasks describe` shows for the task while it captures."""

    position: Checkpoint | None = None
    last_commit_time: datetime | None = None
    last_applied_commit_time: datetime | None = None
    applied_batches: int = 0
    applied_changes: int = 0

    def as_dict(self) -> dict[str, Any]:
        now = datetime.now(UTC)

        def lag(value: datetime | None) -> float | None:
            return round(max((now - value).total_seconds(), 0.0), 3) if value else None

        return {
            "SourcePosition": self.position.position if self.position else None,
            "CDCLatencySource": lag(self.last_commit_time),
            "CDCLatencyTarget": lag(self.last_applied_commit_time),
            "AppliedBatches": self.applied_batches,
            "AppliedChanges": self.applied_changes,
        }
