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

import logging
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import psycopg
import psycopg2  # type: ignore[import-untyped]
import psycopg2.extras  # type: ignore[import-untyped]
from psycopg import sql

from conveyor.connectors.base import EndpointConfig
from conveyor.connectors.changes import (
    CaptureStart,
)
from conveyor.connectors.postgres import connection, ddl_capture
from conveyor.connectors.postgres.capture_replication import (
    DEFAULT_HEARTBEAT_SECONDS,
    lsn_of,
    lsn_position,
    one_line,
    replication_dsn,
)
from conveyor.connectors.postgres.capture_slots import (
    MAX_NAME,
    capture_name,
    drop_slot,
    identity_warning,
    publication_gaps,
    set_publication,
    without_identity,
)
from conveyor.connectors.postgres.capture_stream import PostgresChangeStream
from conveyor.connectors.postgres.pgoutput import parse_lsn
from conveyor.connectors.postgres.positions import CapturePositions
from conveyor.connectors.postgres.source import (
    PostgresSnapshot,
    PostgresSource,
    generated_column_warnings,
    xml_column_warnings,
)
from conveyor.core.batch import Checkpoint
from conveyor.core.errors import ConfigError, ConnectionFailed, TerminalError
from conveyor.core.schema import TableSchema

log = logging.getLogger(__name__)


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
        return capture_name(task)[: MAX_NAME - 4] + "_ins"

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
            warnings = [identity_warning(ref) for ref in without_identity(conn, tables)]
            return warnings + generated_column_warnings(tables) + xml_column_warnings(tables)

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
            return CaptureStart(lsn_position(parse_lsn(lsn)), None, warnings)
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
            raise TerminalError(f"cannot create replication slot {slot!r}: {one_line(exc)}") from None
        if export_snapshot:
            self._snapshot_conn = repl  # the snapshot lives as long as this connection is idle
        else:
            repl.close()
            snapshot_name = None
        return CaptureStart(lsn_position(parse_lsn(consistent_point)), snapshot_name, warnings)

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
            lsn_of(start),
            heartbeat,
            owns_publication=self._owns_publication(),
        )

    def end_capture(self, task: str) -> None:
        self.release_snapshot()
        slot = self.slot_name(task)
        with connection.connect(self.config, autocommit=True) as conn:
            if self._owns_slot():
                drop_slot(conn, slot)
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
                replication_dsn(self.config), connection_factory=psycopg2.extras.LogicalReplicationConnection
            )
        except psycopg2.OperationalError as exc:
            raise ConnectionFailed(connection.describe_failure(self.config, exc)) from None

    def _ensure_publications(
        self, conn: psycopg.Connection[Any], task: str, tables: Sequence[TableSchema]
    ) -> list[str]:
        name = self.publication_name(task)
        if not self._owns_publication():
            return publication_gaps(conn, name, tables)
        unkeyed = set(without_identity(conn, tables))
        warnings = [identity_warning(ref) for ref in sorted(unkeyed)]
        full = [s.ref for s in tables if s.ref not in unkeyed]
        with conn.transaction():  # a table moving between the two is never in neither
            set_publication(conn, name, full, None)
            set_publication(conn, self._insert_only_publication(task), sorted(unkeyed), "insert, truncate")
        return warnings


class _ExportedSnapshot(PostgresSnapshot):
    """A snapshot exported by CREATE_REPLICATION_SLOT, held by its source until closed."""

    def __init__(self, source: PostgresChangeSource, snapshot_id: str) -> None:
        super().__init__(source.config, snapshot_id=snapshot_id)
        self._source = source

    def close(self) -> None:
        super().close()
        self._source.release_snapshot()
