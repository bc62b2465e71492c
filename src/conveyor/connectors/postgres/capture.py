"""PostgreSQL change capture: a logical replication slot with the built-in
``pgoutput`` plugin and a publication, both named after the task.

The replication connection is psycopg2's ``LogicalReplicationConnection`` (psycopg
3 has no replication API); everything else uses psycopg 3.

Full load and CDC without gap or overlap: ``begin_capture(..., export_snapshot=True)``
creates the slot on a replication connection, which exports the snapshot of the
slot's consistent point. That snapshot stays importable only while that
connection stays open and idle, so the ``PostgresChangeSource`` holds it. The
caller reads the full load through ``capture_snapshot(start)`` and closes that
snapshot after the full load, which releases the connection (equivalently:
``PostgresSnapshot(config, snapshot_id=start.snapshot_id)``, then
``release_snapshot()``). Every table read imports the snapshot anew, so it must
stay held until the last table read has started. The stream then starts at
``start.position``.

Tables without a replica identity (no primary key, REPLICA IDENTITY DEFAULT)
go into a second, insert-only publication ``conveyor_<task>_ins``: publishing
their updates and deletes would make UPDATE and DELETE fail on the source.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import select
import struct
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import psycopg
import psycopg2  # type: ignore[import-untyped]
import psycopg2.extras  # type: ignore[import-untyped]
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from conveyor.connectors.base import EndpointConfig
from conveyor.connectors.changes import (
    CaptureStart,
    ChangeEvent,
    Commit,
    EncodedRows,
    RowChange,
    TableDefinition,
    TableDropped,
    Truncate,
)
from conveyor.connectors.postgres import connection, ddl_capture, pgoutput
from conveyor.connectors.postgres.copy_lines import encoded_format, line_values, tuple_line
from conveyor.connectors.postgres.pgoutput import UNCHANGED, format_lsn, parse_lsn
from conveyor.connectors.postgres.positions import CapturePositions
from conveyor.connectors.postgres.source import (
    PostgresSnapshot,
    PostgresSource,
    generated_column_warnings,
    qualified,
    read_tables,
    xml_column_warnings,
)
from conveyor.connectors.postgres.text_values import SESSION_OPTIONS, Converter, converter
from conveyor.connectors.postgres.types import NativeColumn, from_native
from conveyor.core import types as t
from conveyor.core.batch import Checkpoint, Op
from conveyor.core.errors import ConfigError, ConnectionFailed, DataError, TerminalError, TransientError
from conveyor.core.schema import Column, TableRef, TableSchema

log = logging.getLogger(__name__)

ENGINE = "postgres"
HEARTBEAT_PREFIX = "conveyor_heartbeat"
DEFAULT_HEARTBEAT_SECONDS = 60.0
FEEDBACK_INTERVAL_S = 10
# A lost replication connection (a source restart, a network cut) is reopened
# by the stream itself, waiting this long between attempts, doubling.
RECONNECT_MIN_S = 0.5
RECONNECT_MAX_S = 5.0
ENCODED_CHUNK_ROWS = 1000  # encoded rows delivered together (EncodedRows) at most
_MAX_NAME = 63
_SLOT_GONE = ("does not exist", "can no longer get changes", "has been invalidated", "was invalidated")


def capture_name(task: str) -> str:
    """``conveyor_<task>`` as a slot/publication name: [a-z0-9_], at most 63 characters."""
    name = "conveyor_" + re.sub(r"[^a-z0-9_]", "_", task.lower())
    if len(name) > _MAX_NAME:
        digest = hashlib.sha1(task.encode()).hexdigest()[:8]
        name = f"{name[: _MAX_NAME - 9]}_{digest}"
    return name


def _lsn_of(position: Checkpoint) -> int:
    if position.engine != ENGINE or "lsn" not in position.position:
        raise ConfigError(f"position {position} is not a PostgreSQL LSN position")
    return parse_lsn(str(position.position["lsn"]))


def _position(lsn: int) -> Checkpoint:
    return Checkpoint(ENGINE, {"lsn": format_lsn(lsn)})


def _replication_dsn(config: EndpointConfig, client_encoding: str | None = None) -> str:
    """The replication connection's DSN, with the session settings the text of
    pgoutput's values is read by. pgoutput converts that text to the session's
    client encoding, which ``client_encoding`` pins (to the server's: so a
    PGCLIENTENCODING in the environment cannot change the bytes)."""
    params = conninfo_to_dict(connection.conninfo(config))
    options = str(params.get("options") or "")
    params["options"] = f"{options} {SESSION_OPTIONS}".strip()
    if client_encoding is not None:
        params["client_encoding"] = client_encoding
    return make_conninfo("", **params)


def _slot_gone(exc: BaseException) -> bool:
    text = str(exc)
    return "replication slot" in text and any(marker in text for marker in _SLOT_GONE)


class PostgresChangeSource(CapturePositions, PostgresSource):
    """A PostgreSQL source that also captures changes (pgoutput, protocol v1).

    Endpoint options: ``slot_name`` / ``publication_name`` name an existing slot
    or publication to use (Conveyor then neither creates, alters nor drops it);
    ``heartbeat_seconds`` (default 60) is how long the stream may be idle before
    it writes a heartbeat message into the WAL so the slot can advance.
    """

    def __init__(self, config: EndpointConfig) -> None:
        super().__init__(config)
        self._snapshot_conn: Any = None

    # -- names ---------------------------------------------------------------

    def slot_name(self, task: str) -> str:
        """Slots are named across the whole server (publications per database):
        the database is part of the name so tasks of one name on two databases
        of a server never take each other's slot."""
        database = urlsplit(self.config.url or "").path.lstrip("/") or "postgres"
        return str(self.config.options.get("slot_name") or capture_name(f"{task}_{database}"))

    def publication_name(self, task: str) -> str:
        return str(self.config.options.get("publication_name") or capture_name(task))

    def _insert_only_publication(self, task: str) -> str:
        """Where tables without a replica identity go: publishing their updates
        and deletes would make UPDATE and DELETE fail on the source."""
        return capture_name(task)[: _MAX_NAME - 4] + "_ins"

    def _owns_slot(self) -> bool:
        return not self.config.options.get("slot_name")

    def _owns_publication(self) -> bool:
        return not self.config.options.get("publication_name")

    def publications(self, task: str) -> list[str]:
        names = [self.publication_name(task)]
        if self._owns_publication():
            names.append(self._insert_only_publication(task))
        return names

    # -- checks --------------------------------------------------------------

    def preflight(self, tables: Sequence[TableSchema]) -> list[str]:
        with connection.connect(self.config, autocommit=True) as conn:
            row = conn.execute(
                """
                SELECT current_setting('wal_level'), current_setting('max_replication_slots')::int,
                       current_setting('max_wal_senders')::int, r.rolsuper OR r.rolreplication
                         OR EXISTS (SELECT 1 FROM pg_roles x WHERE x.rolname = 'rds_replication'
                                    AND pg_has_role(current_user, x.oid, 'member'))
                FROM pg_roles r WHERE r.rolname = current_user
                """
            ).fetchone()
            assert row is not None
            wal_level, slots, senders, may_replicate = row
            problems = []
            if wal_level != "logical":
                problems.append(f"wal_level must be 'logical' for change capture (it is {wal_level!r})")
            if slots <= 0:
                problems.append(f"max_replication_slots must be greater than 0 (it is {slots})")
            if senders <= 0:
                problems.append(f"max_wal_senders must be greater than 0 (it is {senders})")
            if not may_replicate:
                problems.append("the endpoint's user needs the REPLICATION attribute (or superuser)")
            if problems:
                raise ConfigError(f"endpoint {self.config.name!r}: " + "; ".join(problems))
            warnings = [_identity_warning(ref) for ref in _without_identity(conn, tables)]
            return warnings + generated_column_warnings(conn, tables) + xml_column_warnings(tables)

    # -- capture lifecycle -----------------------------------------------------

    def begin_capture(self, task: str, tables: Sequence[TableSchema], export_snapshot: bool) -> CaptureStart:
        slot = self.slot_name(task)
        with connection.connect(self.config, autocommit=True) as conn:
            warnings = self._ensure_publications(conn, task, tables)
            warnings += ddl_capture.install(conn, task, tables)
            row = conn.execute(
                "SELECT coalesce(confirmed_flush_lsn, restart_lsn)::text, plugin,"
                " database = current_database() FROM pg_replication_slots WHERE slot_name = %s",
                (slot,),
            ).fetchone()
        if row is not None:
            lsn, plugin, same_db = row
            if plugin != "pgoutput" or not same_db:
                raise ConfigError(
                    f"replication slot {slot!r} exists but belongs to another database or plugin;"
                    " name another with the endpoint option slot_name"
                )
            return CaptureStart(_position(parse_lsn(lsn)), None, warnings)
        if not self._owns_slot():
            raise ConfigError(f"endpoint {self.config.name!r}: replication slot {slot!r} does not exist")
        self.release_snapshot()
        repl = self._replication_connection()
        try:
            cur = repl.cursor()
            mode = "EXPORT_SNAPSHOT" if export_snapshot else "NOEXPORT_SNAPSHOT"
            cur.execute(f'CREATE_REPLICATION_SLOT "{slot}" LOGICAL pgoutput {mode}')
            _name, consistent_point, snapshot_name, _plugin = cur.fetchone()
        except psycopg2.Error as exc:
            repl.close()
            raise TerminalError(f"cannot create replication slot {slot!r}: {_one_line(exc)}") from None
        if export_snapshot:
            self._snapshot_conn = repl  # the snapshot lives as long as this connection is idle
        else:
            repl.close()
            snapshot_name = None
        return CaptureStart(_position(parse_lsn(consistent_point)), snapshot_name, warnings)

    def capture_snapshot(self, start: CaptureStart) -> PostgresSnapshot:
        """The full load's snapshot after ``begin_capture(export_snapshot=True)``:
        the exported one, exactly the state at ``start.position``; closing it
        releases the replication connection that kept it importable. Without an
        exported snapshot (the slot existed already) a fresh snapshot: the
        stream may then repeat changes the full load already read, never miss one."""
        if start.snapshot_id is None:
            return PostgresSnapshot(self.config)
        return _ExportedSnapshot(self, start.snapshot_id)

    def release_snapshot(self) -> None:
        """Close the connection that keeps the exported snapshot importable."""
        if self._snapshot_conn is not None:
            self._snapshot_conn.close()
            self._snapshot_conn = None

    def open_stream(
        self, task: str, tables: Sequence[TableSchema], start: Checkpoint
    ) -> PostgresChangeStream:
        heartbeat = float(self.config.options.get("heartbeat_seconds", DEFAULT_HEARTBEAT_SECONDS))
        return PostgresChangeStream(
            self.config,
            self.slot_name(task),
            self.publications(task),
            tables,
            _lsn_of(start),
            heartbeat,
            owns_publication=self._owns_publication(),
        )

    def end_capture(self, task: str) -> None:
        self.release_snapshot()
        slot = self.slot_name(task)
        with connection.connect(self.config, autocommit=True) as conn:
            if self._owns_slot():
                _drop_slot(conn, slot)
            if self._owns_publication():
                for name in self.publications(task):
                    conn.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(name)))
            ddl_capture.remove(conn, task)

    def retained_wal_bytes(self, task: str) -> int | None:
        """WAL the server keeps for the task's slot (None when there is no slot,
        or while the source is unreachable: the stream reconnects by itself)."""
        try:
            with connection.connect(self.config, autocommit=True) as conn:
                row = conn.execute(
                    "SELECT pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()"
                    " ELSE pg_current_wal_lsn() END, restart_lsn)::bigint"
                    " FROM pg_replication_slots WHERE slot_name = %s",
                    (self.slot_name(task),),
                ).fetchone()
        except (ConnectionFailed, psycopg.OperationalError):
            return None
        return None if row is None or row[0] is None else int(row[0])

    def close(self) -> None:
        self.release_snapshot()

    # -- helpers -----------------------------------------------------------------

    def _replication_connection(self) -> Any:
        try:
            return psycopg2.connect(
                _replication_dsn(self.config), connection_factory=psycopg2.extras.LogicalReplicationConnection
            )
        except psycopg2.OperationalError as exc:
            raise ConnectionFailed(connection.describe_failure(self.config, exc)) from None

    def _ensure_publications(
        self, conn: psycopg.Connection[Any], task: str, tables: Sequence[TableSchema]
    ) -> list[str]:
        name = self.publication_name(task)
        if not self._owns_publication():
            return _publication_gaps(conn, name, tables)
        unkeyed = set(_without_identity(conn, tables))
        warnings = [_identity_warning(ref) for ref in sorted(unkeyed)]
        full = [s.ref for s in tables if s.ref not in unkeyed]
        with conn.transaction():  # a table moving between the two is never in neither
            _set_publication(conn, name, full, None)
            _set_publication(conn, self._insert_only_publication(task), sorted(unkeyed), "insert, truncate")
        return warnings


class _ExportedSnapshot(PostgresSnapshot):
    """A snapshot exported by CREATE_REPLICATION_SLOT, held by its source until closed."""

    def __init__(self, source: PostgresChangeSource, snapshot_id: str) -> None:
        super().__init__(source.config, snapshot_id=snapshot_id)
        self._source = source

    def close(self) -> None:
        super().close()
        self._source.release_snapshot()


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _identity_warning(ref: TableRef) -> str:
    return (
        f"updates and deletes of {ref} cannot be captured: no primary key; "
        "set REPLICA IDENTITY FULL or add a key"
    )


def _without_identity(conn: psycopg.Connection[Any], tables: Sequence[TableSchema]) -> list[TableRef]:
    """Tables whose updates and deletes carry no key: REPLICA IDENTITY DEFAULT
    without a primary key, or NOTHING."""
    if not tables:
        return []
    rows = conn.execute(
        """
        SELECT n.nspname, c.relname
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN unnest(%s::text[], %s::text[]) AS w(s, r) ON w.s = n.nspname AND w.r = c.relname
        WHERE c.relreplident = 'n' OR (c.relreplident = 'd' AND NOT EXISTS (
            SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary))
        ORDER BY 1, 2
        """,
        ([s.ref.schema for s in tables], [s.ref.name for s in tables]),
    ).fetchall()
    return [TableRef(schema, name) for schema, name in rows]


def _set_publication(
    conn: psycopg.Connection[Any], name: str, refs: Sequence[TableRef], publish: str | None
) -> None:
    """Make publication ``name`` hold exactly ``refs`` (it always exists: the
    stream names it, and pgoutput fails on a missing publication)."""
    ident = sql.Identifier(name)
    exists = conn.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (name,)).fetchone()
    if not exists:
        query = sql.SQL("CREATE PUBLICATION {}").format(ident)
        if refs:
            query += sql.SQL(" FOR TABLE {}").format(sql.SQL(", ").join(qualified(ref) for ref in refs))
        # Changes of a partition arrive as changes of the partitioned table (PostgreSQL 13+).
        options: list[sql.Composable] = (
            [sql.SQL("publish_via_partition_root = true")] if conn.info.server_version >= 130000 else []
        )
        if publish:
            options.append(sql.SQL("publish = {}").format(sql.Literal(publish)))
        if options:
            query += sql.SQL(" WITH ({})").format(sql.SQL(", ").join(options))
        conn.execute(query)
    elif refs:
        table_list = sql.SQL(", ").join(qualified(ref) for ref in refs)
        conn.execute(sql.SQL("ALTER PUBLICATION {} SET TABLE {}").format(ident, table_list))
    else:
        current = conn.execute(
            "SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = %s", (name,)
        ).fetchall()
        if current:
            table_list = sql.SQL(", ").join(qualified(TableRef(s, n)) for s, n in current)
            conn.execute(sql.SQL("ALTER PUBLICATION {} DROP TABLE {}").format(ident, table_list))


def _publication_gaps(conn: psycopg.Connection[Any], name: str, tables: Sequence[TableSchema]) -> list[str]:
    row = conn.execute("SELECT puballtables FROM pg_publication WHERE pubname = %s", (name,)).fetchone()
    if row is None:
        raise ConfigError(f"publication {name!r} does not exist")
    if row[0]:
        return []
    published = {
        TableRef(s, n)
        for s, n in conn.execute(
            "SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = %s", (name,)
        ).fetchall()
    }
    return [
        f"table {s.ref} is not in publication {name!r}: its changes will not be captured"
        for s in tables
        if s.ref not in published
    ]


def _drop_slot(conn: psycopg.Connection[Any], slot: str) -> None:
    deadline = time.monotonic() + 10
    while True:
        row = conn.execute(
            "SELECT active_pid FROM pg_replication_slots WHERE slot_name = %s", (slot,)
        ).fetchone()
        if row is None:
            return
        if row[0] is None:
            try:
                conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
                return
            except psycopg.errors.ObjectInUse:
                pass  # a walsender took it again in between
            except psycopg.errors.UndefinedObject:
                return
        else:
            conn.execute("SELECT pg_terminate_backend(%s)", (row[0],))
        if time.monotonic() > deadline:
            raise TransientError(f"replication slot {slot!r} stays active; cannot drop it")
        time.sleep(0.1)


# -- the stream ------------------------------------------------------------------

_TYPES_SQL = """
SELECT format_type(m.oid, m.typmod), coalesce(et.typname, ty.typname),
       coalesce(ty.typcategory = 'A', false), coalesce(coalesce(et.typtype, ty.typtype) = 'e', false),
       coalesce(et.oid, ty.oid)
FROM unnest(%s::oid[], %s::int[]) WITH ORDINALITY AS m(oid, typmod, ord)
LEFT JOIN pg_type ty ON ty.oid = m.oid
LEFT JOIN pg_type et ON ty.typcategory = 'A' AND et.oid = ty.typelem
ORDER BY m.ord
"""


class _Relation:
    """A relation of the stream: its schema, column names (in the order of the
    tuples), key column names and per-column converters."""

    __slots__ = ("columns", "convert", "encode_keys", "key_names", "names", "ref", "schema", "wanted")

    def __init__(
        self, schema: TableSchema, names: list[str], key_names: list[str], convert: list[Converter]
    ) -> None:
        self.schema = schema
        self.names = names
        self.key_names = key_names
        self.convert = convert
        self.ref = schema.ref
        self.columns = tuple(zip(names, convert, strict=True)) if len(names) == len(convert) else None
        self.wanted: bool | None = None  # the stream's to say, on the first change
        # Set while the stream encodes this relation's rows (SupportsEncodedRows):
        # the primary key's (position, name, converter).
        self.encode_keys: tuple[tuple[int, str, Converter], ...] | None = None


_TEXT, _NULL = 0x74, 0x6E  # tuple value tags 't' and 'n'
_INSERT, _UPDATE = 0x49, 0x55  # message kinds 'I' and 'U'
_OID = struct.Struct("!I").unpack_from
_COUNT = struct.Struct("!h").unpack_from
_LENGTH = struct.Struct("!i").unpack_from
_FAST_ERRORS = (DataError, ValueError, ArithmeticError, IndexError, struct.error, UnicodeDecodeError)


def _fast_values(
    columns: tuple[tuple[str, Converter], ...], payload: bytes, pos: int, text: str | None, encoding: str
) -> dict[str, Any] | None:
    """The tuple at ``pos`` converted, by column name; None when it holds an
    unchanged TOASTed value or does not fit the relation (the general path then
    decodes it, and reports what is wrong). ``text`` is the payload decoded as
    latin-1 when it is all ASCII (then byte and character offsets agree)."""
    if _COUNT(payload, pos)[0] != len(columns):
        return None
    pos += 2
    values: dict[str, Any] = {}
    if text is not None:
        for name, convert in columns:
            tag = payload[pos]
            if tag == _TEXT:
                start = pos + 5
                pos = start + _LENGTH(payload, pos + 1)[0]
                values[name] = convert(text[start:pos])
            elif tag == _NULL:
                values[name] = None
                pos += 1
            else:
                return None
    else:
        for name, convert in columns:
            tag = payload[pos]
            if tag == _TEXT:
                start = pos + 5
                pos = start + _LENGTH(payload, pos + 1)[0]
                values[name] = convert(payload[start:pos].decode(encoding))
            elif tag == _NULL:
                values[name] = None
                pos += 1
            else:
                return None
    return values


class _Chunk:
    """Encoded rows read but not yet delivered, by table (in commit order
    within each table, which is all the batches need: they reduce per table)."""

    __slots__ = ("_tables", "size")

    def __init__(self) -> None:
        self.size = 0
        self._tables: dict[TableRef, tuple[list[tuple[Any, ...]], list[bytes], list[int]]] = {}

    def add(self, ref: TableRef, update: bool, line: bytes, key: tuple[Any, ...]) -> None:
        entry = self._tables.get(ref)
        if entry is None:
            entry = self._tables[ref] = ([], [], [0])
        entry[0].append(key)
        entry[1].append(line)
        entry[2][0] += update
        self.size += 1

    def take(self) -> list[EncodedRows]:
        taken = [
            EncodedRows(ref, keys, rows, len(rows) - updates[0], updates[0])
            for ref, (keys, rows, updates) in self._tables.items()
        ]
        self._tables = {}
        self.size = 0
        return taken


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
        self._selected = set(self._known) or None  # None: every table the publications hold
        self._relations: dict[int, _Relation] = {}
        self._encode: dict[TableRef, tuple[tuple[tuple[str, str | None], ...], tuple[str, ...]]] = {}
        self._chunk = _Chunk()
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
            self._decoder = pgoutput.Decoder(_python_encoding(encoding))
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
                _replication_dsn(self.config, self._server_encoding),
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
        if _slot_gone(exc):
            return TerminalError(
                f"replication slot {self.slot!r} can no longer deliver changes ({_one_line(exc)}): "
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
            return TransientError(f"replication connection to {self.config.name!r} failed: {_one_line(exc)}")
        return TerminalError(f"replication from slot {self.slot!r} failed: {_one_line(exc)}")

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
            event: ChangeEvent | None = None
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
                yield from chunk.take()  # delivered: a replay skips them
                continue
            if msg is not None:
                self._data_seen = True
                if encoded:
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
                if chunk.size:
                    yield from chunk.take()  # every event after the rows before it
                if event is not None:
                    yield event
                    deadline = time.monotonic() + idle_timeout
                    continue
            if chunk.size:
                yield from chunk.take()
            now = time.monotonic()
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
        self._encode = {ref: _shape(schema) for ref, schema in tables.items()}
        for rel in self._relations.values():
            rel.encode_keys = self._encode_keys(rel)

    def _encode_keys(self, rel: _Relation) -> tuple[tuple[int, str, Converter], ...] | None:
        if rel.columns is None or self._encode.get(rel.ref) != _shape(rel.schema):
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
        except _FAST_ERRORS:
            return False  # the general path reports it
        if encoded is None:
            return False
        self._txn_events += 1
        if self._skip_events:  # delivered before the connection was lost
            self._skip_events -= 1
        else:
            self._chunk.add(rel.ref, payload[0] == _UPDATE, encoded[0], encoded[1])
        return True

    def _new_row_relation(self, payload: bytes) -> _Relation | None:
        """The relation of an INSERT, or of an UPDATE without an old tuple."""
        kind = payload[0] if payload else 0
        if kind not in (_UPDATE, _INSERT) or payload[5:6] != b"N":
            return None
        return self._relations.get(_OID(payload, 1)[0])

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
            values = _fast_values(
                rel.columns,
                payload,
                6,
                payload.decode("latin-1") if payload.isascii() else None,
                self._decoder.encoding,
            )
        except _FAST_ERRORS:
            return None  # the general path reports it
        if values is None:
            return None
        return RowChange(rel.ref, Op.UPDATE if payload[0] == _UPDATE else Op.INSERT, values)

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

    def _event_of(self, message: pgoutput.PgOutputMessage | None) -> ChangeEvent | None:
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
            return Commit(_position(message.end_lsn), message.commit_time)
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
            return Commit(_position(message.lsn), None)
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
            raise TransientError(f"catalog query on {self.config.name!r} failed: {_one_line(exc)}") from None
        rel = self._relations[message.oid] = _Relation(
            schema,
            [c.name for c in message.columns],
            [c.name for c in message.columns if c.is_key],
            [converter(c.type) for c in schema.columns],
        )
        rel.encode_keys = self._encode_keys(rel)
        if not self._wanted(schema.ref) or self._known.get(schema.ref) == schema:
            return None
        self._known[schema.ref] = schema
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
            if self._selected is not None:
                self._selected.discard(ref)
            return TableDropped(ref)
        assert message.relation is not None
        try:
            schema = self._schema_of(message.relation)
        except (psycopg.OperationalError, ConnectionFailed) as exc:
            raise TransientError(f"catalog query on {self.config.name!r} failed: {_one_line(exc)}") from None
        if ref not in self._known:
            # Not captured (yet): a table created now, say; the runner's selection decides.
            return TableDefinition(schema, renamed=None) if self._selected is not None else None
        if not self._wanted(ref) or self._known.get(ref) == schema:
            return None
        self._known[ref] = schema
        return TableDefinition(schema, message.renamed)

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
            raise TransientError(f"cannot add {table.ref} to the publication: {_one_line(exc)}") from None
        self._known[table.ref] = table
        if self._selected is not None:
            self._selected.add(table.ref)

    def _schema_of(self, message: pgoutput.Relation) -> TableSchema:
        """The table as the relation message describes it (columns and types at
        this point of the WAL), with nullability and key from the catalog."""
        ref = TableRef(message.namespace, message.name)
        catalog = self._catalog_connection()
        # One snapshot for read_tables' statements: a table dropped between them
        # would come back without its key (and its changes be applied keyless).
        with catalog.transaction():
            catalog.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            found = read_tables(catalog, only=ref)
        current = found[0] if found else None
        rows = catalog.execute(
            _TYPES_SQL, ([c.type_oid for c in message.columns], [c.typmod for c in message.columns])
        ).fetchall()
        enum_oids = [r[4] for r in rows if r[3]]
        labels: dict[int, list[str]] = {}
        if enum_oids:
            for oid, label in catalog.execute(
                "SELECT enumtypid, enumlabel FROM pg_enum WHERE enumtypid = ANY(%s)"
                " ORDER BY enumtypid, enumsortorder",
                (enum_oids,),
            ).fetchall():
                labels.setdefault(oid, []).append(label)
        columns = []
        for col, (formatted, type_name, is_array, is_enum, base_oid) in zip(
            message.columns, rows, strict=True
        ):
            if type_name is None:  # a type dropped since: its text travels as text
                ctype = t.simple(t.Kind.TEXT, native="text")
            else:
                ctype = from_native(
                    NativeColumn(
                        type_name, formatted, col.typmod, is_array, is_enum, tuple(labels.get(base_oid, ()))
                    )
                )
            nullable = True
            if current is not None and col.name in current.column_names:
                nullable = current.column(col.name).nullable
                known = current.column(col.name).type
                if ctype.kind is t.Kind.ARRAY and known.kind is t.Kind.ARRAY and known.native == ctype.native:
                    ctype = known  # the declared dimensions (pgoutput does not send them)
            columns.append(Column(col.name, ctype, nullable))
        names = {c.name for c in columns}
        if current is not None and all(k in names for k in current.primary_key):
            key = current.primary_key
        elif message.replica_identity in {"d", "i"}:
            key = tuple(c.name for c in message.columns if c.is_key)
        else:
            key = ()
        estimate = current.estimated_rows if current is not None else None
        types = current.native_types if current is not None else ()
        return TableSchema(ref, tuple(columns), key, estimate, ENGINE, types)

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
        if isinstance(message, pgoutput.Insert):
            return RowChange(ref, Op.INSERT, self._values(rel, message.new, partial=False)[0])
        if isinstance(message, pgoutput.Update):
            values, unchanged = self._values(rel, message.new)
            old_key = self._old(rel, message.old_key, message.old)
            return RowChange(ref, Op.UPDATE, values, old_key, unchanged)
        old_key = self._old(rel, message.key, message.old)
        return RowChange(ref, Op.DELETE, {}, old_key)

    def _old(
        self, rel: _Relation, key: pgoutput.TupleData | None, old: pgoutput.TupleData | None
    ) -> dict[str, Any] | None:
        if key is not None:
            values, _ = self._values(rel, key)
            return {name: values[name] for name in rel.key_names if name in values}
        if old is not None:
            return self._values(rel, old)[0]
        return None

    def _values(
        self, rel: _Relation, data: pgoutput.TupleData, partial: bool = True
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

    def _value_error(self, rel: _Relation, data: pgoutput.TupleData, exc: Exception) -> DataError:
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
        self._acked = _lsn_of(position)
        if self._repl is not None:
            self._send_ack(self._acked)

    def _send_ack(self, lsn: int) -> None:
        try:
            self._cur.send_feedback(write_lsn=lsn, flush_lsn=lsn, force=True)
        except psycopg2.Error as exc:
            self._lost(self._error(exc))

    def close(self) -> None:
        self._close_replication()
        if not self._catalog.closed:
            self._catalog.close()


def _shape(schema: TableSchema) -> tuple[tuple[tuple[str, str | None], ...], tuple[str, ...]]:
    """What encoding a table's rows depends on: column names and types, and the key."""
    return tuple((c.name, c.type.native) for c in schema.columns), schema.primary_key


def _python_encoding(pg_encoding: str) -> str:
    from psycopg._encodings import pg2pyenc

    try:
        return pg2pyenc(pg_encoding.encode())
    except psycopg.NotSupportedError:
        return "utf-8"
