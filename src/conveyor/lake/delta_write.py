"""Writing reduced changes into an existing curated Delta table: rewriting the
partitions they touch (an overwrite whose predicate names them) or merging."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable, write_deltalake

from conveyor.lake.change_rows import OP, SEQ
from conveyor.lake.delta_types import delta_ready

MAX_PRUNE_VALUES = 1000
REWRITE_SHARE = 20
"""Rewrite the touched partitions (instead of merging) when the changed keys
are at least 1/REWRITE_SHARE of their rows, or when they hold one file each."""


def conform(reduced: pa.Table, schema: pa.Schema) -> pa.Table:
    """The reduced changes with the base's columns (missing ones null)."""
    arrays = [reduced.column(OP), reduced.column(SEQ)]
    fields = [pa.field(OP, pa.string()), pa.field(SEQ, pa.int64())]
    for f in schema:
        if f.name in reduced.column_names:
            arrays.append(reduced.column(f.name).cast(f.type, safe=False))
        else:
            arrays.append(pa.nulls(reduced.num_rows, f.type))
        fields.append(f)
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(value: Any, dtype: pa.DataType) -> str | None:
    if value is None:
        return None
    if pa.types.is_boolean(dtype):
        return "true" if value else "false"
    if pa.types.is_integer(dtype):
        return str(int(value))
    if pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        return "'" + str(value).replace("'", "''") + "'"
    if pa.types.is_date32(dtype):
        return f"'{value.isoformat()}'"
    return "?"


def partition_text(value: Any) -> str | None:
    """A partition value as Delta's log writes it."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _touched_partitions(
    dt: DeltaTable, reduced: pa.Table, key: Sequence[str], part: Sequence[str]
) -> pa.Table | None:
    """The partition values the changes touch: the new images' partitions and
    the current partitions of the changed keys, one row per combination of
    ``part`` (typed as the table's partition columns). None when they are all
    of the table's partitions (or the table has no partition columns)."""
    if not part:
        return None
    new = reduced.filter(pc.not_equal(reduced.column(OP), "D")).select(list(part))
    existing = {tuple(values.get(name) for name in part) for values in dt.partitions()}
    touched = {
        tuple(partition_text(row[name]) for name in part)
        for row in new.group_by(list(part), use_threads=False).aggregate([]).to_pylist()
    }
    if existing <= touched:  # every partition gets new rows: no scan for the old ones
        return None
    current = dt.to_pyarrow_dataset().to_table(columns=[*key, *part])
    changed = reduced.select(list(key)).cast(current.select(list(key)).schema, safe=False)
    hit = current.join(changed, keys=list(key), join_type="left semi", use_threads=False).select(list(part))
    both = pa.concat_tables([hit, new.cast(hit.schema, safe=False)])
    return both.group_by(list(part), use_threads=False).aggregate([])


def _partition_predicate(combos: pa.Table, part: Sequence[str], prefix: str = "") -> str | None:
    """A SQL predicate naming the partitions of ``combos`` (None when it cannot
    be written)."""
    if combos.num_rows == 0:
        return "false"
    if combos.num_rows > MAX_PRUNE_VALUES:
        return None
    terms = []
    for row in combos.to_pylist():
        conds = []
        for name in part:
            lit = _literal(row[name], combos.schema.field(name).type)
            if lit == "?":
                return None
            column = f"{prefix}{_ident(name)}"
            conds.append(f"{column} IS NULL" if lit is None else f"{column} = {lit}")
        terms.append("(" + " AND ".join(conds) + ")")
    return "(" + " OR ".join(terms) + ")"


def _partition_filter(
    dt: DeltaTable, reduced: pa.Table, key: Sequence[str], part: Sequence[str]
) -> str | None:
    """A predicate on the merge target (alias ``t``) naming the partitions the
    changes touch. None when it cannot be written or names every partition
    (then the merge considers every file)."""
    combos = _touched_partitions(dt, reduced, key, part)
    return None if combos is None else _partition_predicate(combos, part, "t.")


def merge(
    dt: DeltaTable, reduced: pa.Table, key: Sequence[str], part: Sequence[str], commit: CommitProperties
) -> dict[str, Any]:
    target_schema = pa.schema(dt.schema().to_arrow())
    source = conform(reduced, pa.schema([f for f in reduced.schema if f.name not in (OP, SEQ)]))
    source = pa.Table.from_arrays(
        [source.column(OP), *delta_ready(source.drop_columns([OP, SEQ])).columns],
        names=[OP, *[n for n in source.column_names if n not in (OP, SEQ)]],
    ).combine_chunks()
    predicate = " AND ".join(f"t.{_ident(k)} = s.{_ident(k)}" for k in key)
    pruning = _partition_filter(dt, reduced, key, part)
    if pruning is not None:
        predicate = f"{predicate} AND {pruning}"
    columns = [n for n in source.column_names if n != OP]
    updates = {_ident(c): f"s.{_ident(c)}" for c in columns}
    merge_schema = any(c not in target_schema.names for c in columns)
    metrics: dict[str, Any] = (
        dt.merge(
            source,
            predicate=predicate,
            source_alias="s",
            target_alias="t",
            merge_schema=merge_schema,
            error_on_type_mismatch=False,
            commit_properties=commit,
        )
        .when_matched_delete(predicate=f"s.{OP} = 'D'")
        .when_matched_update(updates=updates)
        .when_not_matched_insert(updates=updates, predicate=f"s.{OP} <> 'D'")
        .execute()
    )
    return metrics


def _partition_expression(combos: pa.Table, part: Sequence[str]) -> Any:
    """The pyarrow dataset filter selecting the partitions of ``combos``."""
    terms = []
    for row in combos.to_pylist():
        conds = [
            pc.field(name).is_null() if row[name] is None else pc.field(name) == row[name] for name in part
        ]
        term = conds[0]
        for cond in conds[1:]:
            term = term & cond
        terms.append(term)
    expression = terms[0]
    for term in terms[1:]:
        expression = expression | term
    return expression


def prefer_rewrite(dt: DeltaTable, combos: pa.Table | None, part: Sequence[str], changed: int) -> bool:
    """Whether rewriting the touched partitions beats merging into them. A
    merge rewrites only the files holding a matched row, after scanning the
    touched partitions for the keys; a rewrite reads and writes every file
    of them but skips the merge's join and its per-file bookkeeping. So:
    rewrite when each touched partition is one file (a merge with any match
    there rewrites it too) or when the changed keys are at least
    1/REWRITE_SHARE of the touched rows (then nearly every file holds one);
    otherwise (a few keys in partitions of many files) merge."""
    actions = pa.table(dt.get_add_actions(flatten=True))
    if combos is not None:
        wanted = {tuple(partition_text(v) for v in row.values()) for row in combos.to_pylist()}
        values = zip(*(actions.column(f"partition.{name}").to_pylist() for name in part), strict=True)
        mask = [tuple(partition_text(v) for v in row) in wanted for row in values]
        actions = actions.filter(pa.array(mask, pa.bool_()))
    files = actions.num_rows
    partitions = len(set(zip(*(actions.column(f"partition.{n}").to_pylist() for n in part), strict=True)))
    rows = int(pc.sum(actions.column("num_records")).as_py() or 0)
    return files <= max(partitions, 1) or changed * REWRITE_SHARE >= rows


def rewrite(
    dt: DeltaTable,
    reduced: pa.Table,
    key: Sequence[str],
    part: Sequence[str],
    commit: CommitProperties,
    storage_options: dict[str, str] | None = None,
) -> dict[str, int] | None:
    """Apply the reduced changes by rewriting the partitions they touch: those
    partitions are streamed batch by batch, the changed keys dropped, the new
    images added after them, and written back in one overwrite commit whose
    predicate names those partitions (replaceWhere), carrying ``commit``. The
    old rows never sit in memory whole, so a table larger than memory can be
    rewritten. Returns merge-like counts, or None when the changes cannot be
    applied this way (new columns, or a type the partition predicate cannot
    name): then the caller merges."""
    target_schema = pa.schema(dt.schema().to_arrow())
    columns = [n for n in reduced.column_names if n not in (OP, SEQ)]
    if any(c not in target_schema.names for c in columns):
        return None
    combos = _touched_partitions(dt, reduced, key, part)
    predicate = None
    if combos is not None:
        predicate = _partition_predicate(combos, part)
        if predicate is None or combos.num_rows == 0:
            return None
    if not prefer_rewrite(dt, combos, part, reduced.num_rows):
        return None
    images = delta_ready(reduced.select(columns))
    try:
        arrays = [reduced.column(OP)]
        for f in target_schema:
            if f.name in images.column_names:
                arrays.append(images.column(f.name).cast(f.type, safe=False))
            else:
                arrays.append(pa.nulls(reduced.num_rows, f.type))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    source = pa.Table.from_arrays(arrays, names=[OP, *target_schema.names])
    dataset = dt.to_pyarrow_dataset()
    expression = None if combos is None else _partition_expression(combos, part)
    files = sum(1 for _ in dataset.get_fragments(filter=expression))
    kept = _KeptRows(source, key, target_schema)
    upserts = source.filter(pc.not_equal(source.column(OP), "D")).drop_columns([OP])
    batches = itertools.chain(
        kept.batches(dataset.to_batches(filter=expression)), upserts.combine_chunks().to_batches()
    )
    write_deltalake(
        dt,
        pa.RecordBatchReader.from_batches(target_schema, batches),
        mode="overwrite",
        predicate=predicate,
        storage_options=storage_options,
        commit_properties=commit,
    )
    hits = kept.matched_ops()
    deleted = int(pc.sum(pc.equal(hits, "D")).as_py() or 0)
    updated = len(hits) - deleted
    return {
        "num_target_rows_inserted": upserts.num_rows - updated,
        "num_target_rows_updated": updated,
        "num_target_rows_deleted": deleted,
        "num_target_files_removed": files,
    }


class _KeptRows:
    """The old rows of the rewritten partitions that no change touches, batch by
    batch, noting which changed keys the table held (to count what was updated
    and what deleted)."""

    def __init__(self, source: pa.Table, key: Sequence[str], schema: pa.Schema) -> None:
        self.key = list(key)
        self.schema = schema
        self.source_keys = source.select(self.key).combine_chunks()
        self.source_ops = source.select([*self.key, OP]).combine_chunks()
        self.value_set = self.source_keys.column(0).combine_chunks() if len(self.key) == 1 else None
        self.matched: list[pa.Table] = []

    def batches(self, old: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in old:
            rows = pa.Table.from_batches([batch]).cast(self.schema)
            if self.value_set is not None:  # one hash-set lookup per batch
                dropped = pc.is_in(rows.column(self.key[0]), value_set=self.value_set)
                self.matched.append(rows.select(self.key).filter(dropped))
                rows = rows.filter(pc.invert(dropped))
            else:
                keys = rows.select(self.key)
                self.matched.append(
                    keys.join(self.source_keys, keys=self.key, join_type="left semi", use_threads=False)
                )
                rows = rows.join(self.source_keys, keys=self.key, join_type="left anti", use_threads=False)
                rows = rows.select(self.schema.names)
            yield from rows.to_batches()

    def matched_ops(self) -> pa.ChunkedArray:
        """The operation of every change whose key the rewritten rows held."""
        held = pa.concat_tables(self.matched) if self.matched else self.source_keys.schema.empty_table()
        held = held.cast(self.source_keys.schema, safe=False)
        return self.source_ops.join(held, keys=self.key, join_type="left semi", use_threads=False).column(OP)
