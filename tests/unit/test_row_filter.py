"""Source filters compare alike wherever they run: pushed down into SQLite's
SELECT, applied to Arrow batches, and tested on CDC values."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from conveyor.connectors.base import EndpointConfig
from conveyor.connectors.sqlite.source import SQLiteSource
from conveyor.core.row_filter import ColumnFilter, Condition, FilterOp, RowFilter, parse_value, range_segments
from conveyor.core.schema import Column, TableRef, TableSchema
from conveyor.core.types import Kind, simple
from conveyor.replication.table_plan import TablePlan, read_source

ROWS = [
    (1, "EU", 1.5, 10),
    (2, "eu", 2.5, 20),
    (3, "EU ", None, 30),
    (4, None, 3.5, None),
    (5, "É", 0.0, -5),
    (6, "Z", -1.0, 0),
    (7, "", 1e300, 7),
]


def where(column: str, kind: Kind, *conditions: tuple[FilterOp, tuple[str, ...]]) -> RowFilter:
    typed = tuple(Condition(op, tuple(parse_value(v, kind) for v in values)) for op, values in conditions)
    return RowFilter((ColumnFilter(column, kind, typed),))


FILTERS = [
    where("region", Kind.TEXT, (FilterOp.EQ, ("EU",))),
    where("region", Kind.TEXT, (FilterOp.NOTEQ, ("EU",))),
    where("region", Kind.TEXT, (FilterOp.LTE, ("Z",))),
    where("region", Kind.TEXT, (FilterOp.GTE, ("a",))),
    where("region", Kind.TEXT, (FilterOp.BETWEEN, ("E", "EU "))),
    where("region", Kind.TEXT, (FilterOp.NULL, ()), (FilterOp.EQ, ("",))),
    where("score", Kind.FLOAT64, (FilterOp.NOTBETWEEN, ("0", "2"))),
    where("score", Kind.FLOAT64, (FilterOp.NOTNULL, ())),
    where("qty", Kind.INT64, (FilterOp.GTE, ("10",)), (FilterOp.LTE, ("-1",))),
    RowFilter(
        (
            ColumnFilter("qty", Kind.INT64, (Condition(FilterOp.NOTNULL),)),
            ColumnFilter("region", Kind.TEXT, (Condition(FilterOp.NOTEQ, ("Z",)),)),
        )
    ),
]


@pytest.mark.parametrize("row_filter", FILTERS, ids=[str(i) for i in range(len(FILTERS))])
def test_pushed_down_and_in_python_agree(tmp_path: Path, row_filter: RowFilter) -> None:
    path = tmp_path / "s.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, region TEXT COLLATE NOCASE, score REAL, qty INTEGER)"
        )
        conn.executemany("INSERT INTO t VALUES (?, ?, ?, ?)", ROWS)
    conn.close()
    source = SQLiteSource(EndpointConfig(name="s", engine="sqlite", path=str(path)))
    [table] = source.tables()
    plan = TablePlan(table, table, row_filter=row_filter)
    snapshot = source.snapshot()
    try:
        assert snapshot.pushes_down(table, row_filter)
        pushed = [r["id"] for b in read_source(snapshot, plan, 100) for r in b.to_pylist()]
        arrow = [r["id"] for b in snapshot.read(table, 100) for r in row_filter.apply(b).to_pylist()]
    finally:
        snapshot.close()
    python = [
        r[0] for r in ROWS if row_filter.matches(dict(zip(("id", "region", "score", "qty"), r, strict=True)))
    ]
    assert pushed == arrow == python


@pytest.mark.parametrize(
    ("text", "kind", "message"),
    [
        ("1.5", Kind.INT64, "'1.5' is not an integer"),
        ("NaN", Kind.DECIMAL, "'NaN' is not a finite decimal number"),
        ("maybe", Kind.BOOLEAN, "'maybe' is not true or false"),
        ("2024-02-30", Kind.DATE, "'2024-02-30' is not a date"),
        ("2024-01-01T00:00:00+02:00", Kind.TIMESTAMP, "is not a timestamp without time zone"),
    ],
)
def test_values_of_the_wrong_type_are_refused(text: str, kind: Kind, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_value(text, kind)


class _PlainSnapshot:
    """A snapshot that cannot push filters down (as DynamoDB's)."""

    def __init__(self, batches: list[pa.RecordBatch]) -> None:
        self.batches = batches

    def read(
        self, table: TableSchema, batch_rows: int, order_by_key: bool = False
    ) -> Iterator[pa.RecordBatch]:
        return iter(self.batches)

    def count(self, table: TableRef) -> int:
        return sum(b.num_rows for b in self.batches)

    def close(self) -> None:
        pass


def test_a_source_that_cannot_push_down_is_filtered_batch_by_batch() -> None:
    table = TableSchema(TableRef("s", "t"), (Column("id", simple(Kind.INT64)),), ("id",))
    batches = [
        pa.RecordBatch.from_pydict({"id": pa.array(ids, pa.int64())}) for ids in ([1, 2, 3], [4], [5, 6])
    ]
    row_filter = where("id", Kind.INT64, (FilterOp.BETWEEN, ("2", "3")), (FilterOp.EQ, ("6",)))
    segments = range_segments("id", Kind.INT64, (2,))
    plan = TablePlan(
        table, table, row_filter=row_filter, segments=tuple(s.also(row_filter) for s in segments)
    )
    read = list(read_source(_PlainSnapshot(batches), plan, 10))
    assert [b.column(0).to_pylist() for b in read] == [[2, 3], [6]]  # empty batches dropped, read once
