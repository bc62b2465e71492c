"""Table mappings through the layer users touch: a stack file, `conveyor apply`
and `conveyor tasks start`, SQLite into the embedded DuckDB warehouse."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import duckdb
import pytest

from support.cli import conveyor

pytestmark = pytest.mark.e2e


def _rule(rule_type: str, rid: int, locator: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {
        "rule-type": rule_type,
        "rule-id": str(rid),
        "rule-name": f"r{rid}",
        "object-locator": locator,
    } | extra


def _stack(tmp_path: Path, rules: list[dict[str, Any]]) -> Path:
    (tmp_path / "mappings.json").write_text(json.dumps({"rules": rules}, indent=2))
    stack = {
        "endpoints": {
            "shop": {"engine": "sqlite", "path": str(tmp_path / "shop.sqlite")},
            "dw": {"engine": "duckdb", "path": str(tmp_path / "dw.duckdb")},
        },
        "tasks": {
            "load": {
                "source": "shop",
                "target": "dw",
                "table_mappings": "file://mappings.json",
                "settings": {"FullLoadSettings": {"MaxFullLoadSubTasks": 1}},
            }
        },
    }
    path = tmp_path / "conveyor.yaml"
    path.write_text(json.dumps(stack))
    return path


def test_misspelt_keys_are_refused_at_apply_all_at_once(tmp_path: Path) -> None:
    rules = [
        _rule("selection", 1, {"schema-name": "main", "table-name": "%"}, **{"rule-action": "include"}),
        _rule(
            "selection",
            2,
            {"schema-name": "main", "table-name": "orders"},
            **{
                "rule-action": "include",
                "filter": [{"filter-type": "source", "column-name": "id", "filter-conditions": []}],
            },
        ),
        _rule(
            "transformation",
            3,
            {"schema-name": "main", "table-name": "orders", "colum-name": "id"},
            **{"rule-target": "column", "rule-action": "remove-column"},
        ),
        _rule(
            "table-settings",
            4,
            {"schema-name": "main", "table-name": "orders"},
            **{"parallel-load": {"typo": 1}},
        ),
    ]
    home = tmp_path / "home"
    result = conveyor(home, "apply", str(_stack(tmp_path, rules)))
    assert result.returncode == 2, result.stdout
    for text in (
        "rules.1: rule 2 (r2): unknown key 'filter'; did you mean 'filters'?",
        "rules.2: rule 3 (r3): unknown key 'colum-name' in object-locator; did you mean 'column-name'?",
        "rules.3: rule 4 (r4): unknown key 'typo' in parallel-load; did you mean 'type'?",
    ):
        assert text in result.stderr, result.stderr
    assert conveyor(home, "tasks", "list").returncode != 0  # nothing was stored


def test_rules_conveyor_cannot_honour_are_refused_at_apply_with_the_reason(tmp_path: Path) -> None:
    """Oracle-only parallel-load types and keys, a key of another type, and a
    before-image filter the service does not define: each refused at apply,
    naming the rule and why."""
    orders = {"schema-name": "main", "table-name": "orders"}
    rules = [
        _rule("selection", 1, {"schema-name": "main", "table-name": "%"}, **{"rule-action": "include"}),
        _rule("table-settings", 2, orders, **{"parallel-load": {"type": "subpartitions-auto"}}),
        _rule(
            "table-settings",
            3,
            orders,
            **{"parallel-load": {"type": "partitions-list", "partitions": ["p1"], "subpartitions": ["s1"]}},
        ),
        _rule(
            "table-settings", 4, orders, **{"parallel-load": {"type": "partitions-auto", "columns": ["id"]}}
        ),
        _rule(
            "transformation",
            5,
            orders,
            **{
                "rule-target": "column",
                "rule-action": "add-before-image-columns",
                "before-image-def": {"column-prefix": "BI_", "column-filter": "pk"},
            },
        ),
    ]
    home = tmp_path / "home"
    result = conveyor(home, "apply", str(_stack(tmp_path, rules)))
    assert result.returncode == 2, result.stdout
    for text in (
        "rule 2 (r2): parallel-load type 'subpartitions-auto' is not supported: the service defines it "
        "for Oracle sources only",
        "rule 3 (r3): parallel-load: 'subpartitions' is for Oracle sources only",
        "rule 4 (r4): parallel-load: 'columns' belongs to other types than 'partitions-auto'",
        "rule 5 (r5): before-image-def: 'column-filter' must be one of pk-only, non-lob, all, not 'pk'",
    ):
        assert text in result.stderr, result.stderr
    assert conveyor(home, "tasks", "list").returncode != 0  # nothing was stored


def test_rules_shape_the_loaded_tables(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "shop.sqlite") as conn:
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, code TEXT, email TEXT, qty INTEGER)")
        conn.executemany(
            "INSERT INTO orders VALUES (?, ?, ?, ?)",
            [(1, "a1", "x1@y.z", 5), (2, "B2", "x2@y.z", 50), (3, "c3", None, None), (4, "d4", "x4", 7)],
        )
        conn.execute("CREATE TABLE zlog (n INTEGER)")
    conn.close()
    rules = [
        _rule(
            "selection",
            1,
            {"schema-name": "main", "table-name": "orders"},
            **{
                "rule-action": "include",
                "filters": [
                    {
                        "filter-type": "source",
                        "column-name": "qty",
                        "filter-conditions": [
                            {"filter-operator": "notbetween", "start-value": "6", "end-value": "49"}
                        ],
                    }
                ],
            },
        ),
        _rule("selection", 2, {"schema-name": "main", "table-name": "zlog"}, **{"rule-action": "include"}),
        _rule("table-settings", 3, {"schema-name": "main", "table-name": "zlog"}, **{"load-order": 2}),
        _rule(
            "transformation",
            4,
            {"schema-name": "main", "table-name": "orders", "column-name": "email"},
            **{"rule-target": "column", "rule-action": "data-masking-hash-mask"},
        ),
        _rule(
            "transformation",
            5,
            {"schema-name": "main", "table-name": "orders", "column-name": "%"},
            **{
                "rule-target": "column",
                "rule-action": "replace-suffix",
                "old-value": "ty",
                "value": "uantity",
            },
        ),
        _rule(
            "transformation",
            6,
            {"schema-name": "main", "table-name": "orders", "column-name": "code"},
            **{"rule-target": "column", "rule-action": "remove-column"},
        ),
        _rule(
            "transformation",
            7,
            {"schema-name": "main", "table-name": "orders"},
            **{
                "rule-target": "table",
                "rule-action": "define-primary-key",
                "primary-key-def": {"columns": ["id"]},
            },
        ),
    ]
    home = tmp_path / "home"
    applied = conveyor(home, "apply", str(_stack(tmp_path, rules)))
    assert applied.returncode == 0, applied.stderr
    started = conveyor(home, "tasks", "start", "load", "--wait", "--json")
    assert started.returncode == 0, started.stderr
    described = json.loads(started.stdout)
    tables = {t["TableName"]: t for t in described["tables"]}
    # the higher load-order first, although it comes later in the source's list and by name
    assert tables["zlog"]["FullLoadEndTime"] <= tables["orders"]["FullLoadStartTime"], tables
    with duckdb.connect(str(tmp_path / "dw.duckdb"), read_only=True) as dw:
        columns = [r[0] for r in dw.execute("DESCRIBE main.orders").fetchall()]
        rows = dw.execute("SELECT * FROM main.orders ORDER BY id").fetchall()
    assert columns == ["id", "email", "quantity"]
    # qty 7 is between 6 and 49; NULL never passes notbetween
    assert rows == [
        (1, hashlib.sha256(b"x1@y.z").hexdigest().upper(), 5),
        (2, hashlib.sha256(b"x2@y.z").hexdigest().upper(), 50),
    ]
