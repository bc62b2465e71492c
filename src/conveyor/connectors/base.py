"""The seams between the replication engine and the engines it moves data between.

Connectors know nothing of tasks, mappings or the metadata store: they list
tables, stream Arrow record batches out of a consistent snapshot, and write
batches into a table inside one target transaction per table load.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

import pyarrow as pa

from conveyor.core.batch import RejectedValue as RejectedValue  # noqa: PLC0414  (defined in core; imported from here too)
from conveyor.core.row_filter import RowFilter
from conveyor.core.schema import TableRef, TableSchema


@dataclass(frozen=True)
class EndpointConfig:
    """An endpoint as a connector receives it: secrets already resolved.

    ``password`` is the only secret field; it is never part of ``repr`` and
    connectors must never put it (or a URL containing it) into a message.
    """

    name: str
    engine: str
    url: str | None = None
    path: str | None = None
    password: str | None = field(default=None, repr=False)
    options: dict[str, Any] = field(default_factory=dict)


class PrepMode(StrEnum):
    """The migration service's TargetTablePrepMode."""

    DROP_AND_CREATE = "DROP_AND_CREATE"
    TRUNCATE_BEFORE_LOAD = "TRUNCATE_BEFORE_LOAD"
    DO_NOTHING = "DO_NOTHING"


@dataclass(frozen=True)
class RefusedRow:
    """A row of a batch the target cannot take: its index in the batch, the
    column to blame (None when no single value is) and why, in the target's
    words where it gave them."""

    row: int
    column: str | None
    reason: str


class Snapshot(Protocol):
    """A consistent read view of a source: every table read through one snapshot
    sees the same instant. Reads from several threads each open their own
    connection attached to that instant where the engine allows it."""

    def read(
        self, table: TableSchema, batch_rows: int, order_by_key: bool = False
    ) -> Iterator[pa.RecordBatch]:
        """Stream the table's rows as batches whose schema is ``table.arrow_schema()``
        (same column order, Arrow types of core.types)."""
        ...

    def count(self, table: TableRef) -> int: ...

    def close(self) -> None: ...


class Source(Protocol):
    """A database Conveyor reads from."""

    def check(self) -> str:
        """Connect and run a trivial query; return the server version. Raises
        ConnectionFailed with a reason a person can act on."""
        ...

    def tables(self) -> list[TableSchema]:
        """Every user table, with columns in order and the primary key."""
        ...

    def snapshot(self) -> Snapshot:
        """Open a consistent read view (repeatable-read transaction or equivalent)."""
        ...

    def close(self) -> None: ...


class TableLoad(Protocol):
    """One table's load, inside one target transaction. Nothing is visible to
    readers of the target until ``commit``; ``abort`` (or a crash) leaves the
    table as it was before the load started."""

    def write(self, records: pa.RecordBatch) -> None:
        """Append rows. Raises DataError when the target rejects a value; the
        rows of that call are then not written, and the load stays usable."""
        ...

    def record_rejections(self, task: str, rejected: Sequence[RejectedValue]) -> None:
        """Append to the target's apply-exceptions table (created when missing),
        in the load's transaction, so rejections and rows commit together."""
        ...

    def commit(self) -> None: ...

    def abort(self) -> None: ...


class Target(Protocol):
    """A database Conveyor writes to."""

    def check(self) -> str: ...

    def describe(self, ref: TableRef) -> TableSchema | None:
        """The table as it exists on the target, or None when it does not."""
        ...

    def begin_load(self, table: TableSchema, mode: PrepMode) -> TableLoad:
        """Prepare the table by ``mode`` and open its load, in one transaction."""
        ...

    def read(
        self, table: TableSchema, batch_rows: int, order_by_key: bool = False
    ) -> Iterator[pa.RecordBatch]:
        """Read back a loaded table (validation), with the Arrow types of core.types."""
        ...

    def count(self, ref: TableRef) -> int: ...

    def close(self) -> None: ...


@runtime_checkable
class NamesItsSource(Protocol):
    """A target whose output names the task and the source endpoint each row
    came from (a stream target's change envelopes). Told once, before any
    load or apply."""

    def describe_source(self, task: str, source: EndpointConfig) -> None: ...


@runtime_checkable
class SupportsRowFilter(Protocol):
    """A snapshot that can push a row filter down into its SELECT (a WHERE
    clause with quoted literals), comparing as :mod:`conveyor.core.row_filter`
    says. ``pushes_down`` tells whether it can for this filter's columns."""

    def pushes_down(self, table: TableSchema, where: RowFilter) -> bool: ...

    def read_where(
        self, table: TableSchema, batch_rows: int, where: RowFilter, order_by_key: bool = False
    ) -> Iterator[pa.RecordBatch]:
        """``read`` of only the rows ``where`` passes."""
        ...


@runtime_checkable
class SupportsRawCopy(Protocol):
    """Source and target of the same engine can move the engine's own bulk format
    (PostgreSQL binary COPY) without decoding rows."""

    raw_format: str

    def copy_out(
        self, table: TableSchema, columns: Sequence[str], where: RowFilter | None = None
    ) -> Iterator[bytes]:
        """The rows (only those ``where`` passes, when given: the caller checked
        ``SupportsRowFilter.pushes_down``) in the raw format."""
        ...


@runtime_checkable
class SupportsRawCopyIn(Protocol):
    """A table load that can take the raw format; ``raw_format`` is None when
    this table cannot (its columns' types differ from the source's)."""

    raw_format: str | None
    # Target columns the target computes itself (generated): left out of a raw copy.
    computed: frozenset[str]

    def copy_in(self, chunks: Iterator[bytes], columns: Sequence[str]) -> int:
        """Write raw COPY blocks; return the rows written."""
        ...


@runtime_checkable
class SupportsKeyAfterLoad(Protocol):
    """A target that can create a table's primary key once its rows are in
    (the task setting CreatePkAfterFullLoad), in the load's transaction."""

    def begin_load_key_after(self, table: TableSchema, mode: PrepMode) -> TableLoad:
        """As ``begin_load``; a table this load creates gets its key at commit."""
        ...


@runtime_checkable
class SupportsStreamWrite(Protocol):
    """A table load that takes a whole table as one stream of batches, in one
    statement (DuckDB: one INSERT reading an Arrow stream), instead of a call
    per batch. It cannot say which row a target refused."""

    def write_stream(self, batches: Iterator[pa.RecordBatch], schema: pa.Schema) -> None: ...


@runtime_checkable
class SupportsSharedSnapshot(Protocol):
    """A snapshot other processes can attach to by ``snapshot_id`` (PostgreSQL's
    exported snapshot), valid while this one stays open. Segments of a table
    loaded by other workers read inside it (``SupportsSnapshotAttach``)."""

    snapshot_id: str

    def key_range(self, table: TableSchema, column: str) -> tuple[Any, Any] | None:
        """The smallest and largest value of ``column`` in the snapshot (None
        for an empty table): the bounds of key-range segments."""
        ...


@runtime_checkable
class SupportsPartitions(Protocol):
    """A snapshot that can list a partitioned table's leaf partitions (each read
    as a table of the same columns): parallel-load partitions-auto."""

    def partitions(self, table: TableSchema) -> list[TableRef]:
        """The leaf partitions, in order; empty when the table is not partitioned."""
        ...


@runtime_checkable
class ListsPartitionNames(Protocol):
    """A snapshot that can name a partitioned table's leaf partitions, though
    they cannot be read as tables (MariaDB): parallel-load partitions-list
    names are checked against them, and the table is read in one piece."""

    def partition_names(self, table: TableSchema) -> list[str]:
        """The leaf partitions' names (sub-partitions where there are); empty
        when the table is not partitioned."""
        ...


@runtime_checkable
class SupportsSnapshotAttach(Protocol):
    """A source whose snapshots another process exported can be read here."""

    def attach_snapshot(self, snapshot_id: str) -> Snapshot:
        """A read view of that exported snapshot; closing it leaves the exporter open."""
        ...


@runtime_checkable
class SupportsSegmentMerge(Protocol):
    """A target that can take a table's rows from staging tables that segment
    loads (other processes, other transactions) committed, in the table's own
    load transaction, dropping the staging tables in it: the table commits
    once, whole. ``drop_staging`` removes a staging table outside any load (a
    load given up)."""

    def drop_staging(self, ref: TableRef) -> None: ...


@runtime_checkable
class SupportsInsertFrom(Protocol):
    """A table load that inserts the rows of staging tables (of its own table's
    columns) and drops them, in its transaction; returns the rows inserted."""

    def insert_from(self, staging: Sequence[TableRef]) -> int: ...


@runtime_checkable
class SupportsCheckedWrite(Protocol):
    """A table load that finds the rows its target would refuse instead of
    failing (DuckDB: no savepoints, so a refused INSERT aborts the whole load).

    ``screen`` runs cheap vectorised checks on each batch of a streamed write and
    returns the batch without the rows it refuses. Should the target still raise
    on the stream (a refusal the checks cannot foresee: a key already in the
    table, a constraint), the engine starts the table's load again and writes it
    batch by batch with ``write_checked``, which writes what the target takes and
    returns the rows it left out; it never leaves the load unusable for a
    refused value (an unforeseeable target error is a DataError that fails the
    table)."""

    def screen(self, records: pa.RecordBatch) -> tuple[pa.RecordBatch, list[RefusedRow]]: ...

    def write_checked(self, records: pa.RecordBatch) -> list[RefusedRow]: ...


@runtime_checkable
class FoldsIdentifiers(Protocol):
    """A target (or applier) whose engine resolves two different names to one
    identifier. ``fold_identifier`` returns the name a given one resolves to;
    ``identifier_rule`` says how, for messages."""

    identifier_rule: str

    def fold_identifier(self, name: str) -> str: ...


@runtime_checkable
class RefusesNames(Protocol):
    """A target (or applier) that cannot hold some names at all (a lake's
    names become folder names; PostgreSQL cuts names past 63 bytes).
    ``refused_name`` gives the reason for a "schema", "table" or "column"
    name, or None."""

    def refused_name(self, kind: str, name: str) -> str | None: ...


@dataclass(frozen=True)
class ValidationFailure:
    """A row validation found different, bound for the target's
    ``awsdms_validation_failures_v1`` table. ``failure_type`` is RECORD_DIFF,
    MISSING_SOURCE or MISSING_TARGET; ``key`` the key values as text;
    ``details`` a JSON text naming the differing columns and their values."""

    key: tuple[str | None, ...]
    failure_type: str
    columns: tuple[str, ...]
    details: str

    def row(self, task: str, table: TableRef, when: datetime) -> tuple[Any, ...]:
        """TASK_NAME, TABLE_OWNER, TABLE_NAME, FAILURE_TIME, KEY_TYPE, KEY, FAILURE_TYPE, DETAILS."""
        key = json.dumps({"key": list(self.key)}, ensure_ascii=False)
        return (task, table.schema, table.name, when, "Row", key, self.failure_type, self.details[:8000])


@runtime_checkable
class SupportsTextRows(Protocol):
    """A snapshot or target that reads rows as the engine's own output text
    (PostgreSQL, MySQL/MariaDB), spelled as ``core.canonical_text`` spells
    values, ordered by primary key, text keys in code point order."""

    def read_text(self, table: TableSchema, batch_rows: int) -> Iterator[list[tuple[str | None, ...]]]: ...


@runtime_checkable
class SupportsKeyedTextRows(Protocol):
    """A snapshot or target that reads the rows of given primary keys (their
    values as the engine's output text) as ``SupportsTextRows`` reads a table:
    validation during change capture compares only the keys that changed."""

    def read_text_keys(
        self, table: TableSchema, keys: Sequence[tuple[str | None, ...]], batch_rows: int
    ) -> Iterator[list[tuple[str | None, ...]]]: ...


@runtime_checkable
class SupportsKeyedRead(Protocol):
    """A target that reads the rows of given primary keys (their values as
    canonical text) as Arrow batches of ``table``'s types; a key of a type it
    cannot look up so makes it raise ``KeyLookupUnsupported``."""

    def read_keys(
        self, table: TableSchema, keys: Sequence[tuple[str | None, ...]], batch_rows: int
    ) -> Iterator[pa.RecordBatch]: ...


class KeyLookupUnsupported(Exception):
    """The rows cannot be looked up by these key columns' texts (the caller
    compares the whole table instead)."""


@runtime_checkable
class SupportsValidationFailures(Protocol):
    """A target that keeps validation failures in ``awsdms_validation_failures_v1``."""

    def record_validation_failures(
        self, task: str, table: TableRef, failures: Sequence[ValidationFailure], when: datetime
    ) -> None:
        """Replace the rows of ``task`` and ``table`` with ``failures``."""
        ...


@runtime_checkable
class ReportsRejections(Protocol):
    """A snapshot that leaves out rows it cannot carry exactly (DynamoDB's
    load_errors, values PostgreSQL's or MySQL's reader cannot hold) and hands
    them over after the table's read, for DataErrorPolicy."""

    def rejections(self, ref: TableRef) -> list[RejectedValue]: ...

    def forget_rejections(self, ref: TableRef) -> None:
        """Start ``ref``'s list afresh: a read of the table begins (reads of
        its segments, partitions or filtered rows add to the list, so a table
        read again would otherwise report its rows twice)."""
        ...


@runtime_checkable
class ReportsDrift(Protocol):
    """A snapshot of a schemaless source (DynamoDB) that says how the items it
    read differed from the table's inferred shape."""

    def drift_report(self, ref: TableRef) -> list[str]: ...


@runtime_checkable
class ReadsConcurrently(Protocol):
    """A snapshot whose reads may run at once in threads (each its own connection
    in the same snapshot); ``concurrent_reads`` says whether they may."""

    concurrent_reads: bool


class ControlTablesConnection(Protocol):
    """Where a relational target keeps the migration service's control tables
    (``replication.control_tables`` writes them): statements with ``?``
    placeholders, each group in one transaction."""

    default_schema: str

    def run(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> None: ...

    def close(self) -> None: ...


CONTROL_SCHEMA_OPTION = "control_schema"
"""The endpoint option a task's ControlTablesSettings.ControlSchema reaches the
target's connectors by (``replication.control_tables.with_control_schema``)."""


def control_schema(config: EndpointConfig, default: str) -> str:
    """The schema a target keeps its control tables in (apply exceptions,
    validation failures ...): ControlSchema when the task set it, else ``default``."""
    return str(config.options.get(CONTROL_SCHEMA_OPTION) or default)
