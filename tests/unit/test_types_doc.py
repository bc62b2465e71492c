"""docs/types.md says what the edge-value corpus holds: every PostgreSQL type
of the corpus has a row per target, and each row names exactly the corpus
rows that target refuses. (The integration test checks each row's target type.)"""

from __future__ import annotations

import pytest

from support import edge_values as ev
from support import types_doc


@pytest.mark.parametrize("target", ["duckdb", "lake", "postgres"])
def test_the_types_page_matches_the_corpus(target: str) -> None:
    doc = types_doc.read()[target]
    corpus_types = {e.pg_type for e in ev.all_edges()}
    refused: dict[str, set[str]] = {t: set() for t in corpus_types}
    if target != "postgres":  # PostgreSQL to PostgreSQL refuses nothing
        for edge in ev.all_edges():
            if isinstance(edge.expected(target), ev.Refused):
                refused[edge.pg_type].add(edge.name)
    documented = {t: set(row.refused) for t, row in doc.items()}
    assert documented == refused
    if target == "postgres":  # the same type, always
        assert {t: row.becomes for t, row in doc.items()} == {t: t for t in corpus_types}


def test_a_row_needs_its_type_cells(tmp_path) -> None:  # type: ignore[no-untyped-def]
    page = tmp_path / "types.md"
    page.write_text("## PostgreSQL -> DuckDB\n\n| `date` | DATE | | — |\n")
    with pytest.raises(AssertionError, match="needs `type` cells"):
        types_doc.read(page)
