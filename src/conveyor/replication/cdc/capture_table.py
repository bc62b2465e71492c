"""One captured table in the change-capture loop: its mapping, the reducer of
the changes pending in the current batch, and its counters under the migration
service's names."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from conveyor.connectors.changes import LooksUpValues
from conveyor.core.batch import Checkpoint
from conveyor.replication.cdc.lookups import ValueLookup, value_lookup
from conveyor.replication.cdc.parent_groups import Group
from conveyor.replication.cdc.reduce import TableReducer
from conveyor.replication.mapped_table import MappedTable


@dataclass
class CaptureTable:
    """One captured table: its mapping, the changes pending in the current batch
    and its counters under the migration service's names."""

    mapped: MappedTable
    reducer: TableReducer
    inserts: int = 0
    updates: int = 0
    deletes: int = 0
    ddls: int = 0
    suspended: str | None = None
    # Being reloaded: its changes are held until the reload's load has committed.
    reloading: bool = False
    suspended_at: Checkpoint | None = None
    # The stream's decoder of this table's encoded rows, when it encodes them.
    decode: Callable[[bytes], dict[str, Any]] | None = None
    # Keep each change for an applier that publishes them (KeepsChangeLog);
    # captured rows as they came, when it takes them so (TakesLoggedRows).
    keep_log: bool = False
    log_rows: bool = False
    # Keep what each key's changes were, for the apply-conflict policies.
    check_keys: bool = False
    # The stream, when it looks up values it does not carry exactly, and this
    # table's lookup of them (None: nothing to look up).
    values_from: LooksUpValues | None = None
    lookup: ValueLookup | None = None

    @classmethod
    def of(
        cls, mapped: MappedTable, keep_log: bool = False, check_keys: bool = False, log_rows: bool = False
    ) -> CaptureTable:
        reducer = table_reducer(mapped, keep_log=keep_log, check_keys=check_keys, log_rows=log_rows)
        return cls(mapped, reducer, keep_log=keep_log, log_rows=log_rows, check_keys=check_keys)

    def renew(self, mapped: MappedTable | None = None) -> None:
        """Start a new batch (and, after DDL, a new mapping)."""
        if mapped is not None:
            self.mapped = mapped
            self.looks_up_from(self.values_from)
        self.reducer = table_reducer(
            self.mapped,
            self.decode,
            self.keep_log,
            self.reducer.open_group,
            check_keys=self.check_keys,
            lookup=self.lookup,
            log_rows=self.log_rows,
        )

    def looks_up_from(self, source: LooksUpValues | None) -> None:
        """Look values the stream does not carry exactly up from ``source``
        (from the next batch on)."""
        self.values_from = source
        self.lookup = value_lookup(source, self.mapped) if source is not None else None

    def stats(self) -> dict[str, Any]:
        return {
            "Inserts": self.inserts,
            "Updates": self.updates,
            "Deletes": self.deletes,
            "Ddls": self.ddls,
            "AppliedChanges": self.inserts + self.updates + self.deletes,
            "SuspendedReason": self.suspended,
            "Reloading": self.reloading,
        }


def table_reducer(
    mapped: MappedTable,
    decode: Callable[[bytes], dict[str, Any]] | None = None,
    keep_log: bool = False,
    carry: Group | None = None,
    check_keys: bool = False,
    lookup: ValueLookup | None = None,
    log_rows: bool = False,
) -> TableReducer:
    """A reducer of one batch of ``mapped``'s changes (``carry``: the group a
    grouped table's previous batch left open)."""
    rename = {c.source: c.target for c in mapped.columns if c.source is not None}
    added = mapped.compute_added if mapped.added else None
    return TableReducer(
        mapped.target,
        rename,
        added=added,
        added_names=mapped.added_names,
        added_captured=mapped.compute_added_changes if mapped.added else None,
        decode=decode,
        row_filter=mapped.row_filter,
        convert=mapped.convert_row if mapped.converts else None,
        mask=mapped.mask_row if mapped.masks else None,
        convert_captured=mapped.convert_changes if mapped.converts or mapped.masks else None,
        log=[] if keep_log else None,
        logs_rows=keep_log and log_rows,
        group_key=mapped.group_key,
        source_key=mapped.source.primary_key,
        carry=carry if mapped.group_key else None,
        check_keys=check_keys,
        lookup=lookup,
        before_images=mapped.before_images,
    )
