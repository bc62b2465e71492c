"""The statement service: asynchronous SQL on a target endpoint, as the Redshift Data API
offers it (execute -> Id; describe; get result, paged; cancel).

Each statement runs in a thread of the process that submitted it, on its own database
connection in autocommit mode (so ``CALL proc()`` of a PostgreSQL procedure that commits
works). Its life is recorded in the metadata store, so any process can describe it:
SUBMITTED -> PICKED -> STARTED -> FINISHED | FAILED | ABORTED. A statement whose process
ended while it ran is reported FAILED the next time it is described.

Results are kept in the store (up to ``MAX_RESULT_ROWS`` rows) as the Data API's
typed fields (``stringValue``, ``longValue``, ``doubleValue``, ``booleanValue``,
``isNull``) with ``ColumnMetadata``, and read back in pages with a ``NextToken``.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import os
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from conveyor.connectors.base import EndpointConfig
from conveyor.core.errors import ConfigError, ConveyorError, NotFoundError
from conveyor.core.extras import needs_extra
from conveyor.stack.model import Stack
from conveyor.store.rows import StatementRow
from conveyor.store.store import Store

if TYPE_CHECKING:
    from conveyor.orchestration.redshift_sql import Translated

# The Redshift translation (sqlglot, ~0.2 s to import) is imported by the
# statements that need it, not by every `conveyor` command importing this module.

SUBMITTED, PICKED, STARTED = "SUBMITTED", "PICKED", "STARTED"
FINISHED, FAILED, ABORTED = "FINISHED", "FAILED", "ABORTED"
ACTIVE = (SUBMITTED, PICKED, STARTED)
CANCEL_WAIT_S = 30.0  # CancelStatement waits this long for the statement to end
ENGINES = ("postgres", "duckdb")
MAX_RESULT_ROWS = 100_000
PAGE_ROWS = 1000

StackProvider = Callable[[], Stack]
_Outcome = tuple[list[dict[str, Any]] | None, list[Any], int]


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def typed_field(value: Any) -> dict[str, Any]:
    """One value as the Data API's Field union (``blobValue`` base64, as the service's
    JSON carries it; boto3 decodes it to bytes)."""
    if value is None:
        return {"isNull": True}
    if isinstance(value, bool):
        return {"booleanValue": value}
    if isinstance(value, int):
        return {"longValue": value}
    if isinstance(value, float):
        return {"doubleValue": value}
    if isinstance(value, decimal.Decimal):
        return {"stringValue": str(value)}
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return {
            "stringValue": value.isoformat(sep=" ") if isinstance(value, dt.datetime) else value.isoformat()
        }
    if isinstance(value, bytes | bytearray | memoryview):
        return {"blobValue": base64.b64encode(bytes(value)).decode("ascii")}
    return {"stringValue": str(value)}


def _column(name: str, type_name: str) -> dict[str, Any]:
    return {"name": name, "label": name, "typeName": type_name, "nullable": 1}


class Statements:
    """Execute, describe, page through results and cancel statements."""

    def __init__(self, store: Store, stack: StackProvider) -> None:
        self.store = store
        self.stack = stack
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()
        # DuckDB statements running in this process, to interrupt (CancelStatement),
        # and those whose interruption was asked for (then ABORTED, not FAILED).
        self._duckdb: dict[str, Any] = {}
        self._interrupted: set[str] = set()

    # --- execute ----------------------------------------------------------------------

    def endpoint_config(self, endpoint: str) -> EndpointConfig:
        stack = self.stack()
        spec = stack.endpoints.get(endpoint)
        if spec is None:
            known = ", ".join(sorted(n for n, e in stack.endpoints.items() if e.engine in ENGINES)) or "-"
            raise NotFoundError(f"no endpoint named {endpoint!r} to run SQL on (SQL endpoints: {known})")
        if spec.engine not in ENGINES:
            raise ConfigError(
                f"endpoint {endpoint!r} is a {spec.engine} endpoint; statements run on "
                f"{' and '.join(ENGINES)} endpoints"
            )
        return stack.endpoint_config(endpoint)

    def execute(
        self,
        endpoint: str,
        sql: str,
        database: str | None = None,
        *,
        name: str | None = None,
        parameters: Sequence[dict[str, Any]] | None = None,
    ) -> str:
        """Submit ``sql`` on ``endpoint``; returns the statement's Id at once."""
        if not isinstance(sql, str) or not sql.strip():
            raise ConfigError("Sql: a statement is required")
        config = self.endpoint_config(endpoint)
        params = {p["name"]: p.get("value") for p in parameters or ()}
        statement_id = str(uuid.uuid4())
        self.store.put_statement(
            {
                "id": statement_id,
                "endpoint": endpoint,
                "database": database,
                "statement_name": name,
                "query": sql,
                "status": SUBMITTED,
                "pid": os.getpid(),
                "duration_ns": -1,
                "result_rows": -1,
                "has_result_set": False,
            }
        )
        thread = threading.Thread(
            target=self._run, args=(statement_id, config, sql, params), name=f"statement-{statement_id[:8]}"
        )
        thread.daemon = True
        with self._lock:
            self._threads[statement_id] = thread
        thread.start()
        return statement_id

    def _run(self, statement_id: str, config: EndpointConfig, sql: str, params: dict[str, Any]) -> None:
        try:
            self._run_and_record(statement_id, config, sql, params)
        finally:
            # Only once its end is recorded: until then a DescribeStatement in this
            # process must see the statement's thread alive (or it calls it lost).
            with self._lock:
                self._threads.pop(statement_id, None)
                self._interrupted.discard(statement_id)

    def _run_and_record(
        self, statement_id: str, config: EndpointConfig, sql: str, params: dict[str, Any]
    ) -> None:
        began = time.perf_counter_ns()
        try:
            if not self.store.update_statement(statement_id, [SUBMITTED], status=PICKED):
                return  # cancelled before it was picked
            if config.engine == "postgres":
                columns, rows, count = self._run_postgres(statement_id, config, sql, params)
            else:
                columns, rows, count = self._run_duckdb(statement_id, config, sql, params)
        except _NotStarted:
            return  # cancelled between being picked and starting
        except Exception as exc:
            current = self.store.statement(statement_id)
            if current is not None and current["status"] == ABORTED:
                return
            with self._lock:
                interrupted = statement_id in self._interrupted or isinstance(exc, _Cancelled)
            if interrupted:  # the database rolled the statement back
                self.store.update_statement(
                    statement_id,
                    ACTIVE,
                    status=ABORTED,
                    error="cancelled by the user",
                    duration_ns=time.perf_counter_ns() - began,
                )
                return
            message = " ".join(str(exc).split()) or type(exc).__name__
            self.store.update_statement(
                statement_id, ACTIVE, status=FAILED, error=message, duration_ns=time.perf_counter_ns() - began
            )
            return
        has_result = columns is not None
        result = None
        if has_result:
            assert columns is not None
            result = {"ColumnMetadata": columns, "Records": [[typed_field(v) for v in row] for row in rows]}
        self.store.update_statement(
            statement_id,
            ACTIVE,
            status=FINISHED,
            duration_ns=time.perf_counter_ns() - began,
            result_rows=count,
            has_result_set=has_result,
            result=result,
        )

    def _run_postgres(
        self, statement_id: str, config: EndpointConfig, sql: str, params: dict[str, Any]
    ) -> _Outcome:
        with needs_extra(f"statements on endpoint {config.name!r}", "postgres"):
            import psycopg

            from conveyor.connectors.postgres.connection import connect

        with connect(config, autocommit=True) as conn:
            if not self.store.update_statement(
                statement_id,
                [PICKED],
                status=STARTED,
                started_at=dt.datetime.now(dt.UTC),
                backend_pid=conn.info.backend_pid,
            ):
                raise _NotStarted
            if config.options.get("dialect") == "redshift":
                from conveyor.orchestration.redshift_sql import translate

                sql = ";\n".join(_plain(translate(sql, "postgres")))
            with conn.cursor() as cur:
                try:
                    if params:
                        cur.execute(_named(sql).encode(), params)
                    else:
                        cur.execute(sql.encode())
                except psycopg.errors.QueryCanceled as exc:
                    if "user request" in str(exc):  # pg_cancel_backend: CancelStatement
                        raise _Cancelled from None
                    raise ConveyorError(f"statement cancelled: {exc}") from None
                if cur.description is None:
                    return None, [], max(cur.rowcount, 0)
                types = {}
                for column in cur.description:
                    info = conn.adapters.types.get(column.type_code)
                    types[column.name] = info.name if info is not None else str(column.type_code)
                columns = [_column(c.name, types[c.name]) for c in cur.description]
                rows: list[Any] = cur.fetchmany(MAX_RESULT_ROWS)
                return columns, rows, len(rows)

    def _run_duckdb(
        self, statement_id: str, config: EndpointConfig, sql: str, params: dict[str, Any]
    ) -> _Outcome:
        import duckdb

        if not config.path:
            raise ConfigError(f"endpoint {config.name!r}: a duckdb endpoint needs a path")
        conn = duckdb.connect(config.path)
        try:
            with self._lock:
                self._duckdb[statement_id] = conn
            if not self.store.update_statement(
                statement_id, [PICKED], status=STARTED, started_at=dt.datetime.now(dt.UTC)
            ):
                raise _NotStarted
            if config.options.get("dialect") == "redshift":
                from conveyor.orchestration.redshift_sql import translate

                cursor = _run_translated(conn, translate(sql, "duckdb"), params)
            else:
                cursor = conn.execute(sql, params or None)
            description: Any = cursor.description if cursor is not None else None
            if description is None:
                return None, [], 0
            columns = [_column(str(c[0]), str(c[1])) for c in description]
            rows = cursor.fetchmany(MAX_RESULT_ROWS)
            return columns, rows, len(rows)
        finally:
            with self._lock:
                self._duckdb.pop(statement_id, None)
            conn.close()

    # --- describe, result, cancel -------------------------------------------------------

    def _row(self, statement_id: str) -> StatementRow:
        row = self.store.statement(statement_id)
        if row is None:
            raise NotFoundError(f"no statement with Id {statement_id!r}")
        if row["status"] in ACTIVE and not self._alive(row):
            reason = f"the Conveyor process {row['pid']} running the statement ended"
            self.store.update_statement(statement_id, ACTIVE, status=FAILED, error=reason)
            row = self.store.statement(statement_id) or row
        return row

    def _alive(self, row: StatementRow) -> bool:
        from conveyor.replication.worker import pid_alive

        pid = row.get("pid")
        if pid == os.getpid():
            with self._lock:
                return row["id"] in self._threads
        return pid_alive(pid)

    def describe(self, statement_id: str) -> dict[str, Any]:
        """DescribeStatement's answer."""
        row = self._row(statement_id)
        described: dict[str, Any] = {
            "Id": row["id"],
            "Status": row["status"],
            "QueryString": row["query"],
            "CreatedAt": _iso(row["created_at"]),
            "UpdatedAt": _iso(row["updated_at"]),
            "Duration": row["duration_ns"] if row["status"] == FINISHED else -1,
            "ResultRows": row["result_rows"] if row["status"] == FINISHED else -1,
            "ResultSize": -1,
            "HasResultSet": bool(row["has_result_set"]),
            "ClusterIdentifier": row["endpoint"],
            "Database": row["database"],
            "RedshiftPid": row["backend_pid"] or 0,
        }
        if row["error"]:
            described["Error"] = row["error"]
        if row["statement_name"]:
            described["StatementName"] = row["statement_name"]
        return described

    def result(
        self, statement_id: str, next_token: str | None = None, page_rows: int = PAGE_ROWS
    ) -> dict[str, Any]:
        """GetStatementResult's answer: one page of records, with NextToken when more remain."""
        row = self._row(statement_id)
        if row["status"] != FINISHED:
            raise ConfigError(
                f"statement {statement_id} is {row['status']}: results exist once it is FINISHED"
            )
        if not row["has_result_set"] or row["result"] is None:
            raise ConfigError(f"statement {statement_id} has no result set")
        try:
            start = int(next_token) if next_token else 0
        except ValueError:
            raise ConfigError(f"NextToken {next_token!r} is not one this service gave") from None
        records = row["result"]["Records"]
        page: dict[str, Any] = {
            "ColumnMetadata": row["result"]["ColumnMetadata"],
            "Records": records[start : start + page_rows],
            "TotalNumRows": len(records),
        }
        if start + page_rows < len(records):
            page["NextToken"] = str(start + page_rows)
        return page

    def cancel(self, statement_id: str) -> bool:
        """Cancel a statement not yet finished: pg_cancel_backend on PostgreSQL; on DuckDB
        the statement is interrupted (rolled back), which only the process running it
        can do. True when it ends ABORTED; False when it finished first."""
        row = self._row(statement_id)
        if row["status"] not in ACTIVE:
            raise ConfigError(f"statement {statement_id} is {row['status']} and cannot be cancelled")
        if self.store.update_statement(
            statement_id, [SUBMITTED, PICKED], status=ABORTED, error="cancelled by the user"
        ):
            return True  # not started: its thread sees that and runs nothing
        row = self._row(statement_id)  # started meanwhile, or ended
        if row["status"] != STARTED:
            return row["status"] == ABORTED
        config = self.endpoint_config(row["endpoint"])
        if config.engine == "duckdb":
            return self._interrupt(statement_id, row)
        from conveyor.connectors.postgres.connection import connect

        # The statement's own thread records the end: ABORTED when the server cancelled
        # it, FINISHED when it ended first (marking it ABORTED here could say
        # "cancelled" of a statement that committed).
        with connect(config, autocommit=True) as conn:
            conn.execute("SELECT pg_cancel_backend(%s)", [row["backend_pid"]])
        deadline = time.monotonic() + CANCEL_WAIT_S
        while time.monotonic() < deadline:
            row = self._row(statement_id)
            if row["status"] not in ACTIVE:
                break
            time.sleep(0.05)
        return row["status"] == ABORTED

    def _interrupt(self, statement_id: str, row: StatementRow) -> bool:
        """Interrupt a running DuckDB statement and wait for its thread to record the end:
        ABORTED (rolled back) or, when it finished first, FINISHED. Marking it ABORTED
        while it ran on would say "cancelled" of a statement whose changes commit."""
        with self._lock:
            conn = self._duckdb.get(statement_id)
            thread = self._threads.get(statement_id)
            if conn is not None:
                self._interrupted.add(statement_id)
        if conn is None or thread is None:
            raise ConfigError(
                f"statement {statement_id} runs on DuckDB in Conveyor process {row['pid']}: only that "
                "process can cancel it (cancel it through the `conveyor serve` that ran it)"
            )
        conn.interrupt()
        thread.join(timeout=CANCEL_WAIT_S)
        current = self.store.statement(statement_id)
        return current is not None and current["status"] == ABORTED

    def wait(self, statement_id: str, timeout: float = 60.0) -> dict[str, Any]:
        """Describe the statement once it has ended (or when ``timeout`` runs out)."""
        deadline = time.monotonic() + timeout
        while True:
            described = self.describe(statement_id)
            if described["Status"] not in ACTIVE or time.monotonic() > deadline:
                return described
            time.sleep(0.05)

    def list(self, limit: int = 100) -> list[dict[str, Any]]:
        return [
            {
                "Id": r["id"],
                "Status": r["status"],
                "QueryString": r["query"],
                "CreatedAt": _iso(r["created_at"]),
                "UpdatedAt": _iso(r["updated_at"]),
                "ClusterIdentifier": r["endpoint"],
            }
            for r in self.store.list_statements(limit)
        ]


class _NotStarted(Exception):
    """The statement was cancelled after it was picked, before it started."""


class _Cancelled(Exception):
    """PostgreSQL cancelled the statement at CancelStatement's request (rolled back)."""


def _plain(translated: Sequence[Translated]) -> list[str]:
    """Statements for PostgreSQL, which holds its own procedures."""
    from conveyor.orchestration.redshift_sql import Statement

    return [t.sql for t in translated if isinstance(t, Statement)]


def _run_translated(conn: Any, translated: Sequence[Translated], params: dict[str, Any]) -> Any:
    """Run translated statements in order on DuckDB; the last one's cursor (None
    when it was a procedure's creation or call)."""
    from conveyor.orchestration import duckdb_procedures
    from conveyor.orchestration.redshift_sql import CallProcedure, CreateProcedure

    cursor = None
    for item in translated:
        if isinstance(item, CreateProcedure):
            duckdb_procedures.create(conn, item)
            cursor = None
        elif isinstance(item, CallProcedure):
            duckdb_procedures.call(conn, item)
            cursor = None
        else:
            cursor = conn.execute(item.sql, params or None)
    return cursor


def _named(sql: str) -> str:
    """The Data API's ``:name`` parameters as psycopg's ``%(name)s``."""
    import re

    escaped = sql.replace("%", "%%")
    return re.sub(r"(?<![:\w]):([A-Za-z_]\w*)", r"%(\1)s", escaped)
