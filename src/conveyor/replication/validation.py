"""Validation: the target holds exactly the source's rows.

Both sides are read in primary-key order through their connectors, so values
are compared in conveyor's in-flight form (the same Arrow types), and every
row is reduced to a checksum of its normalised values. A merge by key finds
rows missing on either side and rows whose values differ.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from conveyor.connectors.base import Snapshot, Target
from conveyor.core.errors import DataError
from conveyor.core.types import Kind
from conveyor.replication.full_load import TablePlan, read_source

VALIDATED = "Validated"
MISMATCHED = "Mismatched records"
NO_PRIMARY_KEY = "No primary key"
SAMPLE_KEYS = 10


@dataclass
class TableValidation:
    table: str
    state: str
    source_rows: int = 0
    target_rows: int = 0
    missing_on_target: int = 0
    extra_on_target: int = 0
    different: int = 0
    sample_keys: list[list[Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "Table": self.table,
            "ValidationState": self.state,
            "SourceRows": self.source_rows,
            "TargetRows": self.target_rows,
            "MissingOnTarget": self.missing_on_target,
            "ExtraOnTarget": self.extra_on_target,
            "Different": self.different,
            "SampleKeys": self.sample_keys,
        }


def _normal(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, dict):  # month_day_nano intervals and structs
        return sorted(value.items())
    return value


def _values(column: pa.Array) -> list[Any]:
    """A column's values for comparison. Dates and timestamps compare as their
    Arrow integers: infinities (int max) have no Python datetime."""
    dtype = column.type
    if pa.types.is_timestamp(dtype):
        return column.view(pa.int64()).to_pylist()  # type: ignore[no-any-return]
    if pa.types.is_date32(dtype):
        return column.view(pa.int32()).to_pylist()  # type: ignore[no-any-return]
    return column.to_pylist()  # type: ignore[no-any-return]


def _json_document(text: str | None) -> str | None:
    """A JSON text in one spelling: jsonb and other engines rewrite spacing,
    key order and escapes of the same document."""
    if text is None:
        return None
    try:
        return json.dumps(json.loads(text), sort_keys=True, ensure_ascii=False)
    except ValueError:
        return text


def _rows(
    batches: Iterator[Any], key_index: list[int], json_columns: frozenset[int] = frozenset()
) -> Iterator[tuple[tuple[Any, ...], bytes]]:
    for batch in batches:
        columns = [_values(col) for col in batch.columns]
        for index in json_columns:
            columns[index] = [_json_document(v) for v in columns[index]]
        for values in zip(*columns, strict=True):
            normal = tuple(_normal(v) for v in values)
            digest = hashlib.blake2b(repr(normal).encode(), digest_size=16).digest()
            yield tuple(values[i] for i in key_index), digest


def validate_table(
    snapshot: Snapshot, target: Target, plan: TablePlan, batch_rows: int = 10_000
) -> TableValidation:
    result = TableValidation(str(plan.target.ref), VALIDATED)
    if not plan.target.primary_key:
        result.state = NO_PRIMARY_KEY
        result.source_rows = (
            snapshot.count(plan.source.ref)
            if plan.row_filter is None
            else sum(b.num_rows for b in read_source(snapshot, plan, batch_rows))
        )
        result.target_rows = target.count(plan.target.ref)
        if result.source_rows != result.target_rows:
            result.state = MISMATCHED
        return result
    key_index = [plan.target.column_names.index(k) for k in plan.target.primary_key]
    json_columns = frozenset(i for i, c in enumerate(plan.target.columns) if c.type.kind is Kind.JSON)
    refused: list[tuple[Any, ...]] = []  # source rows the mapping cannot convert: not on the target
    source = _rows(
        _projected(plan, read_source(snapshot, plan, batch_rows, order_by_key=True), refused),
        key_index,
        json_columns,
    )
    target_rows = _rows(target.read(plan.target, batch_rows, order_by_key=True), key_index, json_columns)
    src, tgt = next(source, None), next(target_rows, None)

    def note(key: tuple[Any, ...]) -> None:
        result.state = MISMATCHED
        if len(result.sample_keys) < SAMPLE_KEYS:
            result.sample_keys.append([str(k) for k in key])

    while src is not None or tgt is not None:
        if tgt is None or (src is not None and src[0] < tgt[0]):
            assert src is not None
            result.source_rows += 1
            result.missing_on_target += 1
            note(src[0])
            src = next(source, None)
        elif src is None or tgt[0] < src[0]:
            result.target_rows += 1
            result.extra_on_target += 1
            note(tgt[0])
            tgt = next(target_rows, None)
        else:
            result.source_rows += 1
            result.target_rows += 1
            if src[1] != tgt[1]:
                result.different += 1
                note(src[0])
            src, tgt = next(source, None), next(target_rows, None)
    for key in refused:
        result.source_rows += 1
        result.missing_on_target += 1
        note(key)
    return result


def _projected(
    plan: TablePlan, batches: Iterator[pa.RecordBatch], refused: list[tuple[Any, ...]]
) -> Iterator[pa.RecordBatch]:
    """The source batches as the target gets them; a row the mapping refuses
    (change-data-type) is left out and its source key noted in ``refused``."""
    for read in batches:
        pending = read
        while True:
            try:
                yield plan.project(pending)
                break
            except DataError as exc:
                if exc.row is None:
                    raise
                row = pending.slice(exc.row, 1).to_pylist()[0]
                refused.append(tuple(row.get(k) for k in plan.source.primary_key))
                pending = pending.filter(pa.array([i != exc.row for i in range(pending.num_rows)]))
