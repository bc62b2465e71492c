"""NATS JetStream as a change target: each change an envelope, then the
task's checkpoint in a key-value bucket.

The applier keeps the change log (``KeepsChangeLog``): it publishes every
change of a batch, in commit order, each with a message ID made of the task,
the commit position the change follows, its index since that position and its
subject. It waits for JetStream's acknowledgement of all of them, and only
then stores the checkpoint (key = task in the ``checkpoint_bucket``); the
runner acknowledges the source after that. A crash anywhere replays from the
stored checkpoint: the same changes come again with the same IDs, and the
stream's deduplication (``duplicate_window_seconds``) drops what it already
holds, so a consumer reads each change once.

Values the JSON encoding cannot carry exactly are refused before anything of
the batch is published (``RefusedTables``): the runner suspends those tables
with the reason and applies the rest.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime

from conveyor.connectors.arrow_rows import logged_changes
from conveyor.connectors.changes import RefusedTables
from conveyor.connectors.nats._link import NatsEndpoint, epoch_ms
from conveyor.connectors.nats.envelope import Message, envelope, message_id, position_text, table_subject
from conveyor.connectors.nats.values import Unrepresentable
from conveyor.core.batch import ChangeBatch, Checkpoint
from conveyor.core.errors import TerminalError
from conveyor.core.faults import fault_point
from conveyor.core.schema import TableRef, TableSchema

log = logging.getLogger(__name__)


class NatsApplier(NatsEndpoint):
    keeps_change_log = True

    def read_checkpoint(self, task: str) -> Checkpoint | None:
        data = self.link.read_value(task)
        if data is None:
            return None
        try:
            document = json.loads(data)
            return Checkpoint(document["engine"], document["position"])
        except (ValueError, KeyError, TypeError):
            raise TerminalError(
                f"checkpoint {task!r} in bucket {self.settings.checkpoint_bucket!r} is not Conveyor's"
            ) from None

    def apply_changes(self, task: str, changes: Sequence[ChangeBatch], checkpoint: Checkpoint) -> None:
        messages: list[Message] = []
        refused: dict[TableRef, str] = {}
        now = epoch_ms(datetime.now(UTC)) or 0
        for table_changes in changes:
            table = table_changes.table
            subject = table_subject(self.settings.subject_prefix, table.ref)
            try:
                for change in logged_changes(table_changes.log):
                    position = change.position.position
                    payload = envelope(
                        table,
                        change.op,
                        change.before,
                        change.after,
                        self.source,
                        position,
                        change.index,
                        epoch_ms(change.commit_time),
                        now,
                    )
                    ident = message_id(task, position_text(position), str(change.index), subject)
                    messages.append(Message(subject, payload, ident))
            except Unrepresentable as exc:
                refused[table.ref] = (
                    f"table {table.ref}: {exc} (the nats target refuses values its JSON encoding "
                    "cannot carry exactly)"
                )
        if refused:  # before anything of the batch is published
            raise RefusedTables(refused)
        duplicates = self.link.publish(messages)
        if duplicates:
            log.info(
                "task %s: %d of %d changes were already in stream %s (a replay): deduplicated",
                task,
                duplicates,
                len(messages),
                self.settings.stream,
            )
        fault_point("nats-after-publish")  # published, checkpoint not stored: the replay is deduplicated
        document = {
            "engine": checkpoint.engine,
            "position": checkpoint.position,
            "stream": self.settings.stream,
            "updated_at": datetime.now(UTC).isoformat(),
        }
        self.link.write_value(task, json.dumps(document, default=str).encode())

    def add_columns(self, table: TableSchema, columns: Sequence[str]) -> None:
        """Nothing to alter: later envelopes carry the new columns."""

    def drop_columns(self, table: TableSchema, columns: Sequence[str]) -> None:
        """Nothing to alter: later envelopes no longer carry the columns."""
