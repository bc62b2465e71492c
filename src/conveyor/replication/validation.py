"""Validation: the target holds exactly the source's rows, or it says where not.

Both sides are read in primary-key order, streaming, in partitions of
PartitionSize rows, and merged by key. Every value is compared as canonical
text of the *source* type (``core.canonical_text``): a PostgreSQL source sends its
own output text, and the target's values are rendered into that same text, so
any value that changed on the way differs. Other sources are compared as the
values they are read as, both sides rendered alike.

Every table gets a state (Validated, Mismatched records, Table error with its
reason); one table's failure never stops the others. A table without a primary
key is compared as a multiset (row count and an order-free checksum). Failed rows
go to the target's ``awsdms_validation_failures_v1`` (up to TableFailureMaxCount
per table and FailureMaxCount per run, then counted but not recorded).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from conveyor.connectors.base import (
    Snapshot,
    SupportsValidationFailures,
    Target,
    ValidationFailure,
)
from conveyor.replication.settings import ValidationSettings
from conveyor.replication.table_plan import TablePlan
from conveyor.replication.validation_rows import (
    VALUES_AS_READ,
    OutOfOrder,
    Values,
    keyed,
    left_out,
    normaliser,
    sides,
    sort_key,
)

VALIDATED = "Validated"
MISMATCHED = "Mismatched records"
TABLE_ERROR = "Table error"
SAMPLE_KEYS = 10
DETAIL_VALUE_CHARS = 500

RECORD_DIFF = "RECORD_DIFF"
MISSING_SOURCE = "MISSING_SOURCE"
MISSING_TARGET = "MISSING_TARGET"


@dataclass
class TableValidation:
    table: str
    state: str
    source_rows: int = 0
    target_rows: int = 0
    missing_on_target: int = 0
    extra_on_target: int = 0
    different: int = 0
    partitions: int = 0
    failures_recorded: int = 0
    failures_not_recorded: int = 0
    compared_as: str = ""
    reason: str | None = None
    sample_keys: list[list[str | None]] = field(default_factory=list)
    first_failures: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # The failed rows kept for the failures table (up to the limits), in key order.
    failures: list[ValidationFailure] = field(default_factory=list, repr=False)

    @property
    def failed_records(self) -> int:
        return self.missing_on_target + self.extra_on_target + self.different

    def as_dict(self) -> dict[str, Any]:
        return {
            "Table": self.table,
            "ValidationState": self.state,
            "Reason": self.reason,
            "SourceRows": self.source_rows,
            "TargetRows": self.target_rows,
            "MissingOnTarget": self.missing_on_target,
            "ExtraOnTarget": self.extra_on_target,
            "Different": self.different,
            "FailedRecords": self.failed_records,
            "FailuresRecorded": self.failures_recorded,
            "FailuresNotRecorded": self.failures_not_recorded,
            "Partitions": self.partitions,
            "ComparedAs": self.compared_as,
            "SampleKeys": self.sample_keys,
            "FirstFailures": self.first_failures,
            "Notes": self.notes,
        }


class FailureBudget:
    """FailureMaxCount: failed rows recorded across one validation run."""

    def __init__(self, limit: int) -> None:
        self.limit, self.used = limit, 0
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self.used >= self.limit:
                return False
            self.used += 1
            return True


@dataclass
class ValidationRun:
    """What the tables of one validation run share: the task's name (for the
    failures table), its ValidationSettings and the run's failure budget."""

    task: str = ""
    settings: ValidationSettings = field(default_factory=ValidationSettings)
    budget: FailureBudget | None = None
    # False: failures are kept in each TableValidation, not written (the caller
    # writes those it confirms: validation during change capture).
    record: bool = True

    def __post_init__(self) -> None:
        if self.budget is None:
            self.budget = FailureBudget(self.settings.failure_max_count)


def validate_tables(
    snapshot: Snapshot, target: Target, plans: Sequence[TablePlan], run: ValidationRun
) -> list[TableValidation]:
    """Every table of ``plans``, ThreadCount at a time, in the order given."""
    workers = max(1, min(run.settings.thread_count, len(plans)))
    with ThreadPoolExecutor(workers, thread_name_prefix="validate") as pool:
        return list(pool.map(lambda plan: validate_table(snapshot, target, plan, run=run), plans))


def validate_table(
    snapshot: Snapshot,
    target: Target,
    plan: TablePlan,
    batch_rows: int | None = None,
    *,
    run: ValidationRun | None = None,
) -> TableValidation:
    """One table's state; never raises for what it finds in the data or the
    tables (a missing or unreadable table is a Table error with the reason)."""
    run = run or ValidationRun()
    partition = batch_rows or run.settings.partition_size
    result = TableValidation(str(plan.target.ref), VALIDATED)
    try:
        if target.describe(plan.target.ref) is None:
            result.state, result.reason = TABLE_ERROR, f"target table {plan.target.ref} does not exist"
        elif not plan.target.primary_key:
            _as_a_whole(snapshot, target, plan, partition, run, result)
        else:
            _compare(snapshot, target, plan, partition, run, result)
    except OutOfOrder as exc:
        result.state, result.reason = TABLE_ERROR, str(exc)
    except Exception as exc:  # a table that cannot be read is this table's state, not the run's end
        result.state, result.reason = TABLE_ERROR, f"{type(exc).__name__}: {' '.join(str(exc).split())}"
    return result


def _as_a_whole(
    snapshot: Snapshot,
    target: Target,
    plan: TablePlan,
    partition: int,
    run: ValidationRun,
    result: TableValidation,
) -> None:
    """A table without a primary key: rows cannot be paired, so each side is
    reduced to its row count and an order-free checksum of its rows (the sum of
    every row's 128-bit digest), compared as multisets."""
    source_batches, target_batches, types, result.compared_as = sides(
        snapshot, target, plan, partition, result.notes
    )
    normal = normaliser(plan.target.column_names, types, run.settings, result.notes, plan.uncompared)
    partitions = [0]
    result.source_rows, source_sum = _multiset(source_batches, normal, partitions)
    result.target_rows, target_sum = _multiset(target_batches, normal, [0])
    result.partitions = partitions[0]
    if (result.source_rows, source_sum) != (result.target_rows, target_sum):
        result.state = MISMATCHED
        result.reason = (
            f"no primary key: the rows differ ({result.source_rows} on the source, {result.target_rows} "
            "on the target); without a key the differing rows cannot be named"
        )
    else:
        result.notes.append("no primary key: compared as a whole (row count and a checksum of every row)")


def _multiset(
    batches: Iterator[list[Values]], normal: Callable[[Values], Values], counter: list[int]
) -> tuple[int, int]:
    rows, total = 0, 0
    for batch in batches:
        counter[0] += 1
        for values in batch:
            digest = hashlib.blake2b(repr(normal(values)).encode(), digest_size=16).digest()
            total = (total + int.from_bytes(digest, "big")) % (1 << 128)
            rows += 1
    return rows, total


# -- the merge -----------------------------------------------------------------------------


class Recorder:
    """Failures of one table: the first SAMPLE_KEYS for the report, up to
    TableFailureMaxCount (and the run's FailureMaxCount) for the failures table."""

    def __init__(self, run: ValidationRun, names: Sequence[str], key_names: Sequence[str]) -> None:
        self.run, self.names, self.key_names = run, names, key_names
        self.kept: list[ValidationFailure] = []
        self.sample: list[dict[str, Any]] = []
        self.dropped = 0

    def add(self, kind: str, keys: Values, source: Values | None, target: Values | None) -> None:
        if source is not None and target is not None:
            at = [i for i, (a, b) in enumerate(zip(source, target, strict=True)) if a != b]
        else:
            at = []
        columns = tuple(self.names[i] for i in at)
        if len(self.sample) < SAMPLE_KEYS:
            key = dict(zip(self.key_names, keys, strict=True))
            self.sample.append({"Key": key, "FailureType": kind, "Columns": list(columns)})
        assert self.run.budget is not None
        if len(self.kept) < self.run.settings.table_failure_max_count and self.run.budget.take():
            shown = at or range(len(self.names))  # a missing row: the other side's whole row
            details = {
                "columns": list(columns),
                "source": {self.names[i]: _cut(source[i]) for i in shown} if source else None,
                "target": {self.names[i]: _cut(target[i]) for i in shown} if target else None,
            }
            self.kept.append(ValidationFailure(keys, kind, columns, json.dumps(details, ensure_ascii=False)))
        else:
            self.dropped += 1


def _cut(text: str | None) -> str | None:
    if text is None or len(text) <= DETAIL_VALUE_CHARS:
        return text
    return text[:DETAIL_VALUE_CHARS] + f"... ({len(text)} characters)"


def _compare(
    snapshot: Snapshot,
    target: Target,
    plan: TablePlan,
    partition: int,
    run: ValidationRun,
    result: TableValidation,
) -> None:
    refused: list[Values] = []
    source_batches, target_batches, types, how = sides(
        snapshot, target, plan, partition, result.notes, refused
    )
    result.compared_as = how
    names = plan.target.column_names
    key_names = plan.target.primary_key
    key_at = [names.index(k) for k in key_names]
    orders = [sort_key(types[i].kind) for i in key_at]
    normal = normaliser(names, types, run.settings, result.notes, plan.uncompared)
    partitions, ignored = [0], [0]
    source = keyed(source_batches, key_at, orders, normal, "source", key_names, partitions)
    target_rows = keyed(target_batches, key_at, orders, normal, "target", key_names, ignored)
    recorder = Recorder(run, names, key_names)
    src, tgt = next(source, None), next(target_rows, None)
    while src is not None or tgt is not None:
        if tgt is None or (src is not None and src[0] < tgt[0]):
            assert src is not None
            result.source_rows += 1
            result.missing_on_target += 1
            recorder.add(MISSING_TARGET, src[1], src[2], None)
            src = next(source, None)
        elif src is None or tgt[0] < src[0]:
            result.target_rows += 1
            result.extra_on_target += 1
            recorder.add(MISSING_SOURCE, tgt[1], None, tgt[2])
            tgt = next(target_rows, None)
        else:
            result.source_rows += 1
            result.target_rows += 1
            if src[2] != tgt[2]:
                result.different += 1
                recorder.add(RECORD_DIFF, src[1], src[2], tgt[2])
            src, tgt = next(source, None), next(target_rows, None)
    if how == VALUES_AS_READ:
        refused += left_out(snapshot, plan)
    for keys in refused:  # rows the mapping or the source's reader could not carry: not on the target
        result.source_rows += 1
        result.missing_on_target += 1
        recorder.add(MISSING_TARGET, keys, None, None)
    result.partitions = partitions[0]
    result.first_failures = recorder.sample
    result.sample_keys = [list(f["Key"].values()) for f in recorder.sample]
    if result.failed_records:
        result.state = MISMATCHED
    finish(target, plan, run, recorder, result)


def finish(
    target: Target, plan: TablePlan, run: ValidationRun, recorder: Recorder, result: TableValidation
) -> None:
    """Write the table's failures (replacing its earlier ones) on the target."""
    result.failures_not_recorded = recorder.dropped
    result.failures = recorder.kept
    if recorder.dropped:
        limit = run.settings.table_failure_max_count
        result.notes.append(
            f"{recorder.dropped} of {result.failed_records} failed rows not recorded: "
            f"TableFailureMaxCount ({limit}) or FailureMaxCount ({run.settings.failure_max_count}) reached"
        )
    if not run.record:
        return
    if not isinstance(target, SupportsValidationFailures):
        if result.failed_records:
            result.notes.append("this target keeps no awsdms_validation_failures_v1 table")
        return
    when = datetime.now(UTC).replace(tzinfo=None)
    try:
        target.record_validation_failures(run.task, plan.target.ref, recorder.kept, when)
    except Exception as exc:  # the comparison stands; say that its record could not be written
        result.notes.append(f"failures could not be recorded: {type(exc).__name__}: {exc}")
        return
    result.failures_recorded = len(recorder.kept)


# -- the settings Conveyor cannot act on ----------------------------------------------------

_CDC_ONLY = (
    "RecordFailureDelayInMinutes",
    "RecordFailureDelayLimitInMinutes",
    "RecordSuspendDelayInMinutes",
    "ValidationQueryCdcDelaySeconds",
)


def settings_notes(settings: ValidationSettings) -> list[str]:
    """One line for each ValidationSettings key set away from its default that
    this validation does not act on (or acts on differently), so none is
    silently ignored."""
    defaults = ValidationSettings()
    changed = {
        info.alias or name
        for name, info in ValidationSettings.model_fields.items()
        if getattr(settings, name) != getattr(defaults, name)
    }
    notes = [
        f"{key}: not acted on here: it concerns validation during change capture (EnableValidation "
        "on a running cdc task); this run compares the tables as they are now"
        for key in _CDC_ONLY
        if key in changed
    ]
    if "ValidationMode" in changed:
        notes.append("ValidationMode GROUP_LEVEL: not acted on: rows are always compared one by one")
    if "MaxKeyColumnSize" in changed:
        notes.append("MaxKeyColumnSize: not acted on: keys of any size are compared whole")
    return notes
