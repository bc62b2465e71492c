"""The shape of `make bench`'s table (bench/all.py), without running a bench."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from bench.all import HEADER, PathResult, markdown, ratio_at_most  # noqa: E402


def test_every_row_has_every_column_and_the_ratio_is_conveyor_over_reference() -> None:
    load = PathResult("pg-pg", 500_000, "rows", "psql binary COPY pipe", [2.0, 2.2, 2.1], [2.0, 2.0, 2.0])
    load.rss_mb, load.cpu_s, load.target, load.check = (
        [120.0, 130.0],
        [3.0, 3.0, 3.0],
        "<= 1.05x",
        ratio_at_most(1.05),
    )
    fixed = PathResult("fixed cost", 1, "row", "python -c pass", [0.5, 0.5, 0.5], [0.02, 0.02, 0.02])
    fixed.cpu_s = [0.4, 0.4, 0.4]
    cells = load.cells()
    assert len(cells) == len(HEADER) and len(fixed.cells()) == len(HEADER)
    row = dict(zip(HEADER, cells, strict=True))
    assert row["ratio"] == "1.05x" and row["verdict"] == "ok" and row["rounds"] == "3"
    assert row["peak RSS MB"] == "130" and row["CPU-s / M rows"] == "6.0"
    assert dict(zip(HEADER, fixed.cells(), strict=True))["CPU-s / M rows"] == "0.40 per run"
    lines = markdown([load, fixed]).splitlines()
    assert len(lines) == 4 and all(line.count("|") == len(HEADER) + 1 for line in lines)
