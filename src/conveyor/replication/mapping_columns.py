"""The target columns of one table while mapping rules shape them: the
column being built (``RuleColumn``) and what rules add to it (types from
change-data-type, masks, before-image columns); :mod:`mappings` applies the
rules in order."""

from __future__ import annotations

from dataclasses import replace

from conveyor.core.errors import ConfigError
from conveyor.core.schema import Column, TableSchema
from conveyor.core.types import ColumnType, is_lob
from conveyor.replication.conversions import Conversion, convertible
from conveyor.replication.mapping_rules import Rule
from conveyor.replication.masking import Mask, maskable


def converted_type(
    origin: str, table: TableSchema, col: RuleColumn, conversions: list[Conversion]
) -> ColumnType:
    """The type a change-data-type rule gives a source column (checked convertible)."""
    rule = col.new_type
    assert rule is not None and rule.data_type is not None and col.source is not None
    source_type = table.column(col.source).type
    if not convertible(source_type, rule.data_type):
        raise rule_error(
            origin,
            rule,
            f"column {col.match!r} of table {table.ref} is {source_type.describe()}, which cannot be "
            f"converted to {rule.data_type.describe()}",
        )
    if rule.data_type != source_type:
        conversions.append(Conversion(table.ref, col.target, source_type, rule.data_type, rule.label))
    return rule.data_type


def rule_error(origin: str, rule: Rule, problem: str) -> ConfigError:
    return ConfigError(f"{origin}: {rule.label}: {problem}")


def before_image_columns(
    origin: str,
    table: TableSchema,
    rules: list[Rule],
    cols: list[RuleColumn],
    columns: list[Column],
    source_key: tuple[str, ...],
    masks: dict[str, Mask],
) -> tuple[tuple[str, str], ...]:
    """The before-image columns ``rules`` add (appended to ``cols`` and
    ``columns``, their masks to ``masks``): per rule, the source-fed columns
    its column-name matches and its column-filter keeps, named with its
    prefix and suffix, of the column's target type."""
    pairs: list[tuple[str, str]] = []
    types = {c.name: c for c in columns}
    for rule in rules:
        spec = rule.before_image
        assert spec is not None and rule.column is not None
        for col in [c for c in cols if c.source is not None and rule.column.fullmatch(c.match)]:
            assert col.source is not None
            if spec.columns == "pk-only" and col.source not in source_key:
                continue
            if spec.columns == "non-lob" and is_lob(table.column(col.source).type):
                continue
            name = f"{spec.prefix}{col.target}{spec.suffix}"
            if name in types:
                raise rule_error(origin, rule, f"table {table.ref} already has a column {name!r}")
            cols.append(RuleColumn(name, name, None, rule))
            column = types[name] = Column(name, types[col.target].type, True)
            columns.append(column)
            pairs.append((name, col.target))
            if col.target in masks:  # the value before is masked as the value after is
                masks[name] = replace(masks[col.target], column=name)
    return tuple(pairs)


def column_masks(
    origin: str, table: TableSchema, masks: list[tuple[RuleColumn, Rule]], cols: list[RuleColumn]
) -> dict[str, Mask]:
    """The masking rules on columns the target keeps, by target name (the last
    rule on a column wins)."""
    result: dict[str, Mask] = {}
    for col, rule in masks:
        if col not in cols:
            continue
        column_type = (
            (col.new_type.data_type if col.new_type else table.column(col.source).type)
            if col.source is not None
            else (col.rule.data_type if col.rule else None)
        )
        if column_type is None or not maskable(column_type):
            described = column_type.describe() if column_type else "unknown"
            raise rule_error(
                origin,
                rule,
                f"{rule.action} masks text columns; column {col.match!r} of table {table.ref} is {described}",
            )
        result[col.target] = Mask(col.target, rule.action, rule.value, rule.label)
    return result


class RuleColumn:
    """A target column while rules are applied: ``match`` is the name column
    locators match (the source name, or an added column's name), ``source`` the
    source column it is read from (None when ``rule``, an add-column rule, computes it)."""

    __slots__ = ("match", "new_type", "rule", "source", "target")

    def __init__(self, match: str, target: str, source: str | None, rule: Rule | None = None) -> None:
        self.match = match
        self.target = target
        self.source = source
        self.rule = rule
        self.new_type: Rule | None = None  # a change-data-type rule
