"""Where a PostgreSQL source's WAL is now, for StopTaskCachedChangesApplied:
the position a task stops at once the changes cached during its full load are
applied."""

from __future__ import annotations

import contextlib

import psycopg

from conveyor.connectors.base import EndpointConfig
from conveyor.connectors.postgres import connection
from conveyor.connectors.postgres.capture_replication import HEARTBEAT_PREFIX
from conveyor.connectors.postgres.pgoutput import format_lsn, parse_lsn
from conveyor.core.batch import Checkpoint


class CapturePositions:
    """The ``ReportsPosition`` part of the PostgreSQL change source."""

    config: EndpointConfig

    def current_position(self) -> Checkpoint:
        """The WAL insert position now; then a heartbeat message after it, so the
        stream delivers a ``Commit`` past it even when no captured table changes
        (pgoutput sends no empty transactions). Without the right to write that
        message, the stream's own idle heartbeat, or the next change, gets there."""
        with connection.connect(self.config, autocommit=True) as conn:
            row = conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()
            assert row is not None
            with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
                conn.execute("SELECT pg_logical_emit_message(false, %s, '')", (HEARTBEAT_PREFIX,))
        return Checkpoint("postgres", {"lsn": format_lsn(parse_lsn(str(row[0])))})

    def position_reached(self, position: Checkpoint, end: Checkpoint) -> bool:
        return parse_lsn(str(position.position["lsn"])) >= parse_lsn(str(end.position["lsn"]))
