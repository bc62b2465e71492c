"""What a PostgreSQL table's schema carries for an exact copy: generated
columns through table mappings, user-defined types, xml columns."""

from __future__ import annotations

from typing import Any

import pytest

from conveyor.connectors.postgres.user_types import xml_columns
from conveyor.core import types as t
from conveyor.core.schema import Column, NativeType, TableRef, TableSchema
from conveyor.core.types import Kind
from conveyor.replication.mappings import TableMappings

DOC = NativeType("app", "doc", "CREATE DOMAIN app.doc AS xml", base="xml")
DOCS = NativeType("app", "Docs", 'CREATE DOMAIN app."Docs" AS app.doc[]', base="app.doc[]")
POSINT = NativeType("app", "posint", "CREATE DOMAIN app.posint AS integer", base="integer")

GEN = TableSchema(
    TableRef("public", "gen"),
    (
        Column("id", t.simple(Kind.INT32, native="integer"), nullable=False),
        Column("x", t.simple(Kind.INT32, native="integer")),
        Column("g", t.simple(Kind.INT32, native="integer"), generated="(x * 2)"),
    ),
    ("id",),
    native_engine="postgres",
    native_types=(POSINT,),
)


def _rules(*transformations: dict[str, Any]) -> TableMappings:
    selection = {
        "rule-type": "selection",
        "rule-id": "1",
        "rule-name": "all",
        "object-locator": {"schema-name": "%", "table-name": "%"},
        "rule-action": "include",
    }
    return TableMappings.parse({"rules": [selection, *transformations]}, "test")


def _column_rule(action: str, column: str, value: str | None = None) -> dict[str, Any]:
    rule: dict[str, Any] = {
        "rule-type": "transformation",
        "rule-id": "2",
        "rule-name": "c",
        "rule-target": "column",
        "object-locator": {"schema-name": "%", "table-name": "%", "column-name": column},
        "rule-action": action,
    }
    if value is not None:
        rule["value"] = value
    return rule


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        ((), [("id", None), ("x", None), ("g", "(x * 2)")]),
        # The expression names source columns: once one is renamed or removed,
        # the target gets the values as a plain column.
        ((_column_rule("rename", "x", "x2"),), [("id", None), ("x2", None), ("g", None)]),
        ((_column_rule("remove-column", "x"),), [("id", None), ("g", None)]),
        ((_column_rule("convert-uppercase", "%"),), [("ID", None), ("X", None), ("G", None)]),
    ],
)
def test_generated_expressions_through_mappings(
    rules: tuple[dict[str, Any], ...], expected: list[tuple[str, str | None]]
) -> None:
    [mapped] = _rules(*rules).select([GEN])
    assert [(c.name, c.generated) for c in mapped.target.columns] == expected
    assert mapped.target.native_types == (POSINT,), "the source's user-defined types travel with the table"


def test_change_capture_carries_the_table_without_generated_columns() -> None:
    stored = GEN.without_generated()
    assert stored.column_names == ["id", "x"]
    assert stored.primary_key == ("id",)
    assert stored.native_types == (POSINT,)


@pytest.mark.parametrize(
    ("native", "native_types", "is_xml"),
    [
        ("xml", (), True),
        ("xml[]", (), True),
        ("text", (), False),
        ("doc", (DOC,), True),
        ("app.doc", (DOC,), True),
        ('app."Docs"', (DOC, DOCS), True),  # a domain over an array of a domain over xml
        ("posint", (POSINT,), False),
        ("doc", (), False),  # a type of that name that is no domain over xml
    ],
)
def test_xml_columns(native: str, native_types: tuple[NativeType, ...], is_xml: bool) -> None:
    table = TableSchema(
        TableRef("public", "d"),
        (
            Column("id", t.simple(Kind.INT32, native="integer")),
            Column("c", t.simple(Kind.TEXT, native=native)),
        ),
        native_engine="postgres",
        native_types=native_types,
    )
    assert xml_columns(table) == (["c"] if is_xml else [])
