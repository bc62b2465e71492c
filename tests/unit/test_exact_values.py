"""Pure parts of carrying PostgreSQL values exactly: the calendar for any
year, the reader's refusal of wrapped timestamps (by row, in arrays too), the
lake's texts for values Arrow cannot format, change rows with raw values."""

from __future__ import annotations

import pyarrow as pa
import pytest

from conveyor.connectors.arrow_rows import Unrepresentable, rows_to_batch
from conveyor.connectors.lake import files as lake_files
from conveyor.connectors.postgres._arrow import PG_MIN_TIMESTAMP_US, conform, format_micros
from conveyor.connectors.postgres.copy_text import to_text
from conveyor.core import types as t
from conveyor.core.calendar import civil_from_days, days_from_civil, iso_date, parse_iso
from conveyor.core.errors import DataError
from conveyor.core.schema import Column, TableRef, TableSchema
from conveyor.core.types import Kind

WRAPPED = 9_224_318_015_999_000_000 - 2**64  # 294276-12-31 23:59:59 after the driver's overflow


@pytest.mark.parametrize(
    ("days", "civil"),
    [
        (0, (1970, 1, 1)),
        (-719_528, (0, 1, 1)),  # 1 BC
        (-2_440_588, (-4713, 11, 24)),  # 4714-11-24 BC, PostgreSQL's first day
        (2_145_042_905, (5_874_897, 12, 31)),  # its last
        (2_932_896, (9999, 12, 31)),
    ],
)
def test_the_calendar_holds_every_postgresql_day(days: int, civil: tuple[int, int, int]) -> None:
    assert civil_from_days(days) == civil
    assert days_from_civil(*civil) == days
    assert parse_iso(iso_date(days)) == (days, 0)


def test_pg_texts_of_out_of_range_instants() -> None:
    assert format_micros(PG_MIN_TIMESTAMP_US) == "4714-11-24 00:00:00 BC"
    assert format_micros(WRAPPED + 2**64) == "294276-12-31 23:59:59"


TABLE = TableSchema(
    TableRef("s", "t"),
    (
        Column("id", t.simple(Kind.INT32), False),
        Column("ts", t.simple(Kind.TIMESTAMP)),
        Column("tsa", t.array(t.simple(Kind.TIMESTAMP))),
    ),
    ("id",),
)


def _raw(ts: list[int | None], tsa: list[list[int | None] | None]) -> pa.RecordBatch:
    ids = pa.array(range(1, len(ts) + 1), pa.int32())
    lists = pa.array(tsa, pa.list_(pa.int64())).cast(pa.list_(pa.timestamp("us")))
    return pa.RecordBatch.from_arrays(
        [ids, pa.array(ts, pa.int64()).view(pa.timestamp("us")), lists], ["id", "ts", "tsa"]
    )


def test_wrapped_timestamps_refuse_their_rows_and_infinities_come_back() -> None:
    pos_inf = -(2**63) + 946_684_800_000_000 - 1  # the driver's wrapped +infinity
    raw = _raw([0, WRAPPED, 5, None], [[pos_inf, 1], [2], [3, None, WRAPPED], None])
    batch, refused = conform(raw, TABLE.arrow_schema(), TABLE)
    assert [(r.row, r.column, r.value) for r in refused] == [
        (1, "ts", "294276-12-31 23:59:59"),
        (2, "tsa", "294276-12-31 23:59:59"),
    ]
    assert batch.column(0).to_pylist() == [1, 4]
    assert batch.column(2).cast(pa.list_(pa.int64())).to_pylist() == [[t.INT64_INFINITY, 1], None]


def test_a_slice_maps_array_elements_to_their_rows() -> None:
    raw = _raw([0, 0, 0], [[1, 2], [3], [4, WRAPPED]]).slice(1)
    batch, refused = conform(raw, TABLE.arrow_schema(), TABLE)
    assert [(r.row, r.column) for r in refused] == [(1, "tsa")]
    assert batch.column(2).cast(pa.list_(pa.int64())).to_pylist() == [[3]]


@pytest.mark.parametrize(
    ("values", "dtype", "texts"),
    [
        (
            [-2_440_588, 2_145_042_905, t.DATE_INFINITY],
            pa.date32(),
            ["-4713-11-24", "5874897-12-31", "infinity"],
        ),
        ([86_400_000_000, 1], pa.time64("us"), ["24:00:00.000000", "00:00:00.000001"]),
        ([t.INT64_INFINITY - 1], pa.timestamp("us"), ["294247-01-10 04:00:54.775806"]),
    ],
)
def test_lake_texts_round_trip_where_arrow_cannot_format(
    values: list[int], dtype: pa.DataType, texts: list[str]
) -> None:
    raw = pa.int32() if dtype == pa.date32() else pa.int64()
    array = pa.array(values, raw).view(dtype)
    assert lake_files.text_column(array).to_pylist() == texts
    assert lake_files.parse_column(pa.array(texts), dtype).equals(array)


def test_change_rows_carry_raw_values_and_refuse_unrepresentable_ones() -> None:
    rows = [{"id": 1, "ts": -210_866_803_200_000_000, "tsa": ["infinity", None, -5]}]
    batch = rows_to_batch(TABLE, rows, ["id", "ts", "tsa"])
    assert batch.column(1).view(pa.int64()).to_pylist() == [-210_866_803_200_000_000]
    assert batch.column(2).cast(pa.list_(pa.int64())).to_pylist() == [[t.INT64_INFINITY, None, -5]]
    refused = [{"id": 2, "ts": None, "tsa": Unrepresentable("[0:1]={1,2}", "array bounds [0:1]")}]
    with pytest.raises(DataError, match=r"column 'tsa'.*array bounds") as info:
        rows_to_batch(TABLE, refused, ["id", "ts", "tsa"])
    assert info.value.column == "tsa"


@pytest.mark.parametrize(
    ("values", "dtype", "texts"),
    [
        (
            [-2_440_588, 2_145_042_905, -719_163],
            pa.date32(),
            ["4714-11-24 BC", "5874897-12-31", "0001-12-31 BC"],
        ),
        (
            [-210_866_803_200_000_000, t.INT64_INFINITY - 1],
            pa.timestamp("us"),
            ["4714-11-24 00:00:00.000000 BC", "294247-01-10 04:00:54.775806"],
        ),
        (  # Arrow's own text of a zoned timestamp past year 32767 wraps
            [2_534_023_008_000_000_000, -210_866_803_200_000_000],
            pa.timestamp("us", tz="UTC"),
            ["82269-12-29 00:00:00.000000+00", "4714-11-24 00:00:00.000000+00 BC"],
        ),
        ([86_400_000_000], pa.time64("us"), ["24:00:00"]),
    ],
)
def test_copy_text_writes_postgresql_input_for_every_value(
    values: list[int], dtype: pa.DataType, texts: list[str]
) -> None:
    raw = pa.int32() if dtype == pa.date32() else pa.int64()
    assert to_text(pa.array(values, raw).view(dtype)).to_pylist() == texts


def test_int64_max_is_refused_not_read_as_infinity() -> None:
    """294247-01-10 04:00:54.775807 is int64's maximum: DuckDB's infinity."""
    raw = _raw([t.INT64_INFINITY, 7], [[t.INT64_INFINITY], [8]])
    batch, refused = conform(raw, TABLE.arrow_schema(), TABLE)
    assert [(r.row, r.column, r.value) for r in refused] == [(0, "ts", "294247-01-10 04:00:54.775807")]
    assert batch.column(0).to_pylist() == [2]


NESTED = t.array(t.array(t.simple(Kind.DATE)))


def test_a_column_of_two_dimensions_reads_nested_lists_and_refuses_other_shapes() -> None:
    table = TableSchema(
        TableRef("s", "t"), (Column("id", t.simple(Kind.INT32), False), Column("v", NESTED)), ("id",)
    )
    texts = [
        '{{"4714-11-24 BC",infinity},{NULL,2020-01-01}}',
        "{1,2}",
        "[0:0][1:1]={{2020-01-01}}",
        "{}",
        None,
    ]
    raw = pa.RecordBatch.from_arrays([pa.array(range(1, 6), pa.int32()), pa.array(texts)], ["id", "v"])
    batch, refused = conform(raw, table.arrow_schema(), table)
    assert [(r.row, r.reason.split(" (")[0]) for r in refused] == [
        (1, "1-dimensional array has no exact form in a list column of 2 dimension(s)"),
        (2, "array bounds [0:0][1:1]"),
    ]
    assert batch.column(0).to_pylist() == [1, 4, 5]
    days = batch.column(1).cast(pa.list_(pa.list_(pa.int32()))).to_pylist()
    assert days == [[[-2_440_588, t.DATE_INFINITY], [None, 18_262]], [], None]
