"""The migration service's table mappings (``{"rules": [...]}``) applied to
source tables: which tables, which rows (source filters), and the target's
names, columns, types, key and values. Parsing is in
:mod:`conveyor.replication.mapping_rules`; what every rule type and action does
is in ``docs/mappings.md``.

Matching is case-sensitive. In an object-locator ``%`` matches any run of
characters (including none); every other character, ``_`` included, is
literal. ``explicit`` selection rules match names literally (no wildcards).
An exclude rule wins over any include rule whatever their order, as in DMS.
Transformation rules apply in list order; their locators match the *source*
schema, table and column names, and each rule acts on the name as earlier rules
left it.

``add-column`` appends a column computed by an SQLite expression (see
:mod:`conveyor.replication.expressions`) after the table's columns, in rule
order. Its ``value`` names it; later rules see it under that name (a rename or
remove-column whose column-name matches it applies to it), earlier rules never
do. Its ``$column`` references always read the source table's columns, even
ones another rule renames or removes. It is never part of the primary key.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from conveyor.core.errors import ConfigError
from conveyor.core.names import did_you_mean
from conveyor.core.problems import Problem
from conveyor.core.schema import Column, TableRef, TableSchema
from conveyor.core.types import is_lob
from conveyor.replication.conversions import Conversion
from conveyor.replication.expressions import AddedColumn, Evaluator
from conveyor.replication.lob_limits import LobLimit, cut_columns
from conveyor.replication.mapped_table import ColumnMap, MappedTable
from conveyor.replication.mapping_columns import (
    RuleColumn,
    before_image_columns,
    column_masks,
    converted_type,
    rule_error,
)
from conveyor.replication.mapping_keys import MASKING_ACTIONS
from conveyor.replication.mapping_rules import Rule, parse_rules
from conveyor.replication.source_filters import bind_filters, bind_segments

if TYPE_CHECKING:
    from conveyor.replication.settings import TargetMetadata

_MAX_LISTED = 20
_TASK_LOB_LIMIT = "TargetMetadata.LimitedSizeLobMode, LobMaxSize"
_DEFAULT_LOB_KILOBYTES = 32  # the service's LobMaxSize default
log = logging.getLogger(__name__)
_LOBS_SAID: set[tuple[str, TableRef]] = set()  # tables whose LOB columns SupportLobs false left out


def check_table_mappings(doc: Mapping[str, Any]) -> list[Problem]:
    """Every problem of a decoded mappings document, as ``(path, text)``."""
    raw_rules = doc.get("rules")
    if raw_rules is None:
        return [("", "missing 'rules'")]
    if not isinstance(raw_rules, list):
        return [("rules", f"'rules' must be a list, not {type(raw_rules).__name__}")]
    problems: list[Problem] = [
        (str(k), f"unknown key {k!r}{did_you_mean(str(k), ['rules'])}") for k in doc if k != "rules"
    ]
    rules, found = parse_rules(raw_rules)
    problems += found.items
    if not found.items and not any(r.rule_type == "selection" and r.action != "exclude" for r in rules):
        problems.append(("rules", "needs at least one selection rule with rule-action include or explicit"))
    return problems


class TableMappings:
    """Parsed table mappings; :meth:`select` applies them to source tables."""

    def __init__(
        self,
        rules: Sequence[Rule],
        origin: str,
        target_schema: str = "",
        lobs: bool = True,
        lob_kilobytes: int | None = None,
    ) -> None:
        self._rules = tuple(rules)
        self._origin = origin
        self._target_schema = target_schema
        self._lobs = lobs
        self._lob_kilobytes = lob_kilobytes

    def for_task(self, metadata: TargetMetadata) -> TableMappings:
        """These mappings with the task's TargetMetadata: tables land in
        TargetSchema (rules on the schema name still apply to it); SupportLobs
        false leaves the LOB columns (``core.types.is_lob``) out, but for key
        columns; limited LOB mode cuts LOBs (``lob_limits``)."""
        return TableMappings(
            self._rules, self._origin, metadata.target_schema, metadata.support_lobs, metadata.lob_limit()
        )

    @classmethod
    def parse(cls, doc: Mapping[str, Any] | str, origin: str) -> TableMappings:
        """Parse a mappings document (JSON text or decoded object); ``origin``
        names it in errors. Every problem is reported, one per line."""
        data: object = doc
        if isinstance(doc, str):
            try:
                data = json.loads(doc)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{origin}: invalid JSON: {exc}") from None
        if not isinstance(data, Mapping):
            raise ConfigError(f"{origin}: table mappings must be a JSON object with 'rules'")
        problems = check_table_mappings(data)
        if problems:
            raise ConfigError("\n".join(f"{origin}: {text}" for _, text in problems))
        rules, _ = parse_rules(data["rules"])
        return cls(rules, origin)

    def _matching(self, ref: TableRef) -> list[Rule] | None:
        """The include rules naming ``ref`` ([] when none does), or None when an
        exclude rule names it."""
        included: list[Rule] = []
        for rule in self._rules:
            if rule.rule_type != "selection" or not rule.matches_table(ref.schema, ref.name):
                continue
            if rule.action == "exclude":
                return None
            included.append(rule)
        return included

    def _selected(self, table: TableSchema) -> list[Rule] | None:
        """The include rules selecting ``table``, or None when it is not
        selected. A table cut out of a parent (a DynamoDB child table) that no
        rule names is selected with its parent, by the parent's rules, unless
        an exclude rule names it."""
        rules = self._matching(table.ref)
        if rules is None:
            return None
        if not rules and table.parent is not None:
            inherited = self._matching(table.parent)
            if inherited:
                for rule in inherited:
                    lacking = [f.column for f in rule.filters if f.column not in table.column_names]
                    if lacking:
                        raise ConfigError(
                            f"{self._origin}: {rule.label}: table {table.ref} is selected with its parent "
                            f"{table.parent}, whose filter names column {lacking[0]!r}, which "
                            f"{table.ref} lacks: select {table.ref} by a rule of its own, or exclude it"
                        )
                return inherited
        return rules or None

    def select(self, tables: Sequence[TableSchema], allow_empty: bool = False) -> list[MappedTable]:
        """The selected tables with their target shape, highest load-order first,
        else in input order. Selecting none is an error
        (FailOnNoTablesCaptured) unless ``allow_empty``."""
        chosen = [(t, rules) for t in tables if (rules := self._selected(t)) is not None]
        if not chosen and not allow_empty:
            names = [str(t.ref) for t in tables[:_MAX_LISTED]]
            listed = ", ".join(names) if names else "(none)"
            more = f" (and {len(tables) - _MAX_LISTED} more)" if len(tables) > _MAX_LISTED else ""
            raise ConfigError(
                f"{self._origin}: the selection rules match none of the {len(tables)} source tables: "
                f"{listed}{more}"
            )
        mapped: list[MappedTable] = []
        problems: list[str] = []
        for t, rules in chosen:  # every table's problem, not only the first
            try:
                mapped.append(self._map(t, rules))
            except ConfigError as exc:
                problems.append(str(exc))
        if problems:
            raise ConfigError("\n".join(problems))
        # Two tables mapped to one target name are refused by the load's plan
        # (replication/identifiers.py), just those tables, not the task.
        return sorted(mapped, key=lambda m: -m.load_order)

    def _without_lobs(
        self, table: TableSchema, cols: list[RuleColumn], key: tuple[str, ...]
    ) -> list[RuleColumn]:
        """``cols`` without the LOB columns (SupportLobs false), said once per table."""
        lobs = {c.name for c in table.columns if is_lob(c.type)}
        left_out = [c.source for c in cols if c.source in lobs and c.source not in key]
        kept = [k for k in key if k in lobs]
        if (left_out or kept) and (self._origin, table.ref) not in _LOBS_SAID:
            _LOBS_SAID.add((self._origin, table.ref))
            log.warning(
                "table %s: TargetMetadata.SupportLobs is false: LOB columns left out: %s%s",
                table.ref,
                ", ".join(map(str, left_out)) or "none",
                f" (kept, as the key: {', '.join(kept)})" if kept else "",
            )
        return [c for c in cols if c.source not in left_out]

    def _map(self, table: TableSchema, selected_by: list[Rule]) -> MappedTable:
        origin = self._origin
        ref = table.ref
        schema_name, table_name = self._target_schema or ref.schema, ref.name
        # The target's columns as rules leave them; removed columns leave the list.
        cols = [RuleColumn(c.name, c.name, c.name) for c in table.columns]
        included: set[str] | None = None  # include-column rules: the columns they keep
        key: tuple[str, ...] | None = None
        masks: list[tuple[RuleColumn, Rule]] = []
        before_rules: list[Rule] = []  # add-before-image-columns, once the columns are known
        load_order = max((r.load_order for r in selected_by), default=0)
        parallel: Rule | None = None  # the table's parallel-load rule (one at most)
        lob_kilobytes, lob_setting = self._lob_kilobytes, _TASK_LOB_LIMIT
        for rule in self._rules:
            if rule.rule_type == "table-settings" and rule.matches_table(ref.schema, ref.name):
                load_order = max(load_order, rule.load_order)
                if rule.lob_mode == "limited":
                    lob_kilobytes = rule.lob_kilobytes or self._lob_kilobytes or _DEFAULT_LOB_KILOBYTES
                    lob_setting = f"{rule.label}: lob-settings mode limited"
                elif rule.lob_mode == "unlimited":
                    lob_kilobytes = None
                if rule.parallel_load not in (None, "none"):
                    if parallel is not None:
                        kind = parallel.parallel_load
                        raise rule_error(
                            origin, rule, f"table {ref} already has parallel-load {kind} ({parallel.label})"
                        )
                    parallel = rule
            if rule.rule_type != "transformation" or not rule.matches_table(ref.schema, ref.name):
                continue
            if rule.target == "schema":
                schema_name = rule.apply(schema_name)
                if not schema_name:
                    raise rule_error(origin, rule, f"leaves schema of table {ref} with an empty name")
            elif rule.action == "define-primary-key":
                assert rule.primary_key is not None
                by_match = {c.match: c for c in cols}
                missing = [n for n in rule.primary_key.columns if n not in by_match]
                if missing:
                    raise rule_error(
                        origin, rule, f"table {ref} has no column {', '.join(map(repr, missing))}"
                    )
                key = tuple(rule.primary_key.columns)
            elif rule.target == "table":
                table_name = rule.apply(table_name)
                if not table_name:
                    raise rule_error(origin, rule, f"leaves table {ref} with an empty name")
            elif rule.action == "add-before-image-columns":
                before_rules.append(rule)
            elif rule.action == "add-column":
                assert rule.value is not None
                if any(c.target == rule.value for c in cols):
                    raise rule_error(origin, rule, f"table {ref} already has a column {rule.value!r}")
                cols.append(RuleColumn(rule.value, rule.value, None, rule))
            else:
                assert rule.column is not None
                pattern = rule.column
                hit = [c for c in cols if pattern.fullmatch(c.match)]
                if rule.action == "remove-column":
                    cols = [c for c in cols if c not in hit]
                    if not cols:
                        raise rule_error(origin, rule, f"removes every column of table {ref}")
                    continue
                if rule.action == "include-column":
                    included = (included or set()) | {c.match for c in hit}
                    continue
                if rule.action in MASKING_ACTIONS:
                    masks.extend((c, rule) for c in hit)
                    continue
                if rule.action == "change-data-type":
                    if rule.of_kinds is not None:
                        hit = [
                            c
                            for c in hit
                            if c.source is not None and table.column(c.source).type.kind in rule.of_kinds
                        ]
                    for c in hit:
                        if c.source is None:
                            raise rule_error(
                                origin,
                                rule,
                                f"column {c.match!r} is added by {c.rule.label if c.rule else ''}: "
                                "set its type in that rule's data-type",
                            )
                        c.new_type = rule
                    continue
                for c in hit:
                    new = rule.apply(c.target)
                    if not new:
                        raise rule_error(
                            origin, rule, f"leaves column {c.match!r} of table {ref} with an empty name"
                        )
                    c.target = new
                names = [c.target for c in cols]
                dupes = sorted({n for n in names if names.count(n) > 1})
                if dupes:
                    raise rule_error(
                        origin,
                        rule,
                        f"renaming columns of table {ref} makes {', '.join(repr(d) for d in dupes)} collide",
                    )
        if included is not None:
            cols = [c for c in cols if c.rule is not None or c.match in included]
        if not self._lobs:
            cols = self._without_lobs(table, cols, key if key is not None else table.primary_key)
        if not any(c.source is not None for c in cols):
            raise ConfigError(f"{origin}: table {ref} keeps none of its source columns")
        by_source = {c.source: c.target for c in cols if c.source is not None}
        # A generated column's expression names source columns: kept only while
        # no column is renamed or removed (else its values are copied).
        same_columns = [(c.source, c.target) for c in cols if c.rule is None] == [
            (n, n) for n in table.column_names
        ]
        if key is not None:
            missing = [k for k in key if k not in by_source]
            if missing:
                raise ConfigError(
                    f"{origin}: table {ref}: define-primary-key names column(s) "
                    f"{', '.join(map(repr, missing))}, which other rules remove"
                )
        mask_by_target = column_masks(origin, table, masks, cols)
        conversions: list[Conversion] = []
        columns: list[Column] = []
        added: list[AddedColumn] = []
        for c in cols:
            if c.rule is None:
                assert c.source is not None
                source_col = table.column(c.source)
                column_type = source_col.type
                if c.new_type is not None:
                    column_type = converted_type(origin, table, c, conversions)
                if c.target in mask_by_target:
                    column_type = mask_by_target[c.target].target_type(column_type)
                kept = same_columns and column_type == source_col.type and c.target not in mask_by_target
                generated = source_col.generated if kept else None
                columns.append(Column(c.target, column_type, source_col.nullable, generated))
                continue
            assert c.rule.expression is not None and c.rule.data_type is not None
            columns.append(Column(c.target, c.rule.data_type, True))
            added.append(AddedColumn(c.target, c.rule.data_type, c.rule.expression, c.rule.label))
        source_key = key if key is not None else table.primary_key
        target_key = tuple(by_source[k] for k in source_key if k in by_source)
        before_images = before_image_columns(
            origin, table, before_rules, cols, columns, source_key, mask_by_target
        )
        for name, mask in mask_by_target.items():
            if name in target_key:
                raise ConfigError(
                    f"{origin}: {mask.rule}: column {name!r} of table {ref} is part of the target's "
                    "primary key, which masking would change (deletes could no longer find rows)"
                )
        group_key: tuple[str, ...] = ()
        key_kept = len(target_key)
        if (
            key is None
            and table.parent is not None
            and 0 < key_kept < len(source_key)
            and all(k in by_source for k in source_key[:key_kept])
        ):
            # The parent's key is kept, the position removed: rows are not unique by it.
            group_key, target_key = target_key, ()
        target = TableSchema(
            TableRef(schema_name, table_name),
            tuple(columns),
            target_key,
            table.estimated_rows,
            table.native_engine,
            table.native_types,
        )
        maps = tuple(ColumnMap(target=c.target, source=c.source) for c in cols)
        # Columns read from the source (a before image is cut as its column's value
        # is), never the key's: cut keys could make two rows one.
        fed = {c.target for c in cols if c.source is not None} - set(target.primary_key)
        cut = cut_columns([c for c in target.columns if c.name in fed]) if lob_kilobytes else ()
        lob_limit = LobLimit(target.ref, cut, lob_kilobytes, lob_setting) if lob_kilobytes and cut else None
        evaluator = Evaluator(table, added, origin) if added else None
        row_filter = bind_filters(origin, table, selected_by)
        ranged = parallel if parallel is not None and parallel.ranges is not None else None
        return MappedTable(
            source=table,
            target=target,
            columns=maps,
            added=tuple(added),
            evaluator=evaluator,
            row_filter=row_filter,
            segments=bind_segments(origin, table, ranged, row_filter),
            partitions_auto=parallel is not None
            and parallel.parallel_load in ("partitions-auto", "partitions-list"),
            partitions_named=() if parallel is None else parallel.partitions,
            masks=tuple(mask_by_target.values()),
            load_order=load_order,
            conversions=tuple(conversions),
            group_key=group_key,
            before_images=before_images,
            lob_limit=lob_limit,
        )
