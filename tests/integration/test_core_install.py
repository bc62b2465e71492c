"""`pip install conveyor` without extras: the quickstart (SQLite into DuckDB, full
load and change capture) runs, and every engine or command that needs an extra
says which one. A real virtual environment with the core dependencies only."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
PIP = (sys.executable, "-m", "pip", "--disable-pip-version-check")
RULE = (
    '{rule-type: selection, rule-id: "1", rule-name: a,'
    ' object-locator: {schema-name: "%", table-name: "%"}, rule-action: include}'
)
STACK = f"""
endpoints:
  pg: {{engine: postgres, url: "postgresql://u@127.0.0.1:1/db"}}
  my: {{engine: mysql, url: "mysql://u@127.0.0.1:1/db"}}
  dyn: {{engine: dynamodb, region: us-east-1, endpoint_url: "http://127.0.0.1:1"}}
  wh: {{engine: duckdb, path: ./wh.duckdb}}
tasks:
  from-pg: {{source: pg, target: wh, table_mappings: {{rules: [{RULE}]}}}}
  from-my: {{source: my, target: wh, table_mappings: {{rules: [{RULE}]}}}}
  from-dyn: {{source: dyn, target: wh, table_mappings: {{rules: [{RULE}]}}}}
"""


@pytest.fixture(scope="module")
def core(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A virtual environment with `pip install conveyor` (no extras) from this tree."""
    venv = tmp_path_factory.mktemp("core-venv")
    # Without its own pip, filled by this one's (`pip --python`), without compiling every
    # installed module up front: the same packages in a third of the time.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    # A copy of the tree: pip must not write build files into the checkout.
    tree = tmp_path_factory.mktemp("tree")
    for part in ("pyproject.toml", "README.md", "src"):
        source = REPO / part
        if source.is_dir():
            shutil.copytree(source, tree / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, tree / part)
    installed = subprocess.run(
        [*PIP, "--python", str(venv / "bin" / "python"), "install", "--quiet", "--no-compile", str(tree)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    yield venv / "bin"


def test_the_core_has_no_optional_dependency(core: Path) -> None:
    listed = subprocess.run(
        [*PIP, "--python", str(core / "python"), "list", "--format=json"],
        capture_output=True,
        text=True,
        check=True,
    )
    names = {p["name"].lower() for p in json.loads(listed.stdout)}
    for optional in ("psycopg", "pymysql", "boto3", "deltalake", "fastapi", "uvicorn", "nats-py", "pyspark"):
        assert optional not in names, optional


def test_the_quickstart_runs_on_the_core(core: Path, tmp_path: Path) -> None:
    quickstart = tmp_path / "quickstart"
    shutil.copytree(REPO / "examples" / "quickstart", quickstart)
    ran = subprocess.run(
        ["bash", str(quickstart / "run.sh")],
        env=os.environ | {"CONVEYOR_VENV": str(core)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    assert "new customer" in ran.stdout  # captured by CDC into the warehouse


def test_what_needs_an_extra_names_it(core: Path, tmp_path: Path) -> None:
    (tmp_path / "stack.yaml").write_text(STACK)
    env = os.environ | {"CONVEYOR_HOME": str(tmp_path / "home")}

    def conveyor(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(core / "conveyor"), *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    assert conveyor("apply", "stack.yaml").returncode == 0
    for task, extra, module in (
        ("from-pg", "postgres", "psycopg"),
        ("from-my", "mysql", "pymysql"),
        ("from-dyn", "dynamodb", "boto3"),
    ):
        described = json.loads(conveyor("tasks", "start", task, "--wait", "--json").stdout)
        assert described["status"] == "failed"
        assert (
            f"needs the {extra!r} extra (module {module!r} is not installed): pip install 'conveyor[{extra}]'"
            in described["last_error"]
        )
    for args, extra in (
        (["serve"], "server"),
        (["lake", "process"], "lake"),
        (["query", "select 1"], "lake"),
    ):
        ran = conveyor(*args)
        assert ran.returncode == 2, (args, ran.stderr)
        assert f"pip install 'conveyor[{extra}]'" in ran.stderr and "Traceback" not in ran.stderr
