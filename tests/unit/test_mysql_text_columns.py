"""Whole-column casts of MySQL text values (connectors/mysql/text_columns.py):
each cast either equals what PyMySQL's converter and ``pa.array`` make of the
same texts, or declines (None) so the values are converted one by one."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest
from pymysql import converters

from conveyor.connectors.mysql.text_columns import text_cast
from conveyor.core import types as t
from conveyor.core.schema import Column
from conveyor.core.types import ColumnType, Kind


def _utc(value: Any) -> Any:
    return value.replace(tzinfo=dt.UTC) if isinstance(value, dt.datetime) else value


# (type, texts, PyMySQL's converter, then what the full load did to its value)
TAKEN: list[tuple[ColumnType, list[str | None], Callable[[str], Any], Callable[[Any], Any]]] = [
    (t.simple(Kind.INT16, "year"), ["0", "1901", "2155", None], int, lambda v: v),
    (t.simple(Kind.INT64, "int unsigned"), ["4294967295", "0"], int, lambda v: v),
    (t.simple(Kind.INT64, "bigint"), ["-9223372036854775808", "9223372036854775807"], int, lambda v: v),
    (t.decimal(20, 0, "bigint unsigned"), ["18446744073709551615", "0", None], Decimal, lambda v: v),
    (
        t.decimal(38, 10, "decimal(38,10)"),
        ["-0.0000000001", "9999999999999999999999999999.9999999999"],
        Decimal,
        lambda v: v,
    ),
    (t.decimal(12, 2, "decimal(12,2)"), ["-0.01", "0.00", "-0.00"], Decimal, lambda v: v),
    (
        t.simple(Kind.FLOAT64, "double"),
        ["-0", "2.2250738585072014e-308", "1.7976931348623157e308", "0.1"],
        float,
        lambda v: v,
    ),
    (
        t.simple(Kind.FLOAT32, "float"),
        ["16777216", "3.4028234663852886e38", "1.401298464324817e-45"],
        float,
        lambda v: v,
    ),
    (
        t.simple(Kind.DATE, "date"),
        ["0001-01-01", "2024-02-29", "9999-12-31", None],
        converters.convert_date,
        lambda v: v,
    ),
    (
        t.simple(Kind.TIMESTAMP, "datetime(6)"),
        ["0001-01-01 00:00:00.5", "2000-01-01 00:00:00.000001", "9999-12-31 23:59:59.999999"],
        converters.convert_datetime,
        lambda v: v,
    ),
    (
        t.simple(Kind.TIMESTAMPTZ, "timestamp"),
        ["1970-01-01 00:00:01", "2038-01-19 03:14:07"],
        converters.convert_datetime,
        _utc,
    ),
    (t.simple(Kind.TEXT, "varchar(10)"), ["", "naïve", "日本", "\x00a", None], str, lambda v: v),
    (t.simple(Kind.JSON, "json"), ['{"a": [1, "é"]}', "null"], str, lambda v: v),
    (t.simple(Kind.ENUM, "enum"), ["small", "large"], str, lambda v: v),
]

# Texts no column cast may take: PyMySQL hands them back as text, which the load reports.
DECLINED: list[tuple[ColumnType, list[str | None]]] = [
    (t.simple(Kind.DATE, "date"), ["2024-01-01", "0000-00-00"]),
    (t.simple(Kind.DATE, "date"), ["2024-00-10"]),
    (t.simple(Kind.DATE, "date"), ["0000-01-01"]),
    (t.simple(Kind.TIMESTAMP, "datetime"), ["0000-01-01 00:00:00"]),
    (t.simple(Kind.TIMESTAMP, "datetime"), ["2024-01-00 00:00:00"]),
    (t.simple(Kind.TIMESTAMPTZ, "timestamp"), ["0000-00-00 00:00:00", None]),
    (t.decimal(12, 2, "decimal(12,2)"), ["1.234"]),
    (t.simple(Kind.INT16, "tinyint unsigned"), ["32768"]),
]


def _column(ctype: ColumnType) -> Column:
    return Column(name="c", type=ctype, nullable=True)


@pytest.mark.parametrize(
    ("ctype", "texts", "decode", "then"), TAKEN, ids=lambda x: getattr(x, "native", None)
)
@pytest.mark.parametrize("as_bytes", [False, True], ids=["str", "bytes"])
def test_a_taken_column_equals_what_pymysql_values_make(
    ctype: ColumnType,
    texts: list[str | None],
    decode: Callable[[str], Any],
    then: Callable[[Any], Any],
    as_bytes: bool,
) -> None:
    """Also from the texts as UTF-8 bytes, as MySQL Connector/Python's C
    extension hands every value over (snapshot_connection)."""
    cast = text_cast(_column(ctype), (ctype.native or "").split("(")[0].split(" ")[0])
    assert cast is not None
    got = cast([None if v is None else v.encode() for v in texts] if as_bytes else texts)
    want = pa.array([None if v is None else then(decode(v)) for v in texts], type=ctype.arrow())
    assert got is not None
    assert got.type == ctype.arrow()
    assert got.equals(want), (got, want)


@pytest.mark.parametrize(("ctype", "texts"), DECLINED, ids=lambda x: getattr(x, "native", None))
@pytest.mark.parametrize("as_bytes", [False, True], ids=["str", "bytes"])
def test_a_value_without_an_exact_cast_declines_the_column(
    ctype: ColumnType, texts: list[str | None], as_bytes: bool
) -> None:
    cast = text_cast(_column(ctype), (ctype.native or "").split("(")[0].split(" ")[0])
    assert cast is not None
    assert cast([None if v is None else v.encode() for v in texts] if as_bytes else texts) is None


@pytest.mark.parametrize(
    "ctype",
    [
        t.simple(Kind.BOOLEAN, "bit(1)"),
        t.simple(Kind.INT64, "bit(12)"),
        t.decimal(20, 0, "bit(64)"),
        t.simple(Kind.TIME, "time"),
        t.simple(Kind.NUMERIC, "decimal(65,30)"),
        t.simple(Kind.UUID, "uuid"),
    ],
)
def test_bits_times_and_uuids_are_converted_value_by_value(ctype: ColumnType) -> None:
    assert text_cast(_column(ctype), (ctype.native or "").split("(")[0].split(" ")[0]) is None


@pytest.mark.parametrize("kind", [Kind.TEXT, Kind.JSON, Kind.ENUM])
def test_bytes_that_are_not_utf8_decline_the_column(kind: Kind) -> None:
    """The value-by-value path then reports the value (read_values._string)."""
    cast = text_cast(_column(t.simple(kind, "varchar(10)")), "varchar")
    assert cast is not None
    assert cast([b"fine", b"\xff\xfe"]) is None
