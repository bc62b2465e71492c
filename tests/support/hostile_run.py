"""Hostile table and column names (hostile_names.py) through full load and
change capture into PostgreSQL, DuckDB and the lake, through a stack file and
the CLI: every table is loaded exactly or refused by name with a reason, no
task crashes, and the canary table (named inside every injection attempt) is
intact on the source and on each target. One test file per source dialect
(test_hostile_identifiers_*.py), so the suite's workers share them."""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import duckdb
import psycopg
from deltalake import DeltaTable
from psycopg import sql

from conveyor.connectors.lake import layout as lay
from support import hostile_names as hn
from support.cli import conveyor
from support.mariadb import mariadb_connect, run
from support.servers import MariaDBServer, PostgresServer
from support.tasks import wait_for_all

DEADLINE_S = 90.0
TARGETS = ("postgres", "duckdb", "lake")
FINAL = [(1, "one, updated"), (3, "three")]


@dataclass
class Source:
    """A source engine's endpoint, schema, names and a way to run SQL on it."""

    endpoint: dict[str, Any]
    schema: str
    names: list[str]
    quote: Callable[[str], str]
    execute: Callable[[list[str]], None]
    canary: Callable[[], list[tuple[Any, ...]]]
    prepare: Callable[[], None] | None = None
    """Creates the tables and their first rows (default: SQL through ``execute``)."""
    modify: Callable[[], None] | None = None
    """Writes the captured changes (default: SQL through ``execute``)."""


def _double(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _backtick(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _setup(source: Source) -> None:
    if source.prepare is not None:
        source.prepare()
        return
    q, names = source.quote, source.names
    statements = [
        f"CREATE TABLE {hn.CANARY} (id integer PRIMARY KEY, v text)",
        f"INSERT INTO {hn.CANARY} VALUES (1, 'alive')",
    ]
    for i, name in enumerate(names):
        statements.append(
            f"CREATE TABLE {q(name)} (id integer PRIMARY KEY, {q(hn.column_for(i, names))} text)"
        )
        statements.append(f"INSERT INTO {q(name)} VALUES (1, 'one'), (2, 'two')")
    source.execute(statements)


def _change(source: Source) -> None:
    if source.modify is not None:
        source.modify()
        return
    q, names = source.quote, source.names
    statements = []
    for i, name in enumerate(names):
        statements.append(f"INSERT INTO {q(name)} VALUES (3, 'three')")
        statements.append(f"UPDATE {q(name)} SET {q(hn.column_for(i, names))} = 'one, updated' WHERE id = 1")
        statements.append(f"DELETE FROM {q(name)} WHERE id = 2")
    source.execute(statements)


def postgres_source(pg_server: PostgresServer) -> Source:
    url = pg_server.url(pg_server.new_database("hostile_src"))

    def execute(statements: list[str]) -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement.encode())

    def canary() -> list[tuple[Any, ...]]:
        with psycopg.connect(url) as conn:
            return conn.execute(f"SELECT * FROM {hn.CANARY}").fetchall()

    return Source({"engine": "postgres", "url": url}, "public", hn.postgres(), _double, execute, canary)


def mariadb_source(maria: MariaDBServer) -> Source:
    url = maria.url(maria.new_database("hostile"))

    def execute(statements: list[str]) -> None:
        conn = mariadb_connect(url)
        try:
            run(conn, "START TRANSACTION", *statements, "COMMIT")  # one binlog transaction
        finally:
            conn.close()

    def canary() -> list[tuple[Any, ...]]:
        conn = mariadb_connect(url)
        try:
            with conn.cursor() as cur:
                cur.execute(f"SELECT * FROM {hn.CANARY}")
                return [tuple(r) for r in cur.fetchall()]
        finally:
            conn.close()

    schema = url.rsplit("/", 1)[1]
    return Source({"engine": "mysql", "url": url}, schema, hn.mariadb(), _backtick, execute, canary)


def sqlite_source(path: Path) -> Source:
    def execute(statements: list[str]) -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            for statement in statements:
                conn.execute(statement)
        finally:
            conn.close()

    def canary() -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(path)
        try:
            return conn.execute(f"SELECT * FROM {hn.CANARY}").fetchall()
        finally:
            conn.close()

    return Source({"engine": "sqlite", "path": str(path)}, "main", hn.sqlite(), _double, execute, canary)


DYNAMODB_REGION = "eu-north-1"
"""A region of its own on the session's moto server: the task selects every
table (``%``), and the tables other tests leave in theirs (some without a
stream) are not its to capture."""


def dynamodb_source(moto_url: str) -> Source:
    """DynamoDB on the tests' moto server, captured from Streams: a table per
    hostile table name, keyed by ``id`` (a number), one hostile attribute each.
    The caller deletes the tables afterwards (``delete_dynamodb_tables``)."""
    client = boto3.client("dynamodb", endpoint_url=moto_url, region_name=DYNAMODB_REGION)
    names, attributes = hn.dynamodb_tables(), hn.dynamodb_attributes()

    def attribute(i: int) -> str:
        return hn.column_for(i, attributes)

    def put(table: str, key: int, name: str, value: str) -> None:
        client.put_item(TableName=table, Item={"id": {"N": str(key)}, name: {"S": value}})

    def prepare() -> None:
        for table in [hn.CANARY, *names]:
            client.create_table(
                TableName=table,
                BillingMode="PAY_PER_REQUEST",
                KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "N"}],
                StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
            )
        put(hn.CANARY, 1, "v", "alive")
        for i, table in enumerate(names):
            put(table, 1, attribute(i), "one")
            put(table, 2, attribute(i), "two")

    def modify() -> None:
        for i, table in enumerate(names):
            put(table, 3, attribute(i), "three")
            put(table, 1, attribute(i), "one, updated")
            client.delete_item(TableName=table, Key={"id": {"N": "2"}})

    def canary() -> list[tuple[Any, ...]]:
        items = client.scan(TableName=hn.CANARY)["Items"]
        return [(int(item["id"]["N"]), item["v"]["S"]) for item in items]

    def refuse_sql(statements: list[str]) -> None:
        raise AssertionError("a DynamoDB source takes no SQL")

    endpoint = {
        "engine": "dynamodb",
        "endpoint_url": moto_url,
        "region": DYNAMODB_REGION,
        "settings": {"variant_column": None},
    }
    return Source(endpoint, "dynamodb", names, _double, refuse_sql, canary, prepare, modify)


def delete_dynamodb_tables(moto_url: str) -> None:
    """The hostile tables go, so later tests on the same moto server do not see them."""
    client = boto3.client("dynamodb", endpoint_url=moto_url, region_name=DYNAMODB_REGION)
    for table in [hn.CANARY, *hn.dynamodb_tables()]:
        with contextlib.suppress(client.exceptions.ResourceNotFoundException):
            client.delete_table(TableName=table)


def _stack(tmp_path: Path, source: dict[str, Any], schema: str, pg_target: str, names: list[str]) -> Path:
    # A change batch to ~70 tables needs DuckDB memory per table and column it writes: the
    # default memory_limit (1GB) holds it; 128MB did not (an OutOfMemoryException).
    duckdb_options: dict[str, Any] = {}
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
        "duckdb": {"engine": "duckdb", "path": str(tmp_path / "dw.duckdb"), **duckdb_options},
        # A change file per second: the lake's CdcMaxBatchInterval default (60 s) held
        # every run a minute waiting for its one change batch.
        "lake": {
            "engine": "lake",
            "path": str(tmp_path / "lake"),
            "format": "parquet",
            "settings": {"CdcMaxBatchInterval": 1},
        },
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
    # Unicode as it is: PyYAML reads no JSON surrogate escapes (a name outside the BMP).
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    return path


def _described(home: Path, task: str) -> dict[str, Any]:
    out = conveyor(home, "tasks", "describe", task, "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def _all_described(home: Path) -> dict[str, dict[str, Any]]:
    """``tasks describe`` of the three tasks, run side by side (each CLI run
    takes about a second, most of it starting Python)."""
    with ThreadPoolExecutor(len(TARGETS)) as pool:
        described = pool.map(lambda t: _described(home, f"to_{t}"), TARGETS)
        return dict(zip(TARGETS, described, strict=True))


def _wait(home: Path, what: str, check: Any) -> None:
    """Until ``check`` holds for the three tasks (read in this process: support/tasks.py)."""
    wait_for_all(home, [f"to_{t}" for t in TARGETS], check, what, seconds=DEADLINE_S, interval=0.3)


def _capturing(described: dict[str, Any]) -> bool:
    return described["status"] == "running" and "capture" in described


def _settled(names: list[str]) -> Any:
    def check(described: dict[str, Any]) -> bool:
        tables = {t["TableName"]: t for t in described["tables"]}
        for name in names:
            t = tables.get(name, {})
            if t.get("TableState") == "Table error" or t.get("SuspendedReason"):
                continue
            # Each count at least one (a tuple comparison would let (2, 0, 0) pass: a
            # DynamoDB stream also replays the seed items as inserts before the changes).
            if min(t.get("Inserts", 0), t.get("Updates", 0), t.get("Deletes", 0)) < 1:
                return False
        return True

    return check


def _postgres_rows(url: str, schema: str, names: list[str]) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        for name in [*names, hn.CANARY]:
            with contextlib.suppress(psycopg.errors.UndefinedTable):
                rows[name] = conn.execute(
                    sql.SQL("SELECT * FROM {} ORDER BY 1").format(sql.Identifier(schema, name))
                ).fetchall()
    return rows


def _duckdb_rows(path: Path, schema: str, names: list[str]) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    with duckdb.connect(str(path), read_only=True) as conn:
        present = {
            n
            for (n,) in conn.execute(
                "SELECT table_name FROM duckdb_tables() WHERE schema_name = ?", [schema]
            ).fetchall()
        }
        for name in [*names, hn.CANARY]:
            if name in present:
                query = f"SELECT * FROM {_double(schema)}.{_double(name)} ORDER BY 1"
                rows[name] = conn.execute(query).fetchall()
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
                key = re.sub(r" \(.*?\)", "", reason.rsplit(": ", 1)[-1])[:48]
                refused[key] = refused.get(key, 0) + 1
            continue
        got = [tuple(r) for r in rows.get(name, [])]
        if got != FINAL:
            problems.append(f"{name!r}: {t['TableState']}, target holds {got!r}")
        else:
            loaded += 1
    return loaded, refused, problems


def check_hostile_names(source: Source, pg_server: PostgresServer, tmp_path: Path) -> None:
    """Every hostile name of ``source`` into the three targets: loaded exactly or
    refused by name, and the canary intact everywhere."""
    names, schema = source.names, source.schema
    assert len(names) >= 60
    _setup(source)
    pg_target = pg_server.url(pg_server.new_database("hostile_dst"))
    home = tmp_path / "home"
    applied = conveyor(home, "apply", str(_stack(tmp_path, source.endpoint, schema, pg_target, names)))
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
        _change(source)
        _wait(home, "every change applied or its table refused", _settled(names))
        print(f"changes applied after {time.monotonic() - began:.0f} s")
    finally:
        with ThreadPoolExecutor(len(TARGETS)) as pool:  # the stop requests side by side
            list(pool.map(lambda t: conveyor(home, "tasks", "stop", f"to_{t}"), started))
    _wait(home, "the stops", lambda d: d["status"] == "stopped")
    print(f"stopped after {time.monotonic() - began:.0f} s")
    described = _all_described(home)
    rows = {
        "postgres": _postgres_rows(pg_target, schema, names),
        "duckdb": _duckdb_rows(tmp_path / "dw.duckdb", schema, names),
        "lake": _lake_rows(home, tmp_path / "lake", schema, names),
    }
    print(f"targets read after {time.monotonic() - began:.0f} s")
    report, problems = [], []
    for t in TARGETS:
        assert rows[t].get(hn.CANARY) == [(1, "alive")], f"{t}: canary changed: {rows[t].get(hn.CANARY)}"
        loaded, refused, trouble = _verdicts(described[t], rows[t], names)
        report.append(
            f"{source.endpoint['engine']} -> {t}: {len(names)} names, {loaded} loaded, refused {refused}"
        )
        problems += [f"{t}: {p}" for p in trouble]
    assert source.canary() == [(1, "alive")]
    print("\n".join(report))
    assert not problems, "\n".join(problems)
