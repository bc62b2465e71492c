"""Validation of given rows only: validation during change capture compares
the keys that changed since its last comparison, not the whole table.

Both sides are read by key, PartitionSize keys at a time (the primary key's
index finds them), the source as its own text (PostgreSQL), the target as its
text or rendered into it, and paired by key as ``conveyor validate`` pairs them:
a key on neither side (deleted on both) is in order, a key on one side only is
missing on the other. Where a side cannot be read by key (another source, a
mapping that converts values, a key type a target cannot look up), the caller
compares the whole table instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

from conveyor.connectors.base import (
    KeyLookupUnsupported,
    Snapshot,
    SupportsKeyedRead,
    SupportsKeyedTextRows,
    Target,
)
from conveyor.replication.table_plan import TablePlan
from conveyor.replication.validation import (
    MISMATCHED,
    MISSING_SOURCE,
    MISSING_TARGET,
    RECORD_DIFF,
    TABLE_ERROR,
    VALIDATED,
    Recorder,
    TableValidation,
    ValidationRun,
    finish,
)
from conveyor.replication.validation_rows import Values, normaliser, rendered, source_view


def keyed_comparison_possible(snapshot: Snapshot, target: Target, plan: TablePlan) -> bool:
    """Whether both sides of ``plan`` can be read by key (else the whole table is compared)."""
    if not plan.target.primary_key or source_view(plan) is None:
        return False
    return isinstance(snapshot, SupportsKeyedTextRows) and isinstance(
        target, SupportsKeyedTextRows | SupportsKeyedRead
    )


def validate_keys(
    snapshot: Snapshot, target: Target, plan: TablePlan, keys: Iterable[Values], run: ValidationRun
) -> TableValidation | None:
    """The rows of ``keys`` (target key values as canonical text) compared, as
    ``validate_table`` compares a table; None when they cannot be read by key."""
    view = source_view(plan)
    if not keyed_comparison_possible(snapshot, target, plan) or view is None:
        return None
    assert isinstance(snapshot, SupportsKeyedTextRows)
    result = TableValidation(str(plan.target.ref), VALIDATED, compared_as="by key")
    names = plan.target.column_names
    key_at = [names.index(k) for k in plan.target.primary_key]
    types = [c.type for c in view.columns]
    normal = normaliser(names, types, run.settings, result.notes, plan.uncompared)
    recorder = Recorder(run, names, plan.target.primary_key)
    partition = max(1, run.settings.partition_size)
    try:
        if target.describe(plan.target.ref) is None:
            result.state, result.reason = TABLE_ERROR, f"target table {plan.target.ref} does not exist"
            return result
        for chunk in _chunks(sorted(set(keys), key=_order), partition):
            source = snapshot.read_text_keys(view, chunk, partition)
            if isinstance(target, SupportsKeyedTextRows):
                target_rows = target.read_text_keys(plan.target, chunk, partition)
            else:
                assert isinstance(target, SupportsKeyedRead)
                target_rows = rendered(target.read_keys(plan.target, chunk, partition), types)
            _pair(_by_key(source, key_at, normal), _by_key(target_rows, key_at, normal), recorder, result)
            result.partitions += 1
    except KeyLookupUnsupported:
        return None
    except Exception as exc:  # a table that cannot be read is this table's state
        result.state, result.reason = TABLE_ERROR, f"{type(exc).__name__}: {' '.join(str(exc).split())}"
        return result
    result.first_failures = recorder.sample
    result.sample_keys = [list(f["Key"].values()) for f in recorder.sample]
    if result.failed_records:
        result.state = MISMATCHED
    finish(target, plan, run, recorder, result)
    return result


def _order(key: Values) -> tuple[tuple[bool, str], ...]:
    return tuple((k is None, k or "") for k in key)


def _chunks(keys: Sequence[Values], size: int) -> Iterator[Sequence[Values]]:
    for at in range(0, len(keys), size):
        yield keys[at : at + size]


def _by_key(
    batches: Iterator[list[Values]], key_at: Sequence[int], normal: Callable[[Values], Values]
) -> dict[Values, Values]:
    rows: dict[Values, Values] = {}
    for batch in batches:
        for values in batch:
            rows[tuple([values[i] for i in key_at])] = normal(values)
    return rows


def _pair(
    source: dict[Values, Values], target: dict[Values, Values], recorder: Recorder, result: TableValidation
) -> None:
    for key in sorted(source.keys() | target.keys(), key=_order):
        src, tgt = source.get(key), target.get(key)
        if tgt is None:
            assert src is not None
            result.source_rows += 1
            result.missing_on_target += 1
            recorder.add(MISSING_TARGET, key, src, None)
        elif src is None:
            result.target_rows += 1
            result.extra_on_target += 1
            recorder.add(MISSING_SOURCE, key, None, tgt)
        else:
            result.source_rows += 1
            result.target_rows += 1
            if src != tgt:
                result.different += 1
                recorder.add(RECORD_DIFF, key, src, tgt)
