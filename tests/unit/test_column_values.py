"""Arrow values back in the form streams deliver them (``column_values``):
what no Python value holds comes back as the stream sent it, never wrapped
or raised on."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from conveyor.connectors.arrow_rows import column_array, column_values
from conveyor.core import types as t
from conveyor.core.types import Kind

PAST_9999 = 400_000_000_000_000_000  # microseconds: year ~14,645
MIDNIGHT_END = 86_400_000_000  # PostgreSQL's time 24:00:00


def test_values_out_of_pythons_range_come_back_as_their_raw_integers() -> None:
    stamps = pa.array([1, PAST_9999, t.INT64_INFINITY, None], pa.int64()).view(pa.timestamp("us"))
    assert column_values(stamps) == [dt.datetime(1970, 1, 1, 0, 0, 0, 1), PAST_9999, "infinity", None]
    dates = pa.array([1, 3_000_000, -t.DATE_INFINITY], pa.int32()).view(pa.date32())
    assert column_values(dates) == [dt.date(1970, 1, 2), 3_000_000, "-infinity"]


def test_time_24_00_is_not_wrapped_to_midnight() -> None:
    times = pa.array([MIDNIGHT_END, 5, None], pa.int64()).view(pa.time64("us"))
    assert column_values(times) == [MIDNIGHT_END, dt.time(0, 0, 0, 5), None]


def test_lists_of_such_values_nested_and_sliced() -> None:
    stamps = pa.array([1, PAST_9999, t.INT64_INFINITY, None], pa.int64()).view(pa.timestamp("us"))
    lists = pa.ListArray.from_arrays(
        pa.array([0, 2, 2, 4], pa.int32()), stamps, mask=pa.array([False, True, False])
    )
    first = [dt.datetime(1970, 1, 1, 0, 0, 0, 1), PAST_9999]
    assert column_values(lists) == [first, None, ["infinity", None]]
    assert column_values(lists.slice(1)) == [None, ["infinity", None]]
    nested = pa.ListArray.from_arrays(pa.array([0, 1, 3], pa.int32()), lists)
    assert column_values(nested) == [[first], [None, ["infinity", None]]]


def test_the_values_make_the_same_arrow_again() -> None:
    """The round trip a reducer makes when a change needs rows one by one."""
    ctype = t.simple(Kind.TIME)
    times = column_array(ctype, [MIDNIGHT_END, dt.time(1, 2, 3)])
    assert column_array(ctype, column_values(times)).equals(times)
