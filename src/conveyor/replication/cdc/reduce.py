"""Reducing a batch of committed row changes to one final change per key.

Applying the reduced batch set-based (delete the keys, insert the final rows,
update the partial rows) leaves the target exactly as applying every change in
order would. Replaying changes the target already has converges to the same
state, which is what makes a crash between target commit and source
acknowledgement harmless.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import InitVar, dataclass, field, replace
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from conveyor.connectors.arrow_rows import captured_changes, change_batch, column_values
from conveyor.connectors.captured_rows import row_changes
from conveyor.connectors.changes import RowChange
from conveyor.core.batch import (
    ENCODED,
    OP,
    UNCHANGED,
    ChangeBatch,
    Checkpoint,
    KeyHistory,
    Logged,
    LoggedChange,
    LoggedRows,
    Op,
    op_letters,
)
from conveyor.core.row_filter import RowFilter
from conveyor.core.schema import TableSchema
from conveyor.replication.cdc.before_images import BeforeImages
from conveyor.replication.cdc.captured_mapping import AddedColumns, CapturedMapping, Conversions
from conveyor.replication.cdc.change_filter import MOVED_OUT, Judged, completed, passes, warn_unsent
from conveyor.replication.cdc.change_log import ChangeLog
from conveyor.replication.cdc.keyed_rows import KeyedRows
from conveyor.replication.cdc.parent_groups import Group, ParentGroups
from conveyor.replication.cdc.reduce_captured import reduce_captured

if TYPE_CHECKING:
    from conveyor.replication.cdc.lookups import ValueLookup

Key = tuple[Any, ...]


@dataclass
class TableReducer:
    """The pending changes of one table, keyed by primary key, in target column
    names (``rename`` maps source to target names; columns it lacks are dropped)."""

    table: TableSchema
    rename: dict[str, str]
    # add-column mapping rules: (source rows, operation) -> the added columns' values
    added: Callable[[Sequence[Mapping[str, Any]], Op], list[dict[str, Any]]] | None = None
    added_names: frozenset[str] = frozenset()
    # The same on captured changes in Arrow (MappedTable.compute_added_changes):
    # the added columns by name, and per row those left unsent.
    added_captured: AddedColumns | None = None
    # Encoded rows (captured, ENCODED) as values, for the rare change that needs a
    # whole row the batch holds encoded (a partial update on top of it).
    decode: Callable[[bytes], dict[str, Any]] | None = None
    # Selection rule filters (on source values); change-data-type conversions
    # (on every target row, keys too) and data masking (on new rows), in place.
    row_filter: RowFilter | None = None
    convert: Callable[[dict[str, Any]], None] | None = None
    mask: Callable[[dict[str, Any]], None] | None = None
    # Both, on captured changes in Arrow (target names; MappedTable.convert_changes).
    convert_captured: Conversions | None = None
    truncate: bool = False
    # The changes one by one, in commit order (None: not kept), for an applier
    # that publishes each (connectors.changes.KeepsChangeLog); captured changes
    # taken whole stay as they came (LoggedRows) when it takes them so.
    log: list[Logged] | None = None
    logs_rows: bool = False
    # A table whose rows are replaced per parent (MappedTable.group_key): the
    # target columns of the parent's key, the source key identifying a row
    # (parent key, then position) and the parent whose rows the last batch
    # may have handed over only in part (``parent_groups``).
    group_key: tuple[str, ...] = ()
    source_key: tuple[str, ...] = ()
    carry: InitVar[Group | None] = None  # seeds ``_parents``, which keeps it
    inserts: int = 0
    updates: int = 0
    deletes: int = 0
    filtered: int = 0
    # Keep what each key's changes were (its first change, ...) to judge the
    # reduced batch against the target (apply conflicts, ``KeyHistory``).
    check_keys: bool = False
    # Columns the stream does not carry exactly, looked up from the source when
    # the batch is built (cdc/lookups.py); then the source key of each target key.
    lookup: ValueLookup | None = None
    # add-before-image-columns: (before-image column, its column), target names.
    before_images: tuple[tuple[str, str], ...] = ()
    _source_keys: dict[Key, Key] = field(default_factory=dict)
    # Captured changes taken whole (``add_captured``), in commit order after
    # everything in ``_rows``, reduced in Arrow when the batch is built.
    _captured: list[pa.RecordBatch] = field(default_factory=list)
    # Whether ``_captured`` holds encoded rows, and partial UPDATEs: both
    # together are folded (a partial UPDATE on top of a line needs it decoded).
    _captured_lines: bool = False
    _captured_partial: bool = False

    def __post_init__(self, carry: Group | None) -> None:
        self._rows = KeyedRows(self.table, self.decode, self.check_keys)  # the changes one by one
        self._parents = ParentGroups(self.table.ref, self.group_key, self.source_key, carry)
        looked_up = frozenset(self.lookup.rename.values()) if self.lookup is not None else frozenset()
        self._images = BeforeImages(self.table, self.before_images, looked_up)
        self._change_log = (
            ChangeLog(self.log, self.table.primary_key, self._target, self.mask)
            if self.log is not None
            else None
        )
        # Source and target columns are the same (no rename, no removed column):
        # rows pass through without being rebuilt.
        self._identity = all(k == v for k, v in self.rename.items()) and set(self.rename) == set(
            self.table.column_names
        )

    @property
    def passes_encoded(self) -> bool:
        """Whether encoded rows can go to the target as they are: the mapping
        neither renames, removes nor adds a column, and they can be decoded."""
        return self._as_they_are and self.decode is not None

    @property
    def _as_they_are(self) -> bool:
        """Whether rows go to the target as the source sent them: the mapping
        neither renames, removes, adds, converts, filters nor masks a column,
        and nothing is asked of each change (its key's history, a value to
        look up, its place in a change log)."""
        return (
            self._identity
            and self._values_pass
            and not self.check_keys
            and list(self.rename) == list(self.table.column_names)
        )

    @property
    def _values_pass(self) -> bool:
        """Whether every target value is a source value as it is: no column
        added, converted or masked, no filter, nothing looked up."""
        return (
            self.added is None
            and not self.before_images
            and self.row_filter is None
            and self.mask is None
            and self.convert is None
            and self.lookup is None
        )

    @property
    def _log_only(self) -> bool:
        """Whether the applier reads the change log alone (``KeepsChangeLog``:
        the lake, NATS): the reduced rows are then not built, nor captured
        changes folded for them; a log whose values are looked up is built
        with the rows."""
        return self.log is not None and self.lookup is None

    @property
    def takes_whole(self) -> bool:
        """Whether captured batches of whole rows are taken whole: the mapping
        at most renames, removes, adds, converts, masks or filters rows or
        adds before-image columns, in Arrow, nothing is asked of each change
        but its key's history (a change log only of an applier that takes
        captured rows as they are) and the table has a primary key."""
        images = [name for name, _ in self.before_images]
        return bool(
            (self.added is None or self.added_captured is not None)
            and self.lookup is None
            and (self.convert_captured is not None or (self.convert is None and self.mask is None))
            and (self.log is None or self.logs_rows)
            and not self.group_key
            and self.table.primary_key
            and sorted([*self.rename.values(), *self.added_names, *images]) == sorted(self.table.column_names)
        )

    @property
    def keeps_before(self) -> bool:
        """Whether captured batches should carry each whole old row
        (``BEFORE``): for before-image columns, and for a change log of a
        filtered table (a row moved out is a DELETE of its old row)."""
        return bool(self.before_images) or (self.row_filter is not None and self.log is not None)

    def _whole_rows(self, batch: pa.RecordBatch) -> Judged | None:
        """A captured batch of rows in the target's column names, mapped
        (``captured_mapping``), when the reducer takes it whole; None when
        its changes must go one by one."""
        if not (self.takes_whole and self.rename.keys() <= set(batch.schema.names)):
            return None
        mapping = CapturedMapping(
            self.table,
            self.rename,
            self.row_filter,
            self.added_captured,
            self.convert_captured,
            mark_moved_out=self.check_keys,
            before_images=self._images if self.before_images else None,
            logged=self._log_only,
        )
        return mapping.apply(batch)

    def add_captured(self, changes: ChangeBatch, at: tuple[Checkpoint, int] | None = None) -> bool:
        """Take a stream's captured changes (``ChangeBatch.captured``): whole,
        to reduce in Arrow when the batch is built, or one at a time
        (``row_changes``) when the table's mapping or the batch's form needs
        that; captured encoded rows are always taken whole. ``at`` is the
        first change's ``(position, index)`` for the change log. True when
        taken whole. Raises DataError for a value the mapping cannot convert."""
        batch = changes.changes
        assert batch is not None
        encoded = ENCODED in batch.schema.names
        judged = None if encoded or changes.one_at_a_time else self._whole_rows(batch)
        if not encoded and judged is None:
            for i, change in enumerate(row_changes(changes)):
                self.add(change, None if at is None else (at[0], at[1] + i))
            return False
        if encoded:
            whole = (
                self._as_they_are
                and self.log is None
                and bool(self.table.primary_key)
                and set(batch.schema.names) - {OP, ENCODED} == set(self.table.primary_key)
            )
            counted = batch.column(OP)
        else:
            assert judged is not None
            batch, counted, whole = judged.rows, judged.counted, True
            self.filtered += judged.moved_out
            if judged.unsent:
                warn_unsent(self.table.ref, judged.unsent)
            if self.log is not None:
                assert at is not None, "a change log needs each change's place"
                self.log.append(LoggedRows(batch, *at))
        letters = op_letters(counted.combine_chunks() if isinstance(counted, pa.ChunkedArray) else counted)
        self.inserts += letters.count(Op.INSERT.encode())
        self.updates += letters.count(Op.UPDATE.encode())
        self.deletes += letters.count(Op.DELETE.encode())
        self._captured.append(batch)
        self._captured_lines |= encoded
        self._captured_partial |= UNCHANGED in batch.schema.names
        if not whole or (
            not self._log_only and (self._rows or (self._captured_lines and self._captured_partial))
        ):
            self._fold()  # after what is pending as values, in commit order
        return True

    def _fold(self) -> None:
        """The captured changes taken whole, into the per-key state the
        change-by-change path keeps (for a change that needs it: a partial
        UPDATE on top of an encoded row), each noted in its key's history."""
        captured, self._captured = self._captured, []
        self._captured_lines = self._captured_partial = False
        key = self.table.primary_key
        deleted, inserted = Op.DELETE.encode(), Op.INSERT.encode()
        for batch in captured:
            if ENCODED not in batch.schema.names:
                moved = batch.column(MOVED_OUT).to_pylist() if MOVED_OUT in batch.schema.names else None
                for i, (op, row, unchanged) in enumerate(captured_changes(batch, self.table.column_names)):
                    if op is None:  # a change log's INSERT the filter moved out
                        self._rows.delete(row, None)
                    elif op == deleted:
                        self._rows.delete(row, None if moved and moved[i] else Op.DELETE)
                    else:  # a partial UPDATE is merged into the key's row as the others are
                        self._rows.put(row, unchanged, None, Op.INSERT if op == inserted else Op.UPDATE)
                continue
            lines = batch.column(ENCODED).to_pylist()
            if not key:  # encoded rows of a table without a primary key: INSERTs alone
                self._rows.put_encoded((), lines)
                continue
            keys = list(zip(*(column_values(batch.column(k)) for k in key), strict=True))
            ops = batch.column(OP).to_pylist()
            self._rows.put_encoded(
                keys, [None if op == deleted else line for op, line in zip(ops, lines, strict=True)]
            )

    def add(self, change: RowChange, at: tuple[Checkpoint, int] | None = None) -> None:
        """Take a change; ``at`` is its ``(position, index)`` for the change log."""
        if self._captured and not self._log_only:
            self._fold()
        if self.row_filter is not None and change.op is not Op.DELETE:
            if change.op is Op.UPDATE and change.unchanged:
                change = completed(change)
            if not passes(self.row_filter, change):
                # Out of the filter: the target must not have the row (it may have
                # had it before this change moved it out, or from a replay).
                self.filtered += 1
                if self.group_key:
                    self._parents.note(change, None, self._target)
                elif self.table.primary_key:
                    if change.old_key is not None:
                        self._rows.delete(self._target(change.old_key), None)
                    self._rows.delete(self._target(change.values), None)
                    if self._change_log is not None and at is not None and change.op is Op.UPDATE:
                        self._change_log.moved_out(change, at)
                return
            if change.unchanged:
                warn_unsent(self.table.ref, change.unchanged)
        values = self._target(change.values)
        unchanged = (
            frozenset(self.rename[c] for c in change.unchanged if c in self.rename)
            if change.unchanged
            else change.unchanged
        )
        if self.added is not None and change.op is not Op.DELETE:
            [extra] = self.added([change.values], change.op)
            values.update(extra)
            # An expression whose input was not sent (unchanged TOAST) keeps the target's value.
            unchanged |= self.added_names - extra.keys()
        old = self._target(change.old_key) if change.old_key is not None else None
        if self.before_images and change.op is not Op.DELETE:
            values.update(self._images.of_change(change, values, old, self._target))
        if self.mask is not None and change.op is not Op.DELETE:
            self.mask(values)  # after add-column, as the full load masks added columns too
        if self._change_log is not None and at is not None:
            self._change_log.change(change, values, old, at)
        if self.group_key:
            self._count(change.op)
            self._parents.note(change, None if change.op is Op.DELETE else values, self._target)
            return
        if self.lookup is not None and change.op is not Op.DELETE:
            source = change.values
            self._source_keys[self._key(values)] = tuple(source.get(k) for k in self.lookup.source_key)
        if change.op is Op.INSERT:
            self.inserts += 1
            self._rows.put(values, frozenset(), None, Op.INSERT)
        elif change.op is Op.UPDATE:
            self.updates += 1
            self._rows.put(values, unchanged, old, Op.UPDATE)
        elif change.op is Op.DELETE:
            self.deletes += 1
            self._rows.delete(old if old is not None else values, Op.DELETE)
        else:
            raise ValueError(f"unexpected change operation {change.op!r}")

    def _count(self, op: Op) -> None:
        if op is Op.INSERT:
            self.inserts += 1
        elif op is Op.UPDATE:
            self.updates += 1
        else:
            self.deletes += 1

    @property
    def open_group(self) -> Group | None:
        """The parent whose rows the next batch may continue (``ParentGroups.open``)."""
        return self._parents.open

    def clear(self, at: tuple[Checkpoint, int] | None = None) -> None:
        """A TRUNCATE: what came before it in the batch no longer matters."""
        if self._change_log is not None and at is not None:
            self._change_log.truncate(at)
        self._rows.clear()
        self._captured.clear()
        self._captured_lines = self._captured_partial = False
        self._parents.clear()
        self._source_keys.clear()
        self.truncate = True

    @property
    def pending(self) -> int:
        return len(self._rows) + len(self._parents) + len(self._captured) + int(self.truncate)

    def touched_keys(self) -> list[Key] | None:
        """The target keys this batch changes; None when that is the whole
        table (a TRUNCATE, or rows without a primary key)."""
        if self._captured:
            self._fold()
        return None if self.truncate else self._rows.touched()

    def changes(self) -> ChangeBatch:
        """The reduced changes as the table's ``ChangeBatch`` (converted to Arrow
        here, once: appliers write it as it is)."""
        return self.reduced()()

    def reduced(self) -> Callable[[], ChangeBatch]:
        """The reduced rows, and what makes them the table's ``ChangeBatch``
        (called apart: the runner reduces in the stream's thread, which frees
        the pending changes at once, and converts in the applier's; captured
        changes taken whole are reduced there too, in Arrow)."""
        if self._log_only:
            # The batch's table as the rows' would be: one replaced per parent keyed by the parent.
            table = replace(self.table, primary_key=self.group_key) if self.group_key else self.table
            log = tuple(self.log or ())
            return functools.partial(
                change_batch,
                table,
                [],
                [],
                {},
                truncate=self.truncate,
                log=log,
                key_is_group=bool(self.group_key),
            )
        if self._captured and self._rows:
            self._fold()  # not expected (``add_captured`` folds then), but never lose them
        if self._captured:
            return functools.partial(
                reduce_captured,
                self.table,
                tuple(self._captured),
                truncate=self.truncate,
                log=tuple(self.log or ()),
                check_keys=self.check_keys and not self.truncate,
            )
        kept = self._rows.reduced()
        upserts, deletes, encoded, partial = kept.upserts, kept.deletes, kept.encoded, kept.partial
        table = self.table
        if self.group_key:
            # Each parent's rows replace its rows on the target (deleted by the parent's key).
            table = replace(table, primary_key=self.group_key)
            parents, rows = self._parents.replaced()
            deletes += parents
            upserts += rows
        if self.lookup is not None and (upserts or partial or self.log):
            return functools.partial(self._looked_up, upserts, deletes, partial)
        return functools.partial(
            change_batch,
            table,
            upserts,
            deletes,
            partial,
            truncate=self.truncate,
            encoded=encoded,
            log=tuple(self.log or ()),
            key_is_group=bool(self.group_key),
            checks=self._checks(),
        )

    def _looked_up(
        self,
        upserts: list[dict[str, Any]],
        deletes: list[dict[str, Any]],
        partial: dict[frozenset[str], list[dict[str, Any]]],
    ) -> ChangeBatch:
        """The batch with the values the stream does not carry exactly looked
        up from the source (in the applier's thread: ``reduced``)."""
        assert self.lookup is not None
        # A table whose values are looked up takes no captured rows whole: its
        # log holds changes one by one.
        changes = [c for c in self.log or () if isinstance(c, LoggedChange)]
        assert len(changes) == len(self.log or ())
        upserts, partial, logged = self.lookup.complete(
            upserts, partial, changes, self._source_keys, self._key
        )
        return change_batch(
            self.table,
            upserts,
            deletes,
            partial,
            truncate=self.truncate,
            log=logged,
            checks=self._checks(),
        )

    def _checks(self) -> tuple[list[Key], list[KeyHistory]] | None:
        """The keys to judge against the target and their histories. None
        when nothing is judged: not asked, a TRUNCATE in the batch (the table
        is emptied first), rows without a key or replaced per parent."""
        if not self.check_keys or self.truncate or self.group_key or not self.table.primary_key:
            return None
        return self._rows.checks()

    def _target(self, values: dict[str, Any]) -> dict[str, Any]:
        """Source values as a target row: renamed, converted (a copy: the
        change's own values stay the source's, for add-column expressions)."""
        renamed = self._renamed(values)
        if self.convert is None and self.mask is None:
            return renamed
        renamed = dict(renamed)
        if self.convert is not None:
            self.convert(renamed)
        return renamed

    def _renamed(self, values: dict[str, Any]) -> dict[str, Any]:
        if (
            self._identity
            and self.added is None
            and not self.before_images
            and values.keys() <= self.rename.keys()
        ):
            return values
        return {self.rename[name]: value for name, value in values.items() if name in self.rename}

    def _key(self, values: dict[str, Any]) -> Key:
        return self._rows.key(values)


def reduce_changes(reducers: Sequence[TableReducer]) -> list[ChangeBatch]:
    return [r.changes() for r in reducers if r.pending]
