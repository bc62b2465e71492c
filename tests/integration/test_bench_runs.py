"""`make bench` keeps working: every path of bench/all.py runs end to end at a
tiny size, with its own checks (row counts, CDC fingerprints, curation
checksums), so a change to the code a bench calls cannot break it unseen. No
timing is asserted here: speed is measured by `make bench`, not by tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
PATHS = ["fixed", "pg-pg", "pg-duckdb", "pg-lake", "mariadb-pg", "cdc-pg", "cdc-mariadb", "curate-merge"]
# The rows of the printed table, one per path (cdc-latency paces its writer for seconds: left out).
ROWS = [
    "fixed cost",
    "pg-pg",
    "pg-duckdb",
    "pg-lake",
    "mariadb-pg",
    "cdc pg-pg",
    "cdc mariadb-pg",
    "curate merge",
]


def test_every_bench_path_runs_and_checks_itself(tmp_path: Path) -> None:
    command = [
        sys.executable,
        "bench/all.py",
        "--paths",
        ",".join(PATHS),
        *("--rows", "2000", "--updates", "2000", "--lake-rows", "2000", "--changes", "500"),
        *("--rounds", "1", "--timeout", "240", "--no-doc"),
    ]
    env = os.environ | {"TMPDIR": str(tmp_path)}
    ran = subprocess.run(command, check=False, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    table = ran.stdout[ran.stdout.rindex("\npath ") + 1 :].split("\n\n")[0].splitlines()
    assert [line.split("  ")[0].strip() for line in table[2:]] == ROWS, "\n".join(table)
