"""`conveyor endpoints modify`: a lake's dated bucket_path changed between two
full loads sends each load to its own folder; bad changes are refused by name
and change nothing."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from support.cli import conveyor

pytestmark = pytest.mark.e2e


def _stack(tmp_path: Path) -> Path:
    with sqlite3.connect(tmp_path / "src.sqlite") as conn:
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, region TEXT NOT NULL)")
        conn.executemany("INSERT INTO orders VALUES (?, ?)", [(1, "eu"), (2, "us")])
    conn.close()
    stack = tmp_path / "conveyor.yaml"
    stack.write_text(
        json.dumps(
            {
                "endpoints": {
                    "src": {"engine": "sqlite", "path": "./src.sqlite"},
                    "lake": {"engine": "lake", "path": "./lake", "bucket_path": "raw/first"},
                },
                "tasks": {"load": {"source": "src", "target": "lake"}},
            }
        )
    )
    return stack


def _lake_endpoint(home: Path) -> dict[str, object]:
    listed = conveyor(home, "endpoints", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    [lake] = [e for e in json.loads(listed.stdout) if e["name"] == "lake"]
    return dict(lake)


def test_each_full_load_lands_where_the_endpoint_points_then(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert conveyor(home, "apply", str(_stack(tmp_path))).returncode == 0
    first = conveyor(home, "tasks", "start", "load", "--wait")
    assert first.returncode == 0, first.stderr

    modified = conveyor(
        home,
        "endpoints",
        "modify",
        "lake",
        "--set",
        "bucket_path=raw/{date:%Y}/second",
        "--set",
        "settings.AddColumnName=true",
        "--json",
    )
    assert modified.returncode == 0, modified.stderr
    shown = json.loads(modified.stdout)
    assert shown["bucket_path"] == "raw/{date:%Y}/second"
    assert shown["settings"] == {"AddColumnName": True}
    assert _lake_endpoint(home)["bucket_path"] == "raw/{date:%Y}/second"

    second = conveyor(home, "tasks", "reload", "load", "--wait")
    assert second.returncode == 0, second.stderr
    lake = tmp_path / "lake"
    [old] = sorted((lake / "raw" / "first" / "main" / "orders").glob("LOAD*"))
    [new] = sorted(lake.glob("raw/*/second/main/orders/LOAD*"))
    assert old.read_text().splitlines() == ["1,eu", "2,us"]
    assert new.read_text().splitlines() == ["id,region", "1,eu", "2,us"]  # AddColumnName: a header

    unset = conveyor(home, "endpoints", "modify", "lake", "--unset", "settings.AddColumnName", "--json")
    assert unset.returncode == 0, unset.stderr
    assert json.loads(unset.stdout)["settings"] == {}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["lake"], "nothing to change"),
        (["lake", "--set", "bucket_path"], "expected KEY=VALUE"),
        (["lake", "--set", "bucket_pth=raw/x"], "bucket_pth"),
        (["lake", "--set", "format=xml"], "format"),
        (["lake", "--set", "settings=1"], "settings.<Name>"),
        (["lake", "--unset", "engine"], "other than engine"),
        (["laek", "--set", "bucket_path=raw/x"], "did you mean 'lake'"),
    ],
    ids=[
        "nothing",
        "no-equals",
        "unknown-key",
        "bad-value",
        "settings-whole",
        "unset-engine",
        "unknown-endpoint",
    ],
)
def test_a_bad_change_is_refused_by_name_and_changes_nothing(
    tmp_path: Path, args: list[str], message: str
) -> None:
    home = tmp_path / "home"
    assert conveyor(home, "apply", str(_stack(tmp_path))).returncode == 0
    before = _lake_endpoint(home)
    refused = conveyor(home, "endpoints", "modify", *args)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert message in refused.stderr
    assert _lake_endpoint(home) == before
