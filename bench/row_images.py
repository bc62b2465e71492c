"""Row-image decoding alone: Conveyor's decoder (connectors/mysql/row_images.py)
against pymysqlreplication's, on the same binlog events, alternated per event.

A private MariaDB server (tests/support/servers.py) gets the bench's ``orders``
table (bench/data.py) and ``--updates`` single-row UPDATEs in 1,000-row
transactions; the capture's own binlog reader reads them back. For each rows
event the fast decoder runs first (it does not consume the packet), then
pymysqlreplication's ``event.rows``; both results must be equal. Prints the
seconds each spent and the ratio (the machine is shared: only the ratio means
anything).

    python bench/row_images.py --updates 50000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
if str(REPO / "tests") not in sys.path:
    sys.path.insert(0, str(REPO / "tests"))

import pymysql  # noqa: E402
from pymysqlreplication.row_event import (  # type: ignore[import-untyped]  # noqa: E402
    DeleteRowsEvent,
    UpdateRowsEvent,
    WriteRowsEvent,
)

from bench import data  # noqa: E402
from bench.cdc import MARIADB_UPDATES, TXN_ROWS  # noqa: E402
from conveyor.connectors.base import EndpointConfig  # noqa: E402
from conveyor.connectors.mysql.capture import MySQLChangeSource  # noqa: E402
from conveyor.connectors.mysql.row_images import RowImageDecoder  # noqa: E402
from support.servers import MariaDBServer  # noqa: E402

DB = "bench_src"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/row_images.py", description=__doc__.split("\n")[0])
    parser.add_argument("--updates", type=int, default=50_000)
    args = parser.parse_args(argv)
    server = MariaDBServer()
    try:
        server.start()
        admin = pymysql.connect(host=server.host, port=server.port, user="root", password="", autocommit=True)
        with admin.cursor() as cur:
            cur.execute(f"CREATE DATABASE {DB} CHARACTER SET utf8mb4")
        admin.close()
        data.build_mariadb(server.host, server.port, DB, args.updates, 600)
        source = MySQLChangeSource(EndpointConfig(name="bench", engine="mysql", url=server.url(DB)))
        tables = [t for t in source.tables() if t.ref.name == "orders"]
        start = source.begin_capture("bench-decode", tables, export_snapshot=False)
        conn = pymysql.connect(host=server.host, port=server.port, user="root", password="", database=DB)
        with conn.cursor() as cur:
            cur.execute(MARIADB_UPDATES)
            cur.execute("CALL bench_updates(%s, %s)", (args.updates, TXN_ROWS))
        conn.commit()
        conn.close()
        stream = source.open_stream("bench-decode", tables, start.position)
        decoder = RowImageDecoder()
        fast_s = slow_s = 0.0
        rows = 0
        deadline = time.monotonic() + 600
        idle = 0
        while rows < args.updates and time.monotonic() < deadline and idle < 100:
            event = stream._reader.fetchone()
            if event is None:
                idle += 1
                continue
            if not isinstance(event, WriteRowsEvent | UpdateRowsEvent | DeleteRowsEvent):
                continue
            began = time.perf_counter()
            fast = decoder._fast(event)
            fast_s += time.perf_counter() - began
            began = time.perf_counter()
            slow = event.rows
            slow_s += time.perf_counter() - began
            if fast != slow:
                raise SystemExit(f"the decoders differ: {fast!r} != {slow!r}")
            rows += len(slow)
        stream.close()
        source.close()
    finally:
        server.close()
    print(
        f"{rows:,} update rows (before and after images): pymysqlreplication {slow_s:.2f} s "
        f"({rows / slow_s:,.0f} rows/s), Conveyor's row_images {fast_s:.2f} s ({rows / fast_s:,.0f} rows/s): "
        f"{slow_s / fast_s:.1f}x faster (a shared machine: the ratio, not the times)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
