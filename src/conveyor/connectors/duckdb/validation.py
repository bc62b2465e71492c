"""DuckDB's side of validation: the validation-failures table."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Sequence
from datetime import datetime

import duckdb

from conveyor.connectors.base import ValidationFailure
from conveyor.core.schema import TableRef

FAILURES_TABLE = "awsdms_validation_failures_v1"
_LOCK = threading.Lock()  # parallel tables write one at a time (DuckDB catalog conflicts)


def record_failures(
    cur: duckdb.DuckDBPyConnection,
    task: str,
    ref: TableRef,
    failures: Sequence[ValidationFailure],
    when: datetime,
    schema: str = "main",
) -> None:
    """Replace the table's rows of ``task`` with ``failures``, in one transaction;
    the table (in ``schema``, the task's ControlSchema) is created for the first failure."""
    table = '"' + schema.replace('"', '""') + '".' + FAILURES_TABLE
    with _LOCK:
        try:
            exists = cur.execute(
                "SELECT 1 FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
                [schema, FAILURES_TABLE],
            ).fetchone()
            if not failures and exists is None:
                return  # nothing to record, nothing recorded before
            cur.execute('CREATE SCHEMA IF NOT EXISTS "' + schema.replace('"', '""') + '"')
            cur.execute(
                f"CREATE TABLE IF NOT EXISTS {table} (TASK_NAME VARCHAR NOT NULL, "
                "TABLE_OWNER VARCHAR NOT NULL, TABLE_NAME VARCHAR NOT NULL, FAILURE_TIME TIMESTAMP NOT NULL, "
                "KEY_TYPE VARCHAR NOT NULL, KEY VARCHAR NOT NULL, FAILURE_TYPE VARCHAR NOT NULL, "
                "DETAILS VARCHAR NOT NULL)"
            )
            cur.execute("BEGIN TRANSACTION")
            cur.execute(
                f"DELETE FROM {table} WHERE TASK_NAME = ? AND TABLE_OWNER = ? AND TABLE_NAME = ?",
                [task, ref.schema, ref.name],
            )
            if failures:
                cur.executemany(
                    f"INSERT INTO {table} VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [f.row(task, ref, when) for f in failures],
                )
            cur.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(duckdb.Error):  # no transaction open: nothing to undo
                cur.execute("ROLLBACK")
            raise
        finally:
            cur.close()
