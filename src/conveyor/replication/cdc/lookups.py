"""Values a change stream does not carry exactly, looked up from the source by
primary key (``LooksUpValues``: PostgreSQL's generated and xml columns), and
the shape change capture carries of a table because of them.

When: once per table per apply batch, in the applier's thread, as the reduced
rows become the table's ``ChangeBatch`` (so the stream reads on meanwhile and
a table without such columns pays nothing). What: every whole row to write
(``upserts``), every partial UPDATE (the looked-up columns are then written,
not kept) and, for an applier that keeps the change log (the lake), every
INSERT and UPDATE of the log, gets the source's *current* values of those
columns. A later change of the same row comes later in the stream and is
looked up again, so the target converges to the source; meanwhile a row may
show values of a later state than its other columns (as the migration
service's LOB lookups do).

A key the source no longer has (deleted, or re-keyed, since the change) is not
written: the target keeps what it had for that key (the row as before the
batch, or no row) and the log leaves that INSERT or UPDATE out, until the
DELETE (or key change) that follows in the stream.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from conveyor.connectors.changes import ChangeApplier, ComputesColumns, LooksUpValues
from conveyor.core.batch import LoggedChange
from conveyor.core.schema import TableSchema
from conveyor.replication.mapped_table import MappedTable

log = logging.getLogger(__name__)

Key = tuple[Any, ...]


@dataclass(frozen=True)
class ValueLookup:
    """The looked-up columns of one captured table: ``columns`` by source
    name, ``rename`` to their target names; ``convert`` and ``mask`` as the
    mapping applies them to the stream's values."""

    source: LooksUpValues
    table: TableSchema
    columns: tuple[str, ...]
    rename: Mapping[str, str]
    convert: Callable[[dict[str, Any]], None] | None = None
    mask: Callable[[dict[str, Any]], None] | None = None

    @property
    def source_key(self) -> tuple[str, ...]:
        return self.table.primary_key

    def complete(
        self,
        upserts: list[dict[str, Any]],
        partial: dict[frozenset[str], list[dict[str, Any]]],
        logged: Sequence[LoggedChange],
        source_keys: Mapping[Key, Key],
        key_of: Callable[[dict[str, Any]], Key],
    ) -> tuple[list[dict[str, Any]], dict[frozenset[str], list[dict[str, Any]]], tuple[LoggedChange, ...]]:
        """The batch's rows with the looked-up values (``source_keys``: the
        source key of each target key the batch wrote), without the rows whose
        key the source no longer has (see the module's docstring)."""
        rows = [*upserts, *(r for rs in partial.values() for r in rs)]
        rows += [c.after for c in logged if c.after is not None and c.op in ("c", "u")]
        wanted = {source_keys[k] for k in map(key_of, rows) if k in source_keys}
        found = self.source.look_up(self.table, self.columns, sorted(wanted, key=repr))
        values = {key: self._target(row) for key, row in found.items()}
        names = frozenset(self.rename.values())

        def filled(row: dict[str, Any]) -> bool:
            got = values.get(source_keys.get(key_of(row), ()))
            if got is None:
                return False
            row.update(got)
            return True

        kept = [row for row in upserts if filled(row)]
        completed: dict[frozenset[str], list[dict[str, Any]]] = {}
        for unchanged, group in partial.items():
            left = [row for row in group if filled(row)]
            if left:
                completed.setdefault(unchanged - names, []).extend(left)
        log_kept = tuple(c for c in logged if c.after is None or c.op not in ("c", "u") or filled(c.after))
        gone = len(wanted) - len(found)
        if gone:
            log.info(
                "table %s: %d changed rows are gone from the source since (the DELETE follows in "
                "the stream): not written",
                self.table.ref,
                gone,
            )
        return kept, completed, log_kept

    def _target(self, values: dict[str, Any]) -> dict[str, Any]:
        row = {self.rename[c]: v for c, v in values.items() if c in self.rename}
        if self.convert is not None:
            self.convert(row)
        if self.mask is not None:
            self.mask(row)
        return row


def value_lookup(source: LooksUpValues, mapped: MappedTable) -> ValueLookup | None:
    """The lookup of ``mapped``'s columns the stream does not carry exactly and
    the mapping keeps (None: there are none, or no key to look them up by)."""
    rename = {c.source: c.target for c in mapped.columns if c.source is not None}
    columns = tuple(c for c in source.lookup_columns(mapped.source) if c in rename)
    if not columns or not mapped.source.primary_key:
        return None
    return ValueLookup(
        source,
        mapped.source,
        columns,
        {c: rename[c] for c in columns},
        mapped.convert_row if mapped.converts else None,
        mapped.mask_row if mapped.masks else None,
    )


def captured_sources(mapped: Sequence[MappedTable], applier: ChangeApplier) -> list[TableSchema]:
    """The source tables as change capture carries them: every column but the
    generated ones the target table computes itself (a PostgreSQL table
    Conveyor created declares them GENERATED), which a change must not write.
    The others are carried, and looked up (``value_lookup``)."""
    computes = applier if isinstance(applier, ComputesColumns) else None
    tables = []
    for m in mapped:
        generated = {c.name for c in m.source.columns if c.generated is not None}
        if not generated:
            tables.append(m.source)
            continue
        computed = computes.computed_columns(m.target) if computes is not None else frozenset()
        source_of = {c.target: c.source for c in m.columns}
        skip = {source_of.get(c) for c in computed} & generated
        tables.append(m.source.with_columns([c for c in m.source.columns if c.name not in skip]))
    return tables


def with_carried(schema: TableSchema, previous: TableSchema) -> TableSchema:
    """A table's shape as the stream now sees it, with the generated columns
    capture carried before (the stream's relation never has them; its DDL
    capture leaves them out too), at their places, for the DDL comparison."""
    names = set(schema.column_names)
    columns = list(schema.columns)
    for i, column in enumerate(previous.columns):
        if column.generated is not None and column.name not in names:
            columns.insert(min(i, len(columns)), column)
    if len(columns) == len(schema.columns):
        return schema
    return replace(schema, columns=tuple(columns))
