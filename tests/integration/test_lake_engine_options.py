"""Choosing the curation engine: ``--engine``/``--master``, the lake endpoint's
``curation_engine``/``spark_master``, and the messages when one is missing
(no Spark needed: these stop before a session starts)."""

from __future__ import annotations

from pathlib import Path

import pytest

from integration.test_lake_curation import cli

pytestmark = pytest.mark.e2e


def _apply(tmp_path: Path, lake_options: str) -> tuple[Path, int, str]:
    home = tmp_path / "home"
    stack = tmp_path / "conveyor.yaml"
    stack.write_text(
        "endpoints:\n"
        f"  lake: {{engine: lake, path: ./lake{lake_options}}}\n"
        "lake_tables:\n  sales.orders: {primary_key: id}\n"
    )
    result = cli(home, "apply", str(stack))
    return home, result.returncode, result.stdout + result.stderr


def test_the_spark_engine_needs_a_master(tmp_path: Path) -> None:
    home, code, output = _apply(tmp_path, "")
    assert code == 0, output
    missing = cli(home, "lake", "process", "--engine", "spark")
    assert missing.returncode != 0
    assert "needs a master" in missing.stderr and "--master spark://HOST:7077" in missing.stderr
    bogus = cli(home, "lake", "process", "--engine", "hadoop")
    assert bogus.returncode != 0 and "embedded, spark" in bogus.stderr


def test_the_engine_set_on_the_lake_endpoint(tmp_path: Path) -> None:
    home, code, output = _apply(tmp_path, ", curation_engine: spark")
    assert code == 0, output
    missing = cli(home, "lake", "process")
    assert missing.returncode != 0 and "spark_master" in missing.stderr
    # --engine on the command line wins over the endpoint's
    assert cli(home, "lake", "process", "--engine", "embedded").returncode == 0
    _, code, output = _apply(tmp_path, ", curation_engine: flink")
    assert code != 0 and "curation_engine" in output
