"""Relational schemas inferred from DynamoDB items.

Items travel as Arrow struct arrays in DynamoDB's own JSON wire format: an item
is a struct of attributes, an attribute a struct of type tags (``S``, ``N``,
``B``, ``BOOL``, ``NULL``, ``M``, ``L``, ``SS``, ``NS``, ``BS``) of which one is
set. :class:`Node` gathers, vectorised, what a sample of items holds at every
attribute path; :func:`layout` turns that into tables.

The type lattice, per attribute path (``NULL`` values are ignored):

* ``N``: ``int64`` when every value is integral and fits; else
  ``decimal(38, s)`` (``s`` the largest scale seen) when every value fits 38
  digits; else ``numeric`` (the exact decimal text).
* ``S``: ``timestamptz`` when every value is an ISO-8601 date-time with a zone
  (``Z``, ``+02:00``), ``timestamp`` when every value is one without a zone,
  else ``text``.
* ``BOOL``: boolean. ``B``: bytes. A path only ever ``NULL``: text.
* ``SS``/``BS``: ``text[]``/``bytes[]``; ``NS``: an array of the ``N`` lattice.
* ``L`` of scalars of one tag: an array of that tag's type; ``L`` of maps only:
  a child table (below); any other ``L`` (mixed, nested lists, always empty): json.
* ``M``: flattened into ``parent__child`` columns, recursively.
* A path whose values carry different tags (``S`` in one item, ``N`` in
  another): json (the plain JSON of the value, numbers as JSON numbers).

A list of maps at ``path`` becomes the child table ``<table>_<path>``
(``Orders_Items``), with the parent's key columns, ``position`` (0-based index
in the list) and the flattened columns of the maps; its key is the parent key
plus ``position``, and its schema names the parent (``TableSchema.parent``:
selecting the parent selects it). Lists of maps inside a child's maps are json columns.

Every table also has the ``_variant`` json column (endpoint setting
``variant_column``; ``null`` removes it): a value that does not fit its column
(a conflicting type, an attribute first seen after the sample) is put there,
as ``{"column": <DynamoDB JSON of the value>}``, never truncated or dropped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from conveyor.core import types as t
from conveyor.core.errors import ConfigError
from conveyor.core.schema import Column, TableRef, TableSchema
from conveyor.core.types import ColumnType, Kind

TAGS = ("S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS")
SCALAR_TAGS = frozenset({"S", "N", "B", "BOOL"})
SEPARATOR = "__"
POSITION = "position"
VARIANT = "_variant"
INT64_DIGITS = 18  # every integer of up to 18 digits fits int64
_INT = r"^-?[0-9]+$"
_PLAIN = r"^-?[0-9]+(\.[0-9]+)?$"
_DATETIME = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}"
_TYPE_SPEC = re.compile(r"^\s*([a-z0-9_ ]+?)\s*(?:\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\))?\s*(\[\])?\s*$")


def tag_field(attr: pa.Array, tag: str) -> pa.Array | None:
    """The ``tag`` child of an attribute struct array (None when no item has it),
    null where the attribute itself is null."""
    if not pa.types.is_struct(attr.type) or attr.type.get_field_index(tag) < 0:
        return None
    return pc.struct_field(attr, [attr.type.get_field_index(tag)])


def child_field(struct: pa.Array, name: str) -> pa.Array | None:
    """Attribute ``name`` of a map/item struct array (None when absent)."""
    return tag_field(struct, name)


def valid_count(array: pa.Array | None) -> int:
    return 0 if array is None else len(array) - array.null_count


@dataclass
class NumberStats:
    """What the N values at one path need: integral, scale, digits."""

    values: int = 0
    integral: bool = True
    plain: bool = True
    max_scale: int = 0
    max_int_digits: int = 0
    int64: bool = True

    def observe(self, strings: pa.Array) -> None:
        strings = strings.drop_null()
        if not len(strings):
            return
        self.values += len(strings)
        if not pc.all(pc.match_substring_regex(strings, _PLAIN)).as_py():
            self.plain = False
            return
        dot = pc.find_substring(strings, ".")
        length = pc.utf8_length(strings)
        negative = pc.cast(pc.starts_with(strings, "-"), pa.int32())
        has_dot = pc.greater_equal(dot, 0)
        int_digits = pc.subtract(pc.if_else(has_dot, dot, length), negative)
        scale = pc.if_else(has_dot, pc.subtract(pc.subtract(length, dot), 1), 0)
        self.max_int_digits = max(self.max_int_digits, pc.max(int_digits).as_py() or 0)
        self.max_scale = max(self.max_scale, pc.max(scale).as_py() or 0)
        if pc.any(has_dot).as_py():
            self.integral = False
        if self.integral and self.max_int_digits > INT64_DIGITS:
            try:
                strings.cast(pa.int64())
            except (pa.ArrowInvalid, OverflowError):
                self.int64 = False

    def column_type(self) -> ColumnType:
        if not self.plain:
            return t.simple(Kind.NUMERIC, native="N")
        if self.integral and self.int64 and self.max_int_digits <= INT64_DIGITS + 1:
            return t.simple(Kind.INT64, native="N")
        if self.max_int_digits + self.max_scale <= t.MAX_DECIMAL_PRECISION:
            return t.decimal(t.MAX_DECIMAL_PRECISION, self.max_scale, native="N")
        return t.simple(Kind.NUMERIC, native="N")


@dataclass
class StringStats:
    """Whether every S value at one path is an ISO-8601 date-time, with or without zone."""

    values: int = 0
    zoned: bool = True
    naive: bool = True

    def observe(self, strings: pa.Array) -> None:
        strings = strings.drop_null()
        if not len(strings) or not (self.zoned or self.naive):
            return
        self.values += len(strings)
        if not pc.all(pc.match_substring_regex(strings, _DATETIME)).as_py():
            self.zoned = self.naive = False
            return
        for unit_type, attr in ((pa.timestamp("us", tz="UTC"), "zoned"), (pa.timestamp("us"), "naive")):
            if getattr(self, attr):
                try:
                    strings.cast(unit_type)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                    setattr(self, attr, False)

    def column_type(self) -> ColumnType:
        if self.values and self.zoned:
            return t.simple(Kind.TIMESTAMPTZ, native="S")
        if self.values and self.naive:
            return t.simple(Kind.TIMESTAMP, native="S")
        return t.simple(Kind.TEXT, native="S")


@dataclass
class Node:
    """Everything seen at one attribute path (or in the elements of a list there)."""

    tags: dict[str, int] = field(default_factory=dict)
    strings: StringStats = field(default_factory=StringStats)
    numbers: NumberStats = field(default_factory=NumberStats)
    set_numbers: NumberStats = field(default_factory=NumberStats)
    members: dict[str, Node] = field(default_factory=dict)  # M: the map's attributes
    element: Node | None = None  # L: the list's elements

    def observe(self, attr: pa.Array) -> None:
        """Add the attribute values ``attr`` (a struct array of tags)."""
        for tag in TAGS:
            values = tag_field(attr, tag)
            count = valid_count(values)
            if values is None or not count:
                continue
            self.tags[tag] = self.tags.get(tag, 0) + count
            if tag == "S":
                self.strings.observe(values)
            elif tag == "N":
                self.numbers.observe(values)
            elif tag == "NS":
                self.set_numbers.observe(pc.list_flatten(values))
            elif tag == "M":
                self.observe_map(values)
            elif tag == "L":
                if self.element is None:
                    self.element = Node()
                self.element.observe(pc.list_flatten(values))

    def observe_map(self, struct: pa.Array) -> None:
        """Add map (or item) values: ``struct`` is a struct array of attributes."""
        if not pa.types.is_struct(struct.type):
            return
        for index in range(struct.type.num_fields):
            name = struct.type.field(index).name
            member = pc.struct_field(struct, [index])
            if not valid_count(member):
                self.members.setdefault(name, Node())
                continue
            self.members.setdefault(name, Node()).observe(member)

    def kinds(self) -> set[str]:
        return {tag for tag, count in self.tags.items() if count and tag != "NULL"}

    def is_list_of_maps(self) -> bool:
        return self.kinds() == {"L"} and self.element is not None and self.element.kinds() == {"M"}


@dataclass(frozen=True)
class FieldSpec:
    """One column of a flattened table: where its values come from and how.

    ``path`` is the attribute path from the item (or, in a child table, from the
    list element's map). ``tag`` is the DynamoDB type the column holds: one of
    ``S N B BOOL SS NS BS``, ``L`` (a list of ``element_tag`` scalars) or
    ``JSON`` (any value as plain JSON).
    """

    name: str
    path: tuple[str, ...]
    tag: str
    type: ColumnType
    element_tag: str | None = None


@dataclass(frozen=True)
class TableLayout:
    """How one table is cut out of items: its schema, the parent key fields
    (item paths), the list path a child table unnests (None for the parent) and
    the data fields (paths from the item, or from a list element's map)."""

    schema: TableSchema
    keys: tuple[FieldSpec, ...]
    fields: tuple[FieldSpec, ...]
    list_path: tuple[str, ...] | None = None
    variant: str | None = VARIANT
    # Item paths a parent table leaves to its child tables (not drift).
    child_paths: tuple[tuple[str, ...], ...] = ()

    def known(self) -> dict[str, Any]:
        """The attribute names this table reads, as a tree (``{}`` leaves):
        anything else under a known map is drift for this table."""
        tree: dict[str, Any] = {}
        specs = self.fields if self.list_path is not None else self.keys + self.fields
        paths = [spec.path for spec in specs] + list(self.child_paths)
        for path in paths:
            node = tree
            for part in path[:-1]:
                node = node.setdefault(part, {})
            node.setdefault(path[-1], {})
        return tree


@dataclass(frozen=True)
class DocumentLayout:
    """A DynamoDB table as relational tables: the parent and its children."""

    parent: TableLayout
    children: tuple[TableLayout, ...] = ()

    def tables(self) -> list[TableLayout]:
        return [self.parent, *self.children]

    def child_paths(self) -> set[tuple[str, ...]]:
        return {c.list_path for c in self.children if c.list_path is not None}


def parse_type(spec: str) -> ColumnType:
    """A column type as a user writes it in ``column_types``: ``int64``, ``int32``,
    ``decimal(12,2)``, ``varchar(32)``, ``text``, ``timestamp``, ``timestamptz``,
    ``numeric``, ``float64``, ``boolean``, ``bytes``, ``json``, ``date``, ``text[]`` ..."""
    match = _TYPE_SPEC.match(spec.lower())
    if not match:
        raise ValueError(f"unknown column type {spec!r}")
    name, first, second, is_array = match.groups()
    name = {
        "int": "int32",
        "integer": "int32",
        "bigint": "int64",
        "smallint": "int16",
        "varchar": "text",
    }.get(name, name)
    if name in {"decimal", "numeric"} and first is not None:
        base = t.decimal(int(first), int(second or 0))
    elif name == "text" and first is not None:
        base = t.varchar(int(first))
    else:
        try:
            base = t.simple(Kind(name))
        except ValueError:
            raise ValueError(f"unknown column type {spec!r}") from None
    return t.array(base) if is_array else base


def _scalar_type(node: Node, tag: str) -> ColumnType:
    if tag == "S":
        return node.strings.column_type()
    if tag == "N":
        return node.numbers.column_type()
    if tag == "B":
        return t.simple(Kind.BYTES, native="B")
    return t.simple(Kind.BOOLEAN, native="BOOL")


def _spec(name: str, path: tuple[str, ...], node: Node) -> FieldSpec | None:
    """The column of a non-map path (None for a list of maps: a child table)."""
    kinds = node.kinds()
    json = t.simple(Kind.JSON, native="JSON")
    if not kinds:
        return FieldSpec(name, path, "S", t.simple(Kind.TEXT, native="NULL"))
    if len(kinds) > 1:
        return FieldSpec(name, path, "JSON", json)
    (tag,) = kinds
    if tag in SCALAR_TAGS:
        return FieldSpec(name, path, tag, _scalar_type(node, tag))
    if tag == "SS":
        return FieldSpec(name, path, tag, t.array(t.simple(Kind.TEXT), native="SS"))
    if tag == "NS":
        return FieldSpec(name, path, tag, t.array(node.set_numbers.column_type(), native="NS"))
    if tag == "BS":
        return FieldSpec(name, path, tag, t.array(t.simple(Kind.BYTES), native="BS"))
    if tag == "L" and node.element is not None:
        element_kinds = node.element.kinds()
        if len(element_kinds) == 1 and next(iter(element_kinds)) in SCALAR_TAGS:
            (element_tag,) = element_kinds
            element_type = _scalar_type(node.element, element_tag)
            return FieldSpec(name, path, "L", t.array(element_type, native="L"), element_tag)
    return FieldSpec(name, path, "JSON", json)


def _unique(name: str, taken: set[str]) -> str:
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name}_{n}"
    taken.add(candidate)
    return candidate


def _walk(
    node: Node,
    path: tuple[str, ...],
    prefix: str,
    taken: set[str],
    fields: list[FieldSpec],
    lists: list[tuple[tuple[str, ...], str, Node]] | None,
    skip: frozenset[str] = frozenset(),
) -> None:
    for name, member in node.members.items():
        if not path and name in skip:
            continue
        member_path = (*path, name)
        column = prefix + name
        if member.kinds() == {"M"}:
            _walk(member, member_path, column + SEPARATOR, taken, fields, lists)
        elif lists is not None and member.is_list_of_maps():
            assert member.element is not None
            lists.append((member_path, column, member.element))
        else:
            spec = _spec(_unique(column, taken), member_path, member)
            assert spec is not None
            fields.append(spec)


def layout(
    root: Node,
    ref: TableRef,
    key_attributes: Mapping[str, str],
    *,
    variant: str | None = VARIANT,
    column_types: Mapping[str, Mapping[str, str]] | None = None,
    child_names: Mapping[str, str] | None = None,
    estimated_rows: int | None = None,
) -> DocumentLayout:
    """The tables of DynamoDB table ``ref`` given what ``root`` saw of its items.

    ``key_attributes`` are the key schema's attribute names to their declared
    type (``S``/``N``/``B``), partition key first. ``column_types`` overrides
    inferred types (``{"Orders": {"Total": "decimal(12,2)"}}``, by table then
    column name); ``child_names`` names child tables (``{"Orders.Items":
    "order_items"}``, by ``<table>.<column>``)."""
    overrides = column_types or {}
    taken: set[str] = set()
    keys: list[FieldSpec] = []
    for name, declared in key_attributes.items():
        node = root.members.get(name, Node())
        key_type = node.numbers.column_type() if declared == "N" else _scalar_type(node, declared)
        if declared == "S":
            key_type = t.simple(Kind.TEXT, native="S")
        keys.append(FieldSpec(_unique(name, taken), (name,), declared, key_type))
    fields: list[FieldSpec] = []
    lists: list[tuple[tuple[str, ...], str, Node]] = []
    _walk(root, (), "", taken, fields, lists, skip=frozenset(key_attributes))
    parent = _table(ref, keys, [], fields, None, variant, overrides.get(ref.name, {}), estimated_rows)
    own = parent.schema.ref
    children = []
    for list_path, column, element in lists:
        name = (child_names or {}).get(f"{ref.name}.{column}", f"{ref.name}_{column}")
        child_taken = {k.name for k in keys} | {POSITION}
        child_fields: list[FieldSpec] = []
        _walk(element, (), "", child_taken, child_fields, None)
        child_ref = TableRef(ref.schema, name)
        children.append(
            _table(
                child_ref,
                keys,
                [POSITION],
                child_fields,
                list_path,
                variant,
                overrides.get(name, {}),
                None,
                parent=own,
            )
        )
    parent = replace(parent, child_paths=tuple(path for path, _, _ in lists))
    return DocumentLayout(parent, tuple(children))


def _table(
    ref: TableRef,
    keys: list[FieldSpec],
    extra_key: list[str],
    fields: list[FieldSpec],
    list_path: tuple[str, ...] | None,
    variant: str | None,
    overrides: Mapping[str, str],
    estimated_rows: int | None,
    parent: TableRef | None = None,
) -> TableLayout:
    def typed(spec: FieldSpec) -> FieldSpec:
        if spec.name not in overrides:
            return spec
        try:
            column_type = parse_type(overrides[spec.name])
        except ValueError as exc:
            raise ConfigError(f"column_types: {ref.name}.{spec.name}: {exc}") from None
        return FieldSpec(spec.name, spec.path, spec.tag, column_type, spec.element_tag)

    keys = [typed(k) for k in keys]
    fields = [typed(f) for f in fields]
    columns = [Column(k.name, k.type, nullable=False) for k in keys]
    columns += [Column(name, t.simple(Kind.INT64), nullable=False) for name in extra_key]
    columns += [Column(f.name, f.type) for f in fields]
    if variant is not None:
        columns.append(Column(variant, t.simple(Kind.JSON, native="JSON")))
    schema = TableSchema(
        ref,
        tuple(columns),
        tuple(k.name for k in keys) + tuple(extra_key),
        estimated_rows=estimated_rows,
        native_engine="dynamodb",
        parent=parent,
    )
    return TableLayout(schema, tuple(keys), tuple(fields), list_path, variant)


def merge_layout(old: TableLayout, new: TableLayout) -> TableLayout:
    """``old`` with the columns ``new`` adds (appended before the variant
    column); columns ``old`` has keep their types (values that no longer fit
    go to the variant column rather than changing a column's type)."""
    names = {f.name for f in old.fields} | {k.name for k in old.keys}
    added = [f for f in new.fields if f.name not in names]
    if not added:
        return old
    fields = [*old.fields, *added]
    extra = [POSITION] if old.list_path is not None else []
    table = _table(
        old.schema.ref,
        list(old.keys),
        extra,
        fields,
        old.list_path,
        old.variant,
        {},
        old.schema.estimated_rows,
        parent=old.schema.parent,
    )
    return replace(table, child_paths=tuple({*old.child_paths, *new.child_paths}))
