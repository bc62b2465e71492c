"""The pgoutput v1 decoder on handcrafted messages, and text values to Python values."""

from __future__ import annotations

import math
import struct
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pyarrow as pa
import pytest

from conveyor.connectors.arrow_rows import Unrepresentable
from conveyor.connectors.postgres import pgoutput
from conveyor.connectors.postgres.pgoutput import UNCHANGED, Decoder, format_lsn, parse_lsn
from conveyor.connectors.postgres.text_values import converter, parse_array
from conveyor.core import types as t
from conveyor.core.calendar import days_from_civil
from conveyor.core.errors import DataError
from conveyor.core.types import Kind


def _s(text: str) -> bytes:
    return text.encode() + b"\x00"


def _tuple(*values: str | object | None) -> bytes:
    out = struct.pack("!h", len(values))
    for v in values:
        if v is None:
            out += b"n"
        elif v is UNCHANGED:
            out += b"u"
        else:
            assert isinstance(v, str)
            data = v.encode()
            out += b"t" + struct.pack("!i", len(data)) + data
    return out


TS = 789_000_000  # microseconds after 2000-01-01
TS_DT = datetime(2000, 1, 1, tzinfo=UTC) + timedelta(microseconds=TS)


def test_begin_and_commit() -> None:
    d = Decoder()
    begin = d.decode(b"B" + struct.pack("!QqI", 0x1_0000_0010, TS, 4242))
    assert begin == pgoutput.Begin(0x1_0000_0010, TS_DT, 4242)
    commit = d.decode(b"C" + struct.pack("!bQQq", 0, 0x1_0000_0010, 0x1_0000_0040, TS))
    assert commit == pgoutput.Commit(0x1_0000_0010, 0x1_0000_0040, TS_DT)


def test_relation() -> None:
    payload = (
        b"R"
        + struct.pack("!I", 16384)
        + _s("public")
        + _s("tëst")
        + b"d"
        + struct.pack("!h", 2)
        + b"\x01"
        + _s("id")
        + struct.pack("!Ii", 23, -1)
        + b"\x00"
        + _s("amount")
        + struct.pack("!Ii", 1700, (12 << 16 | 2) + 4)
    )
    rel = Decoder().decode(payload)
    assert rel == pgoutput.Relation(
        16384,
        "public",
        "tëst",
        "d",
        (
            pgoutput.RelationColumn(True, "id", 23, -1),
            pgoutput.RelationColumn(False, "amount", 1700, (12 << 16 | 2) + 4),
        ),
    )
    # pg_catalog relations have an empty namespace
    empty = b"R" + struct.pack("!I", 1) + _s("") + _s("x") + b"f" + struct.pack("!h", 0)
    assert Decoder().decode(empty) == pgoutput.Relation(1, "pg_catalog", "x", "f", ())


def test_insert_update_delete_tuples() -> None:
    d = Decoder()
    ins = d.decode(b"I" + struct.pack("!I", 7) + b"N" + _tuple("1", None, "é\t\n🚀", ""))
    assert ins == pgoutput.Insert(7, ["1", None, "é\t\n🚀", ""])

    upd = d.decode(b"U" + struct.pack("!I", 7) + b"N" + _tuple("1", UNCHANGED, "x"))
    assert upd == pgoutput.Update(7, None, None, ["1", UNCHANGED, "x"])
    assert isinstance(upd, pgoutput.Update) and upd.new[1] is UNCHANGED

    upd_k = d.decode(b"U" + struct.pack("!I", 7) + b"K" + _tuple("1", None) + b"N" + _tuple("2", "b"))
    assert upd_k == pgoutput.Update(7, ["1", None], None, ["2", "b"])
    upd_o = d.decode(b"U" + struct.pack("!I", 7) + b"O" + _tuple("1", "a") + b"N" + _tuple("1", "b"))
    assert upd_o == pgoutput.Update(7, None, ["1", "a"], ["1", "b"])

    assert d.decode(b"D" + struct.pack("!I", 7) + b"K" + _tuple("1", None)) == pgoutput.Delete(
        7, ["1", None], None
    )
    assert d.decode(b"D" + struct.pack("!I", 7) + b"O" + _tuple("1", "a")) == pgoutput.Delete(
        7, None, ["1", "a"]
    )


def test_truncate_type_origin_message() -> None:
    d = Decoder()
    trunc = d.decode(b"T" + struct.pack("!ib", 2, 3) + struct.pack("!II", 10, 4_000_000_000))
    assert trunc == pgoutput.Truncate((10, 4_000_000_000), 3)
    assert d.decode(b"Y" + struct.pack("!I", 99) + _s("public") + _s("mood")) == pgoutput.Type(
        99, "public", "mood"
    )
    assert d.decode(b"O" + struct.pack("!Q", 5) + _s("node1")) == pgoutput.Origin(5, "node1")
    msg = d.decode(b"M" + struct.pack("!bQ", 0, 77) + _s("conveyor_heartbeat") + struct.pack("!i", 2) + b"hi")
    assert msg == pgoutput.Message(False, 77, "conveyor_heartbeat", b"hi")
    assert d.decode(b"Z123") is None  # unknown kinds are skipped


def test_malformed_is_a_data_error() -> None:
    with pytest.raises(DataError, match="malformed"):
        Decoder().decode(b"B\x00\x01")
    with pytest.raises(DataError, match="tag"):
        Decoder().decode(b"I" + struct.pack("!I", 7) + b"N" + struct.pack("!h", 1) + b"x")


def test_lsn_text() -> None:
    assert format_lsn(0x16_B374_D848) == "16/B374D848"
    assert parse_lsn("16/B374D848") == 0x16_B374_D848
    assert parse_lsn(format_lsn(0)) == 0
    with pytest.raises(ValueError, match="LSN"):
        parse_lsn("nope")


# -- text values --------------------------------------------------------------


def conv(kind: Kind, text: str) -> object:
    return converter(t.simple(kind))(text)


def test_scalars() -> None:
    assert conv(Kind.INT16, "-32768") == -32768
    assert conv(Kind.INT64, "9223372036854775807") == 2**63 - 1
    assert converter(t.decimal(12, 2))("-9999999999.99") == Decimal("-9999999999.99")
    assert conv(Kind.NUMERIC, "NaN") == "NaN"
    assert conv(Kind.NUMERIC, "1.000000000000000000000000000000000000000001") == (
        "1.000000000000000000000000000000000000000001"
    )
    assert math.isnan(conv(Kind.FLOAT64, "NaN"))  # type: ignore[arg-type]
    assert conv(Kind.FLOAT64, "Infinity") == math.inf
    assert conv(Kind.FLOAT64, "-Infinity") == -math.inf
    # float4 comes back as the float32 value, as Arrow's float32 gives it
    assert conv(Kind.FLOAT32, "1.1") == pa.array([1.1], pa.float32()).to_pylist()[0]
    assert conv(Kind.BOOLEAN, "t") is True
    assert conv(Kind.BOOLEAN, "f") is False
    assert conv(Kind.BYTES, "\\x00ff5c") == b"\x00\xff\\"
    assert conv(Kind.BYTES, "a\\000\\\\b") == b"a\x00\\b"  # bytea_output=escape
    assert conv(Kind.TEXT, "x") == "x"
    assert conv(Kind.UUID, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11") == "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
    assert converter(t.simple(Kind.TEXT, native="inet"))("10.0.0.1") == "10.0.0.1"


def test_dates_and_times() -> None:
    assert conv(Kind.DATE, "0001-01-01") == date(1, 1, 1)
    assert conv(Kind.DATE, "9999-12-31") == date(9999, 12, 31)
    assert conv(Kind.DATE, "infinity") == "infinity"
    assert conv(Kind.DATE, "-infinity") == "-infinity"
    # out of Python's range: date32's day count, exactly
    # 44 BC is astronomical year -43; checked against pyarrow's own text of that day
    assert conv(Kind.DATE, "0044-03-15 BC") == days_from_civil(-43, 3, 15)
    assert pa.array([days_from_civil(-43, 3, 15)], pa.date32()).cast(pa.string())[0].as_py() == "-0043-03-15"
    assert conv(Kind.DATE, "4714-11-24 BC") == -2440588  # PostgreSQL's first day
    assert conv(Kind.DATE, "5874897-12-31") == 2145042905  # and its last
    assert conv(Kind.TIME, "23:59:59.999999") == time(23, 59, 59, 999999)
    assert conv(Kind.TIME, "24:00:00") == 86_400_000_000
    assert conv(Kind.TIMESTAMP, "0001-01-01 00:00:00") == datetime(1, 1, 1)
    assert conv(Kind.TIMESTAMP, "9999-12-31 23:59:59.999999") == datetime(9999, 12, 31, 23, 59, 59, 999999)
    assert conv(Kind.TIMESTAMP, "-infinity") == "-infinity"
    tz = conv(Kind.TIMESTAMPTZ, "2024-01-02 03:04:05.5+05:30")
    assert tz == datetime(2024, 1, 1, 21, 34, 5, 500000, tzinfo=UTC)
    assert isinstance(tz, datetime) and tz.tzinfo is UTC
    assert conv(Kind.TIMESTAMPTZ, "0001-01-01 00:00:00+00") == datetime(1, 1, 1, tzinfo=UTC)
    assert conv(Kind.TIMESTAMPTZ, "9999-12-31 23:59:59.999999+00") == datetime(
        9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC
    )
    assert conv(Kind.TIMESTAMPTZ, "2024-01-02 03:04:05-03:30") == datetime(2024, 1, 2, 6, 34, 5, tzinfo=UTC)
    assert conv(Kind.TIMESTAMPTZ, "infinity") == "infinity"
    assert conv(Kind.TIMESTAMPTZ, "0001-01-01 00:00:00+00 BC") == -62_167_219_200_000_000
    assert conv(Kind.TIMESTAMPTZ, "10000-01-01 05:30:00+05:30") == 253_402_300_800_000_000
    assert conv(Kind.TIMESTAMP, "294247-01-10 04:00:54.775806") == 2**63 - 2
    past = conv(Kind.TIMESTAMP, "294276-12-31 23:59:59")
    assert isinstance(past, Unrepresentable) and "int64" in past.reason


def mdn(months: int, days: int, nanos: int) -> pa.MonthDayNano:
    return pa.MonthDayNano([months, days, nanos])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("P1Y2M-3DT4H5M6.789S", mdn(14, -3, (4 * 3600 + 5 * 60 + 6) * 10**9 + 789_000_000)),
        ("PT-0.000001S", mdn(0, 0, -1000)),
        ("PT0S", mdn(0, 0, 0)),
        ("P-1Y-2M3DT-4H-5M-6S", mdn(-14, 3, -(4 * 3600 + 5 * 60 + 6) * 10**9)),
        ("P1DT-0.5S", mdn(0, 1, -500_000_000)),
        ("P178000000Y", mdn(178000000 * 12, 0, 0)),
        # IntervalStyle postgres
        ("1 year 2 mons -3 days +04:05:06.789", mdn(14, -3, (4 * 3600 + 5 * 60 + 6) * 10**9 + 789_000_000)),
        ("-00:00:00.000001", mdn(0, 0, -1000)),
        ("00:00:00", mdn(0, 0, 0)),
        ("3 days", mdn(0, 3, 0)),
    ],
)
def test_interval(text: str, expected: pa.MonthDayNano) -> None:
    assert conv(Kind.INTERVAL, text) == expected


def test_arrays() -> None:
    assert parse_array('{1,NULL,"a,b"}') == ["1", None, "a,b"]
    assert parse_array("{}") == []
    assert parse_array('{"a\\\\b","c\\"d","{e}",NULL,"","NULL"," x "}') == [
        "a\\b",
        'c"d',
        "{e}",
        None,
        "",
        "NULL",
        " x ",
    ]
    assert parse_array("[0:1]={1,2}") == ["1", "2"]
    assert parse_array("{{1,2},{3,NULL}}") == [["1", "2"], ["3", None]]
    ints = converter(t.array(t.simple(Kind.INT32)))
    assert ints("{1,NULL,-3}") == [1, None, -3]
    assert converter(t.array(t.simple(Kind.BYTES)))('{"\\\\x00ff",NULL}') == [b"\x00\xff", None]
    assert converter(t.array(t.decimal(5, 2)))("{1.50,NULL}") == [Decimal("1.50"), None]
    with pytest.raises(DataError, match="malformed"):
        parse_array('{"a"x}')
