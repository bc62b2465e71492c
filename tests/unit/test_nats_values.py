"""The nats target's JSON encoding of values: exact, or refused."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from conveyor.connectors.nats.envelope import message_id, subject_token, table_subject
from conveyor.connectors.nats.values import Unrepresentable, column_values, encode_value
from conveyor.core.schema import TableRef
from conveyor.core.types import (
    DATE_INFINITY,
    INT64_NEG_INFINITY,
    ColumnType,
    Kind,
    array,
    decimal,
    simple,
)

ENCODED: list[tuple[ColumnType, Any, Any]] = [
    (simple(Kind.INT64), 2**63 - 1, 2**63 - 1),
    (decimal(38, 10), Decimal("12345678901234567890.0123456789"), "12345678901234567890.0123456789"),
    (decimal(10, 2), Decimal("1E+2"), "100"),
    (simple(Kind.NUMERIC), "NaN", "NaN"),
    (simple(Kind.NUMERIC), Decimal("-0.000001"), "-0.000001"),
    (simple(Kind.FLOAT64), 0.1, 0.1),
    (simple(Kind.FLOAT64), float("nan"), "NaN"),
    (simple(Kind.FLOAT32), float("-inf"), "-Infinity"),
    (simple(Kind.TEXT), "héllo \u0000", "héllo \u0000"),
    (simple(Kind.BYTES), b"\x00\xff", "AP8="),
    (simple(Kind.BOOLEAN), False, False),
    (simple(Kind.DATE), date(2024, 2, 29), "2024-02-29"),
    (simple(Kind.DATE), "infinity", "infinity"),
    (simple(Kind.DATE), DATE_INFINITY, "infinity"),
    (simple(Kind.TIME), time(23, 59, 59, 1), "23:59:59.000001"),
    (simple(Kind.TIMESTAMP), datetime(2024, 1, 2, 3, 4, 5), "2024-01-02T03:04:05.000000"),
    (simple(Kind.TIMESTAMP), INT64_NEG_INFINITY, "-infinity"),
    (
        simple(Kind.TIMESTAMPTZ),
        datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=timezone(timedelta(hours=2))),
        "2024-01-02T01:04:05.000006Z",
    ),
    (simple(Kind.INTERVAL), pa.MonthDayNano([1, 2, 3000]), {"months": 1, "days": 2, "nanoseconds": 3000}),
    (array(simple(Kind.INT32)), [1, None, 3], [1, None, 3]),
    (simple(Kind.JSON), '{"b": 1, "a": 2.50}', '{"b": 1, "a": 2.50}'),
]


@pytest.mark.parametrize(("ctype", "value", "expected"), ENCODED)
def test_values_are_encoded_exactly(ctype: ColumnType, value: Any, expected: Any) -> None:
    encoded = encode_value(ctype, value)
    assert encoded == expected
    json.dumps(encoded, allow_nan=False)  # always valid JSON


REFUSED: list[tuple[ColumnType, Any]] = [
    (simple(Kind.TEXT), "lone \udc80"),
    (simple(Kind.INT32), "12"),
    (simple(Kind.INT32), True),
    (simple(Kind.DATE), 10**7),  # beyond year 9999
    (simple(Kind.TIMESTAMPTZ), datetime(2024, 1, 1)),  # no time zone
    (simple(Kind.TIMESTAMP), datetime(2024, 1, 1, tzinfo=UTC)),
    (simple(Kind.BOOLEAN), 1),
    (decimal(10, 2), 1.5),  # a float is not an exact decimal
]


@pytest.mark.parametrize(("ctype", "value"), REFUSED)
def test_values_the_encoding_cannot_carry_are_refused(ctype: ColumnType, value: Any) -> None:
    with pytest.raises(Unrepresentable):
        encode_value(ctype, value)


def test_full_load_columns_keep_infinities_and_refuse_what_python_cannot_hold() -> None:
    stamps = pa.array([0, 2**63 - 1, None], pa.timestamp("us", tz="UTC"))
    values = column_values(simple(Kind.TIMESTAMPTZ), stamps)
    encoded = [encode_value(simple(Kind.TIMESTAMPTZ), v) for v in values]
    assert encoded == ["1970-01-01T00:00:00.000000Z", "infinity", None]
    far = pa.array([[19723], [10**7]], pa.list_(pa.int32())).cast(pa.list_(pa.date32()))
    values = column_values(array(simple(Kind.DATE)), far)
    assert encode_value(array(simple(Kind.DATE)), values[0]) == ["2024-01-01"]
    with pytest.raises(Unrepresentable):
        encode_value(array(simple(Kind.DATE)), values[1])


def test_subjects_and_ids() -> None:
    assert subject_token("my table.v2*>") == "my_table_v2__"
    assert table_subject("cdc", TableRef("public", "order lines")) == "cdc.public.order_lines"
    assert message_id("t", "lsn=0/1", "3") == "t:lsn=0/1:3"
    long = message_id("t", "x" * 300)
    assert len(long) < 140 and long == message_id("t", "x" * 300)
