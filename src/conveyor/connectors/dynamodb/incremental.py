"""Incremental capture by a modified-at attribute: the alternative to DynamoDB
Streams for tables without a stream.

Endpoint setting ``incremental`` (selects this mode of ``DynamoDBChangeSource``;
without it, capture reads DynamoDB Streams)::

    incremental:
      attribute: updated_at      # required: the item's modified-at attribute
      interval_seconds: 60       # how often each table is scanned (60)
      type: string               # string (ISO-8601 text) or number; else as found
      start: "2024-06-01T00:00:00Z"  # the first high-water mark (else: see below)
      overlap_seconds: 0         # re-read this far below the mark (clock skew)
      number_unit: s             # a number attribute counts s, ms or us
      high_water_mark_store: target  # the only store: the task's checkpoint

Every ``interval_seconds`` a table is read by a parallel Scan with
``FilterExpression: #m > :hwm``; every item found becomes an UPDATE (upsert)
of its parent row, its child rows are replaced (an UPDATE per element and a
DELETE for every position from the list's length up to the longest list seen
in the table; a child table whose mapping removed ``position`` is replaced per
parent by the runner), and the pass ends with a ``Commit`` whose position holds
the new high-water mark (the largest value the pass saw) and, as its source
time (CDCLatencySource), the time the pass began reading::

    {"mode": "incremental", "attribute": "updated_at",
     "tables": {"Orders": {"high_water_mark": "2024-06-15T09:12:11Z", "type": "S",
                           "lists": {"Orders_Items": 5}}}}

The runner applies the upserts set-based (delete + insert by key: a MERGE) in
one target transaction with that position, so the target's checkpoint is the
high-water mark store, and a restart resumes from the last applied pass.

Where the first mark comes from: ``start`` when set; otherwise
``begin_capture`` scans the table once (projecting only the attribute and the
lists of child tables) for the largest value, so a full load that follows
misses nothing modified after that scan began. A table without any value yet
starts with no mark: its first pass reads every item carrying the attribute.

Limits (by construction; use DynamoDB Streams where they matter):

* **Deletes are not seen**: a deleted item keeps its rows on the target.
* Only items whose attribute the writer advances on every write are captured;
  values compare as DynamoDB compares them (strings by their UTF-8 bytes, so
  ISO-8601 text must share one format and zone; numbers numerically); an item
  whose attribute has the other type never matches.
* A pass is not a snapshot: an item modified again while a pass runs, after its
  segment was read, with a value below the pass's largest, would be missed;
  ``overlap_seconds`` re-reads the values that far below the mark every pass
  (for writers' clock skew as well); the overlap is re-applied, harmlessly.
* Child rows beyond the longest list the capture has seen (since its first
  scan) are not deleted when a list shrinks: the first scan sees every list.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping, Sequence
from copy import deepcopy
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from conveyor.connectors.base import RejectedValue
from conveyor.connectors.changes import CaptureStart, ChangeEvent, Commit, TableDefinition
from conveyor.connectors.dynamodb.drift import widen_layouts
from conveyor.connectors.dynamodb.flatten import Flattened, _Variants, attr_at, build_column, flatten
from conveyor.connectors.dynamodb.infer import POSITION, TableLayout, tag_field
from conveyor.connectors.dynamodb.list_changes import UPDATE, ListChanges, by_item
from conveyor.connectors.dynamodb.scan_checkpoint import ScanCheckpoint
from conveyor.connectors.dynamodb.source import DynamoDBSource
from conveyor.core.batch import OP, ChangeBatch, Checkpoint, Op, op_array
from conveyor.core.errors import ConfigError, TerminalError
from conveyor.core.schema import TableSchema

ENGINE = "dynamodb"
MODE = "incremental"
_UNITS = {"s": 1, "ms": 1_000, "us": 1_000_000}
_ISO = re.compile(r"^(\d{4}-\d{2}-\d{2})([T ])(\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:?\d{2})?$")


def _resync(message: str) -> TerminalError:
    return TerminalError(f"{message}: resync required (reload the task's tables)")


@dataclass(frozen=True)
class IncrementalSettings:
    attribute: str
    interval_seconds: float = 60.0
    type: str | None = None  # "S" or "N"
    start: str | None = None
    overlap_seconds: float = 0.0
    units_per_second: int = 1

    @classmethod
    def parse(cls, endpoint: str, raw: Any) -> IncrementalSettings:
        if isinstance(raw, str):
            raw = {"attribute": raw}
        where = f"endpoint {endpoint!r}: incremental"
        if not isinstance(raw, Mapping) or not raw.get("attribute"):
            raise ConfigError(f"{where} needs the modified-at attribute ({{attribute: updated_at}})")
        kind = raw.get("type")
        if kind is not None:
            kind = {"string": "S", "number": "N", "s": "S", "n": "N"}.get(str(kind).lower())
            if kind is None:
                raise ConfigError(f"{where}: type must be string or number, not {raw.get('type')!r}")
        start = raw.get("start")
        if start is not None:
            if kind is None:
                number = isinstance(start, int | float | Decimal) and not isinstance(start, bool)
                kind = "N" if number else "S"
            start = str(start)
        unit = str(raw.get("number_unit", "s"))
        if unit not in _UNITS:
            raise ConfigError(f"{where}: number_unit must be one of {', '.join(_UNITS)}, not {unit!r}")
        store = raw.get("high_water_mark_store", "target")
        if store != "target":
            raise ConfigError(
                f"{where}: high_water_mark_store can only be target (the task's checkpoint), not {store!r}"
            )
        try:
            return cls(
                attribute=str(raw["attribute"]),
                interval_seconds=float(raw.get("interval_seconds", 60.0)),
                type=kind,
                start=start,
                overlap_seconds=float(raw.get("overlap_seconds", 0.0)),
                units_per_second=_UNITS[unit],
            )
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: {exc}") from None

    def names(self) -> dict[str, str]:
        return {"#m": self.attribute}

    def filter(self, mark: str | None, tag: str | None) -> dict[str, Any]:
        """Scan parameters reading the items modified after ``mark``."""
        if mark is None or tag is None:
            return {"FilterExpression": "attribute_exists(#m)", "ExpressionAttributeNames": self.names()}
        bound = _minus(mark, tag, self.overlap_seconds, self.units_per_second)
        return {
            "FilterExpression": "#m > :hwm",
            "ExpressionAttributeNames": self.names(),
            "ExpressionAttributeValues": {":hwm": {tag: bound}},
        }


def _minus(mark: str, tag: str, seconds: float, units: int) -> str:
    """``mark`` lowered by ``seconds`` in the attribute's own terms (unchanged
    when it cannot be: a string that is not ISO-8601)."""
    if not seconds:
        return mark
    if tag == "N":
        try:
            return format((Decimal(mark) - Decimal(str(seconds)) * units).normalize(), "f")
        except InvalidOperation:
            return mark
    match = _ISO.match(mark)
    if not match:
        return mark
    day, separator, clock, fraction, zone = match.groups()
    moment = datetime.fromisoformat(f"{day}T{clock}{(fraction or '')[:7]}") - timedelta(seconds=seconds)
    text = moment.strftime(f"%Y-%m-%d{separator}%H:%M:%S")
    if fraction:
        digits = len(fraction) - 1
        text += "." + f"{moment.microsecond:06d}".ljust(digits, "0")[:digits]
    return text + (zone or "")


def _later(a: str | None, b: str | None, tag: str | None) -> str | None:
    if a is None:
        return b
    if b is None:
        return a
    if tag == "N":
        return a if Decimal(a) >= Decimal(b) else b
    return a if a.encode() >= b.encode() else b


def observe(
    state: dict[str, Any], items: pa.Array, children: Sequence[TableLayout], settings: IncrementalSettings
) -> str | None:
    """Learn from ``items``: the mark's type (when not known yet), the longest
    list of every child table; return the largest value of the attribute."""
    attr = attr_at(items, (settings.attribute,))
    if state.get("type") is None and attr is not None:
        for kind in ("S", "N"):
            found_values = tag_field(attr, kind)
            if found_values is not None and len(found_values) - found_values.null_count:
                state["type"] = kind
                break
    lists = state.setdefault("lists", {})
    for child in children:
        assert child.list_path is not None
        found = attr_at(items, child.list_path)
        elements = None if found is None else tag_field(found, "L")
        if elements is not None and len(elements) - elements.null_count:
            longest = pc.max(pc.list_value_length(elements)).as_py() or 0
            name = child.schema.ref.name
            lists[name] = max(int(lists.get(name, 0)), int(longest))
    tag: str | None = state.get("type")
    values = None if attr is None or tag is None else tag_field(attr, tag)
    if values is None:
        return None
    present = [v for v in values.drop_null().to_pylist() if v is not None]
    best: str | None = None
    for value in present:
        best = _later(best, str(value), tag)
    return best


def _projection(settings: IncrementalSettings, children: Sequence[TableLayout]) -> dict[str, Any]:
    names = settings.names()
    paths = ["#m"]
    for child in children:
        assert child.list_path is not None
        parts = []
        for part in child.list_path:
            alias = next((a for a, n in names.items() if n == part), None)
            if alias is None:
                alias = f"#p{len(names)}"
                names[alias] = part
            parts.append(alias)
        paths.append(".".join(parts))
    return {"ProjectionExpression": ", ".join(paths), "ExpressionAttributeNames": names}


def _scan_checkpoint(source: DynamoDBSource) -> ScanCheckpoint:
    """Segments to scan from the start (a pass is never resumed: it is redone)."""
    return ScanCheckpoint(Path("unused"), source.total_segments)


def begin_incremental(
    source: DynamoDBSource, settings: IncrementalSettings, tables: Sequence[TableSchema]
) -> CaptureStart:
    position: dict[str, Any] = {"mode": MODE, "attribute": settings.attribute, "tables": {}}
    for name in source.source_tables(tables):
        position["tables"][name] = first_state(source, settings, name)
    return CaptureStart(
        Checkpoint(ENGINE, position),
        None,
        [
            f"DynamoDB incremental by {settings.attribute!r}: deletes are not captured, and a scan "
            "is not a snapshot (the first pass re-applies what the full load read after it began)"
        ],
    )


def first_state(source: DynamoDBSource, settings: IncrementalSettings, name: str) -> dict[str, Any]:
    """A table's first mark: ``start``, or the largest value now (one projected scan)."""
    children = list(source.document(name).children)
    state: dict[str, Any] = {"high_water_mark": settings.start, "type": settings.type, "lists": {}}
    if settings.start is not None and not children:
        return state
    best: str | None = None
    snapshot = source.snapshot()
    for _, page in snapshot.pages(name, _scan_checkpoint(source), _projection(settings, children)):
        if len(page.items):
            best = _later(best, observe(state, page.items, children, settings), state.get("type"))
    if settings.start is None:
        state["high_water_mark"] = best
    return state


@dataclass
class _Pass:
    table: str
    layouts: list[TableLayout]
    next_at: float = 0.0
    passes: int = 0


@dataclass
class DynamoDBIncrementalStream:
    """Scans every ``interval_seconds`` for items modified after the mark."""

    source: DynamoDBSource
    settings: IncrementalSettings
    tables: Sequence[TableSchema]
    start: Checkpoint
    rejected: list[RejectedValue] = field(default_factory=list)

    def __post_init__(self) -> None:
        position = self.start.position
        if position.get("mode") != MODE:
            raise _resync("the checkpoint is a DynamoDB Streams position, capture is now incremental")
        if position.get("attribute") != self.settings.attribute:
            raise _resync(
                f"the checkpoint's mark is of attribute {position.get('attribute')!r}, "
                f"capture now reads {self.settings.attribute!r}"
            )
        self.position: dict[str, Any] = deepcopy(position)
        wanted = {t.ref for t in self.tables}
        self._passes: list[_Pass] = []
        for name in self.source.source_tables(self.tables):
            if name not in self.position["tables"]:
                # A table new to the task: from its current mark on.
                self.position["tables"][name] = first_state(self.source, self.settings, name)
            refs = [r for r, entry in self.source._tables.items() if entry.source == name and r in wanted]
            self._passes.append(_Pass(name, [self.source.table(r).layout for r in refs]))

    def events(self, idle_timeout: float) -> Iterator[ChangeEvent | None]:
        while True:
            progressed = False
            for scan in self._passes:
                if scan.next_at > time.monotonic():
                    continue
                for event in self._pass(scan):
                    progressed = True
                    yield event
                scan.passes += 1
                scan.next_at = time.monotonic() + self.settings.interval_seconds
            if not progressed:
                due = min((s.next_at for s in self._passes), default=0.0) - time.monotonic()
                time.sleep(max(0.0, min(idle_timeout, due, 0.2)))
                yield None

    def ack(self, position: Checkpoint) -> None:
        """Nothing to release."""

    def take_rejections(self) -> list[RejectedValue]:
        """Values left out (``conflicting_values: load_errors``); the list is emptied."""
        taken, self.rejected = self.rejected, []
        return taken

    def close(self) -> None:
        pass

    def _pass(self, scan: _Pass) -> Iterator[ChangeEvent]:
        state = self.position["tables"][scan.table]
        mark = state.get("high_water_mark")
        expression = self.settings.filter(mark, state.get("type"))
        children = list(self.source.document(scan.table).children)
        best: str | None = None
        found = 0
        # The source time of what a pass reads is when it read it: the items'
        # own attribute is the writer's clock (and may lie far in the past).
        read_at = datetime.now(UTC)
        snapshot = self.source.snapshot()
        for _, page in snapshot.pages(scan.table, _scan_checkpoint(self.source), expression):
            if not len(page.items):
                continue
            found += len(page.items)
            best = _later(best, observe(state, page.items, children, self.settings), state.get("type"))
            yield from self._changes(scan, state, page.items)
        if not found:
            return
        state["high_water_mark"] = _later(mark, best, state.get("type"))
        yield Commit(Checkpoint(ENGINE, deepcopy(self.position)), read_at)

    def _changes(self, scan: _Pass, state: dict[str, Any], items: pa.Array) -> Iterator[ChangeEvent]:
        for index, widened in enumerate(widen_layouts(self.source, scan.table, scan.layouts, items)):
            if widened is not None:
                scan.layouts[index] = widened
                yield TableDefinition(widened.schema)
        for table in scan.layouts:
            flat = flatten(items, table, reject=self.source.load_errors)
            self.rejected.extend(flat.rejected)
            if table.list_path is None:  # every item read as an UPDATE, captured as it is
                updates = op_array(Op.UPDATE.encode() * flat.batch.num_rows)
                yield ChangeBatch.captured(table.schema, flat.batch.add_column(0, OP, updates))
                continue
            longest = int(state.get("lists", {}).get(table.schema.ref.name, 0))
            children = _list_changes(table, items, flat, longest)
            if children is not None:
                yield children


def _list_changes(table: TableLayout, items: pa.Array, flat: Flattened, longest: int) -> ChangeBatch | None:
    """A child table's changes of a pass's items, item by item: its rows as
    UPDATEs, then a DELETE of each position up to ``longest`` (the longest
    list seen) its list does not have (a pass sees no old image)."""
    assert flat.parents is not None, "a child table's rows know their item"
    fresh = by_item(flat.parents)
    gone_items: list[int] = []
    positions: list[int] = []
    spans: list[tuple[list[int], range]] = []  # per item: its rows, its gone keys
    for item in range(len(items)):
        rows = fresh.get(item, [])
        missing = range(len(rows), longest)
        spans.append((rows, range(len(positions), len(positions) + len(missing))))
        gone_items.extend([item] * len(missing))
        positions.extend(missing)
    gone = _parent_keys(items, table).take(pa.array(gone_items, pa.int64()))
    gone = gone.append_column(POSITION, pa.array(positions, flat.batch.schema.field(POSITION).type))
    changes = ListChanges(table.schema, flat.batch, gone)
    for rows, gone_keys in spans:
        changes.add_rows(rows, UPDATE)
        changes.add_gone(gone_keys)
    return changes.batch()


def _parent_keys(items: pa.Array, child: TableLayout) -> pa.Table:
    """The parent key of every item, as the child table's key columns hold it."""
    schema = child.schema.arrow_schema()
    rows = len(items)
    variants = _Variants(rows)
    columns = {
        spec.name: build_column(spec, schema.field(spec.name).type, items, rows, variants)
        for spec in child.keys
    }
    return pa.table(columns)
