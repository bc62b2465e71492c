"""Change capture from DynamoDB Streams (``NEW_AND_OLD_IMAGES``).

Every captured DynamoDB table needs its stream enabled with view type
``NEW_AND_OLD_IMAGES`` (``preflight`` names each table that lacks it).

* **Rows.** ``INSERT``/``MODIFY`` records upsert the parent row flattened from
  the new image (exactly as the full load flattens items); ``REMOVE`` deletes
  it. The child rows of a changed item are replaced: every position of the new
  image is upserted, positions the old image had beyond the new list's end are
  deleted, and a ``REMOVE`` deletes every position of the old image.
* **Position.** ``Checkpoint("dynamodb", {"tables": {table: {"arn": stream,
  "shards": {shard_id: {"seq": last sequence number applied, "done": bool}}}}})``.
  Every GetRecords answer that brought records (or finished a shard) ends with
  a ``Commit`` of the position after it; reading resumes ``AFTER_SEQUENCE_NUMBER``.
* **Order.** A shard is read only after its parent shard is finished (read to
  its end after it closed) or has aged out of the stream, so the changes of
  one item are applied in the order they happened across shard splits.
  Shards of different tables and sibling shards interleave (their items differ).
* **Start.** ``begin_capture`` starts every shard at ``TRIM_HORIZON``: a scan
  is not a snapshot, and replaying whole item images in order onto the full
  load converges (the overlap re-applies images the load already holds).
* **Resync.** An expired shard iterator is simply fetched again from the
  checkpoint. A checkpointed position the stream no longer holds (trimmed after
  24 hours: ``TrimmedDataAccessException``, or an unfinished checkpointed shard
  gone from the stream), or a stream that was disabled or replaced, raises
  TerminalError "resync required".
* **Drift.** An item bringing attributes the layout lacks widens the layout:
  a ``TableDefinition`` with the new columns comes before its changes (the
  runner adds them on the target); existing columns keep their types, and a
  value that does not fit goes to the variant column (or, with
  ``conflicting_values: load_errors``, to ``take_rejections()``).
* **Incremental instead.** With the endpoint setting ``incremental`` the same
  source captures by a modified-at attribute and a high-water mark instead of
  a stream (``dynamodb.incremental``; deletes are not seen there).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from copy import deepcopy
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from conveyor.connectors.base import EndpointConfig, RejectedValue
from conveyor.connectors.changes import (
    CaptureStart,
    ChangeEvent,
    Commit,
    TableDefinition,
)
from conveyor.connectors.dynamodb.drift import widen_layouts
from conveyor.connectors.dynamodb.flatten import flatten, items_from_python
from conveyor.connectors.dynamodb.incremental import MODE as INCREMENTAL_MODE
from conveyor.connectors.dynamodb.incremental import (
    DynamoDBIncrementalStream,
    IncrementalSettings,
    begin_incremental,
)
from conveyor.connectors.dynamodb.infer import TableLayout
from conveyor.connectors.dynamodb.list_changes import record_changes
from conveyor.connectors.dynamodb.source import DynamoDBSnapshot, DynamoDBSource
from conveyor.core.batch import OP, ChangeBatch, Checkpoint, Op, op_array
from conveyor.core.errors import ConfigError, TerminalError
from conveyor.core.schema import TableRef, TableSchema

ENGINE = "dynamodb"
SHARD_REFRESH_SECONDS = 10.0


def _resync(message: str) -> TerminalError:
    return TerminalError(f"{message}: resync required (reload the task's tables)")


class DynamoDBChangeSource(DynamoDBSource):
    """A DynamoDB source that also captures changes from DynamoDB Streams."""

    def __init__(self, config: EndpointConfig) -> None:
        super().__init__(config)
        self._streams_client: Any = None
        raw = self.settings.get("incremental")
        self.incremental = IncrementalSettings.parse(config.name, raw) if raw else None

    @property
    def streams(self) -> Any:
        if self._streams_client is None:
            self._streams_client = self.client.streams_client()
        return self._streams_client

    def preflight(self, tables: Sequence[TableSchema]) -> list[str]:
        if self.incremental is not None:
            return [f"DynamoDB incremental capture by {self.incremental.attribute!r} does not see deletes"]
        problems = []
        for name in self.source_tables(tables):
            spec = self.client.describe(name).get("StreamSpecification") or {}
            if not spec.get("StreamEnabled"):
                problems.append(
                    f"table {name!r} has no stream (enable DynamoDB Streams with NEW_AND_OLD_IMAGES)"
                )
            elif spec.get("StreamViewType") != "NEW_AND_OLD_IMAGES":
                problems.append(
                    f"table {name!r} streams {spec.get('StreamViewType')}, capture needs NEW_AND_OLD_IMAGES"
                )
        if problems:
            raise ConfigError(f"endpoint {self.config.name!r}: " + "; ".join(problems))
        return []

    def begin_capture(self, task: str, tables: Sequence[TableSchema], export_snapshot: bool) -> CaptureStart:
        self.preflight(tables)
        if self.incremental is not None:
            return begin_incremental(self, self.incremental, tables)
        position: dict[str, Any] = {}
        for name in self.source_tables(tables):
            arn = self.client.describe(name).get("LatestStreamArn")
            position[name] = {"arn": arn, "shards": {}}
        return CaptureStart(
            Checkpoint(ENGINE, {"tables": position}),
            None,
            ["DynamoDB: a scan is not a snapshot; capture replays the stream from its trim horizon"],
        )

    def capture_snapshot(self, start: CaptureStart) -> DynamoDBSnapshot:
        return self.snapshot()

    def open_stream(
        self, task: str, tables: Sequence[TableSchema], start: Checkpoint
    ) -> DynamoDBChangeStream | DynamoDBIncrementalStream:
        if self.incremental is not None:
            return DynamoDBIncrementalStream(self, self.incremental, tables, start)
        if start.position.get("mode") == INCREMENTAL_MODE:
            raise _resync("the checkpoint is an incremental high-water mark, capture now reads streams")
        return DynamoDBChangeStream(self, tables, start)

    def end_capture(self, task: str) -> None:
        """Nothing to remove: a stream belongs to its table, not to a task."""

    def close(self) -> None:
        if self._streams_client is not None:
            self._streams_client.close()
            self._streams_client = None
        super().close()


@dataclass
class _Shard:
    shard_id: str
    parent: str | None
    iterator: str | None = None


@dataclass
class _Stream:
    table: str
    arn: str
    layouts: list[TableLayout]
    shards: dict[str, _Shard] = field(default_factory=dict)
    refreshed: float = 0.0


class DynamoDBChangeStream:
    def __init__(
        self, source: DynamoDBChangeSource, tables: Sequence[TableSchema], start: Checkpoint
    ) -> None:
        self.source = source
        self.position: dict[str, Any] = deepcopy(start.position.get("tables", {}))
        self._streams: list[_Stream] = []
        self.rejected: list[RejectedValue] = []
        wanted = {t.ref for t in tables}
        for name in source.source_tables(tables):
            state = self.position.get(name)
            arn = source.client.describe(name).get("LatestStreamArn")
            if state is None:
                state = self.position[name] = {"arn": arn, "shards": {}}
            if not arn or state.get("arn") != arn:
                raise _resync(
                    f"table {name!r}: its stream changed since the checkpoint (disabled or re-created)"
                )
            layouts = [source.table(ref).layout for ref in _refs(source, name) if ref in wanted]
            self._streams.append(_Stream(name, arn, layouts))

    def events(self, idle_timeout: float) -> Iterator[ChangeEvent | None]:
        while True:
            progressed = False
            for stream in self._streams:
                for event in self._read(stream):
                    progressed = True
                    yield event
            if not progressed:
                time.sleep(min(idle_timeout, 0.2))
                yield None

    def ack(self, position: Checkpoint) -> None:
        """Nothing to release: the stream keeps records for 24 hours whatever we read."""

    def take_rejections(self) -> list[RejectedValue]:
        """Values left out of the changes read so far (``conflicting_values:
        load_errors``), for the target's load-errors table; the list is emptied."""
        taken, self.rejected = self.rejected, []
        return taken

    def close(self) -> None:
        pass

    # Shards.

    def _refresh(self, stream: _Stream) -> None:
        if time.monotonic() - stream.refreshed < SHARD_REFRESH_SECONDS and stream.shards:
            return
        start: str | None = None
        listed: dict[str, _Shard] = {}
        while True:
            kwargs: dict[str, Any] = {"StreamArn": stream.arn}
            if start:
                kwargs["ExclusiveStartShardId"] = start
            try:
                described = self.source.streams.describe_stream(**kwargs)["StreamDescription"]
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                    raise _resync(f"table {stream.table!r}: stream {stream.arn} is gone") from None
                raise
            for shard in described.get("Shards", []):
                known = stream.shards.get(shard["ShardId"])
                listed[shard["ShardId"]] = known or _Shard(shard["ShardId"], shard.get("ParentShardId"))
            start = described.get("LastEvaluatedShardId")
            if not start:
                break
        checkpoint = self.position[stream.table]["shards"]
        for shard_id, state in checkpoint.items():
            if shard_id not in listed and not state.get("done"):
                raise _resync(
                    f"table {stream.table!r}: shard {shard_id} aged out of the stream before it was read"
                )
        stream.shards, stream.refreshed = listed, time.monotonic()

    def _ready(self, stream: _Stream) -> list[_Shard]:
        done = {s for s, state in self.position[stream.table]["shards"].items() if state.get("done")}
        return [
            shard
            for shard in stream.shards.values()
            if shard.shard_id not in done
            and (shard.parent is None or shard.parent in done or shard.parent not in stream.shards)
        ]

    def _iterator(self, stream: _Stream, shard: _Shard) -> str | None:
        state = self.position[stream.table]["shards"].get(shard.shard_id)
        kwargs: dict[str, Any] = {"StreamArn": stream.arn, "ShardId": shard.shard_id}
        if state and state.get("seq"):
            kwargs.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=state["seq"])
        else:
            kwargs["ShardIteratorType"] = "TRIM_HORIZON"
        try:
            iterator: str | None = self.source.streams.get_shard_iterator(**kwargs).get("ShardIterator")
            return iterator
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in {"TrimmedDataAccessException", "ResourceNotFoundException"}:
                raise _resync(f"table {stream.table!r}: shard {shard.shard_id}: {code}") from None
            raise

    def _read(self, stream: _Stream) -> Iterator[ChangeEvent]:
        self._refresh(stream)
        for shard in self._ready(stream):
            if shard.iterator is None:
                shard.iterator = self._iterator(stream, shard)
            records: list[dict[str, Any]] = []
            next_iterator: str | None = None
            for attempt in range(2):
                try:
                    answer = self.source.streams.get_records(ShardIterator=shard.iterator, Limit=1000)
                    records, next_iterator = answer.get("Records", []), answer.get("NextShardIterator")
                    break
                except ClientError as exc:
                    code = exc.response.get("Error", {}).get("Code")
                    if code == "ExpiredIteratorException" and attempt == 0:
                        shard.iterator = self._iterator(stream, shard)
                        continue
                    if code in {"TrimmedDataAccessException", "ExpiredIteratorException"}:
                        raise _resync(f"table {stream.table!r}: shard {shard.shard_id}: {code}") from None
                    raise
            shard.iterator = next_iterator
            state = self.position[stream.table]["shards"].setdefault(
                shard.shard_id, {"seq": None, "done": False}
            )
            if records:
                yield from self._changes(stream, records)
                state["seq"] = records[-1]["dynamodb"]["SequenceNumber"]
            if next_iterator is None:
                state["done"] = True
            if records or next_iterator is None:
                when = records[-1]["dynamodb"].get("ApproximateCreationDateTime") if records else None
                yield Commit(Checkpoint(ENGINE, {"tables": deepcopy(self.position)}), _as_time(when))

    # Records to row changes.

    def _changes(self, stream: _Stream, records: list[dict[str, Any]]) -> Iterator[ChangeEvent]:
        new_images = [r["dynamodb"].get("NewImage") or r["dynamodb"].get("Keys", {}) for r in records]
        old_images = [r["dynamodb"].get("OldImage") or r["dynamodb"].get("Keys", {}) for r in records]
        new_items = items_from_python(new_images)
        old_items = items_from_python(old_images)
        widened = self._widen(stream, new_items)
        for index, layout in enumerate(widened):
            if layout is not None:
                stream.layouts[index] = layout
                yield TableDefinition(layout.schema)
        reject = self.source.load_errors
        events = [r["eventName"] for r in records]
        ops = op_array(bytes(_OPS[name] for name in events))
        for table in stream.layouts:
            flat = flatten(new_items, table, reject=reject)
            self.rejected.extend(flat.rejected)
            if table.list_path is None:
                # One row per record (a REMOVE's: its key), captured as it is.
                changes = flat.batch.add_column(0, OP, ops)
                yield ChangeBatch.captured(table.schema, changes)
                continue
            children = record_changes(table.schema, events, flat, flatten(old_items, table))
            if children is not None:
                yield children

    def _widen(self, stream: _Stream, items: pa.Array) -> list[TableLayout | None]:
        return widen_layouts(self.source, stream.table, stream.layouts, items)


_OPS = {"INSERT": ord(Op.INSERT), "MODIFY": ord(Op.UPDATE), "REMOVE": ord(Op.DELETE)}


def _refs(source: DynamoDBSource, name: str) -> list[TableRef]:
    return [ref for ref, entry in source._tables.items() if entry.source == name]


def _as_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    return None
