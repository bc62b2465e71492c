"""Every PostgreSQL value arrives exactly or is reported: the edge-value
corpus (support/edge_values.py) through full load and change capture into
DuckDB, the lake (curated) and PostgreSQL. One assertion per path lists every
silent change."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest

from conveyor.store.store import Store
from support import edge_values as ev
from support import types_doc
from support.cli import conveyor
from support.servers import PostgresServer
from support.task_thread import RunningTask

pytestmark = pytest.mark.integration

DEADLINE_S = 60.0
Observed = dict[str, str | None]
"""Row name -> the target's text of its value."""
Reported = dict[str, str]
"""Row name (or table name, for a suspended table) -> the reason given."""


def _stack(tmp_path: Path, source: str, target: dict[str, Any], migration: str) -> Path:
    names = list(ev.tables())
    document = {
        "endpoints": {"src": {"engine": "postgres", "url": source}, "dst": target},
        "tasks": {
            "edge": {
                "source": "src",
                "target": "dst",
                "migration_type": migration,
                "table_mappings": {
                    "rules": [
                        {
                            "rule-type": "selection",
                            "rule-id": "1",
                            "rule-name": "all",
                            "object-locator": {"schema-name": "public", "table-name": "%"},
                            "rule-action": "include",
                        }
                    ]
                },
            }
        },
    }
    if target["engine"] == "lake":
        document["lake_tables"] = {f"public.{n}": {"primary_key": ["id"]} for n in names}
    path = tmp_path / "conveyor.yaml"
    path.write_text(json.dumps(document))
    return path


def _target(kind: str, tmp_path: Path, pg_server: PostgresServer) -> dict[str, Any]:
    if kind == "duckdb":
        return {"engine": "duckdb", "path": str(tmp_path / "dw.duckdb")}
    if kind == "postgres":
        return {"engine": "postgres", "url": pg_server.url(pg_server.new_database("edge_dst"))}
    data_format = kind.removeprefix("lake-")
    # a change file per second (the service's CdcMaxBatchInterval default is 60)
    settings = {"CdcMaxBatchInterval": 1}
    return {"engine": "lake", "path": str(tmp_path / "lake"), "format": data_format, "settings": settings}


def _warned(edge: ev.Edge, log: str | None) -> bool:
    """Whether the task's start warned that change capture cannot carry this value."""
    fragment = ev.CDC_WARNED.get(edge.name)
    table = next(n for n, (_, edges) in ev.tables().items() if edge in edges)
    return log is not None and fragment is not None and f"public.{table}: {fragment}" in log


def _silent_changes(
    target: str, observed: Observed, reported: Reported, cdc: bool, log: str | None = None
) -> tuple[list[str], int]:
    """Every row that is neither exact nor reported as expected, and how many
    rows were refused (or, in CDC, warned about) as expected."""
    problems = []
    refused = 0
    for edge in ev.all_edges():
        if edge.name in observed and observed[edge.name] != edge.expected(target) and _warned(edge, log):
            refused += 1  # warned about, by table and column, when the task started
            continue
        expected = edge.expected(target)
        table = f"r_{edge.name}"
        if isinstance(expected, ev.Refused):
            reason = ev.CDC_REASONS.get(edge.name, expected).reason if cdc else expected.reason
            given = reported.get(edge.name) or reported.get(table)
            if given is None:
                problems.append(
                    f"{edge.name}: not reported (target holds {observed.get(edge.name, '<no row>')!r})"
                )
            elif reason not in given or "'v'" not in given:
                problems.append(f"{edge.name}: reported without column 'v' and {reason!r}: {given}")
            elif edge.name in observed:
                problems.append(f"{edge.name}: reported, yet in the target as {observed[edge.name]!r}")
            else:
                refused += 1
        elif edge.name not in observed:
            problems.append(f"{edge.name}: missing ({reported.get(edge.name) or reported.get(table)})")
        elif observed[edge.name] != expected:
            problems.append(
                f"{edge.name}: {edge.literal[:80]} became {observed[edge.name]!r:.200},"
                f" expected {expected!r:.200}"
            )
    return problems, refused


def _counts(path: str, problems: list[str], refused: int) -> list[str]:
    """Print the path's counts (``pytest -s``); the problems, headed by them."""
    tried = len(ev.all_edges())
    line = (
        f"edge values {path}: tried {tried}, exact {tried - refused - len(problems)},"
        f" refused or warned {refused}, silently changed or missing {len(problems)}"
    )
    print(line)
    return [line, *problems] if problems else []


def _doc_drift(target: str, typed: Observed) -> list[str]:
    """Where docs/types.md names another target type than the one a value has."""
    doc = types_doc.read()["duckdb" if target == "duckdb" else "lake"]
    drift: dict[str, str] = {}
    for edge in ev.all_edges():
        kind = typed.get(edge.name)
        row = doc.get(edge.pg_type)
        if kind is not None and (row is None or row.becomes != kind):
            drift[edge.pg_type] = f"docs/types.md: {edge.pg_type} becomes {kind}, the page says {row}"
    return list(drift.values())


def _union(columns: str) -> str:
    return " UNION ALL ".join(f"SELECT name, {columns} FROM public.{n}" for n in ev.tables())


def _duckdb_rows(path: Path) -> tuple[Observed, Reported, Observed]:
    with duckdb.connect(str(path), read_only=True) as conn:
        present = {r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        selects = [
            f"SELECT name, CAST(v AS VARCHAR), typeof(v) FROM public.{n}" for n in ev.tables() if n in present
        ]
        rows = conn.execute(" UNION ALL ".join(selects)).fetchall()
        observed = {name: value for name, value, _ in rows}
        typed = {name: kind for name, _, kind in rows}
        reported: Reported = {}
        if "awsdms_apply_exceptions" in present:
            for table, key, column, error in conn.execute(
                "SELECT table_name, key, column_name, error FROM main.awsdms_apply_exceptions"
            ).fetchall():
                name = ev.tables()[table][1][int(json.loads(key)["id"]) - 1].name
                reported[name] = f"column {column!r}: {error}"
    return observed, reported, typed


def _lake_rows(home: Path, lake: Path) -> tuple[Observed, Reported, Observed]:
    processed = conveyor(home, "lake", "process", "--json", timeout=300)
    assert processed.returncode == 0, processed.stdout + processed.stderr
    results = json.loads(processed.stdout)
    trouble = [t for t in results if t["status"] == "failed" or t["skipped"]]
    assert not trouble, [(t["table"], t["error"], t["skipped"]) for t in trouble]
    names = {t["table"] for t in results if t["version"] is not None}
    selects = [f"SELECT name, CAST(v AS VARCHAR) AS v, typeof(v) AS t FROM {n}" for n in sorted(names)]
    queried = conveyor(home, "query", " UNION ALL ".join(selects), "--json")
    assert queried.returncode == 0, queried.stderr
    rows = json.loads(queried.stdout)
    observed = {row["name"]: row["v"] for row in rows}
    typed = {row["name"]: row["t"] for row in rows}
    reported: Reported = {}
    for file in (lake / ".conveyor" / "exceptions").rglob("*.jsonl"):
        for line in file.read_text().splitlines():
            entry = json.loads(line)
            table = entry["table"].split(".", 1)[1]
            name = ev.tables()[table][1][int(entry["key"]["id"]) - 1].name
            reported[name] = f"column {entry['column']!r}: {entry['reason']}"
    return observed, reported, typed


def _postgres_rows(url: str) -> Observed:
    with psycopg.connect(url) as conn:
        return dict(conn.execute(_union("v::text")).fetchall())  # type: ignore[arg-type]


def _pg_differences(target: str, source: str, log: str | None = None) -> tuple[list[str], int]:
    """PostgreSQL to PostgreSQL: every value's text, as the source has it (or,
    in CDC, warned about: their count)."""
    have, want = _postgres_rows(target), _postgres_rows(source)
    assert len(want) == len(ev.all_edges())
    edges = {e.name: e for e in ev.all_edges()}
    differ = [name for name in want if have.get(name, "<no row>") != want[name]]
    warned = [name for name in differ if name in have and _warned(edges[name], log)]
    return [
        f"{name}: {want[name]!r:.200} became {have.get(name, '<no row>')!r:.200}"
        for name in differ
        if name not in warned
    ], len(warned)


@pytest.fixture
def source(pg_server: PostgresServer) -> Iterator[str]:
    url = pg_server.url(pg_server.new_database("edge_src"))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(ev.create_sql())  # type: ignore[arg-type]
    yield url


def _insert_all(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in ev.insert_sql():
            conn.execute(statement)  # type: ignore[arg-type]


@pytest.mark.parametrize("target", ["duckdb", "lake-csv", "lake-parquet", "postgres"])
def test_full_load_every_value_exact_or_reported(
    target: str, source: str, pg_server: PostgresServer, tmp_path: Path
) -> None:
    _insert_all(source)
    home = tmp_path / "home"
    endpoint = _target(target, tmp_path, pg_server)
    applied = conveyor(home, "apply", str(_stack(tmp_path, source, endpoint, "full-load")))
    assert applied.returncode == 0, applied.stderr
    started = conveyor(home, "tasks", "start", "edge", "--wait", timeout=300)
    failed = (
        [] if started.returncode == 0 else [f"the task failed: {(started.stdout + started.stderr)[-2000:]}"]
    )
    if target == "postgres":
        problems = failed + _counts(f"PG->{target} full load", *_pg_differences(endpoint["url"], source))
        assert not problems, "silent changes or failures:\n" + "\n".join(problems)
        return
    if target == "duckdb":
        observed, reported, typed = _duckdb_rows(tmp_path / "dw.duckdb")
        with duckdb.connect(str(tmp_path / "dw.duckdb"), read_only=True) as conn:
            nullable = conn.execute(
                "SELECT is_nullable FROM information_schema.columns"
                " WHERE table_name = 'e_mamt' AND column_name = 'v'"
            ).fetchone()
        assert nullable == ("NO",), "a domain's NOT NULL (money_amount) makes its column NOT NULL"
    else:
        observed, reported, typed = _lake_rows(home, tmp_path / "lake")
    changed, refused = _silent_changes(target, observed, reported, cdc=False)
    problems = failed + _counts(f"PG->{target} full load", changed, refused) + _doc_drift(target, typed)
    assert not problems, "silent changes or failures:\n" + "\n".join(problems)


def _wait(check: Callable[[], bool], what: str, debug: Callable[[], Any]) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}: {debug()}")


def _table_stats(store: Store) -> dict[str, dict[str, Any]]:
    run = store.task_status("edge")["current_run"]
    stats = store.table_stats("edge", run) if run is not None else []
    return {s["TableName"]: s for s in stats}


def _cdc_done(store: Store) -> bool:
    stats = _table_stats(store)
    for name, (_, edges) in ev.tables().items():
        entry = stats.get(name, {})
        if entry.get("SuspendedReason") is None and entry.get("Inserts", 0) < len(edges):
            return False
    return True


@pytest.mark.parametrize("target", ["duckdb", "lake-csv", "lake-parquet", "postgres"])
def test_cdc_every_value_exact_or_reported(
    target: str, source: str, pg_server: PostgresServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    home = tmp_path / "home"
    endpoint = _target(target, tmp_path, pg_server)
    stack = _stack(tmp_path, source, endpoint, "full-load-and-cdc")
    store = Store.open(home=home)
    try:
        with RunningTask(store, stack, "edge"):
            _wait(lambda: store.task_progress("edge") is not None, "capture to begin", lambda: None)
            _insert_all(source)
            _wait(
                lambda: _cdc_done(store),
                "every table applied or suspended",
                lambda: (store.task_status("edge"), _table_stats(store)),
            )
        suspended: Reported = {
            name: str(s["SuspendedReason"])
            for name, s in _table_stats(store).items()
            if s.get("SuspendedReason")
        }
    finally:
        store.close()
    log = caplog.text
    if target == "postgres":
        changed, warned = _pg_differences(endpoint["url"], source, log)
        problems = [f"suspended: {r}" for r in suspended.values()] + changed
        assert _counts(f"PG->{target} CDC", problems, warned) == []
        return
    if target == "duckdb":
        observed, reported, typed = _duckdb_rows(tmp_path / "dw.duckdb")
    else:
        applied = conveyor(home, "apply", str(stack))
        assert applied.returncode == 0, applied.stderr
        observed, reported, typed = _lake_rows(home, tmp_path / "lake")
    changed, refused = _silent_changes(target, observed, {**reported, **suspended}, cdc=True, log=log)
    problems = _counts(f"PG->{target} CDC", changed, refused) + _doc_drift(target, typed)
    assert not problems, "silent changes:\n" + "\n".join(problems)
