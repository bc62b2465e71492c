"""The engine-neutral type system and PostgreSQL's mapping onto it."""

from __future__ import annotations

import pyarrow as pa
import pytest

from conveyor.connectors.postgres.types import NativeColumn, from_native, to_ddl
from conveyor.core import types as t
from conveyor.core.schema import Column, TableRef, TableSchema
from conveyor.core.types import ColumnType, Kind


def numeric_typmod(precision: int, scale: int) -> int:
    return ((precision << 16) | scale) + 4


@pytest.mark.parametrize(
    ("native", "expected"),
    [
        (NativeColumn("int2", "smallint", -1, False, False), t.simple(Kind.INT16)),
        (NativeColumn("int8", "bigint", -1, False, False), t.simple(Kind.INT64)),
        (NativeColumn("numeric", "numeric(12,2)", numeric_typmod(12, 2), False, False), t.decimal(12, 2)),
        (NativeColumn("numeric", "numeric(38,10)", numeric_typmod(38, 10), False, False), t.decimal(38, 10)),
        (
            NativeColumn("numeric", "numeric(60,2)", numeric_typmod(60, 2), False, False),
            t.simple(Kind.NUMERIC),
        ),
        (NativeColumn("numeric", "numeric", -1, False, False), t.simple(Kind.NUMERIC)),
        (NativeColumn("varchar", "character varying(32)", 36, False, False), t.varchar(32)),
        (NativeColumn("varchar", "character varying", -1, False, False), t.varchar(None)),
        (
            NativeColumn("timestamptz", "timestamp with time zone", -1, False, False),
            t.simple(Kind.TIMESTAMPTZ),
        ),
        (NativeColumn("jsonb", "jsonb", -1, False, False), t.simple(Kind.JSON)),
        (NativeColumn("int4", "integer[]", -1, True, False), t.array(t.simple(Kind.INT32))),
        (NativeColumn("mood", "mood", -1, False, True, ("ok", "sad")), t.enum(("ok", "sad"))),
        (NativeColumn("inet", "inet", -1, False, False), t.simple(Kind.TEXT)),
    ],
)
def test_postgres_native_types(native: NativeColumn, expected: ColumnType) -> None:
    assert from_native(native) == expected


@pytest.mark.parametrize(
    ("ctype", "same_engine", "ddl"),
    [
        (t.decimal(12, 2, native="numeric(12,2)"), True, "numeric(12,2)"),
        (t.decimal(12, 2, native="DECIMAL(12,2)"), False, "numeric(12,2)"),
        (t.varchar(10, native="varchar(10)"), False, "varchar(10)"),
        (t.array(t.simple(Kind.UUID)), False, "uuid[]"),
        (t.simple(Kind.JSON, native="json"), True, "json"),
        (t.simple(Kind.TIMESTAMPTZ), False, "timestamp(6) with time zone"),
    ],
)
def test_postgres_ddl(ctype: ColumnType, same_engine: bool, ddl: str) -> None:
    assert to_ddl(ctype, same_engine) == ddl


@pytest.mark.parametrize(
    ("ctype", "arrow"),
    [
        (t.decimal(38, 10), pa.decimal128(38, 10)),
        (t.simple(Kind.NUMERIC), pa.string()),
        (t.simple(Kind.TIMESTAMPTZ), pa.timestamp("us", tz="UTC")),
        (t.simple(Kind.INTERVAL), pa.month_day_nano_interval()),
        (t.array(t.simple(Kind.TEXT)), pa.list_(pa.string())),
    ],
)
def test_arrow_types_in_flight(ctype: ColumnType, arrow: pa.DataType) -> None:
    assert ctype.arrow() == arrow


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": Kind.DECIMAL, "precision": 39, "scale": 0}, "precision 39"),
        ({"kind": Kind.DECIMAL, "precision": 5, "scale": 6}, "scale 6"),
        ({"kind": Kind.ARRAY}, "element"),
    ],
)
def test_invalid_types_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ColumnType(**kwargs)  # type: ignore[arg-type]


def test_table_schema_rejects_duplicate_columns_and_unknown_keys() -> None:
    ref = TableRef("s", "t")
    col = Column("a", t.simple(Kind.INT32))
    with pytest.raises(ValueError, match="duplicate columns: a"):
        TableSchema(ref, (col, col))
    with pytest.raises(ValueError, match="unknown columns: b"):
        TableSchema(ref, (col,), ("b",))
    table = TableSchema(ref, (col, Column("b", t.simple(Kind.TEXT))), ("a", "b"))
    assert table.with_columns([col]).primary_key == ("a",)
