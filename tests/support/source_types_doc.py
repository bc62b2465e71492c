"""docs/types.md's tables for MariaDB, SQLite and DynamoDB sources read as data,
and compared with their corpora (support/edge_values_{mariadb,sqlite,dynamodb}.py).

The PostgreSQL sections are support/types_doc.py's; each checker reads only its
own sections, so the page holds both and neither sees the other's rows."""

from __future__ import annotations

import re
from pathlib import Path

from support.edge_values import Refused
from support.source_edges import Corpus
from support.types_doc import DOC, DocRow

SECTIONS = {
    "MariaDB -> PostgreSQL": ("mysql", "postgres"),
    "MariaDB -> DuckDB": ("mysql", "duckdb"),
    "MariaDB -> lake": ("mysql", "lake"),
    "SQLite -> DuckDB": ("sqlite", "duckdb"),
    "SQLite -> lake": ("sqlite", "lake"),
    "SQLite -> PostgreSQL": ("sqlite", "postgres"),
    "DynamoDB -> PostgreSQL": ("dynamodb", "postgres"),
    "DynamoDB -> DuckDB": ("dynamodb", "duckdb"),
    "DynamoDB -> lake": ("dynamodb", "lake"),
}
_CODE = re.compile(r"`([^`]+)`")


def read(path: Path = DOC) -> dict[tuple[str, str], dict[str, DocRow]]:
    """(source engine, target) -> source type -> its row."""
    found: dict[tuple[str, str], dict[str, DocRow]] = {}
    section: tuple[str, str] | None = None
    for line in path.read_text().splitlines():
        if line.startswith("## "):
            section = SECTIONS.get(line[3:].strip())
            if section is not None:
                found[section] = {}
            continue
        if section is None or not line.startswith("| `"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        source, becomes = _CODE.fullmatch(cells[0]), _CODE.fullmatch(cells[1])
        assert source and becomes, f"docs/types.md: a row needs `type` cells: {line}"
        if source.group(1) in found[section]:
            raise AssertionError(f"docs/types.md: {source.group(1)} twice under {section}")
        found[section][source.group(1)] = DocRow(becomes.group(1), frozenset(_CODE.findall(cells[-1])))
    return found


def refused_rows(corpus: Corpus, target: str) -> dict[str, set[str]]:
    """Source type -> the corpus rows ``target`` refuses."""
    refused: dict[str, set[str]] = {g.source_type: set() for g in corpus.groups}
    for group in corpus.groups:
        for edge in group.edges():
            if isinstance(edge.expected[target], Refused):
                refused[group.source_type].add(edge.name)
    return refused


def drift(corpus: Corpus, target: str, typed: dict[str, str]) -> list[str]:
    """Where the page names another target type than the one a corpus table has
    (``typed``: source table -> the target's type of its column ``v``)."""
    doc = read()[(corpus.engine, target)]
    problems = []
    for table, kind in typed.items():
        source_type = corpus.tables()[table][0]
        row = doc.get(source_type)
        if row is None or row.becomes != kind:
            problems.append(
                f"docs/types.md: {corpus.engine} {source_type} becomes {kind} on {target}; the page: {row}"
            )
    return problems
