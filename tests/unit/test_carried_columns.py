"""The shape change capture compares a stream's relation against: the
generated columns capture carried come back at their places (pgoutput's
relation never has them), so they are never taken for dropped columns."""

from __future__ import annotations

import pytest

from conveyor.core.schema import Column, TableRef, TableSchema
from conveyor.core.types import Kind, simple
from conveyor.replication.cdc.lookups import with_carried

INT = simple(Kind.INT32)


def _table(*names: str) -> TableSchema:
    """Columns by name; ``g*`` names are generated."""
    columns = tuple(Column(n, INT, generated="(x * 2)" if n.startswith("g") else None) for n in names)
    return TableSchema(TableRef("public", "t"), columns, ("id",))


@pytest.mark.parametrize(
    ("stream", "carried", "expected"),
    [
        (("id", "x"), ("id", "x", "g"), ("id", "x", "g")),
        (("id", "x", "y"), ("id", "g", "x"), ("id", "g", "x", "y")),
        (("id", "x", "n"), ("id", "x", "g1", "g2"), ("id", "x", "g1", "g2", "n")),
        (("id",), ("id", "x", "g"), ("id", "g")),  # x dropped: still a difference
        (("id", "x"), ("id", "x"), ("id", "x")),
    ],
)
def test_generated_columns_come_back_at_their_places(
    stream: tuple[str, ...], carried: tuple[str, ...], expected: tuple[str, ...]
) -> None:
    shape = with_carried(_table(*stream), _table(*carried))
    assert shape.column_names == list(expected)
    assert shape.primary_key == ("id",)
