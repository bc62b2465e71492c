"""Canonical text of validation: (input, PostgreSQL's output) tables, and the
ValidationSettings keys validation reports instead of ignoring."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from conveyor.core import types as t
from conveyor.core.canonical_text import (
    date_text,
    decimal_text,
    float_text,
    interval_text,
    json_document,
    quote_element,
    render_column,
    timestamp_text,
)
from conveyor.core.errors import ConfigError
from conveyor.core.types import Kind
from conveyor.replication.runnable import check_runnable
from conveyor.replication.settings import ValidationSettings
from conveyor.replication.validation import settings_notes
from conveyor.stack.loader import load_stack

US_PER_DAY = 86_400_000_000


@pytest.mark.parametrize(
    ("value", "single", "printed"),
    [
        (0.1, False, "0.1"),
        (1e15, False, "1e+15"),
        (123456789012345.0, False, "123456789012345"),
        (1e-5, False, "1e-05"),
        (0.0001, False, "0.0001"),
        (-0.0, False, "-0"),
        (float("nan"), False, "NaN"),
        (float("-inf"), False, "-Infinity"),
        (5e-324, False, "5e-324"),
        (100000.0, True, "100000"),
        (1000000.0, True, "1e+06"),
        (0.1, True, "0.1"),
        (1 / 3, True, "0.33333334"),
    ],
)
def test_float_text(value: float, single: bool, printed: str) -> None:
    assert float_text(value, single) == printed


@pytest.mark.parametrize(
    ("months", "days", "micros", "printed"),
    [
        (0, 0, 0, "00:00:00"),
        (14, -3, 14_706_789_000, "1 year 2 mons -3 days +04:05:06.789"),
        (0, -1, 7_380_000_000, "-1 days +02:03:00"),
        (-14, 3, -1_500_000, "-1 years -2 mons +3 days -00:00:01.5"),
        (1, 1, 0, "1 mon 1 day"),
        (0, 0, 100 * 3_600_000_000, "100:00:00"),
    ],
)
def test_interval_text(months: int, days: int, micros: int, printed: str) -> None:
    assert interval_text(months, days, micros * 1000) == printed


@pytest.mark.parametrize(
    ("micros", "zone", "printed"),
    [
        (0, False, "1970-01-01 00:00:00"),
        (1, True, "1970-01-01 00:00:00.000001+00"),
        (t.INT64_INFINITY, False, "infinity"),
        (-t.INT64_INFINITY, True, "-infinity"),
        (-62_167_219_200_000_000, False, "0001-01-01 00:00:00 BC"),  # year 0
        (-62_135_596_800_000_000 - US_PER_DAY, True, "0001-12-31 00:00:00+00 BC"),
        (253_402_300_800_000_000, False, "10000-01-01 00:00:00"),
    ],
)
def test_timestamp_text(micros: int, zone: bool, printed: str) -> None:
    assert timestamp_text(micros, zone) == printed


def test_dates_and_decimals() -> None:
    assert [date_text(d) for d in (0, t.DATE_INFINITY, -t.DATE_INFINITY, -2_440_588)] == [
        "1970-01-01",
        "infinity",
        "-infinity",
        "4714-11-24 BC",
    ]
    assert [decimal_text(Decimal(v)) for v in ("1.50", "-0.00", "1E+2", "NaN")] == [
        "1.50",
        "0.00",
        "100",
        "NaN",
    ]


@pytest.mark.parametrize(
    ("element", "printed"),
    [("a", "a"), ("", '""'), ("null", '"null"'), ("a b", '"a b"'), ('q"\\', '"q\\"\\\\"'), ("{", '"{"')],
)
def test_array_elements_quoted_as_array_out(element: str, printed: str) -> None:
    assert quote_element(element) == printed


def test_arrays_render_nested_and_with_infinities_without_python_datetimes() -> None:
    stamps = pa.array([[t.INT64_INFINITY, 0, None], None, []], pa.list_(pa.int64())).cast(
        pa.list_(pa.timestamp("us"))
    )
    assert render_column(stamps, t.array(t.simple(Kind.TIMESTAMP))) == [
        '{infinity,"1970-01-01 00:00:00",NULL}',
        None,
        "{}",
    ]
    nested = pa.array([[[1, 2], [3, 4]]], pa.list_(pa.list_(pa.int32())))
    assert render_column(nested, t.array(t.simple(Kind.INT32))) == ["{{1,2},{3,4}}"]


def test_json_compared_as_documents() -> None:
    assert json_document('{ "b": 1, "a": [1.0, 2] }') == json_document('{"a": [1, 2.00], "b": 1}')
    assert json_document('{"a": 1}') != json_document('{"a": 2}')
    assert json_document("not json") == "not json"
    # json keeps duplicate keys: dropping one is a different value
    assert json_document('{"b":1,"a":2,"a":3}') != json_document('{"b":1,"a":3}')
    assert json_document('{"b":1,"a":2,"a":3}') == json_document('{"a":2, "a":3, "b":1}')
    # numbers keep every digit (more than the decimal module's default 28)
    big, bigger = "123456789012345678901234567890", "123456789012345678901234567891"
    assert json_document(f'{{"n": {big}}}') != json_document(f'{{"n": {bigger}}}')
    assert json_document(f"[{big}.123456789]") != json_document(f"[{big}.123456780]")
    assert json_document(f"[{big}.10]") == json_document(f"[{big}.1]")


def test_settings_not_acted_on_are_reported() -> None:
    assert settings_notes(ValidationSettings()) == []
    notes = settings_notes(
        ValidationSettings.model_validate(
            {
                "RecordFailureDelayLimitInMinutes": 3,
                "ValidationMode": "GROUP_LEVEL",
                "HandleCollationDiff": True,
            }
        )
    )
    assert [n.split(":")[0] for n in notes] == [
        "RecordFailureDelayLimitInMinutes",
        "ValidationMode GROUP_LEVEL",
    ]  # HandleCollationDiff is acted on: keys are paired whatever the collations


def test_validation_only_is_refused_for_change_capture_tasks(tmp_path: Path) -> None:
    stack_file = tmp_path / "conveyor.yaml"
    stack_file.write_text(
        "endpoints:\n"
        "  src: {engine: sqlite, path: ./s.sqlite}\n"
        "  dw: {engine: duckdb, path: ./dw.duckdb}\n"
        "tasks:\n"
        "  sync: {source: src, target: dw, migration_type: full-load-and-cdc,\n"
        "         settings: {ValidationSettings: {ValidationOnly: true}}}\n"
    )
    with pytest.raises(ConfigError, match="ValidationOnly works with migration_type full-load only"):
        check_runnable(load_stack(stack_file), "sync")
