"""DynamoDB as a source: every table becomes a parent table and one child table
per list of maps (``infer``), read by a paginated, parallel Scan.

Endpoint settings (``settings:`` of the endpoint; all optional):

==========================  ====================================================
``schema``                  schema of the listed tables (default ``dynamodb``)
``tables``                  DynamoDB table names to list (default: all)
``sample_size``             items sampled to infer a table's columns (1000)
``total_segments``          parallel Scan segments, one thread each (4)
``page_size``               Scan ``Limit`` per request (default: DynamoDB's 1 MB pages)
``read_capacity_per_second`` read units per second the scans may consume (no limit)
``consistent_read``         strongly consistent Scan (false)
``variant_column``          the json column values that do not fit go to
                            (``_variant``); ``null``: no variant column
``conflicting_values``      what becomes of a value that does not fit its column
                            (a conflicting type, an attribute first seen after
                            the sample): ``variant`` (the variant column; the
                            default unless ``variant_column`` is null), ``fail``
                            (a DataError fails the table; the default without a
                            variant column) or ``load_errors`` (below)
``column_types``            ``{table: {column: type}}`` overriding inferred types
``child_tables``            ``{"<table>.<column>": name}`` naming child tables
                            (default ``<table>_<column>``)
``resume_scan``             continue an interrupted scan from its checkpoint (false)
``retry_base_seconds`` / ``retry_cap_seconds`` / ``max_attempts``  throttling backoff
==========================  ====================================================

Load errors (``conflicting_values: load_errors``): the tables have no variant
column; a value that does not fit is NULL in its row, which loads, and the
value is recorded as a :class:`RejectedValue` (table, item key, column, the
value's DynamoDB JSON, reason) in the manner of the warehouse's
``stl_load_errors``. The snapshot keeps them per table for the caller to write
to the target's load-errors table (``DynamoDBSnapshot.rejections``); a read
of a table starts its list afresh.

Drift: attributes the layout lacks are remembered per table (``drift``: the
column names; ``drift_log``: name, type and when it was first seen) and learnt,
so the next ``tables()`` lists them as columns; ``drift_report(table)`` gives
the lines ``conveyor tasks describe`` shows.

Consistency: a DynamoDB Scan is not a snapshot; items written during the scan
may or may not be seen (the full load of a live table is therefore followed by
change capture, which re-applies later changes).

Scan checkpoints: after the batches of a page have been handed on (the caller
asked for the next batch), the segment's ``LastEvaluatedKey`` is written to
``$CONVEYOR_HOME/dynamodb/<endpoint>/<table>.json`` (``<table>`` is the
relational table read: parent or child; written only with ``resume_scan``,
one endpoint's table by one task at a time, and removed when the scan
completes). Within one read, throttling and dropped connections never restart
a segment: the request is retried with the same ``ExclusiveStartKey``, so every
item is read exactly once. Across runs, a new read starts from scratch unless
``resume_scan`` is set: Conveyor's full load writes each table in one target
transaction, so after a crash the target holds none of the table's rows and a
fresh scan is the correct restart. ``resume_scan`` is for callers that keep
what was delivered (a lake or staging target appending per batch): segments
already completed are skipped and the others continue after their last
checkpointed key. The unit is a Scan page: a page whose batches were not all
taken before the crash is delivered again in full (use ``batch_rows`` of at
least the page size, or ``page_size``, for exactly-once delivery).
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from conveyor.connectors.base import EndpointConfig, RejectedValue
from conveyor.connectors.dynamodb.client import DynamoClient, endpoint_settings
from conveyor.connectors.dynamodb.flatten import Page, PageReader, flatten
from conveyor.connectors.dynamodb.infer import VARIANT, DocumentLayout, Node, TableLayout, layout
from conveyor.connectors.dynamodb.scan_checkpoint import ScanCheckpoint, file_name
from conveyor.core.errors import ConfigError
from conveyor.core.schema import TableRef, TableSchema

DEFAULT_SCHEMA = "dynamodb"
DEFAULT_HOME = ".conveyor"  # as conveyor.store.store.DEFAULT_HOME
VARIANT_MODE, FAIL_MODE, LOAD_ERRORS_MODE = "variant", "fail", "load_errors"
CONFLICT_MODES = (VARIANT_MODE, FAIL_MODE, LOAD_ERRORS_MODE)


@dataclass(frozen=True)
class Drift:
    """An attribute a table's layout lacked when items brought it."""

    column: str
    type: str
    seen: datetime

    def describe(self) -> str:
        return f"new column {self.column} ({self.type}) at {self.seen.isoformat(timespec='seconds')}"


@dataclass
class _Table:
    """A relational table and where it comes from."""

    source: str  # the DynamoDB table
    layout: TableLayout


class DynamoDBSource:
    engine = "dynamodb"

    def __init__(self, config: EndpointConfig, client: DynamoClient | None = None) -> None:
        self.config = config
        self.settings = endpoint_settings(config)
        self.schema = str(self.settings.get("schema") or DEFAULT_SCHEMA)
        self.sample_size = int(self.settings.get("sample_size", 1000))
        self.total_segments = max(1, int(self.settings.get("total_segments", 4)))
        page_size = self.settings.get("page_size")
        self.page_size = int(page_size) if page_size else None
        self.consistent = bool(self.settings.get("consistent_read", False))
        variant: str | None = self.settings.get("variant_column", VARIANT)
        default_mode = VARIANT_MODE if variant is not None else FAIL_MODE
        self.conflicting = str(self.settings.get("conflicting_values") or default_mode)
        if self.conflicting not in CONFLICT_MODES:
            raise ConfigError(
                f"endpoint {config.name!r}: conflicting_values must be one of "
                f"{', '.join(CONFLICT_MODES)}, not {self.conflicting!r}"
            )
        if self.conflicting == VARIANT_MODE and variant is None:
            raise ConfigError(
                f"endpoint {config.name!r}: conflicting_values is variant but variant_column is null"
            )
        self.variant = variant if self.conflicting == VARIANT_MODE else None
        self.load_errors = self.conflicting == LOAD_ERRORS_MODE
        self.resume = bool(self.settings.get("resume_scan", False))
        self.only: list[str] | None = self.settings.get("tables")
        self.column_types: Mapping[str, Mapping[str, str]] = self.settings.get("column_types") or {}
        self.child_names: Mapping[str, str] = self.settings.get("child_tables") or {}
        self._client = client
        self._lock = threading.Lock()
        self._nodes: dict[str, Node] = {}
        self._keys: dict[str, dict[str, str]] = {}
        self._tables: dict[TableRef, _Table] = {}
        self.drift: dict[TableRef, set[str]] = {}
        self.drift_log: dict[TableRef, list[Drift]] = {}
        self.variants: dict[TableRef, int] = {}
        self._rejected: dict[TableRef, list[RejectedValue]] = {}

    @property
    def client(self) -> DynamoClient:
        if self._client is None:
            self._client = DynamoClient(self.config)
        return self._client

    def check(self) -> str:
        self.client.call("list_tables", Limit=1)
        return f"DynamoDB ({self.client.where})"

    def tables(self) -> list[TableSchema]:
        names = self.only if self.only is not None else self.client.list_tables()
        schemas: list[TableSchema] = []
        for name in names:
            for table in self.document(name).tables():
                self._tables[table.schema.ref] = _Table(name, table)
                schemas.append(table.schema)
        return schemas

    def source_tables(self, tables: Sequence[TableSchema]) -> list[str]:
        """The DynamoDB tables ``tables`` come from, each once, in their order."""
        names: list[str] = []
        for table in tables:
            name = self.table(table.ref).source
            if name not in names:
                names.append(name)
        return names

    def document(self, name: str) -> DocumentLayout:
        """The relational layout of DynamoDB table ``name``: from a sample the
        first time, widened since by the attributes reads came across."""
        if name not in self._nodes:
            description = self.client.describe(name)
            declared = {a["AttributeName"]: a["AttributeType"] for a in description["AttributeDefinitions"]}
            order = sorted(description["KeySchema"], key=lambda k: k["KeyType"] != "HASH")
            self._keys[name] = {k["AttributeName"]: declared[k["AttributeName"]] for k in order}
            node = Node()
            for page in self._sample(name):
                node.observe_map(page.items)
            self._nodes[name] = node
        with self._lock:
            return layout(
                self._nodes[name],
                TableRef(self.schema, name),
                self._keys[name],
                variant=self.variant,
                column_types=self.column_types,
                child_names=self.child_names,
            )

    def _sample(self, name: str) -> Iterator[Page]:
        seen = 0
        start: dict[str, Any] | None = None
        reader = PageReader()
        while seen < self.sample_size:
            page = self.client.scan_page(name, start_key=start, limit=self.sample_size - seen, reader=reader)
            seen += page.count
            yield page
            start = page.last_key
            if start is None:
                return

    def widen(self, name: str, items: pa.Array, ref: TableRef, found: set[str]) -> None:
        """Items brought attributes the layout lacks: learn them (the next
        ``tables()`` has their columns) and remember the drift."""
        with self._lock:
            self._nodes[name].observe_map(items)
            known = self.drift.setdefault(ref, set())
            fresh = sorted(found - known)
            known.update(found)
        if fresh:
            types = {c.name: c.type.describe() for c in self._widened_columns(name, ref)}
            now = datetime.now(UTC)
            entries = [Drift(column, types.get(column, "json"), now) for column in fresh]
            with self._lock:
                self.drift_log.setdefault(ref, []).extend(entries)

    def _widened_columns(self, name: str, ref: TableRef) -> list[Any]:
        for table in self.document(name).tables():
            if table.schema.ref == ref:
                return list(table.schema.columns)
        return []

    def drift_report(self, ref: TableRef) -> list[str]:
        """The drift of relational table ``ref``: ``new column x (text) at <time>`` lines."""
        with self._lock:
            return [entry.describe() for entry in self.drift_log.get(ref, [])]

    def reject(self, ref: TableRef, rejected: list[RejectedValue]) -> None:
        with self._lock:
            self._rejected.setdefault(ref, []).extend(rejected)

    def rejections(self, ref: TableRef) -> list[RejectedValue]:
        """The values of table ``ref`` its last read left out (``conflicting_values: load_errors``)."""
        with self._lock:
            return list(self._rejected.get(ref, []))

    def table(self, ref: TableRef) -> _Table:
        if ref not in self._tables:
            self.tables()
        if ref not in self._tables:
            raise ConfigError(f"endpoint {self.config.name!r}: no DynamoDB table gives {ref}")
        return self._tables[ref]

    def snapshot(self) -> DynamoDBSnapshot:
        return DynamoDBSnapshot(self)

    def checkpoint_path(self, ref: TableRef) -> Path:
        home = Path(os.environ.get("CONVEYOR_HOME", DEFAULT_HOME))
        return home / "dynamodb" / file_name(self.config.name) / f"{file_name(ref.name)}.json"

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


@dataclass
class _Done:
    segment: int


@dataclass
class _Failed:
    error: BaseException


@dataclass
class _Fetched:
    segment: int
    page: Page


class DynamoDBSnapshot:
    """Reads tables by parallel Scan (see the module notes on consistency)."""

    def __init__(self, source: DynamoDBSource) -> None:
        self.source = source

    def read(
        self, table: TableSchema, batch_rows: int, order_by_key: bool = False
    ) -> Iterator[pa.RecordBatch]:
        entry = self.source.table(table.ref)
        target = table.arrow_schema()
        checkpoint = ScanCheckpoint.load(
            self.source.checkpoint_path(table.ref), self.source.total_segments, self.source.resume
        )
        rows: list[pa.RecordBatch] = []
        with self.source._lock:
            self.source._rejected[table.ref] = []
        for segment, page in self.pages(entry.source, checkpoint):
            if len(page.items):
                result = flatten(page.items, entry.layout, reject=self.source.load_errors)
                if result.drift:
                    self.source.widen(entry.source, page.items, table.ref, result.drift)
                if result.rejected:
                    self.source.reject(table.ref, result.rejected)
                if result.variants:
                    with self.source._lock:
                        counts = self.source.variants
                        counts[table.ref] = counts.get(table.ref, 0) + result.variants
                batch = _conform(result.batch, target)
                if order_by_key:
                    rows.append(batch)
                else:
                    for offset in range(0, batch.num_rows, max(1, batch_rows)):
                        yield batch.slice(offset, batch_rows)
            checkpoint.advance(segment, page.last_key)
        if order_by_key and rows:
            whole = pa.Table.from_batches(rows, schema=target)
            whole = (
                whole.sort_by([(k, "ascending") for k in table.primary_key]) if table.primary_key else whole
            )
            yield from whole.to_batches(max_chunksize=max(1, batch_rows))
        checkpoint.remove()

    def pages(
        self, name: str, checkpoint: ScanCheckpoint, expression: Mapping[str, Any] | None = None
    ) -> Iterator[tuple[int, Page]]:
        """Pages of every segment not yet done, as they arrive (one thread per
        segment); ``expression``: Scan parameters to add (a filter, a projection)."""
        total = checkpoint.total_segments
        pending = [s for s in range(total) if s not in checkpoint.done]
        if not pending:
            return
        results: queue.Queue[_Fetched | _Done | _Failed] = queue.Queue(maxsize=2 * total)
        stop = threading.Event()
        client = self.source.client
        reader = PageReader()

        def put(item: _Fetched | _Done | _Failed) -> bool:
            while not stop.is_set():
                try:
                    results.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def segment_worker(segment: int) -> None:
            start = checkpoint.keys.get(segment)
            try:
                while not stop.is_set():
                    page = client.scan_page(
                        name,
                        start_key=start,
                        segment=segment,
                        total_segments=total,
                        limit=self.source.page_size,
                        consistent=self.source.consistent,
                        reader=reader,
                        expression=expression,
                    )
                    if not put(_Fetched(segment, page)):
                        return
                    start = page.last_key
                    if start is None:
                        put(_Done(segment))
                        return
            except BaseException as exc:
                put(_Failed(exc))

        threads = [
            threading.Thread(target=segment_worker, args=(s,), name=f"dynamodb-scan-{name}-{s}", daemon=True)
            for s in pending
        ]
        for thread in threads:
            thread.start()
        try:
            remaining = len(pending)
            while remaining:
                item = results.get()
                if isinstance(item, _Failed):
                    raise item.error
                if isinstance(item, _Done):
                    remaining -= 1
                    continue
                yield item.segment, item.page
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=5)

    def count(self, table: TableRef) -> int:
        schema = self.source.table(table).layout.schema
        return sum(batch.num_rows for batch in self.read(schema, 100_000))

    def rejections(self, table: TableRef) -> list[RejectedValue]:
        """What the last read of ``table`` left out, for the target's load-errors
        table (``conflicting_values: load_errors``); complete once the read is."""
        return self.source.rejections(table)

    def forget_rejections(self, ref: TableRef) -> None:
        with self.source._lock:
            self.source._rejected.pop(ref, None)

    def drift_report(self, table: TableRef) -> list[str]:
        return self.source.drift_report(table)

    def close(self) -> None:
        pass


def _conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """The batch with exactly ``schema``'s columns (a layout widened since the
    caller listed its tables has more columns than the caller asked for)."""
    if batch.schema.equals(schema):
        return batch
    arrays = []
    for f in schema:
        index = batch.schema.get_field_index(f.name)
        if index < 0:
            arrays.append(pa.nulls(batch.num_rows, type=f.type))
        else:
            column = batch.column(index)
            arrays.append(column if column.type.equals(f.type) else column.cast(f.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)
