"""Changes for an applier that keeps the change log (the lake), built by hand:
``ChangeBatch.log`` as the runner hands it over, in commit order."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from conveyor.connectors.arrow_rows import change_batch
from conveyor.core.batch import ChangeBatch, Checkpoint, LoggedChange
from conveyor.core.schema import TableSchema

_ANCHORS = itertools.count(1)
_OPS = {"I": "c", "U": "u", "D": "d", "T": "t"}


def logged(
    table: TableSchema,
    ops: Sequence[tuple[str, dict[str, Any] | None]],
    at: Checkpoint | None = None,
    commit_time: datetime | None = None,
    first_index: int = 0,
) -> ChangeBatch:
    """``ops`` (``I``/``U`` with the new row, ``D`` with the old row or its
    key, ``T`` for a TRUNCATE) as one table's logged changes after the commit
    position ``at`` (by default one no checkpoint names), indexed from
    ``first_index``. A ``U`` row lacking columns is a partial update."""
    anchor = at if at is not None else Checkpoint("test", {"anchor": next(_ANCHORS)})
    log = [
        LoggedChange(
            _OPS[op],
            row if op == "D" else None,
            row if op in ("I", "U") else None,
            anchor,
            first_index + i,
            commit_time,
        )
        for i, (op, row) in enumerate(ops)
    ]
    return change_batch(table, log=log)


def upserted(
    table: TableSchema,
    inserts: Sequence[dict[str, Any]] = (),
    deletes: Sequence[dict[str, Any]] = (),
    **kw: Any,
) -> ChangeBatch:
    """Deletes, then inserts, as logged changes."""
    return logged(table, [*(("D", r) for r in deletes), *(("I", r) for r in inserts)], **kw)
