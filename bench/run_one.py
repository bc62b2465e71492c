"""One Conveyor full load of the bench's ``orders`` table, run in a process of
its own so that the parent can read this process's peak RSS (``os.wait4``).

    python -m bench.run_one pg-pg --source URL --target URL --result out.json

Writes a JSON document to ``--result``: the rows Conveyor reports, the table's
final state, the seconds from the first catalog query to the target closed,
and whether the raw (binary COPY) path was taken. ``--profile`` writes a
cProfile of the load (slower; for finding where time goes, not for timings).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from conveyor.connectors.base import EndpointConfig, PrepMode, Snapshot, Source, TableLoad, Target
from conveyor.connectors.duckdb.target import DuckDBTarget
from conveyor.connectors.mysql.source import MySQLSource
from conveyor.connectors.postgres.source import PostgresSource
from conveyor.connectors.postgres.target import PostgresTarget
from conveyor.connectors.sqlite.source import SQLiteSource
from conveyor.core.schema import TableRef, TableSchema
from conveyor.replication.full_load import TABLE_COMPLETED, FullLoad, TablePlan

TABLE = "orders"
# case: (source engine, target engine)
CASES: dict[str, tuple[str, str]] = {
    "pg-pg": ("postgres", "postgres"),
    "pg-duckdb": ("postgres", "duckdb"),
    "mariadb-pg": ("mysql", "postgres"),
    "sqlite-duckdb": ("sqlite", "duckdb"),
    "pg-lake": ("postgres", "lake"),
}


def endpoint(name: str, engine: str, where: str) -> EndpointConfig:
    if engine == "lake":  # a local folder, Parquet files (zstd, the lake's default)
        options = {"settings": {}, "format": "parquet"}
        return EndpointConfig(name=name, engine=engine, path=where, options=options)
    if engine in {"duckdb", "sqlite"}:
        return EndpointConfig(name=name, engine=engine, path=where)
    return EndpointConfig(name=name, engine=engine, url=where)


def make_source(config: EndpointConfig) -> Source:
    if config.engine == "postgres":
        return PostgresSource(config)
    if config.engine == "mysql":
        return MySQLSource(config)
    return SQLiteSource(config)


def make_target(config: EndpointConfig) -> Target:
    if config.engine == "postgres":
        return PostgresTarget(config)
    if config.engine == "lake":
        from conveyor.connectors.lake.target import LakeTarget

        return LakeTarget(config)
    return DuckDBTarget(config)


class RecordingTarget:
    """A target that remembers whether its table load took the raw format."""

    def __init__(self, inner: Target) -> None:
        self.inner = inner
        self.raw_format: str | None = None

    def check(self) -> str:
        return self.inner.check()

    def describe(self, ref: TableRef) -> TableSchema | None:
        return self.inner.describe(ref)

    def begin_load(self, table: TableSchema, mode: PrepMode) -> TableLoad:
        load = self.inner.begin_load(table, mode)
        self.raw_format = getattr(load, "raw_format", None)
        return load

    def read(
        self, table: TableSchema, batch_rows: int, order_by_key: bool = False
    ) -> Iterator[pa.RecordBatch]:
        return self.inner.read(table, batch_rows, order_by_key)

    def count(self, ref: TableRef) -> int:
        return self.inner.count(ref)

    def close(self) -> None:
        self.inner.close()


def load(case: str, source_at: str, target_at: str, batch_rows: int) -> dict[str, Any]:
    """The full load, timed from the first catalog query until the target is closed."""
    source_engine, target_engine = CASES[case]
    began = time.perf_counter()
    source = make_source(endpoint("bench-source", source_engine, source_at))
    target = RecordingTarget(make_target(endpoint("bench-target", target_engine, target_at)))
    tables = [t for t in source.tables() if t.ref.name == TABLE]
    if len(tables) != 1:
        raise SystemExit(f"run_one: the source has {len(tables)} tables named {TABLE!r}")
    snapshot: Snapshot = source.snapshot()
    try:
        plan = TablePlan(tables[0], tables[0])
        [progress] = FullLoad(snapshot, target, [plan], PrepMode.DROP_AND_CREATE, batch_rows=batch_rows).run()
    finally:
        snapshot.close()
        target.close()
        source.close()
    seconds = time.perf_counter() - began
    return {
        "case": case,
        "rows": progress.rows,
        "state": progress.state,
        "error": progress.error,
        "seconds": seconds,
        "raw_format": target.raw_format,
    }


def profiled(path: Path, func: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """Run ``func`` under cProfile, threads included (the full load runs each
    table in a worker thread, which a plain cProfile of this thread misses)."""
    profilers = [cProfile.Profile()]

    def start_in_thread(frame: Any, event: str, arg: Any) -> None:
        sys.setprofile(None)
        profiler = cProfile.Profile()
        profilers.append(profiler)
        profiler.enable()

    threading.setprofile(start_in_thread)
    try:
        result = profilers[0].runcall(func, *args)
    finally:
        threading.setprofile(None)
    stats = pstats.Stats(profilers[0])
    for profiler in profilers[1:]:
        profiler.disable()
        stats.add(profiler)
    stats.dump_stats(path)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run_one", description=__doc__.split("\n")[0])
    parser.add_argument("case", choices=sorted(CASES))
    parser.add_argument("--source", required=True, help="source URL (or SQLite file)")
    parser.add_argument("--target", required=True, help="target URL (or DuckDB file)")
    parser.add_argument("--result", required=True, type=Path, help="where to write the JSON result")
    parser.add_argument("--batch-rows", type=int, default=10_000, help="CommitRate (default 10000)")
    parser.add_argument("--profile", type=Path, help="write a cProfile of the load here")
    args = parser.parse_args(argv)
    if args.profile is not None:
        result = profiled(args.profile, load, args.case, args.source, args.target, args.batch_rows)
    else:
        result = load(args.case, args.source, args.target, args.batch_rows)
    args.result.write_text(json.dumps(result))
    if result["state"] != TABLE_COMPLETED:
        print(f"run_one: {args.case}: the table did not complete: {result['error']}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
