"""Cost of one comparison round of validation during change capture on a
200k-row table with a few changed rows: the whole table (what each round read
before issue 11, and still the first comparison of a table) against only the
changed keys (each round after it). PostgreSQL -> PostgreSQL and -> DuckDB, in
this process (CPU is this process's; the servers' own CPU is not counted).

    PYTHONPATH=src python bench/validation_cdc.py [--rows 200000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import psycopg

REPO = Path(__file__).resolve().parent.parent
for extra in (REPO, REPO / "tests"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

from conveyor.connectors.base import EndpointConfig  # noqa: E402
from conveyor.connectors.registry import open_source, open_target  # noqa: E402
from conveyor.core.schema import TableRef  # noqa: E402
from conveyor.replication.full_load import TablePlan  # noqa: E402
from conveyor.replication.settings import ValidationSettings  # noqa: E402
from conveyor.replication.validation import ValidationRun, validate_table  # noqa: E402
from conveyor.replication.validation_keys import validate_keys  # noqa: E402
from support.servers import PostgresServer  # noqa: E402

ROWS_SQL = (
    "CREATE TABLE public.items AS SELECT g::bigint AS id, 'item ' || g AS name, "
    "timestamp '2020-01-01 10:00:00.5' + g * interval '1 second' AS ts, (g * 1.25)::numeric(12, 2) AS n "
    "FROM generate_series(1, {rows}) g"
)
DUCK_SQL = (
    "CREATE TABLE public.items (id BIGINT PRIMARY KEY, name VARCHAR, ts TIMESTAMP, n DECIMAL(12, 2)); "
    "INSERT INTO public.items SELECT g, 'item ' || g, "
    "TIMESTAMP '2020-01-01 10:00:00.5' + g * INTERVAL 1 SECOND, "
    "g * 1.25 FROM range(1, {rows} + 1) t(g)"
)


def measure(what: Callable[[], object], repeat: int) -> tuple[float, float]:
    """Best of ``repeat``: (wall seconds, CPU seconds of this process)."""
    best: tuple[float, float] | None = None
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        what()
        taken = (time.perf_counter() - wall, time.process_time() - cpu)
        best = taken if best is None or taken[0] < best[0] else best
    assert best is not None
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    server = PostgresServer()
    server.start()
    try:
        source_url, target_url = (
            server.url(server.new_database("vsrc")),
            server.url(server.new_database("vdst")),
        )
        for url in (source_url, target_url):
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(ROWS_SQL.format(rows=args.rows))
                conn.execute("ALTER TABLE public.items ADD PRIMARY KEY (id)")
                conn.execute("ANALYZE public.items")
        with tempfile.TemporaryDirectory() as folder:
            duck = str(Path(folder) / "dw.duckdb")
            with duckdb.connect(duck) as conn:
                conn.execute("CREATE SCHEMA public")
                conn.execute(DUCK_SQL.format(rows=args.rows))
            targets = {
                "postgres": EndpointConfig("dst", "postgres", url=target_url),
                "duckdb": EndpointConfig("dst", "duckdb", path=duck),
            }
            source = open_source(EndpointConfig("src", "postgres", url=source_url))
            table = next((t for t in source.tables() if t.ref == TableRef("public", "items")), None)
            assert table is not None
            plan = TablePlan(table, table)
            run = ValidationRun("bench", ValidationSettings(), record=False)
            print(f"{args.rows} rows; best of {args.repeat}; wall s / CPU s of this process")
            for name, config in targets.items():
                target = open_target(config)
                snapshot = source.snapshot()
                try:
                    whole = measure(
                        lambda s=snapshot, t=target: validate_table(s, t, plan, run=run), args.repeat
                    )
                    print(f"  PG -> {name}: whole table      {whole[0]:7.3f} s wall {whole[1]:7.3f} s CPU")
                    for changed in (10, 1000):
                        keys = [(str(k),) for k in range(1, args.rows, args.rows // changed)][:changed]
                        result = validate_keys(snapshot, target, plan, keys, run)
                        assert result is not None and result.state == "Validated", result
                        taken = measure(
                            lambda k=keys, s=snapshot, t=target: validate_keys(s, t, plan, k, run),
                            args.repeat,
                        )
                        print(
                            f"  PG -> {name}: {changed:5d} changed keys "
                            f"{taken[0]:7.3f} s wall {taken[1]:7.3f} s CPU"
                        )
                finally:
                    snapshot.close()
                    target.close()
            source.close()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
