"""Hostile table and column names (support/hostile_names.py) through full load
and change capture into PostgreSQL, DuckDB and the lake, through a stack file
and the CLI: every table is loaded exactly or refused by name with a reason,
no task crashes, and the canary table (named inside every injection attempt)
is intact on the source and on each target."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest
from deltalake import DeltaTable
from psycopg import sql

from conveyor.connectors.lake import layout as lay
from support import hostile_names as hn
from support.cli import conveyor
from support.servers import PostgresServer

pytestmark = pytest.mark.integration

DEADLINE_S = 90.0
TARGETS = ("postgres", "duckdb", "lake")
FINAL = [(1, "one, updated"), (3, "three")]


def _create_postgres(url: str, names: list[str]) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {hn.CANARY} (id integer PRIMARY KEY, v text)")
        conn.execute(f"INSERT INTO {hn.CANARY} VALUES (1, 'alive')")
        for i, name in enumerate(names):
            column = sql.Identifier(hn.column_for(i, names))
            conn.execute(
                sql.SQL("CREATE TABLE {} (id integer PRIMARY KEY, {} text)").format(sql.Identifier(name), column)
            )
            conn.execute(
                sql.SQL("INSERT INTO {} VALUES (1, 'one'), (2, 'two')").format(sql.Identifier(name))
            )


def _change_postgres(url: str, names: list[str]) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for i, name in enumerate(names):
            table, column = sql.Identifier(name), sql.Identifier(hn.column_for(i, names))
            conn.execute(sql.SQL("INSERT INTO {} VALUES (3, 'three')").format(table))
            conn.execute(sql.SQL("UPDATE {} SET {} = 'one, updated' WHERE id = 1").format(table, column))
            conn.execute(sql.SQL("DELETE FROM {} WHERE id = 2").format(table))


def _stack(tmp_path: Path, source: dict[str, Any], schema: str, pg_target: str, names: list[str]) -> Path:
    rules = [
        {
            "rule-type": "selection",
            "rule-id": "1",
            "rule-name": "all",
            "object-locator": {"schema-name": schema, "table-name": "%"},
            "rule-action": "include",
        }
    ]
    targets = {
        "postgres": {"engine": "postgres", "url": pg_target},
        "duckdb": {"engine": "duckdb", "path": str(tmp_path / "dw.duckdb")},
        "lake": {"engine": "lake", "path": str(tmp_path / "lake"), "format": "parquet"},
    }
    document = {
        "endpoints": {"src": source, **targets},
        "tasks": {
            f"to_{t}": {
                "source": "src",
                "target": t,
                "migration_type": "full-load-and-cdc",
                "table_mappings": {"rules": rules},
                "settings": {"FullLoadSettings": {"MaxFullLoadSubTasks": 8}},
            }
            for t in TARGETS
        },
    }
    # Curated where the lake can hold the name (the others are refused by the plan).
    document["lake_tables"] = {
        f"{schema}.{n}": {"primary_key": ["id"]} for n in [*names, hn.CANARY] if lay.refused_name(n) is None
    }
    path = tmp_path / "conveyor.yaml"
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")  # PyYAML reads no surrogate escapes
    return path


def _described(home: Path, task: str) -> dict[str, Any]:
    out = conveyor(home, "tasks", "describe", task, "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def _wait(home: Path, what: str, check: Any) -> None:
    deadline = time.monotonic() + DEADLINE_S
    states: dict[str, Any] = {}
    while time.monotonic() < deadline:
        states = {t: _described(home, f"to_{t}") for t in TARGETS}
        if all(check(d) for d in states.values()):
            return
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}: " + json.dumps(
        {t: {k: d.get(k) for k in ("status", "last_error")} for t, d in states.items()}
    ))


def _capturing(described: dict[str, Any]) -> bool:
    return described["status"] == "running" and "capture" in described


def _settled(names: list[str]) -> Any:
    def check(described: dict[str, Any]) -> bool:
        tables = {t["TableName"]: t for t in described["tables"]}
        for name in names:
            t = tables.get(name, {})
            if t.get("TableState") == "Table error" or t.get("SuspendedReason"):
                continue
            if (t.get("Inserts", 0), t.get("Updates", 0), t.get("Deletes", 0)) < (1, 1, 1):
                return False
        return True

    return check


def _postgres_rows(url: str, names: list[str]) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        for name in [*names, hn.CANARY]:
            try:
                rows[name] = conn.execute(
                    sql.SQL("SELECT * FROM {} ORDER BY 1").format(sql.Identifier("public", name))
                ).fetchall()
            except psycopg.errors.UndefinedTable:
                pass
    return rows


def _duck(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _duckdb_rows(path: Path, schema: str, names: list[str]) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    with duckdb.connect(str(path), read_only=True) as conn:
        present = {
            n for (n,) in conn.execute(
                "SELECT table_name FROM duckdb_tables() WHERE schema_name = ?", [schema]
            ).fetchall()
        }
        for name in [*names, hn.CANARY]:
            if name in present:
                rows[name] = conn.execute(f"SELECT * FROM {_duck(schema)}.{_duck(name)} ORDER BY 1").fetchall()
    return rows


def _lake_rows(home: Path, lake: Path, schema: str, names: list[str]) -> dict[str, Any]:
    """The curated tables (``conveyor lake process``), read with deltalake; one
    ``conveyor query`` reads the canary among views of case-only different names."""
    processed = conveyor(home, "lake", "process", "--json", timeout=300)
    assert processed.returncode == 0, processed.stdout + processed.stderr
    results = json.loads(processed.stdout)
    failed = [t for t in results if t["status"] == "failed"]
    assert not failed, failed
    curated = {t["table"] for t in results if t["version"] is not None}
    rows: dict[str, Any] = {}
    for name in [*names, hn.CANARY]:
        if f"{schema}.{name}" in curated:
            table = DeltaTable(str(lake / "curated" / schema / name)).to_pyarrow_table()
            rows[name] = sorted(zip(*(table.column(c).to_pylist() for c in table.column_names), strict=True))
    out = conveyor(home, "query", f"SELECT * FROM {schema}.{hn.CANARY}", "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    assert [tuple(r.values()) for r in json.loads(out.stdout)] == rows[hn.CANARY]
    return rows


def _verdicts(
    described: dict[str, Any], rows: dict[str, Any], names: list[str]
) -> tuple[int, dict[str, int], list[str]]:
    """Loaded count, refusals by reason, and every problem (a table neither
    exact nor refused by name)."""
    tables = {t["TableName"]: t for t in described["tables"]}
    loaded, refused, problems = 0, dict[str, int](), []
    for name in names:
        t = tables.get(name)
        if t is None:
            problems.append(f"{name!r}: not in describe")
            continue
        reason = t.get("Error") or t.get("SuspendedReason")
        if t["TableState"] == "Table error" or reason:
            if not reason or (repr(name) not in reason and name not in reason):
                problems.append(f"{name!r}: refused without naming it: {reason!r}")
            elif name in rows:
                problems.append(f"{name!r}: refused ({reason}), yet on the target")
            else:
                key = reason.rsplit(": ", 1)[-1][:70]
                refused[key] = refused.get(key, 0) + 1
            continue
        got = [tuple(r) for r in rows.get(name, [])]
        if got != FINAL:
            problems.append(f"{name!r}: {t['TableState']}, target holds {got!r}")
        else:
            loaded += 1
    return loaded, refused, problems


def test_hostile_postgres_names_load_or_are_refused_by_name(
    pg_server: PostgresServer, tmp_path: Path
) -> None:
    names = hn.postgres()
    assert len(names) >= 60
    source = pg_server.url(pg_server.new_database("hostile_src"))
    _create_postgres(source, names)
    pg_target = pg_server.url(pg_server.new_database("hostile_dst"))
    home = tmp_path / "home"
    applied = conveyor(home, "apply", str(_stack(tmp_path, {"engine": "postgres", "url": source}, "public", pg_target, names)))
    assert applied.returncode == 0, applied.stderr
    started: list[str] = []
    began = time.monotonic()
    try:
        for t in TARGETS:
            out = conveyor(home, "tasks", "start", f"to_{t}")
            assert out.returncode == 0, out.stdout + out.stderr
            started.append(t)
        _wait(home, "capture to begin", _capturing)
        print(f"capturing after {time.monotonic() - began:.0f} s")
        _change_postgres(source, names)
        _wait(home, "every change applied or its table refused", _settled(names))
        print(f"changes applied after {time.monotonic() - began:.0f} s")
    finally:
        for t in started:
            conveyor(home, "tasks", "stop", f"to_{t}")
    _wait(home, "the stops", lambda d: d["status"] == "stopped")
    described = {t: _described(home, f"to_{t}") for t in TARGETS}
    rows = {
        "postgres": _postgres_rows(pg_target, names),
        "duckdb": _duckdb_rows(tmp_path / "dw.duckdb", "public", names),
        "lake": _lake_rows(home, tmp_path / "lake", "public", names),
    }
    report, problems = [], []
    for t in TARGETS:
        assert rows[t].get(hn.CANARY) == [(1, "alive")], f"{t}: canary changed: {rows[t].get(hn.CANARY)}"
        loaded, refused, trouble = _verdicts(described[t], rows[t], names)
        report.append(f"postgres -> {t}: {len(names)} names, {loaded} loaded, refused {refused}")
        problems += [f"{t}: {p}" for p in trouble]
    assert _postgres_rows(source, [])[hn.CANARY] == [(1, "alive")]
    print("\n".join(report))
    assert not problems, "\n".join(problems)
