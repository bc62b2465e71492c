"""What a source table's new shape means for the target during change capture
(replication/cdc/ddl.py), as a table of cases."""

from __future__ import annotations

from typing import Any

import pytest

from conveyor.core.schema import Column, TableRef, TableSchema
from conveyor.core.types import Kind, simple
from conveyor.replication.cdc.ddl import plan_shape_change
from conveyor.replication.mapped_table import MappedTable
from conveyor.replication.mappings import TableMappings

MAPPINGS = TableMappings.parse(
    {
        "rules": [
            {
                "rule-type": "selection",
                "rule-id": "1",
                "rule-name": "all",
                "object-locator": {"schema-name": "s", "table-name": "%"},
                "rule-action": "include",
            }
        ]
    },
    "test",
)


def shape(*columns: str) -> MappedTable:
    """A table s.t keyed by id; a column "name:text" has kind text, else int64."""
    cols = [Column("id", simple(Kind.INT64))]
    for spec in columns:
        name, _, kind = spec.partition(":")
        cols.append(Column(name, simple(Kind.TEXT if kind == "text" else Kind.INT64)))
    return MAPPINGS.select([TableSchema(TableRef("s", "t"), tuple(cols), ("id",))])[0]


CASES: list[tuple[str, tuple[str, ...], tuple[str, ...], dict[str, str] | None, bool, dict[str, Any]]] = [
    ("nothing", ("a",), ("a",), {}, True, {}),
    ("add", ("a",), ("a", "b"), {}, True, {"added": ["b"]}),
    ("drop", ("a", "b"), ("a",), {}, True, {"dropped": ["b"]}),
    ("rename", ("a", "b"), ("a", "c"), {"c": "b"}, True, {"renames": [("b", "c")]}),
    (
        "rename then add the old name",
        ("a",),
        ("b", "a"),
        {"b": "a"},
        True,
        {"renames": [("a", "b")], "added": ["a"]},
    ),
    (
        "drop b, rename a to b",
        ("a", "b"),
        ("b",),
        {"b": "a"},
        True,
        {"dropped": ["b"], "renames": [("a", "b")]},
    ),
    (
        "chain a->b, b->c",
        ("a", "b"),
        ("b", "c"),
        {"b": "a", "c": "b"},
        True,
        {"renames": [("b", "c"), ("a", "b")]},
    ),
    ("swap", ("a", "b"), ("b", "a"), {"b": "a", "a": "b"}, True, {"suspend": "swap column names"}),
    ("type change", ("a",), ("a:text",), {}, True, {"suspend": "column 'a' changed type to text"}),
    ("renamed and retyped", ("a",), ("b:text",), {"b": "a"}, True, {"suspend": "changed type"}),
    ("unknown renames: drop+add", ("a",), ("b",), None, True, {"suspend": "cannot tell a rename"}),
    ("unknown renames: only an add", ("a",), ("a", "b"), None, True, {"added": ["b"]}),
    ("policy off", ("a",), ("a", "b"), {}, False, {"suspend": "HandleSourceTableAltered is false"}),
    ("policy off, rename", ("a",), ("b",), {"b": "a"}, False, {"suspend": "renamed to 'b'"}),
]


@pytest.mark.parametrize(
    ("before", "after", "renamed", "altered", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_shape_changes(
    before: tuple[str, ...],
    after: tuple[str, ...],
    renamed: dict[str, str] | None,
    altered: bool,
    expected: dict[str, Any],
) -> None:
    change = plan_shape_change(shape(*before), shape(*after), renamed, altered)
    if "suspend" in expected:
        assert change.suspend is not None and expected["suspend"] in change.suspend
        assert "conveyor tasks reload" in change.suspend
        return
    assert change.suspend is None
    assert change.added == expected.get("added", [])
    assert change.dropped == expected.get("dropped", [])
    assert change.renames == expected.get("renames", [])
