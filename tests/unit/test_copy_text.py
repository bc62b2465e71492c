"""Arrow batches as PostgreSQL COPY text, byte for byte."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pyarrow as pa

from conveyor.connectors.postgres.copy_text import encode_batch
from conveyor.core import types as t


def test_escapes_nulls_and_empty_strings() -> None:
    batch = pa.record_batch({"i": pa.array([1, None]), "s": pa.array(["a\tb\\c\nd\re", ""])})
    assert encode_batch(batch) == b"1\ta\\tb\\\\c\\nd\\re\n\\N\t\n"


def test_bytes_as_hex_arrays_as_literals_and_intervals() -> None:
    batch = pa.record_batch(
        {
            "b": pa.array([b"\x00\xff", None, b""]),
            "l": pa.array([["x", 'y"z', None], None, []], pa.list_(pa.string())),
            "iv": pa.array([pa.MonthDayNano([1, 2, 3000]), None, pa.MonthDayNano([-1, 0, 0])]),
        }
    )
    assert encode_batch(batch).decode().splitlines() == [
        '\\\\x00ff\t{"x","y\\\\"z",NULL}\t1 mons 2 days 3 microseconds',
        "\\N\t\\N\t\\N",
        "\\\\x\t{}\t-1 mons 0 days 0 microseconds",
    ]


def test_infinite_and_extreme_dates_and_timestamps() -> None:
    ts = pa.array([t.INT64_INFINITY, -t.INT64_INFINITY, 0], pa.int64()).view(pa.timestamp("us", tz="UTC"))
    days = pa.array([t.DATE_INFINITY, -t.DATE_INFINITY, None], pa.int32()).view(pa.date32())
    batch = pa.record_batch({"ts": ts, "d": days})
    assert encode_batch(batch).decode().splitlines() == [
        "infinity\tinfinity",
        "-infinity\t-infinity",
        "1970-01-01 00:00:00.000000Z\t\\N",
    ]
    edge = pa.record_batch(
        {
            "ts": pa.array(
                [datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)]
            ),
            "d": pa.array([date(1, 1, 1), date(9999, 12, 31)]),
        }
    )
    assert encode_batch(edge).decode().splitlines() == [
        "0001-01-01 00:00:00.000000Z\t0001-01-01",
        "9999-12-31 23:59:59.999999Z\t9999-12-31",
    ]


def test_a_sliced_batch_encodes_only_its_rows() -> None:
    batch = pa.record_batch({"b": pa.array([b"\x01", b"\x02\x03", None]), "s": pa.array(["a", "b", "c"])})
    assert encode_batch(batch.slice(1)) == b"\\\\x0203\tb\n\\N\tc\n"


def test_an_empty_batch_is_empty() -> None:
    assert encode_batch(pa.record_batch({"i": pa.array([], pa.int64())})) == b""
