"""Parsing the migration service's table-mapping rules, strictly.

Every key of a rule and of its nested objects (object-locator, filters,
filter-conditions, data-type, parallel-load, lob-settings, before-image-def,
primary-key-def) must be one the service defines for that place: an unknown
key is refused naming the rule, the key and the closest known one. Every
problem of every rule is reported in one pass (:class:`RuleProblems`).

What each rule type and action does is in ``docs/mappings.md``; an action
Conveyor does not carry out is refused here by name, never ignored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from conveyor.core.names import did_you_mean
from conveyor.core.row_filter import FilterOp
from conveyor.core.types import ColumnType, Kind
from conveyor.replication.expressions import (
    Expression,
    ExpressionError,
    parse_data_type,
    parse_expression,
)
from conveyor.replication.mapping_keys import (
    BEFORE_IMAGE_FILTERS,
    BEFORE_IMAGE_KEYS,
    COLUMN_ACTIONS,
    CONDITION_KEYS,
    DATA_TYPE_KEYS,
    FILTER_KEYS,
    LOB_KEYS,
    LOB_MODES,
    LOCATOR_KEYS,
    MASKING_ACTIONS,
    NAME_ACTIONS,
    NEEDS_VALUE,
    OPERATORS,
    PARALLEL_KEYS,
    PARALLEL_LOAD_TYPES,
    PRIMARY_KEY_KEYS,
    RULE_KEYS,
    SELECTION_ACTIONS,
    TABLE_ACTIONS,
)

_SAME_KINDS = {
    Kind.NUMERIC: frozenset({Kind.NUMERIC, Kind.DECIMAL}),
    Kind.DECIMAL: frozenset({Kind.NUMERIC, Kind.DECIMAL}),
    Kind.TIMESTAMP: frozenset({Kind.TIMESTAMP, Kind.TIMESTAMPTZ}),
}


def pattern(text: str, wildcards: bool) -> re.Pattern[str]:
    """An object-locator name: ``%`` matches any run of characters when ``wildcards``."""
    if not wildcards:
        return re.compile(re.escape(text))
    return re.compile(".*".join(re.escape(part) for part in text.split("%")), re.DOTALL)


@dataclass(frozen=True)
class FilterSpec:
    """A source filter as written: conditions' values are still text (typed
    against the column when a table is mapped)."""

    column: str
    conditions: tuple[tuple[FilterOp, tuple[str, ...]], ...]


@dataclass(frozen=True)
class RangeSpec:
    """parallel-load ``ranges``: segments of one column, boundaries (as text)
    ending each segment but the last (inclusive)."""

    column: str
    boundaries: tuple[str, ...]


@dataclass(frozen=True)
class BeforeImageSpec:
    """add-before-image-columns: each chosen column ``c`` gets a column
    ``prefix + c + suffix`` holding its value before the row's last UPDATE;
    ``columns`` is ``pk-only`` (the default), ``non-lob`` or ``all``."""

    prefix: str
    suffix: str
    columns: str


@dataclass(frozen=True)
class PrimaryKeySpec:
    name: str | None
    columns: tuple[str, ...]


@dataclass(frozen=True)
class Rule:
    rule_id: str
    name: str
    rule_type: str
    action: str  # "" for table-settings
    target: str  # "schema" | "table" | "column" for transformations, "" otherwise
    schema: re.Pattern[str]
    table: re.Pattern[str] | None
    column: re.Pattern[str] | None
    value: str | None = None
    old_value: str | None = None
    expression: Expression | None = None
    data_type: ColumnType | None = None
    filters: tuple[FilterSpec, ...] = ()
    load_order: int = 0
    parallel_load: str | None = None
    ranges: RangeSpec | None = None
    partitions: tuple[str, ...] = ()  # parallel-load partitions-list: the named partitions
    primary_key: PrimaryKeySpec | None = None
    before_image: BeforeImageSpec | None = None
    # table-settings lob-settings: mode (limited, unlimited, none) and bulk-max-size (KB)
    lob_mode: str | None = None
    lob_kilobytes: int | None = None
    of_kinds: frozenset[Kind] | None = None  # object-locator data-type: columns of these kinds

    @property
    def label(self) -> str:
        return f"rule {self.rule_id} ({self.name})"

    def matches_table(self, schema: str, table: str) -> bool:
        if not self.schema.fullmatch(schema):
            return False
        return self.table is None or self.table.fullmatch(table) is not None

    def apply(self, name: str) -> str:
        """A name-changing action applied to ``name``."""
        action = self.action
        value = self.value or ""
        old = self.old_value or ""
        if action == "rename":
            return value
        if action == "convert-lowercase":
            return name.lower()
        if action == "convert-uppercase":
            return name.upper()
        if action == "add-prefix":
            return value + name
        if action == "add-suffix":
            return name + value
        if action == "remove-prefix":
            return name[len(value) :] if name.startswith(value) else name
        if action == "remove-suffix":
            return name[: len(name) - len(value)] if value and name.endswith(value) else name
        if action == "replace-prefix":
            return value + name[len(old) :] if name.startswith(old) else name
        if action == "replace-suffix":
            return name[: len(name) - len(old)] + value if name.endswith(old) else name
        raise AssertionError(action)  # pragma: no cover - the parser refuses others


@dataclass
class RuleProblems:
    """Problems found while parsing, as ``(path, text)``: ``path`` locates the
    rule (``rules.3``), ``text`` names it (``rule 7 (name): ...``)."""

    items: list[tuple[str, str]] = field(default_factory=list)


class _Bad(Exception):
    """A rule that cannot be parsed further (its problem is already recorded)."""


class _RuleParser:
    def __init__(self, raw: Mapping[str, Any], index: int, problems: RuleProblems) -> None:
        self.raw = raw
        self.path = f"rules.{index}"
        self.where = f"rule #{index + 1}"
        self.problems = problems

    def problem(self, text: str) -> None:
        self.problems.items.append((self.path, f"{self.where}: {text}"))

    def fatal(self, text: str) -> _Bad:
        self.problem(text)
        return _Bad()

    def keys(self, obj: Mapping[str, Any], allowed: frozenset[str], place: str) -> None:
        for key in obj:
            if key not in allowed:
                where = f" in {place}" if place else ""
                self.problem(f"unknown key {key!r}{where}{did_you_mean(str(key), allowed)}")

    def check_keys(self, rule_type: str) -> None:
        """Every unknown key of the rule and its nested objects, before anything
        else can stop the rule's parsing."""
        raw = self.raw
        self.keys(raw, RULE_KEYS[rule_type], "")
        nested = {
            "object-locator": LOCATOR_KEYS[rule_type],
            "data-type": DATA_TYPE_KEYS,
            "parallel-load": PARALLEL_KEYS,
            "lob-settings": LOB_KEYS,
            "before-image-def": BEFORE_IMAGE_KEYS,
            "primary-key-def": PRIMARY_KEY_KEYS,
        }
        for key, allowed in nested.items():
            value = raw.get(key)
            if key in RULE_KEYS[rule_type] and isinstance(value, Mapping):
                self.keys(value, allowed, key)
        filters = raw.get("filters") if rule_type == "selection" else None
        for i, item in enumerate(filters if isinstance(filters, list) else []):
            if not isinstance(item, Mapping):
                continue
            self.keys(item, FILTER_KEYS, f"filters[{i}]")
            conditions = item.get("filter-conditions")
            for j, condition in enumerate(conditions if isinstance(conditions, list) else []):
                if isinstance(condition, Mapping):
                    self.keys(condition, CONDITION_KEYS, f"filters[{i}].filter-conditions[{j}]")

    def string(self, obj: Mapping[str, Any], key: str, place: str = "", required: bool = True) -> str | None:
        value = obj.get(key)
        where = f"{place}: " if place else ""
        if value is None:
            if required:
                raise self.fatal(f"{where}missing '{key}'")
            return None
        if not isinstance(value, str):
            raise self.fatal(f"{where}'{key}' must be a string, not {type(value).__name__}")
        if not value:
            raise self.fatal(f"{where}'{key}' must not be empty")
        return value

    def obj(self, key: str, required: bool = True) -> Mapping[str, Any] | None:
        value = self.raw.get(key)
        if value is None:
            if required:
                raise self.fatal(f"missing '{key}'")
            return None
        if not isinstance(value, Mapping):
            raise self.fatal(f"'{key}' must be an object, not {type(value).__name__}")
        return value

    def parse(self) -> Rule:
        raw = self.raw
        raw_id = raw.get("rule-id")
        if raw_id is None:
            raise self.fatal("missing 'rule-id'")
        if isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)) or raw_id == "":
            raise self.fatal("'rule-id' must be a string or an integer")
        rule_id = str(raw_id)
        self.where = f"rule {rule_id}"
        name = self.string(raw, "rule-name")
        assert name is not None
        self.where = f"rule {rule_id} ({name})"
        rule_type = self.string(raw, "rule-type")
        assert rule_type is not None
        if rule_type == "post-processing":
            raise self.fatal("rule-type 'post-processing' (object tagging) is not supported")
        if rule_type not in RULE_KEYS:
            raise self.fatal(f"unknown rule-type {rule_type!r}{did_you_mean(rule_type, RULE_KEYS)}")
        if rule_type == "table-settings" and "rule-action" in raw:
            raise self.fatal("table-settings rules take no 'rule-action'")
        self.check_keys(rule_type)
        locator = self.obj("object-locator")
        assert locator is not None
        if rule_type == "table-settings":
            return self._table_settings(rule_id, name, locator)
        action = self.string(raw, "rule-action")
        assert action is not None
        if rule_type == "selection":
            return self._selection(rule_id, name, action, locator)
        return self._transformation(rule_id, name, action, locator)

    def _load_order(self) -> int:
        value = self.raw.get("load-order", 0)
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fatal(f"'load-order' must be an integer, not {value!r}")
        return value

    def _selection(self, rule_id: str, name: str, action: str, locator: Mapping[str, Any]) -> Rule:
        if action not in SELECTION_ACTIONS:
            hint = did_you_mean(action, SELECTION_ACTIONS)
            raise self.fatal(f"unknown rule-action {action!r} for a selection rule{hint}")
        table_type = locator.get("table-type", "table")
        if table_type != "table":
            self.problem(
                f"object-locator: table-type {table_type!r} is not supported (Conveyor reads tables only)"
            )
        schema = self.string(locator, "schema-name", "object-locator")
        table = self.string(locator, "table-name", "object-locator")
        assert schema is not None and table is not None
        filters = self._filters()
        if filters and action == "exclude":
            self.problem("filters apply to include rules only (the service ignores them on exclude)")
        wild = action != "explicit"
        return Rule(
            rule_id,
            name,
            "selection",
            action,
            "",
            pattern(schema, wild),
            pattern(table, wild),
            None,
            filters=filters,
            load_order=self._load_order(),
        )

    def _filters(self) -> tuple[FilterSpec, ...]:
        raw = self.raw.get("filters")
        if raw is None:
            return ()
        if not isinstance(raw, list):
            raise self.fatal(f"'filters' must be a list, not {type(raw).__name__}")
        specs: list[FilterSpec] = []
        for i, item in enumerate(raw):
            place = f"filters[{i}]"
            if not isinstance(item, Mapping):
                raise self.fatal(f"{place} must be an object, not {type(item).__name__}")
            kind = self.string(item, "filter-type", place)
            if kind != "source":
                raise self.fatal(f"{place}: filter-type must be 'source', not {kind!r}")
            column = self.string(item, "column-name", place)
            assert column is not None
            conditions = item.get("filter-conditions")
            if not isinstance(conditions, list) or not conditions:
                raise self.fatal(f"{place}: 'filter-conditions' must be a non-empty list")
            parsed = [self._condition(c, f"{place}.filter-conditions[{j}]") for j, c in enumerate(conditions)]
            specs.append(FilterSpec(column, tuple(parsed)))
        return tuple(specs)

    def _condition(self, raw: object, place: str) -> tuple[FilterOp, tuple[str, ...]]:
        if not isinstance(raw, Mapping):
            raise self.fatal(f"{place} must be an object, not {type(raw).__name__}")
        name = self.string(raw, "filter-operator", place)
        assert name is not None
        op = OPERATORS.get(name)
        if op is None:
            raise self.fatal(f"{place}: unknown filter-operator {name!r}{did_you_mean(name, OPERATORS)}")
        wanted: tuple[str, ...]
        unwanted: tuple[str, ...]
        if op in (FilterOp.BETWEEN, FilterOp.NOTBETWEEN):
            wanted, unwanted = ("start-value", "end-value"), ("value",)
        elif op in (FilterOp.NULL, FilterOp.NOTNULL):
            wanted, unwanted = (), ("value", "start-value", "end-value")
        else:
            wanted, unwanted = ("value",), ("start-value", "end-value")
        for key in unwanted:
            if key in raw:
                self.problem(f"{place}: filter-operator {name!r} takes no {key!r}")
        values: list[str] = []
        for key in wanted:
            value = raw.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                value = str(value)
            if not isinstance(value, str):
                raise self.fatal(f"{place}: filter-operator {name!r} needs {key!r} (a string)")
            values.append(value)
        return op, tuple(values)

    def _table_settings(self, rule_id: str, name: str, locator: Mapping[str, Any]) -> Rule:
        schema = self.string(locator, "schema-name", "object-locator")
        table = self.string(locator, "table-name", "object-locator")
        assert schema is not None and table is not None
        parallel: str | None = None
        ranges: RangeSpec | None = None
        partitions: tuple[str, ...] = ()
        load = self.obj("parallel-load", required=False)
        if load is not None:
            parallel = self.string(load, "type", "parallel-load")
            assert parallel is not None
            if parallel not in PARALLEL_LOAD_TYPES:
                raise self.fatal(
                    f"parallel-load: unknown type {parallel!r}{did_you_mean(parallel, PARALLEL_LOAD_TYPES)}"
                )
            if parallel == "ranges":
                ranges = self._ranges(load)
            elif parallel == "partitions-list":
                partitions = self._partitions_list(load)
            elif parallel == "subpartitions-auto":
                self.problem(
                    "parallel-load type 'subpartitions-auto' is not supported: the service defines it "
                    "for Oracle sources only; from PostgreSQL, 'partitions-auto' already makes each "
                    "leaf partition (sub-partitions included) a segment"
                )
            for key in ("partitions", "subpartitions", "columns", "boundaries"):
                if key in load and not _parallel_key_fits(parallel, key):
                    self.problem(f"parallel-load: {key!r} belongs to other types than {parallel!r}")
        lob = self.obj("lob-settings", required=False)
        mode: str | None = None
        size: Any = None
        if lob is not None:
            mode = self.string(lob, "mode", "lob-settings")
            assert mode is not None
            if mode not in LOB_MODES:
                raise self.fatal(f"lob-settings: unknown mode {mode!r}{did_you_mean(mode, LOB_MODES)}")
            size = lob.get("bulk-max-size")
            if isinstance(size, str) and size.strip().isdigit():
                size = int(size)  # the service's examples write it as text
            if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
                self.problem(f"lob-settings: 'bulk-max-size' must be a non-negative integer, not {size!r}")
                size = None
        return Rule(
            rule_id,
            name,
            "table-settings",
            "",
            "",
            pattern(schema, True),
            pattern(table, True),
            None,
            load_order=self._load_order(),
            parallel_load=parallel,
            ranges=ranges,
            partitions=partitions,
            lob_mode=mode,
            lob_kilobytes=size or None,
        )

    def _partitions_list(self, load: Mapping[str, Any]) -> tuple[str, ...]:
        """parallel-load ``partitions-list``: the partitions named (checked
        against the table's own when the load starts)."""
        if "subpartitions" in load:
            self.problem(
                "parallel-load: 'subpartitions' is for Oracle sources only (the service's "
                "sub-partitions); name PostgreSQL leaf partitions in 'partitions'"
            )
        names = load.get("partitions")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
            raise self.fatal("parallel-load: 'partitions' must be a non-empty list of partition names")
        if len(set(names)) != len(names):
            self.problem(f"parallel-load: 'partitions' names a partition twice: {names}")
        return tuple(names)

    def _ranges(self, load: Mapping[str, Any]) -> RangeSpec | None:
        """parallel-load ``ranges``: one column and its segment boundaries."""
        columns = load.get("columns")
        boundaries = load.get("boundaries")
        if not isinstance(columns, list) or not columns or not all(isinstance(c, str) and c for c in columns):
            raise self.fatal("parallel-load: 'columns' must be a non-empty list of column names")
        if len(columns) != 1:
            self.problem("parallel-load ranges on more than one column are not supported (use one column)")
            return None
        if not isinstance(boundaries, list) or not boundaries:
            raise self.fatal("parallel-load: 'boundaries' must be a non-empty list of value lists")
        values: list[str] = []
        for i, bound in enumerate(boundaries):
            if (
                not isinstance(bound, list)
                or len(bound) != 1
                or isinstance(bound[0], bool)
                or not isinstance(bound[0], (str, int, float))
            ):
                raise self.fatal(
                    f"parallel-load: boundaries[{i}] must be a list of one value (one per column)"
                )
            values.append(str(bound[0]))
        if "number-of-partitions" in load:
            self.problem("parallel-load: 'number-of-partitions' belongs to other types than 'ranges'")
        return RangeSpec(columns[0], tuple(values))

    def _transformation(self, rule_id: str, name: str, action: str, locator: Mapping[str, Any]) -> Rule:
        raw = self.raw
        target = self.string(raw, "rule-target")
        assert target is not None
        if target in ("table-tablespace", "index-tablespace"):
            raise self.fatal(f"rule-target {target!r} (Oracle tablespaces) is not supported")
        if target not in ("schema", "table", "column"):
            raise self.fatal(f"unknown rule-target {target!r} (expected schema, table or column)")
        known = (*NAME_ACTIONS, *COLUMN_ACTIONS, *TABLE_ACTIONS)
        if action not in known:
            raise self.fatal(f"unknown rule-action {action!r}{did_you_mean(action, known)}")
        if action in COLUMN_ACTIONS and target != "column":
            raise self.fatal(f"rule-action {action!r} needs rule-target 'column'")
        if action in TABLE_ACTIONS and target != "table":
            raise self.fatal(f"rule-action {action!r} needs rule-target 'table'")
        for key in ("table-tablespace-name", "index-tablespace-name"):
            if key in locator:
                self.problem(f"object-locator: {key!r} is for tablespace rules, which are not supported")
        needs_value = action in NEEDS_VALUE or action in ("add-column", "data-masking-digits-mask")
        value = self.string(raw, "value", required=needs_value)
        old_value = self.string(raw, "old-value", required=action in ("replace-prefix", "replace-suffix"))
        if action in MASKING_ACTIONS and action != "data-masking-digits-mask" and value is not None:
            self.problem(f"rule-action {action!r} takes no 'value'")
        if action == "data-masking-digits-mask" and value is not None and not _mask_character(value):
            self.problem("data-masking-digits-mask: 'value' must be one printable ASCII character")
        self._unused(action)
        schema = self.string(locator, "schema-name", "object-locator")
        assert schema is not None
        table_p: re.Pattern[str] | None = None
        column_p: re.Pattern[str] | None = None
        if target != "schema":
            table = self.string(locator, "table-name", "object-locator")
            assert table is not None
            table_p = pattern(table, True)
        if target == "column" and action != "add-column":
            # add-before-image-columns: the filter chooses the columns, a name narrows them
            optional = action == "add-before-image-columns" and "column-name" not in locator
            column = "%" if optional else self.string(locator, "column-name", "object-locator")
            assert column is not None
            column_p = pattern(column, True)
        of_kinds = self._of_kinds(locator, action)
        expression: Expression | None = None
        data_type: ColumnType | None = None
        try:
            if action == "add-column":
                text = self.string(raw, "expression")
                assert text is not None
                expression = parse_expression(text)
            if action in ("add-column", "change-data-type"):
                spec = self.obj("data-type")
                assert spec is not None
                data_type = parse_data_type({k: v for k, v in spec.items() if k in DATA_TYPE_KEYS})
        except ExpressionError as exc:
            raise self.fatal(str(exc)) from None
        return Rule(
            rule_id,
            name,
            "transformation",
            action,
            target,
            pattern(schema, True),
            table_p,
            column_p,
            value=value,
            old_value=old_value,
            expression=expression,
            data_type=data_type,
            primary_key=self._primary_key() if action == "define-primary-key" else None,
            before_image=self._before_image() if action == "add-before-image-columns" else None,
            of_kinds=of_kinds,
        )

    def _of_kinds(self, locator: Mapping[str, Any], action: str) -> frozenset[Kind] | None:
        """object-locator ``data-type``: change-data-type of the columns of that type."""
        name = locator.get("data-type")
        if name is None:
            return None
        if action != "change-data-type":
            self.problem("object-locator: 'data-type' selects columns for rule-action change-data-type only")
            return None
        if not isinstance(name, str):
            raise self.fatal("object-locator: 'data-type' must be a type name such as 'int4'")
        try:
            kind = parse_data_type({"type": name}).kind
        except ExpressionError as exc:
            raise self.fatal(f"object-locator: {exc}") from None
        return _SAME_KINDS.get(kind, frozenset({kind}))

    def _unused(self, action: str) -> None:
        """Keys the service defines for other actions: refused, not ignored."""
        owners = {
            "expression": ("add-column",),
            "data-type": ("add-column", "change-data-type"),
            "old-value": ("replace-prefix", "replace-suffix"),
            "before-image-def": ("add-before-image-columns",),
            "primary-key-def": ("define-primary-key",),
        }
        for key, actions in owners.items():
            if self.raw.get(key) is not None and action not in actions:
                self.problem(f"'{key}' belongs to rule-action {' / '.join(actions)}, not {action!r}")
        if self.raw.get("value") is not None and action in (
            "convert-lowercase",
            "convert-uppercase",
            "remove-column",
            "include-column",
            "change-data-type",
            "define-primary-key",
        ):
            self.problem(f"rule-action {action!r} takes no 'value'")

    def _before_image(self) -> BeforeImageSpec:
        spec = self.obj("before-image-def", required=False) or {}
        prefix = spec.get("column-prefix", "BI_")
        suffix = spec.get("column-suffix", "")
        columns = spec.get("column-filter", "pk-only")
        if not isinstance(prefix, str) or not isinstance(suffix, str):
            self.problem("before-image-def: 'column-prefix' and 'column-suffix' must be strings")
            prefix, suffix = "BI_", ""
        elif not prefix and not suffix:
            self.problem(
                "before-image-def: 'column-prefix' and 'column-suffix' cannot both be empty "
                "(a before-image column would take its column's own name)"
            )
        if columns not in BEFORE_IMAGE_FILTERS:
            self.problem(
                f"before-image-def: 'column-filter' must be one of {', '.join(BEFORE_IMAGE_FILTERS)}, "
                f"not {columns!r}{did_you_mean(str(columns), BEFORE_IMAGE_FILTERS)}"
            )
            columns = "pk-only"
        return BeforeImageSpec(prefix, suffix, columns)

    def _primary_key(self) -> PrimaryKeySpec:
        spec = self.obj("primary-key-def")
        assert spec is not None
        origin = spec.get("origin", "primary-key")
        if origin not in ("primary-key", "unique-index"):
            self.problem(f"primary-key-def: 'origin' must be 'primary-key' or 'unique-index', not {origin!r}")
        columns = spec.get("columns")
        if (
            not isinstance(columns, list)
            or not columns
            or not all(isinstance(c, str) and c for c in columns)
            or len(set(columns)) != len(columns)
        ):
            raise self.fatal("primary-key-def: 'columns' must be a non-empty list of distinct column names")
        name = spec.get("name")
        if name is not None and not isinstance(name, str):
            self.problem("primary-key-def: 'name' must be a string")
            name = None
        return PrimaryKeySpec(name, tuple(columns))


def _mask_character(value: str) -> bool:
    return len(value) == 1 and value.isascii() and value.isprintable() and not value.isspace()


def parse_rules(raw_rules: list[Any]) -> tuple[list[Rule], RuleProblems]:
    """Every rule that parses, and every problem of every rule."""
    problems = RuleProblems()
    rules: list[Rule] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_rules):
        if not isinstance(raw, Mapping):
            problems.items.append(
                (f"rules.{index}", f"rule #{index + 1}: must be an object, not {type(raw).__name__}")
            )
            continue
        parser = _RuleParser(raw, index, problems)
        before = len(problems.items)
        try:
            rule = parser.parse()
        except _Bad:
            continue
        if rule.rule_id in seen:
            parser.problem(f"duplicate rule-id {rule.rule_id}")
        seen.add(rule.rule_id)
        if len(problems.items) == before:
            rules.append(rule)
    return rules, problems


def _parallel_key_fits(parallel: str, key: str) -> bool:
    """Whether a parallel-load key belongs to the type (a key for another type
    would be ignored: refused)."""
    if key in ("partitions", "subpartitions"):
        return parallel == "partitions-list"
    return parallel == "ranges"
