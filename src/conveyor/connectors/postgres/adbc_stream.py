"""A query's rows as Arrow batches from the ADBC PostgreSQL driver (binary COPY
underneath), on ADBC's own handles rather than its DB-API module: that module
imports pyarrow.dataset and pandas (about 45 MB of a load's peak RSS and 0.3 s
of start-up), none of which a stream of batches needs."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import pyarrow as pa

from conveyor.connectors.base import EndpointConfig
from conveyor.connectors.postgres import connection
from conveyor.core.errors import ConnectionFailed

# The driver's batches are about this size (its default is 16 MB).
BATCH_BYTES = 8 << 20


@contextlib.contextmanager
def query_batches(
    config: EndpointConfig, query: str, setup: Sequence[str] = ()
) -> Iterator[pa.RecordBatchReader]:
    """The rows of ``query`` in one read-only transaction (rolled back on
    exit), after the ``setup`` statements run in it."""
    import adbc_driver_manager as adbc
    import adbc_driver_postgresql

    try:
        database = adbc_driver_postgresql.connect(connection.adbc_uri(config))
    except adbc.Error as exc:
        raise ConnectionFailed(connection.describe_failure(config, exc)) from None
    with contextlib.ExitStack() as stack:
        stack.callback(database.close)
        try:
            conn = adbc.AdbcConnection(database)
        except adbc.Error as exc:
            raise ConnectionFailed(connection.describe_failure(config, exc)) from None
        stack.callback(conn.close)
        conn.set_autocommit(False)
        stack.callback(conn.rollback)
        for text in setup:
            with adbc.AdbcStatement(conn) as statement:
                statement.set_sql_query(text)
                statement.execute_update()
        statement = stack.enter_context(adbc.AdbcStatement(conn))
        statement.set_options(**{"adbc.postgresql.batch_size_hint_bytes": str(BATCH_BYTES)})
        statement.set_sql_query(query)
        handle, _ = statement.execute_query()
        reader = pa.RecordBatchReader.from_stream(handle)
        stack.callback(reader.close)
        yield reader
