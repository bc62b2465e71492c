"""AWS DMS table mappings (``{"rules": [...]}``) as users write them.

Supported: ``selection`` rules (include / exclude / explicit) and
``transformation`` rules on schemas, tables and columns (rename, remove-column,
convert-lowercase, convert-uppercase, add-prefix, remove-prefix, add-suffix,
remove-suffix, add-column).

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
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa

from conveyor.core.batch import Op
from conveyor.core.errors import ConfigError
from conveyor.core.schema import Column, TableRef, TableSchema
from conveyor.core.types import ColumnType
from conveyor.replication.expressions import (
    FULL_LOAD_OPERATION,
    AddedColumn,
    Evaluator,
    Expression,
    ExpressionError,
    parse_data_type,
    parse_expression,
)

_UNSUPPORTED_ACTIONS = frozenset(
    {
        "include-column",
        "change-data-type",
        "add-before-image-columns",
        "define-primary-key",
        "replace-prefix",
        "replace-suffix",
        "data-masking-digits-mask",
        "data-masking-digits-randomize",
        "data-masking-hash-mask",
    }
)
_UNSUPPORTED_RULE_TYPES = frozenset({"table-settings", "post-processing"})
_SELECTION_ACTIONS = frozenset({"include", "exclude", "explicit"})
_NAME_ACTIONS = frozenset(
    {
        "rename",
        "convert-lowercase",
        "convert-uppercase",
        "add-prefix",
        "remove-prefix",
        "add-suffix",
        "remove-suffix",
    }
)
_VALUE_ACTIONS = frozenset({"rename", "add-prefix", "remove-prefix", "add-suffix", "remove-suffix"})
_TARGETS = ("schema", "table", "column")
_MAX_LISTED = 20


def _pattern(text: str, wildcards: bool) -> re.Pattern[str]:
    if not wildcards:
        return re.compile(re.escape(text))
    return re.compile(".*".join(re.escape(part) for part in text.split("%")), re.DOTALL)


@dataclass(frozen=True)
class _Rule:
    rule_id: str
    name: str
    rule_type: str
    action: str
    target: str  # "schema" | "table" | "column" for transformations, "" for selection
    schema: re.Pattern[str]
    table: re.Pattern[str] | None
    column: re.Pattern[str] | None
    value: str | None
    # add-column: the expression and the new column's type.
    expression: Expression | None = None
    data_type: ColumnType | None = None

    @property
    def label(self) -> str:
        return f"rule {self.rule_id} ({self.name})"

    def fail(self, origin: str, problem: str) -> ConfigError:
        return ConfigError(f"{origin}: rule {self.rule_id} ({self.name}): {problem}")

    def matches_table(self, ref: TableRef) -> bool:
        if not self.schema.fullmatch(ref.schema):
            return False
        return self.table is None or self.table.fullmatch(ref.name) is not None

    def apply(self, name: str) -> str:
        action = self.action
        value = self.value or ""
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
        raise AssertionError(action)  # pragma: no cover - parse() rejects others


@dataclass(frozen=True)
class ColumnMap:
    """One target column and the source column it is filled from (None: no source)."""

    target: str
    source: str | None


_OPERATIONS = {Op.READ: FULL_LOAD_OPERATION, Op.INSERT: "INSERT", Op.UPDATE: "UPDATE", Op.DELETE: "DELETE"}


@dataclass(frozen=True)
class MappedTable:
    """A selected table: ``columns`` lists the target columns and their source
    columns (None for a column an add-column rule computes, see ``added``)."""

    source: TableSchema
    target: TableSchema
    columns: tuple[ColumnMap, ...]
    added: tuple[AddedColumn, ...] = ()
    evaluator: Evaluator | None = field(default=None, compare=False, repr=False)

    def source_columns(self) -> list[str]:
        """Source columns to read, in target order."""
        return [c.source for c in self.columns if c.source is not None]

    def project(self, records: pa.RecordBatch, timestamp: datetime | None = None) -> pa.RecordBatch:
        """Rename and drop columns of a source batch and compute added columns
        ($AR_H_OPERATION 'INSERT', $AR_H_TIMESTAMP ``timestamp`` or now); the
        result has ``target.arrow_schema()``. A value an added column's type
        cannot take raises DataError."""
        schema = self.target.arrow_schema()
        computed: dict[str, pa.Array] = {}
        if self.evaluator is not None:
            values = self.evaluator.evaluate(records, FULL_LOAD_OPERATION, timestamp)
            computed = {c.name: a for c, a in zip(self.added, values, strict=True)}
        arrays: list[pa.Array] = []
        for cmap, arrow_field in zip(self.columns, schema, strict=True):
            if cmap.source is None:
                arrays.append(computed.get(cmap.target, pa.nulls(records.num_rows, type=arrow_field.type)))
                continue
            index = records.schema.get_field_index(cmap.source)
            if index < 0:
                raise ValueError(f"batch for {self.source.ref} has no column {cmap.source!r}")
            array = records.column(index)
            if not array.type.equals(arrow_field.type):
                array = array.cast(arrow_field.type)
            arrays.append(array)
        return pa.RecordBatch.from_arrays(arrays, schema=schema)

    @property
    def added_names(self) -> frozenset[str]:
        """Target names of the columns add-column rules compute."""
        return frozenset(c.name for c in self.added)

    def compute_added(
        self, rows: Sequence[Mapping[str, Any]], op: Op = Op.INSERT, timestamp: datetime | None = None
    ) -> list[dict[str, Any]]:
        """For CDC: the added columns of rows given in *source* column names
        (``RowChange.values``), as ``{target name: value}`` per row, ready to merge
        into the renamed row. ``op`` gives $AR_H_OPERATION, ``timestamp``
        $AR_H_TIMESTAMP (default now). An added column whose expression reads a
        source column a row lacks (unchanged, not sent) is left out of that row:
        the caller must treat it as unchanged. Empty dicts when nothing is added."""
        if self.evaluator is None:
            return [{} for _ in rows]
        return self.evaluator.evaluate_rows(rows, _OPERATIONS[op], timestamp)


def _get_str(rule: Mapping[str, Any], key: str, where: str, origin: str) -> str:
    if key not in rule:
        raise ConfigError(f"{origin}: {where}: missing '{key}'")
    value = rule[key]
    if not isinstance(value, str):
        raise ConfigError(f"{origin}: {where}: '{key}' must be a string, not {type(value).__name__}")
    if not value:
        raise ConfigError(f"{origin}: {where}: '{key}' must not be empty")
    return value


def _parse_rule(raw: object, index: int, origin: str) -> _Rule:
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{origin}: rule #{index + 1}: must be an object, not {type(raw).__name__}")
    where = f"rule #{index + 1}"
    raw_id = raw.get("rule-id")
    if raw_id is None:
        raise ConfigError(f"{origin}: {where}: missing 'rule-id'")
    if isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)) or raw_id == "":
        raise ConfigError(f"{origin}: {where}: 'rule-id' must be a string or an integer")
    rule_id = str(raw_id)
    name = _get_str(raw, "rule-name", f"rule {rule_id}", origin)
    where = f"rule {rule_id} ({name})"
    rule_type = _get_str(raw, "rule-type", where, origin)
    action = _get_str(raw, "rule-action", where, origin)

    def fail(problem: str) -> ConfigError:
        return ConfigError(f"{origin}: {where}: {problem}")

    if rule_type in _UNSUPPORTED_RULE_TYPES:
        raise fail(f"rule-type '{rule_type}' is a DMS rule type Conveyor does not support yet")
    if rule_type not in ("selection", "transformation"):
        raise fail(f"unknown rule-type '{rule_type}'")
    if action in _UNSUPPORTED_ACTIONS:
        raise fail(f"rule-action '{action}' is a DMS action Conveyor does not support yet")

    locator = raw.get("object-locator")
    if locator is None:
        raise fail("missing 'object-locator'")
    if not isinstance(locator, Mapping):
        raise fail(f"'object-locator' must be an object, not {type(locator).__name__}")

    if rule_type == "selection":
        if action not in _SELECTION_ACTIONS:
            raise fail(f"unknown rule-action '{action}' for a selection rule")
        filters = raw.get("filters", [])
        if not isinstance(filters, list):
            raise fail(f"'filters' must be a list, not {type(filters).__name__}")
        if filters:
            raise fail("source filters are not supported yet")
        wild = action != "explicit"
        schema = _get_str(locator, "schema-name", f"{where}: object-locator", origin)
        table = _get_str(locator, "table-name", f"{where}: object-locator", origin)
        sel_schema, sel_table = _pattern(schema, wild), _pattern(table, wild)
        return _Rule(rule_id, name, rule_type, action, "", sel_schema, sel_table, None, None)

    target = _get_str(raw, "rule-target", where, origin)
    if target not in _TARGETS:
        raise fail(f"unknown rule-target '{target}' (expected schema, table or column)")
    if action in ("remove-column", "add-column"):
        if target != "column":
            raise fail(f"rule-action '{action}' needs rule-target 'column'")
    elif action not in _NAME_ACTIONS:
        raise fail(f"unknown rule-action '{action}'")
    value: str | None = None
    if action in _VALUE_ACTIONS or action == "add-column":
        value = _get_str(raw, "value", where, origin)
    loc_where = f"{where}: object-locator"
    schema_p = _pattern(_get_str(locator, "schema-name", loc_where, origin), True)
    table_p: re.Pattern[str] | None = None
    column_p: re.Pattern[str] | None = None
    if target != "schema":
        table_p = _pattern(_get_str(locator, "table-name", loc_where, origin), True)
    if target == "column" and action != "add-column":
        column_p = _pattern(_get_str(locator, "column-name", loc_where, origin), True)
    expression: Expression | None = None
    data_type: ColumnType | None = None
    if action == "add-column":
        try:
            expression = parse_expression(_get_str(raw, "expression", where, origin))
            if "data-type" not in raw:
                raise ExpressionError("missing 'data-type'")
            data_type = parse_data_type(raw["data-type"])
        except ExpressionError as exc:
            raise fail(str(exc)) from None
    return _Rule(
        rule_id, name, rule_type, action, target, schema_p, table_p, column_p, value, expression, data_type
    )


class TableMappings:
    """Parsed table mappings; :meth:`select` applies them to source tables."""

    def __init__(self, rules: Sequence[_Rule], origin: str, target_schema: str = "") -> None:
        self._rules = tuple(rules)
        self._origin = origin
        self._target_schema = target_schema

    def in_schema(self, target_schema: str) -> TableMappings:
        """These mappings with the task setting TargetMetadata.TargetSchema: tables
        land in that schema (rules on the schema name still apply to it)."""
        return TableMappings(self._rules, self._origin, target_schema)

    @classmethod
    def parse(cls, doc: Mapping[str, Any] | str, origin: str) -> TableMappings:
        """Parse a mappings document (JSON text or decoded object); ``origin`` names it in errors."""
        data: object = doc
        if isinstance(doc, str):
            try:
                data = json.loads(doc)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{origin}: invalid JSON: {exc}") from None
        if not isinstance(data, Mapping):
            raise ConfigError(f"{origin}: table mappings must be a JSON object with 'rules'")
        if "rules" not in data:
            raise ConfigError(f"{origin}: missing 'rules'")
        raw_rules = data["rules"]
        if not isinstance(raw_rules, list):
            raise ConfigError(f"{origin}: 'rules' must be a list, not {type(raw_rules).__name__}")
        rules: list[_Rule] = []
        seen: set[str] = set()
        for index, raw in enumerate(raw_rules):
            rule = _parse_rule(raw, index, origin)
            if rule.rule_id in seen:
                raise rule.fail(origin, f"duplicate rule-id {rule.rule_id}")
            seen.add(rule.rule_id)
            rules.append(rule)
        if not any(r.rule_type == "selection" and r.action != "exclude" for r in rules):
            raise ConfigError(
                f"{origin}: needs at least one selection rule with rule-action include or explicit"
            )
        return cls(rules, origin)

    def _selected(self, ref: TableRef) -> bool:
        included = False
        for rule in self._rules:
            if rule.rule_type != "selection" or not rule.matches_table(ref):
                continue
            if rule.action == "exclude":
                return False
            included = True
        return included

    def select(self, tables: Sequence[TableSchema], allow_empty: bool = False) -> list[MappedTable]:
        """The selected tables, in input order, with their target shape. Selecting
        none is an error (FailOnNoTablesCaptured) unless ``allow_empty``."""
        chosen = [t for t in tables if self._selected(t.ref)]
        if not chosen and not allow_empty:
            names = [str(t.ref) for t in tables[:_MAX_LISTED]]
            listed = ", ".join(names) if names else "(none)"
            more = f" (and {len(tables) - _MAX_LISTED} more)" if len(tables) > _MAX_LISTED else ""
            raise ConfigError(
                f"{self._origin}: the selection rules match none of the {len(tables)} source tables: "
                f"{listed}{more}"
            )
        mapped = [self._map(t) for t in chosen]
        owners: dict[TableRef, TableRef] = {}
        for m in mapped:
            other = owners.setdefault(m.target.ref, m.source.ref)
            if other != m.source.ref:
                raise ConfigError(
                    f"{self._origin}: source tables {other} and {m.source.ref} both map to "
                    f"target table {m.target.ref}"
                )
        return mapped

    def _map(self, table: TableSchema) -> MappedTable:
        origin = self._origin
        ref = table.ref
        schema_name, table_name = self._target_schema or ref.schema, ref.name
        # The target's columns as rules leave them; removed columns leave the list.
        cols = [_Col(c.name, c.name, c.name) for c in table.columns]
        for rule in self._rules:
            if rule.rule_type != "transformation" or not rule.matches_table(ref):
                continue
            if rule.target == "schema":
                schema_name = rule.apply(schema_name)
                if not schema_name:
                    raise rule.fail(origin, f"leaves schema of table {ref} with an empty name")
            elif rule.target == "table":
                table_name = rule.apply(table_name)
                if not table_name:
                    raise rule.fail(origin, f"leaves table {ref} with an empty name")
            elif rule.action == "add-column":
                assert rule.value is not None
                if any(c.target == rule.value for c in cols):
                    raise rule.fail(origin, f"table {ref} already has a column {rule.value!r}")
                cols.append(_Col(rule.value, rule.value, None, rule))
            else:
                assert rule.column is not None
                pattern = rule.column
                hit = [c for c in cols if pattern.fullmatch(c.match)]
                if rule.action == "remove-column":
                    cols = [c for c in cols if c not in hit]
                    if not cols:
                        raise rule.fail(origin, f"removes every column of table {ref}")
                    continue
                for c in hit:
                    new = rule.apply(c.target)
                    if not new:
                        raise rule.fail(
                            origin, f"leaves column {c.match!r} of table {ref} with an empty name"
                        )
                    c.target = new
                names = [c.target for c in cols]
                dupes = sorted({n for n in names if names.count(n) > 1})
                if dupes:
                    raise rule.fail(
                        origin,
                        f"renaming columns of table {ref} makes {', '.join(repr(d) for d in dupes)} collide",
                    )
        if not any(c.source is not None for c in cols):
            raise ConfigError(f"{origin}: table {ref} keeps none of its source columns")
        by_source = {c.source: c.target for c in cols if c.source is not None}
        # A generated column's expression names source columns: kept only while
        # no column is renamed or removed (else its values are copied).
        same_columns = [(c.source, c.target) for c in cols if c.rule is None] == [
            (n, n) for n in table.column_names
        ]
        columns: list[Column] = []
        added: list[AddedColumn] = []
        for c in cols:
            if c.rule is None:
                assert c.source is not None
                source_col = table.column(c.source)
                generated = source_col.generated if same_columns else None
                columns.append(Column(c.target, source_col.type, source_col.nullable, generated))
                continue
            assert c.rule.expression is not None and c.rule.data_type is not None
            columns.append(Column(c.target, c.rule.data_type, True))
            added.append(AddedColumn(c.target, c.rule.data_type, c.rule.expression, c.rule.label))
        key = tuple(by_source[k] for k in table.primary_key if k in by_source)
        target = TableSchema(
            TableRef(schema_name, table_name),
            tuple(columns),
            key,
            table.estimated_rows,
            table.native_engine,
            table.native_types,
        )
        maps = tuple(ColumnMap(target=c.target, source=c.source) for c in cols)
        evaluator = Evaluator(table, added, origin) if added else None
        return MappedTable(source=table, target=target, columns=maps, added=tuple(added), evaluator=evaluator)


class _Col:
    """A target column while rules are applied: ``match`` is the name column
    locators match (the source name, or an added column's name), ``source`` the
    source column it is read from (None when ``rule``, an add-column rule, computes it)."""

    __slots__ = ("match", "rule", "source", "target")

    def __init__(self, match: str, target: str, source: str | None, rule: _Rule | None = None) -> None:
        self.match = match
        self.target = target
        self.source = source
        self.rule = rule
