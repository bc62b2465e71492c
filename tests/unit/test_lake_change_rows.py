"""A lake change file from a change log whose changes are captured rows
(LoggedRows, in Arrow) is the file the same changes one by one make."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa
import pytest

from conveyor.connectors.arrow_rows import logged_changes, rows_to_batch
from conveyor.connectors.lake import layout as lay
from conveyor.connectors.lake.change_rows import ChangeRows, FileRows, Skip
from conveyor.connectors.lake.settings import LakeSettings
from conveyor.core import types as t
from conveyor.core.batch import (
    OP,
    OP_TYPE,
    UNCHANGED,
    ChangeBatch,
    Checkpoint,
    Logged,
    LoggedChange,
    LoggedRows,
)
from conveyor.core.schema import Column, TableRef, TableSchema
from conveyor.core.types import Kind

TABLE = TableSchema(
    TableRef("shop", "orders"),
    (
        Column("id", t.simple(Kind.INT64), False),
        Column("note", t.simple(Kind.TEXT)),
        Column("n", t.simple(Kind.INT32)),
    ),
    ("id",),
)
FIRST, SECOND = Checkpoint("sqlite", 1), Checkpoint("sqlite", 2)
T1 = dt.datetime(2026, 12, 5, 10, 0, 0, tzinfo=dt.UTC)
T2 = dt.datetime(2026, 12, 5, 10, 0, 1, tzinfo=dt.UTC)
WHEN = dt.datetime(2026, 12, 5, 11, 0, 0, tzinfo=dt.UTC)


def _captured(
    position: Checkpoint, index: int, when: dt.datetime | None, *changes: tuple[Any, ...]
) -> LoggedRows:
    """Captured changes: (op, row), or (op, row, unsent columns) for a partial UPDATE."""
    rows = [change[1] for change in changes]
    batch = rows_to_batch(TABLE, rows, TABLE.column_names)
    ops = pa.array([change[0].encode() for change in changes], OP_TYPE)
    columns, names = [ops, *batch.columns], [OP, *TABLE.column_names]
    if any(len(change) > 2 for change in changes):
        columns.append(pa.array([change[2] if len(change) > 2 else None for change in changes]))
        names.append(UNCHANGED)
    return LoggedRows(pa.RecordBatch.from_arrays(columns, names), position, index, when)


def _log() -> list[Logged]:
    """Two transactions: captured runs, changes one by one between them (a
    partial UPDATE, a moved key, a TRUNCATE), a DELETE with its key alone
    and one with its whole old row, a captured partial UPDATE."""
    return [
        _captured(
            FIRST, 0, T1, ("c", {"id": 1, "note": "a", "n": 1}), ("c", {"id": 2, "note": None, "n": 2})
        ),
        LoggedChange("u", {"id": 1}, {"id": 1, "n": 5}, FIRST, 2, T1),  # partial: note unsent
        _captured(
            FIRST,
            3,
            T1,
            ("u", {"id": 2, "note": "b", "n": 3}),
            ("d", {"id": 1, "note": None, "n": None}),  # the key alone
            ("c", {"id": 3, "note": "c", "n": 4}),
        ),
        LoggedChange("u", {"id": 3, "note": "c", "n": 4}, {"id": 4, "note": "c", "n": 4}, FIRST, 6, T1),
        LoggedChange("t", None, None, SECOND, 0, T2),
        _captured(
            SECOND,
            1,
            None,  # its commit not read yet
            ("c", {"id": 5, "note": "e", "n": 6}),
            ("d", {"id": 5, "note": "e", "n": 6}),  # the whole old row
            ("u", {"id": 4, "note": "f", "n": 7}),
            ("u", {"id": 4, "note": None, "n": 8}, ["note"]),  # partial: note unsent
        ),
    ]


def _file(log: list[Logged], settings: LakeSettings, skip: Skip | None) -> FileRows | None:
    layout = lay.file_layout(settings, "parquet", changes=True)
    rows = ChangeRows(TABLE, layout, settings.cdc_inserts_only, settings.cdc_inserts_and_updates)
    return rows.build(
        ChangeBatch(TABLE, rows_to_batch(TABLE, [], []), rows_to_batch(TABLE, [], []), log=log), WHEN, skip
    )


SETTINGS = [
    LakeSettings(),
    LakeSettings(timestamp_column_name="ts"),
    LakeSettings(cdc_inserts_only=True, timestamp_column_name="ts"),
    LakeSettings(cdc_inserts_and_updates=True),
]
SKIPS: list[tuple[Checkpoint, int] | None] = [
    None,
    (FIRST, 0),
    (FIRST, 3),
    (FIRST, 4),
    (FIRST, 6),
    (SECOND, 1),
    (SECOND, 3),
    (SECOND, 4),
]


@pytest.mark.parametrize("settings", SETTINGS, ids=["default", "timestamps", "inserts-only", "no-deletes"])
@pytest.mark.parametrize("written", SKIPS, ids=lambda s: "none" if s is None else f"{s[0].position}-{s[1]}")
def test_captured_rows_make_the_file_changes_one_by_one_make(
    settings: LakeSettings, written: tuple[Checkpoint, int] | None
) -> None:
    log = _log()
    one_by_one: list[Logged] = list(logged_changes(log))
    assert len(one_by_one) == 12 and not any(isinstance(c, LoggedRows) for c in one_by_one)
    skip = None if written is None else ((lambda at, w=written[0]: at is w), written[1])
    got, want = _file(log, settings, skip), _file(one_by_one, settings, skip)
    assert (got is None) == (want is None)
    if got is None or want is None:
        return
    assert (got.unchanged, got.truncated_at) == (want.unchanged, want.truncated_at)
    assert got.data is not None and want.data is not None
    assert got.data.schema == want.data.schema
    assert got.data.to_pylist() == want.data.to_pylist()


def test_the_file_holds_every_change_in_order() -> None:
    """The reference itself: what the file of the whole log says."""
    found = _file(_log(), SETTINGS[1], None)
    assert found is not None and found.data is not None
    assert [(r["Op"], r["id"], r["ts"][:19]) for r in found.data.to_pylist()] == [
        ("I", 1, "2026-12-05 10:00:00"), ("I", 2, "2026-12-05 10:00:00"),
        ("U", 1, "2026-12-05 10:00:00"),
        ("U", 2, "2026-12-05 10:00:00"), ("D", 1, "2026-12-05 10:00:00"), ("I", 3, "2026-12-05 10:00:00"),
        ("D", 3, "2026-12-05 10:00:00"), ("U", 4, "2026-12-05 10:00:00"),  # the moved key
        ("I", 5, "2026-12-05 11:00:00"), ("D", 5, "2026-12-05 11:00:00"), ("U", 4, "2026-12-05 11:00:00"),
        ("U", 4, "2026-12-05 11:00:00"),
    ]  # fmt: skip
    assert found.unchanged == [(2, ["note"]), (11, ["note"])]
    assert found.truncated_at == 8
    assert found.data.to_pylist()[9]["note"] == "e"  # a DELETE's whole old row, as the source sent it
