"""docs/types.md says what the MariaDB, SQLite and DynamoDB edge-value corpora
hold: every source type of a corpus has a row per target, and each row names
exactly the corpus rows that target refuses. (The integration test checks
each row's target type.)"""

from __future__ import annotations

import pytest

from support import edge_values_dynamodb, edge_values_mariadb, edge_values_sqlite, source_types_doc

CORPORA = {
    "mysql": edge_values_mariadb.CORPUS,
    "sqlite": edge_values_sqlite.CORPUS,
    "dynamodb": edge_values_dynamodb.CORPUS,
}


@pytest.mark.parametrize("section", sorted(source_types_doc.SECTIONS.values()))
def test_the_types_page_matches_the_corpus(section: tuple[str, str]) -> None:
    engine, target = section
    doc = source_types_doc.read()[section]
    documented = {t: set(row.refused) for t, row in doc.items()}
    assert documented == source_types_doc.refused_rows(CORPORA[engine], target)


def test_the_corpora_are_large_enough() -> None:
    """Issue 11 asks for at least 170 values across these sources."""
    assert sum(len(c.edges()) for c in CORPORA.values()) >= 170


def test_a_row_needs_its_type_cells(tmp_path) -> None:  # type: ignore[no-untyped-def]
    page = tmp_path / "types.md"
    page.write_text("## SQLite -> DuckDB\n\n| `INTEGER` | BIGINT | | — |\n")
    with pytest.raises(AssertionError, match="needs `type` cells"):
        source_types_doc.read(page)
