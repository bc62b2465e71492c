"""Every MariaDB, SQLite and DynamoDB value arrives exactly or is reported: the
edge-value corpora (support/edge_values_{mariadb,sqlite,dynamodb}.py) through
full load and change capture, MariaDB -> PostgreSQL, DuckDB and the lake
(curated by `conveyor lake process`, read by `conveyor query`), SQLite ->
DuckDB, the lake and PostgreSQL, DynamoDB -> PostgreSQL, DuckDB and the lake (Streams and
incremental capture). One assertion per path lists every silent change; each path prints
its counts."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import boto3
import duckdb
import psycopg
import pytest

from conveyor import Conveyor
from conveyor.connectors.mysql.snapshot_connection import DRIVER_VARIABLE
from conveyor.orchestration.bus import event_sink
from conveyor.replication.task_runner import run_task
from conveyor.stack.loader import load_stack
from conveyor.store.store import Store
from support import edge_values_dynamodb as ddb
from support import edge_values_mariadb as maria
from support import edge_values_sqlite as lite
from support import source_types_doc
from support.cli import conveyor
from support.servers import PostgresServer
from support.source_edges import Corpus, counts, silent_changes
from support.task_thread import RunningTask

pytestmark = pytest.mark.integration

DEADLINE_S = 60.0
MODIFIED = "updated_at"
"""DynamoDB items' modified-at attribute (incremental capture)."""
TASK = "edge"
Observed = dict[str, str | None]
Reported = dict[str, str]


def _stack(
    path: Path,
    source: dict[str, Any],
    target: dict[str, Any],
    migration: str,
    curated: Corpus | None = None,
    schema: str | None = None,
    prefix: str = "",
) -> Path:
    document: dict[str, Any] = {
        "endpoints": {"src": source, "dst": target},
        "tasks": {
            TASK: {
                "source": "src",
                "target": "dst",
                "migration_type": migration,
                "table_mappings": {
                    "rules": [
                        {
                            "rule-type": "selection",
                            "rule-id": "1",
                            "rule-name": "all",
                            "object-locator": {"schema-name": "%", "table-name": "%"},
                            "rule-action": "include",
                        }
                    ]
                },
            }
        },
    }
    if curated is not None:  # the lake's tables, curated by their key (a MariaDB schema is its database)
        if schema is None:
            schema = urlparse(source["url"]).path.lstrip("/") if "url" in source else "main"
        key = ["pk"] if curated.engine == "dynamodb" else ["id"]
        document["lake_tables"] = {f"{schema}.{prefix}{n}": {"primary_key": key} for n in curated.tables()}
    file = path / "conveyor.yaml"
    file.write_text(json.dumps(document))
    return file


# Sources: create the tables, and write the rows (all, or those the CDC test leaves to capture).


# Targets: each row's text, what was reported, and each table's column type.


def _pg_read(url: str, corpus: Corpus, prefix: str = "") -> tuple[Observed, Reported, dict[str, str]]:
    observed: Observed = {}
    reported: Reported = {}
    typed: dict[str, str] = {}
    with psycopg.connect(url) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        located = dict(
            conn.execute(
                "SELECT table_name, table_schema FROM information_schema.tables"
                " WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
            ).fetchall()
        )
        for table in corpus.tables():
            if prefix + table not in located:
                continue
            relation = f'"{located[prefix + table]}"."{prefix + table}"'
            if corpus.engine == "dynamodb":
                rows = conn.execute(  # type: ignore[call-overload]
                    f"SELECT pk, (to_jsonb(t) - 'pk' - '_variant' - '{MODIFIED}')::text FROM {relation} t"
                ).fetchall()
            else:
                rows = conn.execute(f"SELECT name, v::text FROM {relation}").fetchall()  # type: ignore[call-overload]
            kind = conn.execute(  # type: ignore[call-overload]
                "SELECT CASE WHEN t.typtype = 'e' THEN 'enum' ELSE format_type(atttypid, atttypmod) END"
                f" FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid"
                f" WHERE attrelid = '{relation}'::regclass AND attname = 'v'"
            ).fetchone()
            if kind is not None:
                typed[table] = kind[0]
            observed.update(dict(rows))
        if "awsdms_apply_exceptions" in located:
            for table, key, column, error in conn.execute(
                "SELECT table_name, key, column_name, error FROM public.awsdms_apply_exceptions"
            ).fetchall():
                reported[_row_name(corpus, table, key)] = f"column {column!r}: {error}"
    return observed, reported, typed


def _duckdb_read(path: Path, corpus: Corpus) -> tuple[Observed, Reported, dict[str, str]]:
    observed: Observed = {}
    reported: Reported = {}
    typed: dict[str, str] = {}
    with duckdb.connect(str(path), read_only=True) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        located = dict(
            conn.execute("SELECT table_name, table_schema FROM information_schema.tables").fetchall()
        )
        for table in corpus.tables():
            if table not in located:
                continue
            rows = conn.execute(
                f'SELECT name, CAST(v AS VARCHAR), typeof(v) FROM "{located[table]}"."{table}"'
            ).fetchall()
            observed.update({name: value for name, value, _ in rows})
            if rows:
                typed[table] = re.sub(r"^ENUM\(.*", "ENUM", rows[0][2], flags=re.S)
        if "awsdms_apply_exceptions" in located:
            for table, key, column, error in conn.execute(
                "SELECT table_name, key, column_name, error FROM main.awsdms_apply_exceptions"
            ).fetchall():
                reported[_row_name(corpus, table, key)] = f"column {column!r}: {error}"
    return observed, reported, typed


def _jsonb_text(value: Any) -> str:
    """A DuckDB value as PostgreSQL's jsonb prints it (``to_jsonb(t)::text``),
    so the DynamoDB corpus's one spelling serves both targets: keys by length,
    then bytes; numbers exact; bytes as bytea's hex text."""
    if isinstance(value, dict):
        keys = sorted(value, key=lambda k: (len(k.encode()), k.encode()))
        return (
            "{"
            + ", ".join(f"{json.dumps(k, ensure_ascii=False)}: {_jsonb_text(value[k])}" for k in keys)
            + "}"
        )
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_jsonb_text(v) for v in value) + "]"
    if isinstance(value, bytes):
        return json.dumps("\\x" + value.hex())
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int | Decimal):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def _duckdb_items(path: Path, corpus: Corpus, prefix: str) -> tuple[Observed, Reported, dict[str, str]]:
    """The DynamoDB corpus's rows in DuckDB, each as the JSON of its row
    without its key and Conveyor's own columns (as ``_pg_read`` reads them)."""
    observed: Observed = {}
    reported: Reported = {}
    typed: dict[str, str] = {}
    with duckdb.connect(str(path), read_only=True) as conn:
        located = dict(
            conn.execute("SELECT table_name, table_schema FROM information_schema.tables").fetchall()
        )
        for table in corpus.tables():
            if prefix + table not in located:
                continue
            relation = f'"{located[prefix + table]}"."{prefix + table}"'
            types = {name: kind for name, kind, *_ in conn.execute(f"DESCRIBE {relation}").fetchall()}
            if "v" in types:
                typed[table] = types["v"]
            cursor = conn.execute(f"SELECT * FROM {relation}")
            names = [d[0] for d in cursor.description]
            for row in cursor.fetchall():
                values = dict(zip(names, row, strict=True))
                name = values.pop("pk")
                for own in ("_variant", MODIFIED):
                    values.pop(own, None)
                for column, value in values.items():
                    if types[column] == "JSON" and value is not None:
                        values[column] = json.loads(value)
                observed[name] = _jsonb_text(values)
        if "awsdms_apply_exceptions" in located:
            for table, key, column, error in conn.execute(
                "SELECT table_name, key, column_name, error FROM main.awsdms_apply_exceptions"
            ).fetchall():
                reported[_row_name(corpus, table, key)] = f"column {column!r}: {error}"
    return observed, reported, typed


def _lake_processed(home: Path) -> list[dict[str, Any]]:
    """`conveyor lake process --json`'s tables, none failed or skipped."""
    processed = conveyor(home, "lake", "process", "--json", timeout=300)
    assert processed.returncode == 0, processed.stdout + processed.stderr
    results: list[dict[str, Any]] = json.loads(processed.stdout)
    trouble = [t for t in results if t["status"] == "failed" or t["skipped"]]
    assert not trouble, [(t["table"], t["error"], t["skipped"]) for t in trouble]
    return results


def _lake_read(home: Path, lake: Path, corpus: Corpus) -> tuple[Observed, Reported, dict[str, str]]:
    """The curated tables (`conveyor lake process`, then `conveyor query`) and
    the refusals the lake recorded beside its files."""
    results = _lake_processed(home)
    names = sorted(t["table"] for t in results if t["version"] is not None)
    selects = [f"SELECT name, CAST(v AS VARCHAR) AS v, typeof(v) AS t FROM {n}" for n in names]
    queried = conveyor(home, "query", " UNION ALL ".join(selects), "--json")
    assert queried.returncode == 0, queried.stderr
    rows = json.loads(queried.stdout)
    observed: Observed = {row["name"]: row["v"] for row in rows}
    by_name = {e.name: table for table, (_, edges) in corpus.tables().items() for e in edges}
    typed = {by_name[row["name"]]: re.sub(r"^ENUM\(.*", "ENUM", row["t"], flags=re.S) for row in rows}
    reported: Reported = {}
    for file in (lake / ".conveyor" / "exceptions").rglob("*.jsonl"):
        for line in file.read_text().splitlines():
            entry = json.loads(line)
            table = entry["table"].split(".", 1)[1]
            reported[_row_name(corpus, table, entry["key"])] = (
                f"column {entry['column']!r}: {entry['reason']}"
            )
    return observed, reported, typed


def _lake_items(
    home: Path, lake: Path, corpus: Corpus, prefix: str
) -> tuple[Observed, Reported, dict[str, str]]:
    """The DynamoDB corpus's curated rows (`conveyor lake process`, then the
    Python API's query, which answers DuckDB's own values), each as the JSON of
    its row without its key and Conveyor's own columns (as ``_pg_read``)."""
    results = _lake_processed(home)
    observed: Observed = {}
    typed: dict[str, str] = {}
    with Conveyor(home=home) as service:
        for curated in sorted(t["table"] for t in results if t["version"] is not None):
            table = curated.split(".", 1)[1].removeprefix(prefix)
            answer = service.query(f"SELECT * FROM {curated}")
            for values in answer.root:
                name = values.pop("pk")
                for own in ("_variant", MODIFIED):
                    values.pop(own, None)
                observed[name] = _jsonb_text(values)
            if "v" in answer.columns:
                typed[table] = service.query(f"SELECT typeof(v) AS t FROM {curated} LIMIT 1").root[0]["t"]
    reported: Reported = {}
    for file in (lake / ".conveyor" / "exceptions").rglob("*.jsonl"):
        for line in file.read_text().splitlines():
            entry = json.loads(line)
            reported[_row_name(corpus, "", entry["key"])] = f"column {entry['column']!r}: {entry['reason']}"
    return observed, reported, typed


def _row_name(corpus: Corpus, table: str, key: str | dict[str, Any]) -> str:
    key = json.loads(key) if isinstance(key, str) else key
    if "pk" in key:  # DynamoDB: the key is the row's name
        return str(key["pk"])
    return corpus.row_of(table, int(key["id"]))


def _table_reasons(store: Store) -> Reported:
    """Tables failed or suspended, with their reason."""
    run = store.task_status(TASK)["current_run"]
    stats = store.table_stats(TASK, run) if run is not None else []
    return {
        s["TableName"].split("_", 1)[1] if s["TableName"].startswith("x") else s["TableName"]: str(
            s.get("SuspendedReason") or s.get("Error")
        )
        for s in stats
        if s.get("SuspendedReason") or s.get("Error")
    }


def _check(
    corpus: Corpus, target: str, path: str, read: tuple[Observed, Reported, dict[str, str]], tables: Reported
) -> None:
    observed, reported, typed = read
    problems = silent_changes(corpus, target, observed, {**reported, **tables})
    problems += source_types_doc.drift(corpus, target, typed)
    print(f"\n{path}: {counts(corpus, target, problems)}")
    assert not problems, f"{path}: silent changes or failures:\n" + "\n".join(problems)


def _full_load(store: Store, stack: Path) -> None:
    run_task(store, load_stack(stack), TASK, events=event_sink(store), stop=threading.Event())


def _wait(check: Callable[[], bool], what: str, debug: Callable[[], Any]) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}: {debug()}")


def _captured(store: Store, corpus: Corpus, already: int = 0, prefix: str = "") -> bool:
    """Every table's rows applied (beyond ``already`` loaded ones) or the table suspended."""
    run = store.task_status(TASK)["current_run"]
    stats = {s["TableName"]: s for s in (store.table_stats(TASK, run) if run is not None else [])}
    for name, (_, edges) in corpus.tables().items():
        entry = stats.get(prefix + name, {})
        applied = entry.get("Inserts", 0) + entry.get("Updates", 0)  # incremental capture upserts
        if entry.get("SuspendedReason") is None and applied + already < len(edges):
            return False
    return True


def _cdc(
    store: Store, stack: Path, corpus: Corpus, write: Callable[[], None], already: int = 0, prefix: str = ""
) -> Reported:
    with RunningTask(store, stack, TASK):
        _wait(
            lambda: store.task_progress(TASK) is not None, "capture to begin", lambda: store.task_status(TASK)
        )
        write()
        _wait(
            lambda: _captured(store, corpus, already, prefix),
            "every table applied or suspended",
            lambda: (store.task_status(TASK), _table_reasons(store)),
        )
    return _table_reasons(store)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store.open(home=tmp_path / "home")
    yield opened
    opened.close()


def _target(kind: str, tmp_path: Path, pg_server: PostgresServer) -> dict[str, Any]:
    if kind == "duckdb":
        return {"engine": "duckdb", "path": str(tmp_path / "dw.duckdb")}
    if kind == "lake":  # a change file per second (the service's CdcMaxBatchInterval default is 60)
        lake = str(tmp_path / "lake")
        return {"engine": "lake", "path": lake, "format": "parquet", "settings": {"CdcMaxBatchInterval": 1}}
    return {"engine": "postgres", "url": pg_server.url(pg_server.new_database("edge_dst"))}


def _read(
    kind: str, endpoint: dict[str, Any], corpus: Corpus, home: Path
) -> tuple[Observed, Reported, dict[str, str]]:
    if kind == "lake":
        return _lake_read(home, Path(endpoint["path"]), corpus)
    if kind == "duckdb":
        return _duckdb_read(Path(endpoint["path"]), corpus)
    return _pg_read(endpoint["url"], corpus)


_MARIADB_CASES = [
    *(
        pytest.param(target, cdc, "connector", id=f"{'cdc' if cdc else 'full-load'}-{target}")
        for target in ("postgres", "duckdb", "lake")
        for cdc in (False, True)
    ),
    # The snapshot's other driver (snapshot_connection: where the C extension does not load).
    pytest.param("postgres", False, "pymysql", id="full-load-postgres-pymysql"),
]


@pytest.mark.parametrize(("target", "cdc", "driver"), _MARIADB_CASES)
def test_mariadb_every_value_exact_or_reported(
    target: str,
    cdc: bool,
    driver: str,
    mariadb_db: str,
    pg_server: PostgresServer,
    store: Store,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(DRIVER_VARIABLE, driver)  # also for the CLI's processes
    maria.create(mariadb_db)
    endpoint = _target(target, tmp_path, pg_server)
    source = {"engine": "mysql", "url": mariadb_db}
    curated = maria.CORPUS if target == "lake" else None
    if curated is not None:  # `conveyor lake process` curates what the applied stack declares
        stack = _stack(tmp_path, source, endpoint, "full-load-and-cdc" if cdc else "full-load", curated)
        applied = conveyor(tmp_path / "home", "apply", str(stack))
        assert applied.returncode == 0, applied.stderr
    if cdc:
        stack = _stack(tmp_path, source, endpoint, "full-load-and-cdc", curated)
        tables = _cdc(store, stack, maria.CORPUS, lambda: maria.insert(mariadb_db))
        # PostgreSQL's own refusal of an enum label (not a source value) too.
        assert tables == {}, "in CDC too, a refused value suspends no table: its row is logged"
    else:
        maria.insert(mariadb_db)
        stack = _stack(tmp_path, source, endpoint, "full-load", curated)
        _full_load(store, stack)
        tables = _table_reasons(store)
        assert tables == {}, "a refused value fails no table: its row goes to the exceptions table"
    path = f"MariaDB -> {target} ({'CDC' if cdc else 'full load'})"
    _check(maria.CORPUS, target, path, _read(target, endpoint, maria.CORPUS, tmp_path / "home"), tables)


@pytest.mark.parametrize("cdc", [False, True], ids=["full-load", "cdc"])
@pytest.mark.parametrize("target", ["duckdb", "lake", "postgres"])
def test_sqlite_every_value_exact_or_reported(
    target: str, cdc: bool, pg_server: PostgresServer, store: Store, tmp_path: Path
) -> None:
    db = tmp_path / "src.sqlite"
    lite.create(db)
    endpoint = _target(target, tmp_path, pg_server)
    source = {"engine": "sqlite", "path": str(db)}
    curated = lite.CORPUS if target == "lake" else None
    migration = "full-load-and-cdc" if cdc else "full-load"
    stack = _stack(tmp_path, source, endpoint, migration, curated)
    if curated is not None:  # `conveyor lake process` curates what the applied stack declares
        applied = conveyor(tmp_path / "home", "apply", str(stack))
        assert applied.returncode == 0, applied.stderr
    if cdc:
        tables = _cdc(store, stack, lite.CORPUS, lambda: lite.insert(db))
        assert tables == {}, (
            "in CDC too, a refused value suspends no table: its row goes to the exceptions table"
        )
    else:
        lite.insert(db)
        _full_load(store, stack)
        tables = _table_reasons(store)
        assert tables == {}, "a refused value fails no table: its row goes to the exceptions table"
    path = f"SQLite -> {target} ({'CDC' if cdc else 'full load'})"
    _check(lite.CORPUS, target, path, _read(target, endpoint, lite.CORPUS, tmp_path / "home"), tables)


_tables_made = iter(range(1_000_000))


def _dynamodb_tables(url: str) -> tuple[Any, str]:
    """The corpus's tables, created with a prefix of their own (moto is shared)
    and streams on; returns the resource and the prefix."""
    resource = boto3.resource("dynamodb", endpoint_url=url, region_name="us-east-1")
    prefix = f"x{next(_tables_made)}{int(time.time() * 1000) % 10**8}_"
    for name in ddb.CORPUS.tables():
        resource.create_table(
            TableName=prefix + name,
            BillingMode="PAY_PER_REQUEST",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
    return resource, prefix


def _dynamodb_put(resource: Any, prefix: str, seeds: bool) -> None:
    """The first item of each table (``seeds``), or the others; each with a
    modified-at attribute for incremental capture (the seeds' in the past)."""
    for name, (_, edges) in ddb.CORPUS.tables().items():
        table = resource.Table(prefix + name)
        for edge in edges[:1] if seeds else edges[1:]:
            modified = "2000-01-01T00:00:00" if seeds else datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
            item = {"pk": edge.name, MODIFIED: modified}
            if edge.literal is not None or not edge.name.endswith("_null"):
                item["v"] = edge.literal
            table.put_item(Item=item)


@pytest.mark.parametrize(
    ("target", "capture"),
    [
        ("postgres", None),
        ("postgres", "streams"),
        ("postgres", "incremental"),
        ("duckdb", None),
        ("duckdb", "streams"),
        ("duckdb", "incremental"),
        ("lake", None),
        ("lake", "streams"),
        ("lake", "incremental"),
    ],
)
def test_dynamodb_every_value_exact_or_reported(
    target: str,
    capture: str | None,
    moto_url: str,
    pg_server: PostgresServer,
    store: Store,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONVEYOR_HOME", str(tmp_path / "home"))
    resource, prefix = _dynamodb_tables(moto_url)
    _dynamodb_put(resource, prefix, seeds=True)
    settings = {
        "tables": [prefix + n for n in ddb.CORPUS.tables()],
        "conflicting_values": "load_errors",
        "column_types": {prefix + t: columns for t, columns in ddb.OVERRIDE.items()},
    }
    if capture == "incremental":
        settings["incremental"] = {"attribute": MODIFIED, "interval_seconds": 0}
    source = {"engine": "dynamodb", "endpoint_url": moto_url, "region": "us-east-1", "settings": settings}
    endpoint = _target(target, tmp_path, pg_server)
    if target == "lake":  # `conveyor lake process` curates what the applied stack declares
        migration = "full-load" if capture is None else "full-load-and-cdc"
        stack = _stack(tmp_path, source, endpoint, migration, ddb.CORPUS, schema="dynamodb", prefix=prefix)
        applied = conveyor(tmp_path / "home", "apply", str(stack))
        assert applied.returncode == 0, applied.stderr
    if capture is not None:
        stack = _stack(tmp_path, source, endpoint, "full-load-and-cdc")
        write = lambda: _dynamodb_put(resource, prefix, seeds=False)  # noqa: E731
        tables = _cdc(store, stack, ddb.CORPUS, write, already=1, prefix=prefix)
    else:
        _dynamodb_put(resource, prefix, seeds=False)
        stack = _stack(tmp_path, source, endpoint, "full-load")
        _full_load(store, stack)
        tables = _table_reasons(store)
    path = f"DynamoDB -> {target} ({capture or 'full load'})"
    if target == "lake":
        read = _lake_items(tmp_path / "home", Path(endpoint["path"]), ddb.CORPUS, prefix)
    elif target == "duckdb":
        read = _duckdb_items(Path(endpoint["path"]), ddb.CORPUS, prefix)
    else:
        read = _pg_read(endpoint["url"], ddb.CORPUS, prefix)
    _check(ddb.CORPUS, target, path, read, tables)
