"""The shape of `make bench`'s table (bench/all.py), without running a bench."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from bench.all import HEADER, PathResult, latency_path, markdown, ratio_at_most  # noqa: E402
from bench.cdc import LatencyResult, LatencyRound  # noqa: E402


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


def test_the_latency_row_shows_the_p99_against_its_absolute_target() -> None:
    """No reference and no ratio: the p99 (median of the rounds) is the figure,
    the paced rate the rate, and the verdict the p99 target's (< 0.1 s)."""
    rounds = [LatencyRound(10_000, 1990.0, 0.002, p99, 0.2, 180.0) for p99 in (0.009, 0.150, 0.012)]
    row = dict(zip(HEADER, latency_path(LatencyResult(2000.0, 5.0, rounds)).cells(), strict=True))
    assert (row["conveyor s"], row["ratio"], row["rounds"], row["verdict"]) == ("0.012", "-", "3", "ok")
    assert row["conveyor rate/s"] == "1,990" and row["reference"].startswith("none: p50 2 ms")
    slow = [LatencyRound(10_000, 2000.0, 0.05, 0.3, 0.5, 180.0)]
    assert (
        dict(zip(HEADER, latency_path(LatencyResult(2000.0, 5.0, slow)).cells(), strict=True))["verdict"]
        == "MISSED"
    )
