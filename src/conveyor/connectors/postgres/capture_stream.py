"""The change stream of PostgreSQL change capture: a START_REPLICATION session
of a pgoutput slot as conveyor change events (reconnecting, heartbeats,
encoded rows)."""

from __future__ import annotations

import contextlib
import logging
import select
import time
from collections.abc import Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any

import psycopg
import psycopg2  # type: ignore[import-untyped]
import psycopg2.extras  # type: ignore[import-untyped]
from psycopg import sql

from conveyor.connectors.base import EndpointConfig
from conveyor.connectors.captured_rows import RowRuns
from conveyor.connectors.changes import (
    ChangeEvent,
    Commit,
    RowChange,
    TableDefinition,
    TableDropped,
    Truncate,
)
from conveyor.connectors.postgres import connection, ddl_capture, pgoutput
from conveyor.connectors.postgres.capture_decode import (
    FAST_ERRORS,
    INSERT_KIND,
    UPDATE_KIND,
    Chunk,
    Relation,
    fast_values,
    python_encoding,
    read_oid,
    relation_schema,
    shape,
)
from conveyor.connectors.postgres.capture_replication import (
    DEFAULT_HEARTBEAT_SECONDS,
    ENCODED_CHUNK_ROWS,
    FEEDBACK_INTERVAL_S,
    HEARTBEAT_PREFIX,
    RECONNECT_MAX_S,
    RECONNECT_MIN_S,
    lsn_of,
    lsn_position,
    one_line,
    replication_dsn,
    slot_gone,
)
from conveyor.connectors.postgres.copy_lines import encoded_format, line_values, tuple_line
from conveyor.connectors.postgres.lookups import SourceLookups, lookup_columns
from conveyor.connectors.postgres.names import qualified
from conveyor.connectors.postgres.pgoutput import UNCHANGED, format_lsn
from conveyor.connectors.postgres.text_values import Converter, converter
from conveyor.core.batch import Checkpoint, Op
from conveyor.core.errors import ConfigError, ConnectionFailed, DataError, TerminalError, TransientError
from conveyor.core.schema import TableRef, TableSchema

# The stream logs as part of capture (the SOURCE_CAPTURE log component).
log = logging.getLogger("conveyor.connectors.postgres.capture")


class PostgresChangeStream:
    """A START_REPLICATION session of a pgoutput slot, as conveyor change events.

    A lost replication connection (the source restarted, say) is reopened by
    :meth:`events` itself, with backoff, from the last transaction it delivered;
    meanwhile it yields ``None`` every ``idle_timeout`` like an idle stream. A
    transaction that was cut off is sent again by the server from its start: the
    row changes already delivered of it are skipped, so the consumer sees every
    change exactly once."""

    # Reconnection state (see __init__), with defaults for a stream built bare.
    _delivered = 0
    _txn_final: int | None = None
    _txn_events = 0
    _replay: tuple[int, int] | None = None
    _skip_events = 0
    _server_encoding: str | None = None
    # Captured in Arrow (see __init__): none unless asked; replaced, never changed in place.
    _in_arrow: Mapping[TableRef, TableSchema] = {}
    _before: frozenset[TableRef] = frozenset()

    def __init__(
        self,
        config: EndpointConfig,
        slot: str,
        publications: Sequence[str],
        tables: Sequence[TableSchema],
        start_lsn: int,
        heartbeat_seconds: float = DEFAULT_HEARTBEAT_SECONDS,
        owns_publication: bool = True,
    ) -> None:
        self.config = config
        self._owns_publication = owns_publication
        self.slot = slot
        self.start_lsn = start_lsn
        self.heartbeat_seconds = heartbeat_seconds
        self._publications = list(publications)
        # Reconnection state: the end of the last Commit delivered, the last
        # acknowledged position, and the transaction in flight (its final LSN
        # and how many of its row events were delivered).
        self._delivered = start_lsn
        self._acked: int | None = None
        self._txn_final: int | None = None
        self._txn_events = 0
        self._replay: tuple[int, int] | None = None
        self._skip_events = 0
        self._retry_at = 0.0
        self._retry_delay = RECONNECT_MIN_S
        self._known = {s.ref: s for s in tables}
        # Each table's generated columns as the last DDL message told them.
        self._generated: dict[TableRef, frozenset[str]] = {}
        self._selected = set(self._known) or None  # None: every table the publications hold
        self._relations: dict[int, Relation] = {}
        self._encode: dict[TableRef, tuple[tuple[tuple[str, str | None], ...], tuple[str, ...]]] = {}
        self._chunk = Chunk()
        # Tables whose rows come as captured Arrow batches (CapturesRowsInArrow),
        # as asked and as matched by the stream's current view, and the run of them being gathered.
        self._in_arrow = {}
        self._runs = RowRuns()
        self._change_table: TableSchema | None = None  # the relation of the last row change decoded
        self._encoded_ref: TableRef | None = None  # the table of the last row read as a COPY line
        self._catalog = connection.connect(config, autocommit=True)
        self._repl: Any = None
        try:
            row = self._catalog.execute(
                "SELECT current_setting('server_version_num')::int, current_setting('server_encoding')"
            ).fetchone()
            assert row is not None
            version, encoding = row
            self._server_encoding = str(encoding)
            self._messages = version >= 140000
            self._decoder = pgoutput.Decoder(python_encoding(encoding))
            self._start(publications)
        except BaseException:
            self.close()
            raise
        now = time.monotonic()
        self._last_data = now
        self._last_heartbeat = now
        self._data_seen = False
        self._skip = False

    def _start(self, publications: Sequence[str]) -> None:
        try:
            self._repl = psycopg2.connect(
                replication_dsn(self.config, self._server_encoding),
                connection_factory=psycopg2.extras.LogicalReplicationConnection,
            )
        except psycopg2.OperationalError as exc:
            raise ConnectionFailed(connection.describe_failure(self.config, exc)) from None
        self._cur = self._repl.cursor()
        options = {
            "proto_version": "1",
            "publication_names": ",".join('"' + p.replace('"', '""') + '"' for p in publications),
        }
        if self._messages:
            options["messages"] = "true"
        try:
            self._cur.start_replication(
                slot_name=self.slot,
                decode=False,
                start_lsn=self.start_lsn,
                options=options,
                status_interval=FEEDBACK_INTERVAL_S,
            )
        except psycopg2.Error as exc:
            raise self._error(exc) from None

    def _error(self, exc: BaseException) -> Exception:
        if slot_gone(exc):
            return TerminalError(
                f"replication slot {self.slot!r} can no longer deliver changes ({one_line(exc)}): "
                "resync required (reload the tables)"
            )
        # A lost connection (also: the server ended the stream, shutting down, which
        # psycopg2 reports as "no COPY in progress"), or the slot still held by the
        # walsender of a previous run.
        transient = isinstance(exc, psycopg2.OperationalError | psycopg2.InterfaceError)
        code = str(getattr(exc, "pgcode", None) or "")
        if code:  # the server's own error: connection trouble or a shutdown only
            transient = transient or code[:2] in {"08", "57"}
        else:  # the client's: the connection went away under the stream
            closed = self._repl is not None and bool(self._repl.closed)
            transient = transient or closed or "no COPY in progress" in str(exc)
        if transient or "is active for PID" in str(exc):
            return TransientError(f"replication connection to {self.config.name!r} failed: {one_line(exc)}")
        return TerminalError(f"replication from slot {self.slot!r} failed: {one_line(exc)}")

    def events(self, idle_timeout: float) -> Iterator[ChangeEvent | None]:
        decode = self._decoder.decode
        fast_row = self._fast_row
        encode_row = self._encode_row
        chunk = self._chunk
        deadline = time.monotonic() + idle_timeout
        while True:
            if self._repl is None and not self._reconnect():
                now = time.monotonic()
                if now >= deadline:
                    yield None  # the consumer flushes and checks for a stop meanwhile
                    deadline = time.monotonic() + idle_timeout
                else:
                    time.sleep(max(0.0, min(deadline, self._retry_at) - now))
                continue
            cur = self._cur
            event: RowChange | ChangeEvent | None = None
            encoded = False
            try:
                msg = cur.read_message()  # also sends feedback every FEEDBACK_INTERVAL_S
                if msg is not None:
                    payload = msg.payload
                    if not self._skip:
                        encoded = encode_row(payload)
                        if not encoded:
                            event = fast_row(payload)
                    if event is None and not encoded:
                        event = self._event_of(decode(payload))
            except (psycopg2.Error, TransientError) as exc:
                # TransientError: a catalog query failed, the server is going away.
                self._lost(exc if isinstance(exc, TransientError) else self._error(exc))
                yield from self._runs.flush()  # delivered: a replay skips them
                yield from chunk.take()
                continue
            if msg is not None:
                self._data_seen = True
                if encoded:
                    if self._runs.pending and self._encoded_ref is not None:
                        yield from self._runs.flush(self._encoded_ref)  # its run came before this line
                    if chunk.size >= ENCODED_CHUNK_ROWS:
                        yield from chunk.take()
                    continue
                if event is not None and (type(event) is RowChange or isinstance(event, Truncate)):
                    # Counted before anything is yielded: a connection lost while the
                    # consumer holds a yielded chunk must replay after this event.
                    self._txn_events += 1
                    if self._skip_events:  # delivered before the connection was lost
                        self._skip_events -= 1
                        continue
                    if type(event) is RowChange:
                        if chunk.size:
                            yield from chunk.take(event.table)  # its lines came before it
                        assert self._change_table is not None
                        yield from self._runs.add(event, self._change_table)
                        continue
                if event is not None:
                    assert not isinstance(event, RowChange)  # gathered above
                    if self._runs.pending:
                        yield from self._runs.flush()
                    if chunk.size:
                        yield from chunk.take()  # every event after the rows before it
                    yield event
                    deadline = time.monotonic() + idle_timeout
                    continue
                # A message of no event (BEGIN, a relation, a replayed change) cuts no run.
            now = time.monotonic()
            # Waiting for the rest of a transaction cuts no run either: its rows
            # cannot commit before it does, and batches must not depend on how
            # the server's messages happen to arrive.
            if (msg is None or now >= deadline) and self._txn_final is None:
                if self._runs.pending:
                    yield from self._runs.flush()
                if chunk.size:
                    yield from chunk.take()
            if now >= deadline:
                yield None  # also when only messages without events arrived (replays)
                deadline = time.monotonic() + idle_timeout
            elif msg is None:
                self._maybe_heartbeat(now)
                select.select([cur], [], [], min(deadline - now, 1.0))

    @property
    def encoded_format(self) -> str:
        return encoded_format(self._decoder.encoding)

    def encode_rows(self, tables: Mapping[TableRef, TableSchema]) -> None:
        """INSERTs and UPDATEs (without a key change or unchanged TOASTed
        values) of these tables come as COPY text lines (copy_lines.py) while
        their relation has exactly the given column names, types and primary key."""
        self._encode = {ref: shape(schema) for ref, schema in tables.items()}
        for rel in self._relations.values():
            rel.encode_keys = self._encode_keys(rel)

    def capture_rows(
        self, tables: Mapping[TableRef, TableSchema], before: AbstractSet[TableRef] = frozenset()
    ) -> None:
        """The changes of these tables (INSERTs, UPDATEs that keep the key,
        partial ones too, DELETEs) that do not go as COPY lines come as
        captured ChangeBatches in Arrow while the stream's view of a table has
        exactly the given column names, types and primary key; those of the
        tables in ``before`` with an UPDATE's old row when it came whole
        (REPLICA IDENTITY FULL; CapturesRowsInArrow)."""
        self._in_arrow = dict(tables)
        self._before = frozenset(before)
        self._match_arrow()

    def _match_arrow(self) -> None:
        """The tables captured in Arrow: those asked whose shape is the one
        known now. A table whose rows go as COPY lines has in runs only the
        rows a line cannot hold (partial UPDATEs, DELETEs); a table's line
        delivers its run first and a row into its run its lines first, so
        its changes keep their order."""
        matched = {}
        for ref, asked in self._in_arrow.items():
            known = self._known.get(ref)
            if known is not None and shape(known) == shape(asked):
                matched[ref] = (known, frozenset(known.column_names), ref in self._before)
        self._runs.tables = matched

    def _encode_keys(self, rel: Relation) -> tuple[tuple[int, str, Converter], ...] | None:
        if rel.columns is None or self._encode.get(rel.ref) != shape(rel.schema):
            return None
        positions = {name: index for index, name in enumerate(rel.names)}
        return tuple((positions[k], k, rel.convert[positions[k]]) for k in rel.schema.primary_key)

    def decode_row(self, table: TableRef, encoded: bytes) -> dict[str, Any]:
        rel = next((r for r in reversed(self._relations.values()) if r.ref == table), None)
        if rel is None:
            raise TerminalError(f"table {table}: an encoded row of a relation the stream no longer knows")
        return line_values(encoded, rel.names, rel.convert, self._decoder.encoding)

    def _encode_row(self, payload: bytes) -> bool:
        """Whether ``payload`` is an INSERT or an UPDATE (without an old tuple)
        of a relation the stream encodes that went into the chunk as a COPY line
        (or was skipped as delivered before a reconnection)."""
        rel = self._new_row_relation(payload)
        if rel is None or rel.encode_keys is None:
            return False
        try:
            encoded = tuple_line(len(rel.names), rel.encode_keys, payload, 6, self._decoder.encoding)
        except FAST_ERRORS:
            return False  # the general path reports it
        if encoded is None:
            return False
        self._txn_events += 1
        self._encoded_ref = rel.ref
        if self._skip_events:  # delivered before the connection was lost
            self._skip_events -= 1
        else:
            self._chunk.add(rel.schema, payload[0] == UPDATE_KIND, encoded[0], encoded[1])
        return True

    def _new_row_relation(self, payload: bytes) -> Relation | None:
        """The relation of an INSERT, or of an UPDATE without an old tuple."""
        kind = payload[0] if payload else 0
        if kind not in (UPDATE_KIND, INSERT_KIND) or payload[5:6] != b"N":
            return None
        return self._relations.get(read_oid(payload, 1)[0])

    def _fast_row(self, payload: bytes) -> RowChange | None:
        """An INSERT, or an UPDATE without an old tuple, of a wanted relation,
        decoded and converted in one pass; None for anything else (the general
        path, ``_event_of``, takes it then)."""
        rel = self._new_row_relation(payload)
        if rel is None or rel.columns is None:
            return None
        wanted = rel.wanted
        if wanted is None:
            wanted = rel.wanted = self._wanted(rel.ref)
        if not wanted:
            return None
        try:
            values = fast_values(
                rel.columns,
                payload,
                6,
                payload.decode("latin-1") if payload.isascii() else None,
                self._decoder.encoding,
            )
        except FAST_ERRORS:
            return None  # the general path reports it
        if values is None:
            return None
        self._change_table = rel.schema
        if len(values) == len(rel.columns):
            return RowChange(rel.ref, Op.UPDATE if payload[0] == UPDATE_KIND else Op.INSERT, values)
        if payload[0] != UPDATE_KIND:
            return None  # only an UPDATE's new row leaves values unsent: the general path reports it
        unchanged = frozenset(name for name, _ in rel.columns if name not in values)
        return RowChange(rel.ref, Op.UPDATE, values, unchanged=unchanged)

    def _lost(self, error: Exception) -> None:
        """The replication connection failed: reconnect (``events``) unless it
        cannot help (a dropped slot: resync required)."""
        if not isinstance(error, TransientError):
            raise error from None
        log.warning("replication from slot %r lost (%s): reconnecting", self.slot, error)
        if self._txn_final is not None:
            self._replay = (self._txn_final, self._txn_events)
            self._txn_final = None
        self._skip = False
        self._close_replication()
        self._retry_at = time.monotonic() + self._retry_delay

    def _reconnect(self) -> bool:
        """Open the replication connection again, from the last delivered commit."""
        now = time.monotonic()
        if now < self._retry_at:
            return False
        self.start_lsn = self._delivered
        try:
            self._start(self._publications)
        except (TransientError, ConnectionFailed) as exc:
            self._close_replication()
            self._retry_at = now + self._retry_delay
            self._retry_delay = min(self._retry_delay * 2, RECONNECT_MAX_S)
            log.warning("replication from slot %r: cannot reconnect yet: %s", self.slot, exc)
            return False
        self._retry_delay = RECONNECT_MIN_S
        log.info("replication from slot %r resumed at %s", self.slot, format_lsn(self.start_lsn))
        if self._acked is not None:
            self._send_ack(self._acked)
        return self._repl is not None

    def _close_replication(self) -> None:
        repl, self._repl = self._repl, None
        if repl is not None:
            with contextlib.suppress(psycopg2.Error):
                repl.close()

    def _event_of(self, message: pgoutput.PgOutputMessage | None) -> RowChange | ChangeEvent | None:
        if isinstance(message, pgoutput.Insert | pgoutput.Update | pgoutput.Delete):
            return None if self._skip else self._row_change(message)
        if isinstance(message, pgoutput.Begin):
            # A transaction the start position already covers (a replay after a crash).
            self._skip = message.final_lsn < self.start_lsn
            if not self._skip:
                replay, self._replay = self._replay, None
                self._txn_final, self._txn_events = message.final_lsn, 0
                self._skip_events = replay[1] if replay is not None and replay[0] == message.final_lsn else 0
            return None
        if isinstance(message, pgoutput.Commit):
            if self._skip:
                self._skip = False
                return None
            self._txn_final = None
            self._delivered = message.end_lsn
            return Commit(lsn_position(message.end_lsn), message.commit_time)
        if isinstance(message, pgoutput.Relation):
            return self._relation(message)
        if (
            isinstance(message, pgoutput.Message)
            and message.transactional
            and message.prefix == ddl_capture.PREFIX
        ):
            return None if self._skip else self._ddl(ddl_capture.decode(message.content))
        if isinstance(message, pgoutput.Truncate):
            refs = tuple(
                self._relations[oid].schema.ref
                for oid in message.oids
                if oid in self._relations and self._wanted(self._relations[oid].schema.ref)
            )
            return Truncate(refs) if refs and not self._skip else None
        if (
            isinstance(message, pgoutput.Message)
            and not message.transactional
            and message.prefix == HEARTBEAT_PREFIX
            and message.lsn >= self.start_lsn
        ):
            # Written by a heartbeat when idle: a position to acknowledge, so the slot advances.
            if self._txn_final is None:
                self._delivered = max(self._delivered, message.lsn)
            return Commit(lsn_position(message.lsn), None)
        return None

    def _wanted(self, ref: TableRef) -> bool:
        return self._selected is None or ref in self._selected

    def _catalog_connection(self) -> psycopg.Connection[Any]:
        """The psycopg 3 connection for catalog reads and heartbeats, reopened when lost."""
        if self._catalog.closed or self._catalog.broken:
            self._catalog = connection.connect(self.config, autocommit=True)
        return self._catalog

    def _relation(self, message: pgoutput.Relation) -> TableDefinition | None:
        try:
            try:
                schema = self._schema_of(message)
            except psycopg.OperationalError:
                # The catalog connection did not survive a restart of the source: reopen it once.
                self._catalog.close()
                schema = self._schema_of(message)
        except (psycopg.OperationalError, ConnectionFailed) as exc:
            raise TransientError(f"catalog query on {self.config.name!r} failed: {one_line(exc)}") from None
        rel = self._relations[message.oid] = Relation(
            schema,
            [c.name for c in message.columns],
            [c.name for c in message.columns if c.is_key],
            [converter(c.type) for c in schema.columns],
        )
        rel.encode_keys = self._encode_keys(rel)
        if not self._wanted(schema.ref) or self._known.get(schema.ref) == schema:
            return None
        self._known[schema.ref] = schema
        self._match_arrow()
        # A shape not announced by a DDL message (none installed, or a replay
        # from before one): which column became which is not known.
        return TableDefinition(schema, renamed=None)

    def _ddl(self, message: ddl_capture.DdlMessage) -> ChangeEvent | None:
        """A DDL message (see ddl_capture), exactly where the DDL committed."""
        ref = message.table
        if message.dropped:
            if ref not in self._known or not self._wanted(ref):
                return None
            del self._known[ref]
            self._match_arrow()
            if self._selected is not None:
                self._selected.discard(ref)
            return TableDropped(ref)
        assert message.relation is not None
        try:
            schema = self._schema_of(message.relation)
        except (psycopg.OperationalError, ConnectionFailed) as exc:
            raise TransientError(f"catalog query on {self.config.name!r} failed: {one_line(exc)}") from None
        if ref not in self._known:
            # Not captured (yet): a table created now, say; the runner's selection decides.
            return TableDefinition(schema, renamed=None) if self._selected is not None else None
        told = message.generated is not None and self._generated.get(ref) != message.generated
        if message.generated is not None:
            self._generated[ref] = message.generated
        if not self._wanted(ref) or (self._known.get(ref) == schema and not told):
            return None
        self._known[ref] = schema
        self._match_arrow()
        return TableDefinition(schema, message.renamed, message.generated)

    def add_table(self, table: TableSchema) -> None:
        """Capture ``table`` from now on (SupportsAddTable): it joins the task's
        publication; its changes from that commit on are streamed."""
        if not self._owns_publication:
            raise ConfigError(
                f"publication {self._publications[0]!r} is managed outside Conveyor: "
                f"add table {table.ref} to it, then reload the table"
            )
        if not table.primary_key:
            raise ConfigError(f"table {table.ref} has no primary key: add one, then reload the table")
        try:
            self._catalog_connection().execute(
                sql.SQL("ALTER PUBLICATION {} ADD TABLE {}").format(
                    sql.Identifier(self._publications[0]), qualified(table.ref)
                )
            )
        except psycopg.errors.DuplicateObject:
            pass  # already there (a replay)
        except (psycopg.OperationalError, ConnectionFailed) as exc:
            raise TransientError(f"cannot add {table.ref} to the publication: {one_line(exc)}") from None
        self._known[table.ref] = table
        self._match_arrow()
        if self._selected is not None:
            self._selected.add(table.ref)

    def _schema_of(self, message: pgoutput.Relation) -> TableSchema:
        return relation_schema(self._catalog_connection(), message)

    def _row_change(self, message: pgoutput.Insert | pgoutput.Update | pgoutput.Delete) -> RowChange | None:
        rel = self._relations.get(message.oid)
        if rel is None:
            raise DataError(f"pgoutput sent a change of relation {message.oid} before describing it")
        ref = rel.ref
        wanted = rel.wanted
        if wanted is None:
            wanted = rel.wanted = self._wanted(ref)
        if not wanted:
            return None
        self._change_table = rel.schema
        if isinstance(message, pgoutput.Insert):
            return RowChange(ref, Op.INSERT, self._values(rel, message.new, partial=False)[0])
        if isinstance(message, pgoutput.Update):
            values, unchanged = self._values(rel, message.new)
            old_key = self._old(rel, message.old_key, message.old)
            return RowChange(ref, Op.UPDATE, values, old_key, unchanged)
        old_key = self._old(rel, message.key, message.old)
        return RowChange(ref, Op.DELETE, {}, old_key)

    def _old(
        self, rel: Relation, key: pgoutput.TupleData | None, old: pgoutput.TupleData | None
    ) -> dict[str, Any] | None:
        if key is not None:
            values, _ = self._values(rel, key)
            return {name: values[name] for name in rel.key_names if name in values}
        if old is not None:
            return self._values(rel, old)[0]
        return None

    def _values(
        self, rel: Relation, data: pgoutput.TupleData, partial: bool = True
    ) -> tuple[dict[str, Any], frozenset[str]]:
        """Values by column name, and the columns the source did not send (only
        an UPDATE's new row can have those: unchanged TOASTed values)."""
        try:
            if not partial or UNCHANGED not in data:
                return dict(
                    zip(
                        rel.names,
                        [None if v is None else c(v) for c, v in zip(rel.convert, data, strict=True)],  # type: ignore[arg-type]
                        strict=True,
                    )
                ), frozenset()
            values: dict[str, Any] = {}
            unchanged = set()
            for name, convert, value in zip(rel.names, rel.convert, data, strict=True):
                if value is UNCHANGED:
                    unchanged.add(name)
                else:
                    values[name] = None if value is None else convert(value)  # type: ignore[arg-type]
            return values, frozenset(unchanged)
        except (DataError, ValueError, ArithmeticError) as exc:
            raise self._value_error(rel, data, exc) from None

    def _value_error(self, rel: Relation, data: pgoutput.TupleData, exc: Exception) -> DataError:
        for name, convert, value in zip(rel.names, rel.convert, data, strict=False):
            if isinstance(value, str):
                try:
                    convert(value)
                except (DataError, ValueError, ArithmeticError) as inner:
                    return DataError(f"table {rel.schema.ref} column {name!r}: {inner}", column=name)
        return DataError(f"table {rel.schema.ref}: {exc}")

    def _maybe_heartbeat(self, now: float) -> None:
        if not self._messages or self.heartbeat_seconds <= 0:
            return
        if self._data_seen:
            self._data_seen = False
            self._last_data = now
        if (
            now - self._last_data < self.heartbeat_seconds
            or now - self._last_heartbeat < self.heartbeat_seconds
        ):
            return
        self._last_heartbeat = now
        try:
            self._catalog_connection().execute(
                "SELECT pg_logical_emit_message(false, %s, '')", (HEARTBEAT_PREFIX,)
            )
        except psycopg.errors.InsufficientPrivilege:
            self._messages = False  # not allowed for this user: no heartbeats
        except (psycopg.Error, ConnectionFailed):
            pass  # the stream itself reports a lost server

    def ack(self, position: Checkpoint) -> None:
        """Acknowledge ``position``; while the connection is lost, it is sent on
        reconnecting."""
        self._acked = lsn_of(position)
        if self._repl is not None:
            self._send_ack(self._acked)

    def _send_ack(self, lsn: int) -> None:
        try:
            self._cur.send_feedback(write_lsn=lsn, flush_lsn=lsn, force=True)
        except psycopg2.Error as exc:
            self._lost(self._error(exc))

    # -- values pgoutput does not carry exactly (LooksUpValues) ------------------

    _lookups: SourceLookups | None = None

    def lookup_columns(self, table: TableSchema) -> tuple[str, ...]:
        return lookup_columns(table)

    def look_up(
        self, table: TableSchema, columns: Sequence[str], keys: Sequence[tuple[Any, ...]]
    ) -> dict[tuple[Any, ...], dict[str, Any]]:
        if self._lookups is None:
            self._lookups = SourceLookups(self.config)
        return self._lookups.look_up(table, columns, keys)

    def close(self) -> None:
        if self._lookups is not None:
            self._lookups.close()
        self._close_replication()
        if not self._catalog.closed:
            self._catalog.close()
