"""Target names that collide once the target engine resolves them.

Two source tables can keep different names through the table mappings and
still land on one target table: DuckDB matches identifiers without regard to
case (``Mixed`` and ``MIXED`` are one table). Loading both would make one
overwrite the other, or (tables in parallel) fail the whole task on a catalog
conflict. So before anything loads,
the tables whose target names collide are refused, by name, each with a reason
naming the other source table; the rest load. Columns of one table that
collide refuse their table the same way.

How an engine resolves a name is the target's to say (``FoldsIdentifiers``);
a target without that hook takes names as they are, and only exactly equal
names collide. A target that cannot hold a name at all (``RefusesNames``: a
lake's schema and table names become folder names, PostgreSQL cuts names past
63 bytes) refuses its table the same way, so change capture goes on for the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from conveyor.connectors.base import FoldsIdentifiers, RefusesNames
from conveyor.core.schema import TableRef


@dataclass(frozen=True)
class Folding:
    """How a target resolves identifiers, and the words that explain it."""

    fold: Callable[[str], str]
    rule: str
    refuse: Callable[[str, str], str | None] = lambda kind, name: None
    """Why the target cannot hold a schema, table or column name at all, or None."""


EXACT = Folding(lambda name: name, "the target takes names as they are")


def folding_of(target: object) -> Folding:
    """The target's folding, or exact names when it has none."""
    refuse = target.refused_name if isinstance(target, RefusesNames) else EXACT.refuse
    if isinstance(target, FoldsIdentifiers):
        return Folding(target.fold_identifier, target.identifier_rule, refuse)
    return EXACT if refuse is EXACT.refuse else Folding(EXACT.fold, EXACT.rule, refuse)


@dataclass(frozen=True)
class TargetNames:
    """One table as the load would create it: the source table it comes from,
    its target name and its columns as (source column or None when a mapping
    adds it, target column)."""

    source: TableRef
    target: TableRef
    columns: Sequence[tuple[str | None, str]]


def collisions(tables: Sequence[TargetNames], folding: Folding) -> dict[TableRef, str]:
    """Source tables that cannot load, with the reason: their target name, or
    two of their columns' names, resolve to the same identifier on the target."""
    refused: dict[TableRef, str] = {}
    for table in tables:
        names = [("schema", table.target.schema), ("table", table.target.name)]
        names += [("column", target) for _, target in table.columns]
        for kind, name in names:
            if table.source not in refused and (why := folding.refuse(kind, name)) is not None:
                refused[table.source] = (
                    f"target table {table.target} (source table {table.source}): {kind} name {name!r}: {why}"
                )
    groups: dict[tuple[str, str], list[TargetNames]] = {}
    for table in tables:
        key = (folding.fold(table.target.schema), folding.fold(table.target.name))
        groups.setdefault(key, []).append(table)
    for group in groups.values():
        if len(group) < 2:
            continue
        for table in group:
            others = "; ".join(f"{o.target} (source table {o.source})" for o in group if o is not table)
            refused[table.source] = (
                f"target table {table.target} (source table {table.source}) collides with {others}: "
                f"{folding.rule}"
            )
    for table in tables:
        if table.source not in refused and (reason := _column_collision(table, folding)):
            refused[table.source] = reason
    return refused


def _column_collision(table: TargetNames, folding: Folding) -> str | None:
    seen: dict[str, tuple[str | None, str]] = {}
    clashes = []
    for source, target in table.columns:
        first = seen.setdefault(folding.fold(target), (source, target))
        if first != (source, target):
            clashes.append(f"{_column(*first)} and {_column(source, target)}")
    if not clashes:
        return None
    return (
        f"target table {table.target} (source table {table.source}): columns collide: "
        f"{'; '.join(clashes)}: {folding.rule}"
    )


def _column(source: str | None, target: str) -> str:
    if source is None:
        return f"added column {target!r}"
    if source == target:
        return f"column {source!r}"
    return f"column {target!r} (source column {source!r})"
