"""Selection rule filters and parallel-load range segments typed against a
source table's columns (see ``docs/mappings.md`` for their semantics)."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

from conveyor.core.errors import ConfigError
from conveyor.core.names import did_you_mean
from conveyor.core.row_filter import (
    FILTERABLE_KINDS,
    ColumnFilter,
    Condition,
    RowFilter,
    parse_value,
    range_segments,
)
from conveyor.core.schema import TableSchema
from conveyor.replication.mapping_rules import Rule


def bind_segments(
    origin: str, table: TableSchema, rule: Rule | None, row_filter: RowFilter | None
) -> tuple[RowFilter, ...]:
    """The segments of a parallel-load ranges rule, typed against the table
    (boundaries strictly increasing, so every row is in exactly one segment)."""
    if rule is None:
        return ()
    assert rule.ranges is not None
    spec = rule.ranges
    where = f"{origin}: {rule.label}: parallel-load ranges on column {spec.column!r} of table {table.ref}"
    try:
        column = table.column(spec.column)
    except KeyError:
        raise ConfigError(
            f"{where}: the table has no such column{did_you_mean(spec.column, table.column_names)}"
        ) from None
    kind = column.type.kind
    if kind not in FILTERABLE_KINDS:
        raise ConfigError(f"{where}: ranges on {column.type.describe()} columns are not supported")
    try:
        bounds = [parse_value(text, kind) for text in spec.boundaries]
    except ValueError as exc:
        raise ConfigError(f"{where}: boundary {exc}") from None
    if any(not a < b for a, b in pairwise(bounds)):
        raise ConfigError(f"{where}: boundaries must be strictly increasing")
    return tuple(segment.also(row_filter) for segment in range_segments(spec.column, kind, tuple(bounds)))


def bind_filters(origin: str, table: TableSchema, rules: Sequence[Rule]) -> RowFilter | None:
    """The selection rules' source filters typed against the table's columns
    (filters AND'ed, a filter's conditions OR'ed), or None without filters."""
    columns: list[ColumnFilter] = []
    for rule in rules:
        for spec in rule.filters:
            where = f"{origin}: {rule.label}: filter on column {spec.column!r} of table {table.ref}"
            try:
                column = table.column(spec.column)
            except KeyError:
                hint = did_you_mean(spec.column, table.column_names)
                raise ConfigError(f"{where}: the table has no such column{hint}") from None
            kind = column.type.kind
            if kind not in FILTERABLE_KINDS:
                raise ConfigError(f"{where}: filters on {column.type.describe()} columns are not supported")
            conditions = []
            for op, texts in spec.conditions:
                try:
                    conditions.append(Condition(op, tuple(parse_value(t, kind) for t in texts)))
                except ValueError as exc:
                    raise ConfigError(f"{where}: {op.value}: {exc}") from None
            columns.append(ColumnFilter(spec.column, kind, tuple(conditions)))
    if not columns:
        return None
    return RowFilter(tuple(columns), ", ".join(r.label for r in rules if r.filters))
