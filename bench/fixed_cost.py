"""Fixed cost: ``conveyor tasks start NAME --wait`` on a 1-row table, end to
end, against ``python -c pass`` run alternately in the same run.

Everything a user pays before the first row moves is in the Conveyor side:
interpreter start, imports, the metadata store, claiming the task, reading the
source's catalog, creating the target table (DROP_AND_CREATE, so every round
does the same work), the row, the task's bookkeeping. Both sides are child
processes reaped with ``os.wait4``: wall time, peak RSS and CPU are their own.

    python bench/fixed_cost.py --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
if str(REPO / "tests") not in sys.path:
    sys.path.insert(0, str(REPO / "tests"))

import psycopg  # noqa: E402

from bench.common import BenchFailure, log, wait_bounded  # noqa: E402
from support.servers import PostgresServer  # noqa: E402

TASK = "fixed"
OVERHEAD_TARGET_S = 0.3  # above `python -c pass`


@dataclass
class ProcessRun:
    seconds: float
    peak_rss_mb: float
    cpu_seconds: float


@dataclass
class FixedCostResult:
    reference_runs: list[ProcessRun] = field(default_factory=list)
    conveyor_runs: list[ProcessRun] = field(default_factory=list)

    @property
    def overhead_s(self) -> float | None:
        if not self.reference_runs or not self.conveyor_runs:
            return None
        conveyor = statistics.median(r.seconds for r in self.conveyor_runs)
        return conveyor - statistics.median(r.seconds for r in self.reference_runs)


def timed(command: list[str], env: dict[str, str], timeout_s: float, what: str) -> tuple[ProcessRun, str]:
    """Run ``command`` to the end; its wall time, own peak RSS and CPU, and stdout."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        began = time.perf_counter()
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env, cwd=REPO)
        code, usage = wait_bounded(proc, timeout_s, what)
        seconds = time.perf_counter() - began
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    if code != 0:
        raise BenchFailure(f"{what} exited with {code}:\n{stdout[-2000:]}\n{stderr[-2000:]}")
    return ProcessRun(seconds, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime), stdout


def environment(home: Path) -> dict[str, str]:
    """The user's environment; bytecode cached (in the bench's temp dir), as an
    installed package has it, even where PYTHONDONTWRITEBYTECODE is set."""
    env = os.environ | {
        "CONVEYOR_HOME": str(home),
        "PYTHONPATH": str(REPO / "src"),
        "PYTHONPYCACHEPREFIX": str(home.parent / "pycache"),
        "COLUMNS": "200",
    }
    env.pop("CONVEYOR_STORE_URL", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def prepare(pg: PostgresServer, workdir: Path, timeout_s: float) -> dict[str, str]:
    """Source and target databases, the 1-row table, and the applied stack."""
    with psycopg.connect(pg.url(), autocommit=True) as conn:
        conn.execute("CREATE DATABASE fixed_src")
        conn.execute("CREATE DATABASE fixed_dst")
    with psycopg.connect(pg.url("fixed_src"), autocommit=True) as conn:
        conn.execute("CREATE TABLE one (id bigint PRIMARY KEY, note text)")
        conn.execute("INSERT INTO one VALUES (1, 'the only row')")
    stack = {
        "endpoints": {
            "src": {"engine": "postgres", "url": pg.url("fixed_src")},
            "dst": {"engine": "postgres", "url": pg.url("fixed_dst")},
        },
        "tasks": {
            TASK: {
                "source": "src",
                "target": "dst",
                "migration_type": "full-load",
                "table_mappings": {
                    "rules": [
                        {
                            "rule-type": "selection",
                            "rule-id": "1",
                            "rule-name": "public",
                            "object-locator": {"schema-name": "public", "table-name": "%"},
                            "rule-action": "include",
                        }
                    ]
                },
                "settings": {"FullLoadSettings": {"TargetTablePrepMode": "DROP_AND_CREATE"}},
            }
        },
    }
    stack_file = workdir / "fixed-stack.yaml"
    stack_file.write_text(json.dumps(stack))  # YAML is a superset of JSON
    env = environment(workdir / "fixed-home")
    timed([sys.executable, "-m", "conveyor", "apply", str(stack_file)], env, timeout_s, "conveyor apply")
    return env


def run(pg: PostgresServer, workdir: Path, rounds: int, timeout_s: float) -> FixedCostResult:
    env = prepare(pg, workdir, timeout_s)
    result = FixedCostResult()
    conveyor = [sys.executable, "-m", "conveyor", "tasks", "start", TASK, "--wait", "--json"]
    reference = [sys.executable, "-c", "pass"]

    def side_reference(round_no: int) -> None:
        ran, _ = timed(reference, env, timeout_s, "python -c pass")
        result.reference_runs.append(ran)
        log(f"  fixed round {round_no}: python -c pass {ran.seconds:6.3f} s")

    def side_conveyor(round_no: int) -> None:
        ran, out = timed(conveyor, env, timeout_s, "conveyor tasks start --wait")
        described = json.loads(out)
        [table] = described["tables"]
        if described["status"] != "stopped" or table["FullLoadRows"] != 1:
            raise BenchFailure(f"fixed cost: the task did not load its one row: {out[:1000]}")
        result.conveyor_runs.append(ran)
        log(
            f"  fixed round {round_no}: conveyor tasks start --wait {ran.seconds:6.3f} s "
            f"(peak RSS {ran.peak_rss_mb:.0f} MB, CPU {ran.cpu_seconds:.2f} s)"
        )

    timed(conveyor, env, timeout_s, "conveyor tasks start --wait (warm-up: bytecode, page cache)")
    for round_no in range(1, rounds + 1):
        sides = (side_reference, side_conveyor) if round_no % 2 else (side_conveyor, side_reference)
        for side in sides:
            side(round_no)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench/fixed_cost.py", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="conveyor-bench-fixed-", dir="/tmp"))
    pg = PostgresServer()
    try:
        pg.start()
        result = run(pg, workdir, args.rounds, 120.0)
    finally:
        pg.close()
        shutil.rmtree(workdir, ignore_errors=True)
    overhead = result.overhead_s
    assert overhead is not None
    log(f"overhead above python -c pass: {overhead:.3f} s (target < {OVERHEAD_TARGET_S} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
