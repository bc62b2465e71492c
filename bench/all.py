"""Every path in one table: ``make bench`` (``QUICK=1`` for a smoke run).

Runs, one after the other, each with its own private servers
(tests/support/servers.py) and each alternating Conveyor with its reference
in the same run (A B A B, medians of ``--rounds``):

  fixed cost     conveyor tasks start NAME --wait, 1-row table   | python -c pass        (bench/fixed_cost.py)
  pg-pg          full load PostgreSQL -> PostgreSQL              | psql binary COPY pipe (bench/full_load.py)
  pg-duckdb      full load PostgreSQL -> DuckDB                  | psql binary COPY > /dev/null
  pg-lake        full load PostgreSQL -> lake (Parquet files)    | psql binary COPY > /dev/null
  mariadb-pg     full load MariaDB -> PostgreSQL                 | mariadb --quick --batch | psql COPY
  cdc pg-pg      500k single-row updates, capture + apply        | pg_recvlogical drain   (bench/cdc.py)
  cdc mariadb-pg the same on MariaDB                             | mariadb-binlog --raw drain
  cdc latency    PostgreSQL -> PostgreSQL at 2k changes/s, 10-row  | (none: the p99 latency from source
                 transactions; commit time to target commit time |  commit to target commit, < 0.1 s)
  curate merge   change files merged into a curated Delta table  | DuckDB SQL merge       (bench/curate.py)

The ratio is always Conveyor seconds / reference seconds (lower is better;
for CDC a rate target of at least 0.9x is a time ratio of at most 1.11x).
Peak RSS and CPU are those of Conveyor's own processes (each run is a child
reaped with os.wait4: its ru_maxrss is the largest of it and any child it
reaped; CPU is user + system of both), not the database servers'.

Prints the table and writes it, with the date and the machine, to
docs/benchmarks.md (``--no-doc`` skips that).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
if str(REPO / "tests") not in sys.path:
    sys.path.insert(0, str(REPO / "tests"))

from bench import cdc, curate, fixed_cost, full_load  # noqa: E402
from bench.common import BenchFailure, log, num, render_table  # noqa: E402
from support.servers import PostgresServer  # noqa: E402

PATHS = (
    "fixed",
    "pg-pg",
    "pg-duckdb",
    "pg-lake",
    "mariadb-pg",
    "cdc-pg",
    "cdc-mariadb",
    "cdc-latency",
    "curate-merge",
)
DOC = REPO / "docs" / "benchmarks.md"
HEADER = (
    "path",
    "size",
    "reference",
    "conveyor s",
    "reference s",
    "ratio",
    "target",
    "rounds",
    "conveyor rate/s",
    "peak RSS MB",
    "CPU-s / M rows",
    "verdict",
)
NUMERIC = {1, 3, 4, 5, 7, 8, 9, 10}


@dataclass
class PathResult:
    path: str
    size: int  # rows or changes moved per round
    unit: str  # "rows" or "changes"
    reference: str
    conveyor_s: list[float] = field(default_factory=list)
    reference_s: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)
    target: str = ""
    check: Callable[[PathResult], str] | None = None
    achieved_rate: float | None = None  # a paced path's rate (the latency case): not size / seconds

    @property
    def conveyor(self) -> float | None:
        return statistics.median(self.conveyor_s) if self.conveyor_s else None

    @property
    def ref(self) -> float | None:
        return statistics.median(self.reference_s) if self.reference_s else None

    @property
    def ratio(self) -> float | None:
        conv, ref = self.conveyor, self.ref
        return conv / ref if conv is not None and ref else None

    @property
    def rate(self) -> float | None:
        if self.achieved_rate is not None:
            return self.achieved_rate
        conv = self.conveyor
        return self.size / conv if conv else None

    @property
    def cpu_per_million(self) -> float | None:
        if not self.cpu_s or not self.size:
            return None
        return statistics.median(self.cpu_s) / self.size * 1_000_000

    def cpu_cell(self) -> str:
        if self.size == 1 and self.cpu_s:  # the fixed cost: CPU-s of the whole command
            return f"{statistics.median(self.cpu_s):.2f} per run"
        return num(self.cpu_per_million, ".1f")

    def verdict(self) -> str:
        return self.check(self) if self.check is not None and self.conveyor is not None else ""

    def cells(self) -> tuple[str, ...]:
        return (
            self.path,
            f"{self.size:,} {self.unit}",
            self.reference,
            num(self.conveyor, ".3f"),
            num(self.ref, ".3f"),
            "-" if self.ratio is None else f"{self.ratio:.2f}x",
            self.target,
            str(
                min(len(self.conveyor_s), len(self.reference_s)) if self.reference_s else len(self.conveyor_s)
            ),
            num(self.rate, ",.0f"),
            num(max(self.rss_mb) if self.rss_mb else None, ".0f"),
            self.cpu_cell(),
            self.verdict(),
        )


def ratio_at_most(limit: float) -> Callable[[PathResult], str]:
    def check(result: PathResult) -> str:
        if result.ratio is None:
            return ""
        return "ok" if result.ratio <= limit else "MISSED"

    return check


# --- the paths -------------------------------------------------------------------------


def run_fixed(args: argparse.Namespace, workdir: Path) -> list[PathResult]:
    result = PathResult("fixed cost", 1, "row", "python -c pass", target="+0.3 s")
    pg = PostgresServer()
    try:
        pg.start()
        ran = fixed_cost.run(pg, workdir, args.rounds, args.timeout)
    finally:
        pg.close()
    result.conveyor_s = [r.seconds for r in ran.conveyor_runs]
    result.reference_s = [r.seconds for r in ran.reference_runs]
    result.rss_mb = [r.peak_rss_mb for r in ran.conveyor_runs]
    result.cpu_s = [r.cpu_seconds for r in ran.conveyor_runs]
    overhead = ran.overhead_s
    cpu_overhead = statistics.median(result.cpu_s) - statistics.median(
        r.cpu_seconds for r in ran.reference_runs
    )

    def check(_: PathResult) -> str:
        assert overhead is not None
        verdict = "ok" if overhead < fixed_cost.OVERHEAD_TARGET_S else "MISSED"
        # CPU-s are less bent than wall time when the shared cores are overloaded.
        return f"{verdict} (+{overhead:.2f} s wall, +{cpu_overhead:.2f} CPU-s)"

    result.check = check
    return [result]


def run_full_loads(args: argparse.Namespace, workdir: Path, cases: list[str]) -> list[PathResult]:
    setup = full_load.Setup(args.rows, args.rounds, args.timeout, 10_000, workdir)
    out: list[PathResult] = []
    try:
        full_load.start_sources(setup, cases)
        for case in cases:
            log(f"{case}:")
            ran = full_load.run_case(setup, case)
            target = full_load.RATIO_TARGETS[case]
            out.append(
                PathResult(
                    case,
                    args.rows,
                    "rows",
                    full_load.REFERENCES[case],
                    [r.seconds for r in ran.conveyor_runs],
                    ran.reference_runs,
                    [r.peak_rss_mb for r in ran.conveyor_runs],
                    [r.cpu_seconds for r in ran.conveyor_runs],
                    f"<= {target:.2f}x",
                    ratio_at_most(target),
                )
            )
    finally:
        for server in (setup.mariadb, setup.pg):
            if server is not None:
                server.close()
    return out


def run_cdc(args: argparse.Namespace, workdir: Path, cases: list[str]) -> list[PathResult]:
    setup = cdc.Setup(args.updates, args.rounds, args.timeout, workdir, 5.0, 2000.0, None)
    out: list[PathResult] = []

    def of(name: str, ran: cdc.ThroughputResult, target: str, check: Callable[[PathResult], str]) -> None:
        out.append(
            PathResult(
                name,
                args.updates,
                "changes",
                ran.reference or "-",
                [r.seconds for r in ran.conveyor_runs],
                ran.reference_runs,
                [r.peak_rss_mb for r in ran.conveyor_runs],
                [r.cpu_seconds for r in ran.conveyor_runs],
                target,
                check,
            )
        )

    try:
        cdc.start_postgres(setup, ["pg-pg"] if {"cdc-pg", "cdc-latency"} & set(cases) else [])
        if "cdc-pg" in cases:
            log("cdc pg-pg:")
            e2e, _read = cdc.run_pg_throughput(setup)
            of("cdc pg-pg", e2e, "<= 1.11x (rate >= 0.9x)", ratio_at_most(1 / 0.9))
        if "cdc-latency" in cases:
            log(f"cdc latency pg-pg at {setup.rate:,.0f} changes/s, {setup.latency_seconds:.0f} s a round:")
            out.append(latency_path(cdc.run_latency(setup)))
        if "cdc-mariadb" in cases:
            cdc.start_mariadb(setup)
            log("cdc mariadb-pg:")

            def mariadb_check(result: PathResult) -> str:
                assert result.ratio is not None and result.rate is not None
                ok = result.ratio <= 2.0 and result.rate >= 30_000
                return "ok" if ok else "MISSED"

            of(
                "cdc mariadb-pg",
                cdc.run_mariadb(setup)[0],
                "<= 2.0x and >= 30k/s",
                mariadb_check,
            )
    finally:
        for server in (setup.mariadb, setup.pg):
            if server is not None:
                server.close()
    return out


def latency_path(ran: cdc.LatencyResult) -> PathResult:
    """The latency case as a row: "conveyor s" is the median of the rounds' p99
    latency (source commit to target commit), the reference column its p50."""
    p50 = ran.p50
    result = PathResult(
        "cdc latency",
        ran.rounds[0].changes if ran.rounds else 0,
        "changes",
        "none: p50 " + ("-" if p50 is None else f"{p50 * 1000:.0f} ms") + ", the p99 as conveyor s",
        [r.p99_s for r in ran.rounds],
        [],
        [r.peak_rss_mb for r in ran.rounds],
        [],
        f"p99 < {cdc.P99_TARGET_S:.1f} s at {ran.rate:,.0f}/s",
        lambda result: "ok" if (result.conveyor or 0) < cdc.P99_TARGET_S else "MISSED",
        statistics.median(r.achieved_rate for r in ran.rounds) if ran.rounds else None,
    )
    return result


def run_curate(args: argparse.Namespace, workdir: Path) -> list[PathResult]:
    setup = curate.Setup(args.lake_rows, args.changes, args.rounds, "parquet", args.timeout, workdir)
    curate.prepare(setup, ["merge"])
    log("curate merge:")
    ran = curate.run_case(setup, "merge")
    return [
        PathResult(
            "curate merge",
            args.changes,
            "changes",
            "DuckDB SQL merge",
            [r.seconds for r in ran.conveyor_runs],
            [r.seconds for r in ran.reference_runs],
            [r.peak_rss_mb for r in ran.conveyor_runs],
            [r.cpu_seconds for r in ran.conveyor_runs],
            "<= 1.30x",
            ratio_at_most(1.3),
        )
    ]


# --- output ----------------------------------------------------------------------------


def memory_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024 / 1024
    return 0.0


def markdown(results: Sequence[PathResult]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "| " + " | ".join("---" for _ in HEADER) + " |"]
    lines += ["| " + " | ".join(r.cells()) + " |" for r in results]
    return "\n".join(lines)


def machine_state(load_at_start: Sequence[float]) -> str:
    """Say whether the run shared its cores: a load above the core count bends the figures."""
    cores = os.cpu_count() or 1
    if load_at_start and load_at_start[0] > cores:
        return (
            "**The machine was shared**: other builds and test suites ran on the same cores, "
            "so absolute times are noisy"
        )
    return "The machine was otherwise quiet"


def write_doc(results: Sequence[PathResult], args: argparse.Namespace, started: datetime) -> None:
    machine = (
        f"{os.cpu_count()} cores, {memory_gib():.1f} GiB memory, {platform.machine()}, "
        f"Python {platform.python_version()}"
    )
    sizes = (
        f"full loads {args.rows:,} rows, CDC {args.updates:,} single-row updates in 1,000-row transactions, "
        f"curation {args.lake_rows:,} rows + {args.changes:,} changes; {args.rounds} rounds"
    )
    command = " ".join(["bench/all.py", *args.argv])
    load = ", ".join(f"{x:.1f}" for x in args.load_at_start)
    text = f"""# Benchmarks

Measured {started.strftime("%Y-%m-%d %H:%M UTC")} with `{command}` (`make bench`)
on {machine}. {machine_state(args.load_at_start)} (load average {load} at its
start); only the ratios mean something. Each ratio is Conveyor's
median over the reference's median, both run alternately in the same run
(A B A B), {args.rounds} rounds. Sizes: {sizes}.

{markdown(results)}

- *ratio* is always Conveyor seconds / reference seconds (lower is better). A
  CDC rate target of at least 0.9x the reference's rate is a time ratio of at
  most 1.11x. The fixed cost's target is an absolute one: at most 0.3 s above
  `python -c pass` (the figures in brackets: wall time, and CPU seconds, which
  an overloaded machine bends less than wall time).
- *conveyor s*: full loads from the first catalog query until the target is
  closed, inside the child (bench/run_one.py); CDC from opening the stream
  until the last change is committed on the target; curation from opening the
  lake until the Delta commit; fixed cost the whole process, interpreter start
  included; the latency row's is the p99 of its changes' latency (source
  commit to target commit, `pg_xact_commit_timestamp` on both), with no
  reference. References are wall times of their processes.
- *peak RSS* and *CPU-s / M rows* are Conveyor's own processes (os.wait4 of
  the child: the largest RSS of it and the children it reaped, user + system
  CPU), not the database servers'. CPU-s per million rows shows the 2-core
  ceiling: a path needing more than about 2 CPU-s per second of wall time
  cannot go faster here.
- Every run is checked (row counts, CDC fingerprints, curation checksums);
  a mismatch fails the bench. Details: bench/README.md.
"""
    DOC.write_text(text)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/all.py", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke-sized run (about 3 minutes here)")
    parser.add_argument("--rows", type=int, help="full-load rows (default 500000; quick 20000)")
    parser.add_argument("--updates", type=int, help="CDC updates (default 500000; quick 5000)")
    parser.add_argument("--lake-rows", type=int, help="curation rows (default 1000000; quick 50000)")
    parser.add_argument("--changes", type=int, help="curation changes (default 200000; quick 10000)")
    parser.add_argument("--rounds", type=int, default=3, help="alternated rounds (default 3)")
    parser.add_argument("--paths", default=",".join(PATHS), help=f"comma-separated of {', '.join(PATHS)}")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds any one step may take")
    parser.add_argument("--no-doc", action="store_true", help="do not write docs/benchmarks.md")
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    args.load_at_start = os.getloadavg()
    args.rows = args.rows or (20_000 if args.quick else 500_000)
    args.updates = args.updates or (5_000 if args.quick else 500_000)
    args.lake_rows = args.lake_rows or (50_000 if args.quick else 1_000_000)
    args.changes = args.changes or (10_000 if args.quick else 200_000)
    args.path_list = [p.strip() for p in args.paths.split(",") if p.strip()]
    unknown = [p for p in args.path_list if p not in PATHS]
    if unknown or not args.path_list or args.rounds < 1:
        parser.error(f"unknown path(s) {unknown}; choose from {', '.join(PATHS)}; --rounds >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = datetime.now(UTC)
    workdir = Path(tempfile.mkdtemp(prefix="conveyor-bench-all-", dir="/tmp"))
    results: list[PathResult] = []
    failure: str | None = None
    log(f"conveyor bench, every path: {args.path_list}, {args.rounds} rounds (a shared machine: ratios only)")
    loads = [p for p in ("pg-pg", "pg-duckdb", "pg-lake", "mariadb-pg") if p in args.path_list]
    cdcs = [p for p in ("cdc-pg", "cdc-mariadb", "cdc-latency") if p in args.path_list]
    try:
        if "fixed" in args.path_list:
            results += run_fixed(args, workdir)
        if loads:
            results += run_full_loads(args, workdir, loads)
        if cdcs:
            results += run_cdc(args, workdir, cdcs)
        if "curate-merge" in args.path_list:
            results += run_curate(args, workdir)
    except BenchFailure as exc:
        failure = str(exc)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(render_table(HEADER, [r.cells() for r in results], NUMERIC))
    if not args.no_doc and failure is None:
        write_doc(results, args, started)
        print(f"\nwritten to {DOC.relative_to(REPO)}")
    if failure is not None:
        print(f"\nBENCH FAILED: {failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
