"""NATS JetStream as a full-load target: every row an ``op: r`` envelope.

A stream is a log, not a table: a load publishes as it goes (each batch waits
for JetStream's acknowledgements), ``commit`` has nothing left to do, and
``abort`` cannot take back what was published. The prep mode changes nothing
(Conveyor never purges a stream). A snapshot row's message ID is the task, the
load (a new ID each time the target is opened: a load started again after a
crash reads a new snapshot, so its rows are new records) and the row's key.
The target cannot be read back: validation is refused.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict
from datetime import UTC, datetime

import pyarrow as pa

from conveyor.connectors.base import EndpointConfig, PrepMode, RejectedValue
from conveyor.connectors.nats._link import NatsEndpoint, epoch_ms
from conveyor.connectors.nats.envelope import Message, envelope, message_id, table_subject
from conveyor.connectors.nats.values import Unrepresentable, column_values, encode_value
from conveyor.core.errors import ConfigError, DataError
from conveyor.core.schema import TableRef, TableSchema

log = logging.getLogger(__name__)


class NatsTarget(NatsEndpoint):
    def __init__(self, config: EndpointConfig) -> None:
        super().__init__(config)
        self.load_id = uuid.uuid4().hex[:12]

    def describe(self, ref: TableRef) -> TableSchema | None:
        return None  # a stream keeps no table shape

    def begin_load(self, table: TableSchema, mode: PrepMode) -> NatsTableLoad:
        self.link  # noqa: B018 - connect (and make sure of the stream) before the first batch
        return NatsTableLoad(self, table)

    def read(
        self, table: TableSchema, batch_rows: int, order_by_key: bool = False
    ) -> Iterator[pa.RecordBatch]:
        raise ConfigError(f"endpoint {self.config.name!r}: a nats stream cannot be read back (no validation)")

    def count(self, ref: TableRef) -> int:
        raise ConfigError(f"endpoint {self.config.name!r}: a nats stream cannot be read back (no validation)")


class NatsTableLoad:
    def __init__(self, target: NatsTarget, table: TableSchema) -> None:
        self.target = target
        self.table = table
        self.subject = table_subject(target.settings.subject_prefix, table.ref)
        self._rows = 0  # rows published (keyless tables: their IDs count them)
        self._load = {"load": target.load_id}  # the snapshot's source position: which load it is

    def write(self, records: pa.RecordBatch) -> None:
        if records.num_rows == 0:
            return
        types = {c.name: c.type for c in self.table.columns}
        names = [n for n in records.schema.names if n in types]
        columns = {n: column_values(types[n], records.column(n)) for n in names}
        source, target = self.target.source, self.target
        now = epoch_ms(datetime.now(UTC)) or 0
        messages = []
        for i in range(records.num_rows):
            row = {n: columns[n][i] for n in names}
            try:
                payload = envelope(self.table, "r", None, row, source, self._load, None, None, now)
                key = self._key(row, self._rows + i)
            except Unrepresentable as exc:
                raise DataError(
                    f"table {self.table.ref}: {exc}", row=i, column=exc.column, load_usable=True
                ) from None
            ident = message_id(source.task or "", "r", target.load_id, self.subject, key)
            messages.append(Message(self.subject, payload, ident))
        target.link.publish(messages)
        self._rows += records.num_rows

    def _key(self, row: dict[str, object], position: int) -> str:
        key = self.table.primary_key
        if not key:
            return f"#{position}"
        types = {c.name: c.type for c in self.table.columns}
        return json.dumps([encode_value(types[k], row.get(k)) for k in key], ensure_ascii=True)

    def record_rejections(self, task: str, rejected: Sequence[RejectedValue]) -> None:
        """Rejected rows go to ``PREFIX._conveyor.exceptions`` as JSON."""
        if not rejected:
            return
        subject = f"{self.target.settings.subject_prefix}._conveyor.exceptions"
        now = datetime.now(UTC).isoformat()
        messages = []
        for r in rejected:
            document = {**asdict(r), "table": str(r.table), "task": task, "error_time": now}
            payload = json.dumps(document, default=str).encode()
            messages.append(Message(subject, payload, f"{task}:exception:{uuid.uuid4().hex}"))
            log.warning("table %s: row refused by the nats target: %s", r.table, r.reason)
        self.target.link.publish(messages)

    def commit(self) -> None:
        """Nothing left: every batch was acknowledged as it was written."""

    def abort(self) -> None:
        """Nothing to undo: a stream cannot take back what it took."""
