"""DynamoDB items to Arrow record batches of the parent and child tables.

Items are never walked one by one in Python. A Scan page is parsed straight
from the response body by Arrow's JSON reader (:func:`read_page`) into a struct
array in DynamoDB's wire format; flattening is then struct field access, list
unnesting (``list_flatten`` + parent indices) and vectorised casts (``N`` text
to int64/decimal, ISO-8601 text to timestamps). Python touches single values
only for json columns, binary values (base64 in the wire format), and values
that do not fit their column, which go to the ``_variant`` column as the
DynamoDB JSON of the value. A table without a variant column either raises a
DataError for such a value or, asked to (``flatten(..., reject=True)``), loads
the row with NULL there and returns the value as a :class:`RejectedValue` (for
the load-errors table) with its item key, column and reason.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from conveyor.connectors.base import RejectedValue
from conveyor.connectors.dynamodb.infer import (
    POSITION,
    SEPARATOR,
    FieldSpec,
    TableLayout,
    child_field,
    tag_field,
)
from conveyor.core.errors import DataError
from conveyor.core.types import Kind

_CAST_ERRORS = (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, OverflowError, ValueError)
ELEMENT = "_element"


@dataclass
class Page:
    """One Scan response: its items (struct array, wire format), where the next
    page starts (None at the end of the segment) and the read units it used."""

    items: pa.Array
    last_key: dict[str, Any] | None
    consumed: float = 0.0
    count: int = 0


class PageReader:
    """Parses Scan response bodies with Arrow's JSON reader.

    The reader infers ISO-8601-looking strings as ``timestamp[s]``, which would
    lose their text (``S`` values must arrive as written). So pages are parsed
    with an explicit schema, the types of the pages before with every string
    a string; a page that brings new attributes whose strings were inferred as
    timestamps is parsed again with those typed as strings. One reader serves
    one table's scan (its segments share it)."""

    def __init__(self) -> None:
        self.hint: pa.Schema | None = None

    def parse(self, body: bytes) -> pa.Table:
        # JSON strings cannot hold a raw newline: newlines are whitespace.
        body = body.replace(b"\n", b" ")
        table = self._read(body, self.hint)
        if _has_timestamp(pa.struct(list(table.schema))):
            table = self._read(body, pa.schema(list(_as_strings(pa.struct(list(table.schema))))))
        hint = _hint_type(pa.struct(list(table.schema)))
        self.hint = pa.schema(list(hint)) if isinstance(hint, pa.StructType) else None
        return table

    @staticmethod
    def _read(body: bytes, schema: pa.Schema | None) -> pa.Table:
        options = pj.ReadOptions(block_size=max(len(body) + 16, 1 << 16), use_threads=False)
        parse = pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="infer")
        return pj.read_json(io.BytesIO(body), read_options=options, parse_options=parse)

    def read_page(self, body: bytes) -> Page:
        """One Scan response body as a page (no Python objects per item)."""
        table = self.parse(body)
        last_key = None
        if "LastEvaluatedKey" in table.column_names:
            raw = table.column("LastEvaluatedKey")[0].as_py()
            if raw:
                last_key = {name: _key_value(value) for name, value in raw.items() if value is not None}
        consumed = 0.0
        if "ConsumedCapacity" in table.column_names:
            capacity = table.column("ConsumedCapacity")[0].as_py() or {}
            consumed = float(capacity.get("CapacityUnits") or 0.0)
        items = items_of(table)
        return Page(items, last_key, consumed, len(items))


def read_page(body: bytes) -> Page:
    """Parse one Scan response body (see PageReader)."""
    return PageReader().read_page(body)


def items_of(table: pa.Table) -> pa.Array:
    """The items of parsed Scan pages (one row per page) as one struct array."""
    if "Items" not in table.column_names:
        return pa.array([], type=pa.struct([]))
    lists = table.column("Items").combine_chunks()
    if pa.types.is_null(lists.type.value_type):
        return pa.array([], type=pa.struct([]))
    return lists.flatten()


def _has_timestamp(kind: pa.DataType) -> bool:
    if pa.types.is_timestamp(kind):
        return True
    if pa.types.is_struct(kind):
        return any(_has_timestamp(kind.field(i).type) for i in range(kind.num_fields))
    if pa.types.is_list(kind):
        return _has_timestamp(kind.value_type)
    return False


def _as_strings(kind: pa.DataType) -> pa.DataType:
    if pa.types.is_timestamp(kind):
        return pa.string()
    if pa.types.is_struct(kind):
        return pa.struct(
            [kind.field(i).with_type(_as_strings(kind.field(i).type)) for i in range(kind.num_fields)]
        )
    if pa.types.is_list(kind):
        return pa.list_(_as_strings(kind.value_type))
    return kind


def _hint_type(kind: pa.DataType) -> pa.DataType | None:
    """A type to parse the next pages with: no null types (an empty list may
    hold maps next time) and numbers as float64 (1 here, 0.5 there)."""
    if pa.types.is_null(kind):
        return None
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        return pa.float64()
    if pa.types.is_struct(kind):
        fields = []
        for i in range(kind.num_fields):
            sub = _hint_type(kind.field(i).type)
            if sub is not None:
                fields.append(kind.field(i).with_type(sub))
        return pa.struct(fields)
    if pa.types.is_list(kind):
        value = _hint_type(kind.value_type)
        return None if value is None else pa.list_(value)
    return kind


def read_pages(bodies: Iterable[bytes]) -> pa.Array:
    """Many Scan response bodies at once (newline-delimited, parsed in parallel)."""
    data = b"\n".join(body.replace(b"\n", b" ") for body in bodies)
    largest = max((len(line) for line in data.split(b"\n")), default=0)
    options = pj.ReadOptions(block_size=max(largest + 16, 1 << 20))
    table = pj.read_json(io.BytesIO(data), read_options=options)
    if _has_timestamp(pa.struct(list(table.schema))):
        explicit = pa.schema(list(_as_strings(pa.struct(list(table.schema)))))
        table = pj.read_json(
            io.BytesIO(data), read_options=options, parse_options=pj.ParseOptions(explicit_schema=explicit)
        )
    return items_of(table)


def items_from_python(items: list[dict[str, Any]]) -> pa.Array:
    """Items as the low-level client returns them (``{"a": {"S": "x"}}``)."""
    if not items:
        return pa.array([], type=pa.struct([]))
    return pa.array(items)


def _key_value(value: Mapping[str, Any]) -> dict[str, Any]:
    for tag, raw in value.items():
        if raw is not None:
            return {tag: base64.b64decode(raw) if tag == "B" and isinstance(raw, str) else raw}
    raise ValueError("a key attribute without a value")


# Values as Python objects, only for json columns and variants.


def clean_wire(value: Any) -> Any:
    """A wire value from ``to_pylist`` (absent tags and members as None) as
    DynamoDB JSON: Nones dropped, binary as base64 text."""
    if isinstance(value, dict):
        return {k: clean_wire(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [clean_wire(v) for v in value]
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value


def json_text(value: Mapping[str, Any]) -> str | None:
    """The plain JSON of one wire value (None for NULL): numbers stay exact."""
    for tag, raw in value.items():
        if raw is None:
            continue
        if tag == "NULL":
            return None
        return _json_tagged(tag, raw)
    return None


def _json_value(value: Mapping[str, Any]) -> str:
    text = json_text(value)
    return "null" if text is None else text


def _b64(raw: Any) -> str:
    return base64.b64encode(raw).decode() if isinstance(raw, bytes) else str(raw)


def _json_tagged(tag: str, raw: Any) -> str:
    if tag == "S":
        return json.dumps(raw, ensure_ascii=False)
    if tag == "N":
        return str(raw)
    if tag == "B":
        return json.dumps(_b64(raw))
    if tag == "BOOL":
        return "true" if raw else "false"
    if tag == "M":
        members = (
            f"{json.dumps(k, ensure_ascii=False)}:{_json_value(v)}" for k, v in raw.items() if v is not None
        )
        return "{" + ",".join(members) + "}"
    if tag == "L":
        return "[" + ",".join(_json_value(v) for v in raw) + "]"
    if tag == "SS":
        return json.dumps(raw, ensure_ascii=False)
    if tag == "NS":
        return "[" + ",".join(str(v) for v in raw) + "]"
    if tag == "BS":
        return json.dumps([_b64(v) for v in raw])
    raise ValueError(f"unknown DynamoDB type tag {tag!r}")


# Vectorised columns.


@dataclass
class _Variants:
    """Values that do not fit their column, by row."""

    rows: int
    values: dict[int, dict[str, Any]] = field(default_factory=dict)

    def add(self, indices: pa.Array | list[int], column: str, source: pa.Array) -> None:
        index_list = indices if isinstance(indices, list) else indices.to_pylist()
        if not index_list:
            return
        wire = source.take(pa.array(index_list, type=pa.int64())).to_pylist()
        for row, value in zip(index_list, wire, strict=True):
            self.values.setdefault(row, {})[column] = clean_wire(value)

    def array(self) -> pa.Array:
        if not self.values:
            return pa.nulls(self.rows, type=pa.string())
        texts: list[str | None] = [None] * self.rows
        for row, found in self.values.items():
            texts[row] = json.dumps(found, ensure_ascii=False, sort_keys=True)
        return pa.array(texts, type=pa.string())


def attr_at(root: pa.Array | None, path: tuple[str, ...]) -> pa.Array | None:
    """The attribute struct array at ``path`` below ``root`` (an item or map struct array)."""
    current = root
    for depth, name in enumerate(path):
        if current is None:
            return None
        current = child_field(current, name)
        if depth < len(path) - 1:
            current = None if current is None else tag_field(current, "M")
    return current


def _indices(mask: pa.Array) -> list[int]:
    return [int(i) for i in np.flatnonzero(mask.to_numpy(zero_copy_only=False))]


def _cast(values: pa.Array, target: pa.DataType) -> tuple[pa.Array, list[int]]:
    """Cast, vectorised; values that do not cast become null and are returned by index."""
    if values.type.equals(target):
        return values, []
    try:
        return _cast_all(values, target), []
    except _CAST_ERRORS:
        pass
    out: list[Any] = []
    bad: list[int] = []
    for index, value in enumerate(values.to_pylist()):
        if value is None:
            out.append(None)
            continue
        try:
            out.append(_cast_all(pa.array([value], type=values.type), target)[0].as_py())
        except _CAST_ERRORS:
            out.append(None)
            bad.append(index)
    return pa.array(out, type=target), bad


def _cast_all(values: pa.Array, target: pa.DataType) -> pa.Array:
    if pa.types.is_binary(target) and pa.types.is_string(values.type):
        return pa.array(
            [None if v is None else base64.b64decode(v, validate=True) for v in values.to_pylist()]
        )
    if pa.types.is_timestamp(target) and target.tz is None and pa.types.is_string(values.type):
        try:
            return values.cast(target)
        except _CAST_ERRORS:
            return values.cast(pa.timestamp(target.unit, tz="UTC")).cast(target)
    if pa.types.is_list(target) and pa.types.is_list(values.type):
        converted = _cast_all(values.flatten(), target.value_type)
        return pa.ListArray.from_arrays(_offsets(values), converted, type=target, mask=values.is_null())
    if pa.types.is_string(target) and not pa.types.is_string(values.type):
        return pa.array([None if v is None else json.dumps(v) for v in values.to_pylist()], pa.string())
    return values.cast(target)


def _offsets(lists: pa.Array) -> pa.Array:
    """Offsets of ``lists`` relative to its ``flatten()`` values (no null lists with content)."""
    offsets = lists.offsets
    return pc.subtract(offsets, offsets[0])


def _null_or_absent(attr: pa.Array, values: pa.Array | None) -> pa.Array:
    """Rows where the attribute holds a value of another tag (neither this tag nor NULL)."""
    present = pc.is_valid(attr)
    fits = pc.is_valid(values) if values is not None else pa.array(np.zeros(len(attr), dtype=bool))
    nulls = tag_field(attr, "NULL")
    if nulls is not None:
        fits = pc.or_(fits, pc.is_valid(nulls))
    return pc.and_(present, pc.invert(fits))


def build_column(
    spec: FieldSpec, target: pa.DataType, root: pa.Array, rows: int, variants: _Variants
) -> pa.Array:
    """One column of ``spec`` for the ``rows`` items or maps of ``root``."""
    attr = attr_at(root, spec.path)
    if attr is None:
        return pa.nulls(rows, type=target)
    if spec.tag == "JSON":
        return _mixed_column(spec, target, attr, variants)
    values = tag_field(attr, spec.tag)
    wrong = _null_or_absent(attr, values)
    if pc.any(wrong).as_py():
        variants.add(_indices(wrong), spec.name, attr)
    if values is None:
        return pa.nulls(rows, type=target)
    if spec.tag == "L":
        column, bad = _scalar_list(values, spec, target)
    else:
        column, bad = _cast(values, target)
    length = spec.type.length
    if length is not None and spec.type.kind is Kind.TEXT:
        too_long = pc.fill_null(pc.greater(pc.utf8_length(column), length), False)
        if pc.any(too_long).as_py():
            bad = sorted({*bad, *_indices(too_long)})
            column = pc.if_else(too_long, pa.scalar(None, type=target), column)
    if bad:
        variants.add(bad, spec.name, attr)
    return column


def _mixed_column(spec: FieldSpec, target: pa.DataType, attr: pa.Array, variants: _Variants) -> pa.Array:
    """An attribute seen with values of several types. As text, each value is its
    JSON; under a ``column_types`` override of another type, a string or number
    value is converted by its text (``{"S": "3.25"}`` to decimal 3.25), and a value
    that does not convert is one that does not fit, like any other (variant
    column, load-errors table or failure, per ``conflicting_values``)."""
    wire = attr.to_pylist()
    if pa.types.is_string(target) or pa.types.is_large_string(target):
        return pa.array([None if v is None else json_text(v) for v in wire], type=target)
    texts: list[str | None] = []
    unconvertible: list[int] = []
    for row, value in enumerate(wire):
        scalar = _scalar_text(value) if value is not None else None
        if value is not None and scalar is None and json_text(value) is not None:
            unconvertible.append(row)  # a map, list, set, binary or boolean
        texts.append(scalar)
    column, bad = _cast(pa.array(texts, type=pa.string()), target)
    bad = sorted({*bad, *unconvertible})
    if bad:
        variants.add(bad, spec.name, attr)
    return column


def _scalar_text(value: Mapping[str, Any]) -> str | None:
    """The text of an ``S`` or ``N`` wire value; None for any other tag (or NULL)."""
    for tag in ("S", "N"):
        raw = value.get(tag)
        if raw is not None:
            return str(raw)
    return None


def _scalar_list(lists: pa.Array, spec: FieldSpec, target: pa.DataType) -> tuple[pa.Array, list[int]]:
    """A list of scalars of one tag to a list column; a list holding another
    tag is not converted (its row is returned as bad)."""
    assert spec.element_tag is not None
    elements = lists.flatten()
    parents = pc.list_parent_indices(lists)
    values = tag_field(elements, spec.element_tag)
    if values is None:
        values = pa.nulls(len(elements), type=pa.string())
    wrong = pc.invert(pc.is_valid(values))
    element_type = target.value_type
    converted, bad_elements = _cast(values, element_type)
    bad_rows = set(parents.take(pa.array(_indices(wrong), type=pa.int64())).to_pylist())
    bad_rows |= set(parents.take(pa.array(bad_elements, type=pa.int64())).to_pylist())
    column = pa.ListArray.from_arrays(_offsets(lists), converted, type=target, mask=lists.is_null())
    if bad_rows:
        mask = np.zeros(len(lists), dtype=bool)
        mask[list(bad_rows)] = True
        column = pc.if_else(pa.array(mask), pa.scalar(None, type=target), column)
    return column, sorted(int(r) for r in bad_rows)


def _drift(root: pa.Array, known: Mapping[str, Any], variants: _Variants) -> set[str]:
    found: set[str] = set()
    for path in new_attribute_paths(root.type, known):
        name = SEPARATOR.join(path)
        attr = attr_at(root, path)
        if attr is None or not (len(attr) - attr.null_count):
            continue
        found.add(name)
        variants.add(_indices(pc.is_valid(attr)), name, attr)
    return found


def new_attribute_paths(
    struct_type: pa.DataType, known: Mapping[str, Any], prefix: tuple[str, ...] = ()
) -> Iterable[tuple[str, ...]]:
    """Paths of attributes in ``struct_type`` (item or map) that ``known`` lacks."""
    if not pa.types.is_struct(struct_type):
        return
    for index in range(struct_type.num_fields):
        f = struct_type.field(index)
        if f.name not in known:
            yield (*prefix, f.name)
            continue
        sub = known[f.name]
        if sub and pa.types.is_struct(f.type) and f.type.get_field_index("M") >= 0:
            yield from new_attribute_paths(f.type.field("M").type, sub, (*prefix, f.name))


@dataclass
class Flattened:
    """A table's batch; ``drift`` names attributes the layout lacks, ``variants``
    counts rows with values in the variant column (or rejected); ``parents``
    gives, for a child table, the index of the item each row came from;
    ``rejected`` holds the values left out (``flatten(..., reject=True)``)."""

    batch: pa.RecordBatch
    drift: set[str] = field(default_factory=set)
    variants: int = 0
    parents: pa.Array | None = None
    rejected: list[RejectedValue] = field(default_factory=list)


def flatten(items: pa.Array, table: TableLayout, reject: bool = False) -> Flattened:
    """Items (a struct array, wire format) as a batch of ``table``.

    A value that does not fit its column goes to the table's variant column;
    when the table has none, it raises a DataError, or with ``reject`` the
    value is NULL in the row and returned in ``rejected``."""
    if isinstance(items, pa.ChunkedArray):
        items = items.combine_chunks()
    if table.list_path is None:
        return _parent(items, table, reject)
    return _child(items, table, reject)


def _parent(items: pa.Array, table: TableLayout, reject: bool = False) -> Flattened:
    schema = table.schema.arrow_schema()
    rows = len(items)
    variants = _Variants(rows)
    arrays = [
        build_column(spec, schema.field(spec.name).type, items, rows, variants)
        for spec in (*table.keys, *table.fields)
    ]
    for path in table.child_paths:
        attr = attr_at(items, path)
        if attr is not None:
            wrong = _null_or_absent(attr, tag_field(attr, "L"))
            if pc.any(wrong).as_py():
                variants.add(_indices(wrong), SEPARATOR.join(path), attr)
    drift = _drift(items, table.known(), variants)
    return _finish(table, schema, arrays, variants, drift, lambda row: _key_of(table, arrays, row), reject)


def _child(items: pa.Array, table: TableLayout, reject: bool = False) -> Flattened:
    schema = table.schema.arrow_schema()
    assert table.list_path is not None
    attr = attr_at(items, table.list_path)
    lists = None if attr is None else tag_field(attr, "L")
    if lists is None:
        return Flattened(_empty(schema), parents=pa.array([], type=pa.int64()))
    elements = lists.flatten()
    parents = pc.list_parent_indices(lists)
    rows = len(elements)
    starts = np.asarray(_offsets(lists))[np.asarray(parents, dtype=np.int64)]
    position = pa.array(np.arange(rows, dtype=np.int64) - starts, type=pa.int64())
    parent_variants = _Variants(len(items))
    keys = [
        build_column(spec, schema.field(spec.name).type, items, len(items), parent_variants).take(parents)
        for spec in table.keys
    ]
    maps = tag_field(elements, "M")
    variants = _Variants(rows)
    not_maps = pc.is_valid(elements) if maps is None else pc.and_(pc.is_valid(elements), pc.is_null(maps))
    if pc.any(not_maps).as_py():
        variants.add(_indices(not_maps), ELEMENT, elements)
    if maps is None:
        maps = pa.nulls(rows, type=pa.struct([]))
    arrays = [*keys, position]
    arrays += [
        build_column(spec, schema.field(spec.name).type, maps, rows, variants) for spec in table.fields
    ]
    drift = _drift(maps, table.known(), variants)
    names = [*table.schema.primary_key]
    result = _finish(table, schema, arrays, variants, drift, lambda row: _row_key(names, arrays, row), reject)
    result.parents = parents
    return result


def _empty(schema: pa.Schema) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays([pa.array([], type=f.type) for f in schema], schema=schema)


def _key_of(table: TableLayout, arrays: list[pa.Array], row: int) -> dict[str, Any]:
    return _row_key([k.name for k in table.keys], arrays, row)


def _row_key(names: list[str], arrays: list[pa.Array], row: int) -> dict[str, Any]:
    return {name: arrays[i][row].as_py() for i, name in enumerate(names)}


def _finish(
    table: TableLayout,
    schema: pa.Schema,
    arrays: list[pa.Array],
    variants: _Variants,
    drift: set[str],
    key: Any,
    reject: bool = False,
) -> Flattened:
    rejected: list[RejectedValue] = []
    if variants.values and table.variant is None and reject:
        for row, found in sorted(variants.values.items()):
            row_key = key(row)
            for column, value in sorted(found.items()):
                text = json.dumps(value, ensure_ascii=False, sort_keys=True)
                reason = _reason(table, column, value, drift)
                ref = table.schema.ref
                rejected.append(RejectedValue(ref, row_key, column, text, reason, row_loaded=True))
    elif variants.values and table.variant is None:
        row, found = next(iter(sorted(variants.values.items())))
        column, value = next(iter(found.items()))
        raise DataError(
            f"table {table.schema.ref}: item {key(row)}: attribute {column!r} holds "
            f"{json.dumps(value)[:200]}, which does not fit its column (and the table has no variant column)",
            column=column,
        )
    if table.variant is not None:
        arrays.append(variants.array())
    batch = pa.RecordBatch.from_arrays(arrays, schema=schema)
    return Flattened(batch, drift, len(variants.values), rejected=rejected)


def _reason(table: TableLayout, column: str, value: Any, drift: set[str]) -> str:
    """Why ``value`` (DynamoDB JSON) of ``column`` did not load, for the load-errors table."""
    tags = [tag for tag in value if tag != "NULL"] if isinstance(value, dict) else []
    tag = tags[0] if tags else "?"
    if column in drift:
        return (
            f"attribute {column!r} ({tag}) is not a column of the table: it first appeared "
            "after the schema was inferred (reload the table to add the column)"
        )
    if column == ELEMENT:
        return f"list element of type {tag} in a list of maps (child table rows are maps)"
    if any(SEPARATOR.join(path) == column for path in table.child_paths):
        return f"attribute {column!r} holds {tag} where its child table expects a list of maps"
    spec = next((f for f in (*table.keys, *table.fields) if f.name == column), None)
    if spec is None:
        return f"attribute {column!r} ({tag}) has no column"
    described = spec.type.describe()
    if spec.tag == "JSON":  # a mixed attribute under a column_types override
        return f"the {tag} value does not convert exactly to column {column!r} ({described})"
    if spec.tag != tag and not (spec.tag == "L" and tag == "L"):
        return f"value of type {tag} where column {column!r} ({described}) holds {spec.tag} values"
    return f"the {tag} value does not fit column {column!r} ({described})"


__all__ = ["POSITION", "Flattened", "Page", "flatten", "read_page", "read_pages"]
