"""The shape the MariaDB, SQLite and DynamoDB edge-value corpora share with the
PostgreSQL one (support/edge_values.py): named rows, each with the target's
text of its value per target, or ``Refused`` (a fragment of the reason).

Each type group is one source table ``e_<slug>`` (``id``, ``name``, ``v``);
a value some path refuses lives in a table of its own (``r_<name>``), since
change capture may refuse a value by suspending its table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from support.edge_values import Expected, Refused

SAME = object()
"""In a case: the DuckDB text is the PostgreSQL text."""


@dataclass(frozen=True)
class SourceEdge:
    name: str
    source_type: str
    literal: Any
    """SQL literal (MariaDB, SQLite) or a Python value (DynamoDB)."""
    expected: dict[str, Expected]
    """Target (``postgres``, ``duckdb``, ``lake``) -> the target's text, or Refused."""

    @property
    def refused_somewhere(self) -> bool:
        return any(isinstance(e, Refused) for e in self.expected.values())


@dataclass(frozen=True)
class Group:
    slug: str
    source_type: str
    cases: tuple[tuple[Any, ...], ...]
    """(case, literal, PostgreSQL text[, DuckDB text or SAME[, lake text]]): the
    lake's (its curated table's, read through DuckDB) is DuckDB's unless given."""

    def edges(self) -> list[SourceEdge]:
        found = []
        for case, literal, pg, *rest in self.cases:
            duck = rest[0] if rest and rest[0] is not SAME else pg
            lake = rest[1] if len(rest) > 1 else duck
            expected = {"postgres": pg, "duckdb": duck, "lake": lake}
            found.append(SourceEdge(f"{self.slug}_{case}", self.source_type, literal, expected))
        return found


@dataclass(frozen=True)
class Corpus:
    """One source engine's corpus."""

    engine: str
    groups: tuple[Group, ...]
    split_refused: bool = True
    """False where a refusal leaves its row loaded (DynamoDB's load errors):
    refused values stay in their group's table."""

    def edges(self) -> list[SourceEdge]:
        return [e for g in self.groups for e in g.edges()]

    def tables(self) -> dict[str, tuple[str, list[SourceEdge]]]:
        """Source table name -> (column type, its rows): refused values alone."""
        found: dict[str, tuple[str, list[SourceEdge]]] = {}
        for group in self.groups:
            kept = [e for e in group.edges() if not (self.split_refused and e.refused_somewhere)]
            if kept:
                found[f"e_{group.slug}"] = (group.source_type, kept)
            for edge in group.edges():
                if self.split_refused and edge.refused_somewhere:
                    found[f"r_{edge.name}"] = (group.source_type, [edge])
        return found

    def row_of(self, table: str, row_id: int) -> str:
        return self.tables()[table][1][row_id - 1].name


def silent_changes(
    corpus: Corpus, target: str, observed: dict[str, str | None], reported: dict[str, str]
) -> list[str]:
    """Every row neither exact nor reported as expected: a refused value must be
    reported (its row, or its table) naming column ``v`` and the reason; a
    reported row may stay in the target only with ``v`` NULL."""
    problems = []
    names = {e.name: table for table, (_, edges) in corpus.tables().items() for e in edges}
    for edge in corpus.edges():
        expected = edge.expected[target]
        given = reported.get(edge.name) or reported.get(names[edge.name])
        if isinstance(expected, Refused):
            if given is None:
                problems.append(
                    f"{edge.name}: not reported (target holds {observed.get(edge.name, '<no row>')!r})"
                )
            elif expected.reason not in given or ("'v'" not in given and "column v" not in given):
                problems.append(f"{edge.name}: reported without column 'v' and {expected.reason!r}: {given}")
        elif edge.name not in observed:
            problems.append(f"{edge.name}: missing ({given})")
        elif observed[edge.name] != expected:
            problems.append(
                f"{edge.name}: {edge.literal!r} became {observed[edge.name]!r}, expected {expected!r}"
            )
    return problems


def counts(corpus: Corpus, target: str, problems: list[str]) -> str:
    """tried / exact / refused / silently changed, for the path's line."""
    edges = corpus.edges()
    refused = sum(isinstance(e.expected[target], Refused) for e in edges)
    exact = len(edges) - refused
    return f"tried {len(edges)} / exact {exact} / refused {refused} / silently changed {len(problems)}"
