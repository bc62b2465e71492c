"""Full-load benchmark: Conveyor against the physical limits of this machine.

Builds the ``orders`` table of BENCHMARKS.md in private PostgreSQL and MariaDB
servers (tests/support/servers.py, loopback only) and in an SQLite file, then
for each case alternates the reference and Conveyor (A B A B ...) for
``--rounds`` rounds and reports medians, the ratio, and each Conveyor run's
peak RSS (its own process, read with os.wait4):

  pg-pg          Conveyor (DROP_AND_CREATE: key and exact types) against
                 psql COPY TO STDOUT (binary) | psql COPY FROM STDIN (binary)
                 into an empty same-schema table with its primary key
  pg-duckdb      Conveyor against the read limit: psql COPY TO STDOUT (binary) > /dev/null
  mariadb-pg     Conveyor rows/s (no reference)
  sqlite-duckdb  Conveyor rows/s (no reference)

Every Conveyor run is checked: the target's row count must equal the source's.

    .venv/bin/python bench/full_load.py --rows 500000 --rounds 3 --cases pg-pg,pg-duckdb
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
if str(REPO / "tests") not in sys.path:
    sys.path.insert(0, str(REPO / "tests"))

import psycopg  # noqa: E402
import pymysql  # noqa: E402

from bench import data  # noqa: E402
from bench.common import BenchFailure, log, num, render_table, run_child  # noqa: E402
from support.servers import MariaDBServer, PostgresServer  # noqa: E402

CASES = ("pg-pg", "pg-duckdb", "pg-lake", "mariadb-pg", "sqlite-duckdb")
RESULTS_DIR = REPO / "bench" / "results"
# Targets from the issue: ratio to the reference, and peak RSS (MB) at 5M rows.
RATIO_TARGETS = {"pg-pg": 1.05, "pg-duckdb": 1.3, "pg-lake": 1.2, "mariadb-pg": 1.3}
RSS_TARGET_MB = 400.0
REFERENCES = {
    "pg-pg": "psql binary COPY pipe",
    "pg-duckdb": "psql binary COPY > /dev/null",
    "pg-lake": "psql binary COPY > /dev/null",
    "mariadb-pg": "mariadb --quick --batch | psql COPY FROM STDIN",
}
# The reference pipe's table in the PostgreSQL target (text COPY of the client's output).
MARIADB_REF_SCHEMA = "mariadb_ref"
MARIADB_REF_DDL = f"""
CREATE TABLE {MARIADB_REF_SCHEMA}.orders (
    id bigint PRIMARY KEY, customer_id integer NOT NULL, status varchar(32) NOT NULL,
    amount numeric(12,2) NOT NULL, created_at timestamptz NOT NULL, note text,
    flag boolean NOT NULL, attrs jsonb
)
"""
PG_SOURCE_DB = "bench_src"
PG_TARGET_DB = "bench_dst"
MARIADB_DB = "bench_src"


@dataclass
class ConveyorRun:
    seconds: float  # the load, measured inside the child (catalog query to target closed)
    process_seconds: float  # the child's wall time, interpreter start and imports included
    peak_rss_mb: float  # the child's own ru_maxrss
    rows: int
    raw_format: str | None
    cpu_seconds: float = 0.0  # the child's user + system CPU


@dataclass
class CaseResult:
    case: str
    rows: int
    reference: str | None
    reference_runs: list[float] = field(default_factory=list)
    conveyor_runs: list[ConveyorRun] = field(default_factory=list)

    @property
    def reference_median(self) -> float | None:
        return statistics.median(self.reference_runs) if self.reference_runs else None

    @property
    def conveyor_median(self) -> float | None:
        return statistics.median(r.seconds for r in self.conveyor_runs) if self.conveyor_runs else None

    @property
    def process_median(self) -> float | None:
        if not self.conveyor_runs:
            return None
        return statistics.median(r.process_seconds for r in self.conveyor_runs)

    @property
    def ratio(self) -> float | None:
        ref, conv = self.reference_median, self.conveyor_median
        return conv / ref if ref and conv is not None else None

    @property
    def peak_rss_mb(self) -> float | None:
        return max(r.peak_rss_mb for r in self.conveyor_runs) if self.conveyor_runs else None

    @property
    def rows_per_second(self) -> float | None:
        conv = self.conveyor_median
        return self.rows / conv if conv else None

    def verdict(self) -> str:
        notes = []
        target = RATIO_TARGETS.get(self.case)
        if target is not None and self.ratio is not None:
            notes.append("ratio ok" if self.ratio <= target else f"ratio > {target}x")
        rss = self.peak_rss_mb
        if rss is not None:
            notes.append("rss ok" if rss < RSS_TARGET_MB else f"rss >= {RSS_TARGET_MB:.0f} MB")
        return ", ".join(notes)

    def as_dict(self) -> dict[str, Any]:
        return {
            "case": self.case,
            "rows": self.rows,
            "reference": self.reference,
            "reference_runs_s": self.reference_runs,
            "conveyor_runs": [asdict(r) for r in self.conveyor_runs],
            "reference_median_s": self.reference_median,
            "conveyor_median_s": self.conveyor_median,
            "conveyor_process_median_s": self.process_median,
            "ratio": self.ratio,
            "ratio_target": RATIO_TARGETS.get(self.case),
            "rows_per_second": self.rows_per_second,
            "peak_rss_mb": self.peak_rss_mb,
            "rss_target_mb": RSS_TARGET_MB,
            "verdict": self.verdict(),
        }


# --- processes -----------------------------------------------------------------------


def run_conveyor(
    case: str, source: str, target: str, workdir: Path, timeout_s: float, batch_rows: int
) -> ConveyorRun:
    command = [sys.executable, "-m", "bench.run_one", case, "--source", source, "--target", target]
    out = run_child([*command, "--batch-rows", str(batch_rows)], workdir, case, f"conveyor {case}", timeout_s)
    return ConveyorRun(
        seconds=float(out.result["seconds"]),
        process_seconds=out.process_seconds,
        peak_rss_mb=out.peak_rss_mb,
        rows=int(out.result["rows"]),
        raw_format=out.result["raw_format"],
        cpu_seconds=out.cpu_seconds,
    )


def psql(server: PostgresServer, db: str, command: str) -> list[str]:
    return [
        str(server.bindir / "psql"),
        "-X",
        "-q",
        "-v",
        "ON_ERROR_STOP=1",
        "-h",
        server.host,
        "-p",
        str(server.port),
        "-U",
        server.user,
        "-d",
        db,
        "-c",
        command,
    ]


def psql_env() -> dict[str, str]:
    return os.environ | {"PGCONNECT_TIMEOUT": "10", "PGAPPNAME": "conveyor-bench-reference"}


def _timed_pipe(
    reader: list[str], reader_env: dict[str, str] | None, writer: list[str], what: str, timeout_s: float
) -> float:
    """``reader | writer``, both killed after ``timeout_s``; the wall seconds."""
    began = time.perf_counter()
    out = subprocess.Popen(
        reader, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=reader_env
    )
    assert out.stdout is not None
    into = subprocess.Popen(
        writer, stdin=out.stdout, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=psql_env()
    )
    out.stdout.close()
    try:
        _, into_err = into.communicate(timeout=timeout_s)
        _, out_err = out.communicate(timeout=max(1.0, timeout_s - (time.perf_counter() - began)))
    except subprocess.TimeoutExpired:
        for proc in (out, into):
            proc.kill()
            proc.wait()
        raise BenchFailure(f"{what}: no result within {timeout_s:.0f} s (killed)") from None
    seconds = time.perf_counter() - began
    if out.returncode or into.returncode:
        raise BenchFailure(
            f"{what} failed ({out.returncode}, {into.returncode}): "
            f"{out_err.decode(errors='replace')} {into_err.decode(errors='replace')}"
        )
    return seconds


def reference_pipe(server: PostgresServer, timeout_s: float) -> float:
    """psql COPY TO STDOUT (binary) | psql COPY FROM STDIN (binary); seconds."""
    return _timed_pipe(
        psql(server, PG_SOURCE_DB, "COPY orders TO STDOUT (FORMAT binary)"),
        psql_env(),
        psql(server, PG_TARGET_DB, "COPY orders FROM STDIN (FORMAT binary)"),
        "reference pipe",
        timeout_s,
    )


def reference_mariadb_pipe(mariadb: MariaDBServer, pg: PostgresServer, timeout_s: float) -> float:
    """mariadb --quick --batch -e "SELECT ..." | psql COPY FROM STDIN (text, NULL 'NULL'); seconds.
    The client's batch output is tab-separated with backslash escapes, the
    form COPY's text format reads; only the timing is the reference's (its
    text form does not keep exact types)."""
    select = "SELECT id, customer_id, status, amount, created_at, note, flag, attrs FROM orders"
    reader = ["mariadb", "--quick", "--batch", "--skip-column-names", "-h", mariadb.host]
    reader += ["-P", str(mariadb.port), "-u", mariadb.user, MARIADB_DB, "-e", select]
    return _timed_pipe(
        reader,
        None,
        psql(pg, PG_TARGET_DB, f"COPY {MARIADB_REF_SCHEMA}.orders FROM STDIN (FORMAT text, NULL 'NULL')"),
        "mariadb reference pipe",
        timeout_s,
    )


def reference_read(server: PostgresServer, timeout_s: float) -> float:
    """psql COPY TO STDOUT (binary) > /dev/null; seconds."""
    began = time.perf_counter()
    result = subprocess.run(
        psql(server, PG_SOURCE_DB, "COPY orders TO STDOUT (FORMAT binary)"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=psql_env(),
        timeout=timeout_s,
        check=False,
    )
    seconds = time.perf_counter() - began
    if result.returncode:
        raise BenchFailure(f"reference read failed: {result.stderr.decode(errors='replace')}")
    return seconds


# --- the bench -----------------------------------------------------------------------


@dataclass
class Setup:
    rows: int
    rounds: int
    timeout_s: float
    batch_rows: int
    workdir: Path
    pg: PostgresServer | None = None
    mariadb: MariaDBServer | None = None
    sqlite_path: Path | None = None
    build_seconds: dict[str, float] = field(default_factory=dict)

    def pg_url(self, db: str) -> str:
        assert self.pg is not None
        return self.pg.url(db)


def expect_rows(what: str, got: int, want: int) -> None:
    if got != want:
        raise BenchFailure(f"{what}: {got:,} rows, the source has {want:,} - rows lost or duplicated")


def start_sources(setup: Setup, cases: list[str]) -> None:
    needs_pg = any(c in cases for c in ("pg-pg", "pg-duckdb", "pg-lake", "mariadb-pg"))
    if needs_pg:
        setup.pg = PostgresServer()
        setup.pg.start()
        with psycopg.connect(setup.pg.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {PG_TARGET_DB}")
            if any(c in cases for c in ("pg-pg", "pg-duckdb", "pg-lake")):
                conn.execute(f"CREATE DATABASE {PG_SOURCE_DB}")
        log(f"postgres {setup.pg.bindir} on 127.0.0.1:{setup.pg.port}")
    if any(c in cases for c in ("pg-pg", "pg-duckdb", "pg-lake")):
        began = time.perf_counter()
        count = data.build_postgres(setup.pg_url(PG_SOURCE_DB), setup.rows, int(setup.timeout_s))
        setup.build_seconds["postgres"] = time.perf_counter() - began
        expect_rows("postgres source", count, setup.rows)
        log(f"built postgres orders: {count:,} rows in {setup.build_seconds['postgres']:.1f} s")
    if "mariadb-pg" in cases:
        setup.mariadb = MariaDBServer()
        setup.mariadb.start()
        admin = pymysql.connect(host=setup.mariadb.host, port=setup.mariadb.port, user="root", password="")
        try:
            with admin.cursor() as cur:
                cur.execute(f"CREATE DATABASE {MARIADB_DB} CHARACTER SET utf8mb4")
        finally:
            admin.close()
        log(f"mariadb on 127.0.0.1:{setup.mariadb.port}")
        began = time.perf_counter()
        count = data.build_mariadb(
            setup.mariadb.host, setup.mariadb.port, MARIADB_DB, setup.rows, int(setup.timeout_s)
        )
        setup.build_seconds["mariadb"] = time.perf_counter() - began
        expect_rows("mariadb source", count, setup.rows)
        log(f"built mariadb orders: {count:,} rows in {setup.build_seconds['mariadb']:.1f} s")
    if "sqlite-duckdb" in cases:
        setup.sqlite_path = setup.workdir / "orders.sqlite"
        began = time.perf_counter()
        count = data.build_sqlite(setup.sqlite_path, setup.rows)
        setup.build_seconds["sqlite"] = time.perf_counter() - began
        expect_rows("sqlite source", count, setup.rows)
        log(f"built sqlite orders: {count:,} rows in {setup.build_seconds['sqlite']:.1f} s")


def remove_duckdb(path: Path) -> None:
    for leftover in (path, path.with_name(path.name + ".wal")):
        leftover.unlink(missing_ok=True)


def run_case(setup: Setup, case: str) -> CaseResult:
    result = CaseResult(case, setup.rows, REFERENCES.get(case))
    reference: Callable[[], float] | None = None
    prepare_reference: Callable[[], None] = lambda: None  # noqa: E731
    if case == "pg-pg":
        assert setup.pg is not None
        pg = setup.pg
        dst = setup.pg_url(PG_TARGET_DB)
        source, target = setup.pg_url(PG_SOURCE_DB), dst

        def prepare_reference() -> None:
            data.create_postgres_like(dst)
            data.checkpoint(dst)

        def reference() -> float:
            seconds = reference_pipe(pg, setup.timeout_s)
            expect_rows("reference pipe", data.count_postgres(dst), setup.rows)
            return seconds

        def prepare() -> None:
            data.drop_postgres(dst)
            data.checkpoint(dst)

        want_shape = data.postgres_shape(source)

        def check(run: ConveyorRun) -> None:
            expect_rows("conveyor pg-pg target", data.count_postgres(dst), setup.rows)
            shape = data.postgres_shape(dst)
            if shape != want_shape:
                raise BenchFailure(f"conveyor pg-pg target table {shape} is not the source's {want_shape}")
    elif case == "pg-duckdb":
        assert setup.pg is not None
        pg = setup.pg
        duck = setup.workdir / "pg.duckdb"
        source, target = setup.pg_url(PG_SOURCE_DB), str(duck)

        def reference() -> float:
            return reference_read(pg, setup.timeout_s)

        def prepare() -> None:
            remove_duckdb(duck)

        def check(run: ConveyorRun) -> None:
            expect_rows("conveyor pg-duckdb target", data.count_duckdb(duck, "public"), setup.rows)
    elif case == "pg-lake":
        assert setup.pg is not None
        pg = setup.pg
        lake = setup.workdir / "lake"
        source, target = setup.pg_url(PG_SOURCE_DB), str(lake)

        def reference() -> float:
            return reference_read(pg, setup.timeout_s)

        def prepare() -> None:
            shutil.rmtree(lake, ignore_errors=True)

        def check(run: ConveyorRun) -> None:
            expect_rows("conveyor pg-lake target", data.count_parquet(lake), setup.rows)
    elif case == "mariadb-pg":
        assert setup.mariadb is not None and setup.pg is not None
        pg, maria = setup.pg, setup.mariadb
        dst = setup.pg_url(PG_TARGET_DB)
        source, target = setup.mariadb.url(MARIADB_DB), dst

        def prepare_reference() -> None:
            with psycopg.connect(dst, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {MARIADB_REF_SCHEMA} CASCADE")
                conn.execute(f"CREATE SCHEMA {MARIADB_REF_SCHEMA}")
                conn.execute(MARIADB_REF_DDL)
                conn.execute("CHECKPOINT")

        def reference() -> float:
            seconds = reference_mariadb_pipe(maria, pg, setup.timeout_s)
            expect_rows("mariadb reference pipe", data.count_postgres(dst, MARIADB_REF_SCHEMA), setup.rows)
            return seconds

        def prepare() -> None:
            with psycopg.connect(dst, autocommit=True) as conn:
                conn.execute(f"DROP SCHEMA IF EXISTS {MARIADB_DB} CASCADE")
                conn.execute("CHECKPOINT")

        def check(run: ConveyorRun) -> None:
            expect_rows("conveyor mariadb-pg target", data.count_postgres(dst, MARIADB_DB), setup.rows)
    else:
        assert setup.sqlite_path is not None
        duck = setup.workdir / "sqlite.duckdb"
        source, target = str(setup.sqlite_path), str(duck)

        def prepare() -> None:
            remove_duckdb(duck)

        def check(run: ConveyorRun) -> None:
            expect_rows("conveyor sqlite-duckdb target", data.count_duckdb(duck, "main"), setup.rows)

    for round_no in range(1, setup.rounds + 1):
        if reference is not None:
            prepare_reference()
            seconds = reference()
            result.reference_runs.append(seconds)
            log(f"  {case} round {round_no}: reference {seconds:7.2f} s")
        prepare()
        run = run_conveyor(case, source, target, setup.workdir, setup.timeout_s, setup.batch_rows)
        expect_rows(f"conveyor {case} (reported)", run.rows, setup.rows)
        check(run)
        result.conveyor_runs.append(run)
        log(
            f"  {case} round {round_no}: conveyor  {run.seconds:7.2f} s "
            f"(process {run.process_seconds:.2f} s, peak RSS {run.peak_rss_mb:.0f} MB, "
            f"path {run.raw_format or 'arrow batches'})"
        )
    return result


def table(results: list[CaseResult]) -> str:
    header = (
        "case",
        "rows",
        "reference",
        "ref median s",
        "conveyor median s",
        "process s",
        "ratio",
        "target",
        "conveyor rows/s",
        "peak RSS MB",
        "verdict",
    )
    lines = [header]
    for r in results:
        target = RATIO_TARGETS.get(r.case)
        lines.append(
            (
                r.case,
                f"{r.rows:,}",
                r.reference or "-",
                num(r.reference_median, ".2f"),
                num(r.conveyor_median, ".2f"),
                num(r.process_median, ".2f"),
                "-" if r.ratio is None else f"{r.ratio:.2f}x",
                "-" if target is None else f"<= {target:.2f}x",
                num(r.rows_per_second, ",.0f"),
                num(r.peak_rss_mb, ".0f"),
                r.verdict(),
            )
        )
    return render_table(lines[0], lines[1:], {1, 3, 4, 5, 6, 8, 9})


def environment(setup: Setup) -> dict[str, Any]:
    import duckdb
    import pyarrow

    env: dict[str, Any] = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "duckdb": duckdb.__version__,
        "pyarrow": pyarrow.__version__,
        "psycopg": psycopg.__version__,
    }
    if setup.pg is not None:
        with psycopg.connect(setup.pg.url()) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            env["postgres"] = row[0] if row else None
    return env


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/full_load.py",
        description="Full-load benchmark of Conveyor against psql COPY references (see bench/README.md).",
    )
    parser.add_argument("--rows", type=int, default=5_000_000, help="rows in orders (default 5000000)")
    parser.add_argument("--rounds", type=int, default=3, help="alternated rounds per case (default 3)")
    parser.add_argument(
        "--cases", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)} (default all)"
    )
    parser.add_argument("--batch-rows", type=int, default=10_000, help="Conveyor CommitRate (default 10000)")
    parser.add_argument(
        "--timeout", type=float, help="seconds any one step may take (default: scaled with --rows)"
    )
    parser.add_argument("--no-json", action="store_true", help="do not write bench/results/<timestamp>.json")
    args = parser.parse_args(argv)
    args.case_list = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in args.case_list if c not in CASES]
    if unknown or not args.case_list:
        parser.error(f"unknown case(s) {unknown}; choose from {', '.join(CASES)}")
    if args.rows < 1 or args.rounds < 1:
        parser.error("--rows and --rounds must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    timeout_s = args.timeout or max(300.0, args.rows / 2500)
    started = datetime.now(UTC)
    workdir = Path(tempfile.mkdtemp(prefix="conveyor-bench-", dir="/tmp"))
    setup = Setup(args.rows, args.rounds, timeout_s, args.batch_rows, workdir)
    results: list[CaseResult] = []
    failure: str | None = None
    env: dict[str, Any] = {}
    log(f"conveyor full-load bench: {args.rows:,} rows, {args.rounds} rounds, cases {args.case_list}")
    try:
        start_sources(setup, args.case_list)
        env = environment(setup)
        for case in args.case_list:
            log(f"{case}:")
            results.append(run_case(setup, case))
    except BenchFailure as exc:
        failure = str(exc)
    finally:
        for server in (setup.mariadb, setup.pg):
            if server is not None:
                server.close()
        shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(table(results))
    if not args.no_json:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        path = RESULTS_DIR / f"{started.strftime('%Y%m%dT%H%M%SZ')}.json"
        document = {
            "started": started.isoformat(),
            "rows": args.rows,
            "rounds": args.rounds,
            "batch_rows": args.batch_rows,
            "environment": env,
            "build_seconds": setup.build_seconds,
            "results": [r.as_dict() for r in results],
            "failure": failure,
        }
        path.write_text(json.dumps(document, indent=2) + "\n")
        print(f"\nresults: {path.relative_to(REPO)}")
    if failure is not None:
        print(f"\nBENCH FAILED: {failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
