"""Bad input through the CLI, against private PostgreSQL servers: each case gets
a specific message, secrets never appear, and nothing is half-written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest

from support.cli import conveyor
from support.servers import PostgresServer, free_port

pytestmark = pytest.mark.e2e

SECRET = "wrong-secret-7f3a9c"


def _stack(path: Path, endpoints: dict[str, Any], settings: dict[str, Any] | None = None) -> Path:
    """A stack file with one full-load task from ``src`` to ``dst``."""
    document = {
        "endpoints": endpoints,
        "tasks": {
            "load": {
                "source": "src",
                "target": "dst",
                "migration_type": "full-load",
                "table_mappings": {
                    "rules": [
                        {
                            "rule-type": "selection",
                            "rule-id": "1",
                            "rule-name": "public",
                            "object-locator": {"schema-name": "public", "table-name": "%"},
                            "rule-action": "include",
                        }
                    ]
                },
                "settings": settings or {"FullLoadSettings": {"TargetTablePrepMode": "DO_NOTHING"}},
            }
        },
    }
    path.write_text(json.dumps(document))  # YAML is a superset of JSON
    return path


@pytest.fixture
def databases(pg_server: PostgresServer) -> tuple[str, str]:
    source, target = (
        pg_server.url(pg_server.new_database("src")),
        pg_server.url(pg_server.new_database("dst")),
    )
    with psycopg.connect(source, autocommit=True) as conn:
        conn.execute("CREATE TABLE orders (id integer PRIMARY KEY, amount numeric(12,2), note text)")
        conn.execute("INSERT INTO orders SELECT g, g * 100.25, 'n' || g FROM generate_series(1, 50) g")
    return source, target


def test_unknown_engine_names_the_key(tmp_path: Path) -> None:
    stack = _stack(tmp_path / "s.yaml", {"src": {"engine": "oracle", "url": "oracle://h/db"}, "dst": {}})
    result = conveyor(tmp_path / "home", "apply", str(stack))
    assert result.returncode == 2
    assert "endpoints.src.engine" in result.stderr and "oracle" in result.stderr
    assert conveyor(tmp_path / "home", "tasks", "list").returncode != 0  # nothing was stored


def test_unreachable_endpoint_says_why(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    stack = _stack(
        tmp_path / "s.yaml",
        {
            "src": {"engine": "postgres", "url": f"postgresql://app@127.0.0.1:{port}/db"},
            "dst": {"engine": "duckdb", "path": str(tmp_path / "dw.duckdb")},
        },
    )
    home = tmp_path / "home"
    assert conveyor(home, "apply", str(stack)).returncode == 0
    tested = conveyor(home, "endpoints", "test", "src", "--json")
    assert tested.returncode == 1
    error = json.loads(tested.stdout)["error"]
    assert f"connection refused at 127.0.0.1:{port}" in error and "endpoint 'src'" in error


def test_wrong_password_is_reported_without_the_password(
    tmp_path: Path, pg_server: PostgresServer, databases: tuple[str, str]
) -> None:
    source, target = databases
    with psycopg.connect(pg_server.url(), autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS app")
        conn.execute("CREATE ROLE app LOGIN PASSWORD 'the-right-one'")
    url = f"postgresql://app@127.0.0.1:{pg_server.port}/{source.rsplit('/', 1)[1]}"
    stack = _stack(
        tmp_path / "s.yaml",
        {
            "src": {"engine": "postgres", "url": url, "password": "${env:SRC_PASSWORD}"},
            "dst": {"engine": "postgres", "url": target},
        },
    )
    home = tmp_path / "home"
    env = {"SRC_PASSWORD": SECRET}
    assert conveyor(home, "apply", str(stack), env=env).returncode == 0
    tested = conveyor(home, "endpoints", "test", "src", env=env)
    assert tested.returncode == 1
    assert "password authentication failed for user 'app'" in tested.stdout
    started = conveyor(home, "tasks", "start", "load", "--wait", "--json", env=env)
    assert started.returncode == 1
    assert "password authentication failed" in json.loads(started.stdout)["last_error"]
    outputs = [tested, started, conveyor(home, "events", "list", "--json", env=env)]
    outputs.append(conveyor(home, "endpoints", "list", "--json", env=env))
    for result in outputs:
        assert SECRET not in result.stdout + result.stderr
    for stored in home.rglob("*"):
        if stored.is_file():
            assert SECRET.encode() not in stored.read_bytes(), stored


def test_existing_target_of_another_shape_under_do_nothing(
    tmp_path: Path, databases: tuple[str, str]
) -> None:
    source, target = databases
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute("CREATE TABLE orders (id integer PRIMARY KEY, amount date)")
        conn.execute("INSERT INTO orders VALUES (1, '2024-01-01')")
    stack = _stack(
        tmp_path / "s.yaml",
        {"src": {"engine": "postgres", "url": source}, "dst": {"engine": "postgres", "url": target}},
    )
    home = tmp_path / "home"
    conveyor(home, "apply", str(stack))
    started = conveyor(home, "tasks", "start", "load", "--wait", "--json")
    assert started.returncode == 1
    error = json.loads(started.stdout)["last_error"]
    assert "target table public.orders exists with another shape" in error
    assert "column 'amount' is date, the load writes decimal(12,2)" in error
    assert "column 'note' is missing" in error
    with psycopg.connect(target) as conn:
        assert conn.execute("SELECT id, amount::text FROM orders").fetchall() == [(1, "2024-01-01")]


def test_values_out_of_the_targets_range_go_to_apply_exceptions(
    tmp_path: Path, databases: tuple[str, str]
) -> None:
    source, target = databases
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute("CREATE TABLE orders (id integer PRIMARY KEY, amount numeric(5,2), note text)")
    stack = _stack(
        tmp_path / "s.yaml",
        {"src": {"engine": "postgres", "url": source}, "dst": {"engine": "postgres", "url": target}},
        {
            "FullLoadSettings": {"TargetTablePrepMode": "DO_NOTHING", "CommitRate": 7},
            "ErrorBehavior": {"DataErrorPolicy": "LOG_ERROR"},
        },
    )
    home = tmp_path / "home"
    conveyor(home, "apply", str(stack))
    started = conveyor(home, "tasks", "start", "load", "--wait", "--json")
    assert started.returncode == 0, started.stdout + started.stderr
    [table] = json.loads(started.stdout)["tables"]
    # amount = id * 100.25 fits numeric(5,2) (< 1000) for ids 1..9 only
    assert (table["FullLoadRows"], table["FullLoadErrorRows"]) == (9, 41)
    with psycopg.connect(target) as conn:
        assert conn.execute("SELECT count(*), max(id) FROM orders").fetchone() == (9, 9)
        logged = conn.execute(
            "SELECT task_name, table_name, key->>'id', column_name, value, error "
            "FROM awsdms_apply_exceptions ORDER BY (key->>'id')::int"
        ).fetchall()
    assert len(logged) == 41
    assert logged[0][:5] == ("load", "orders", "10", "amount", "1002.50")
    assert "numeric field overflow" in logged[0][5]


def test_mappings_that_select_nothing_fail_the_task(tmp_path: Path, databases: tuple[str, str]) -> None:
    source, target = databases
    stack = _stack(
        tmp_path / "s.yaml",
        {"src": {"engine": "postgres", "url": source}, "dst": {"engine": "postgres", "url": target}},
    )
    document = json.loads(stack.read_text())
    document["tasks"]["load"]["table_mappings"]["rules"][0]["object-locator"]["schema-name"] = "sales"
    stack.write_text(json.dumps(document))
    home = tmp_path / "home"
    conveyor(home, "apply", str(stack))
    started = conveyor(home, "tasks", "start", "load", "--wait", "--json")
    assert started.returncode == 1
    error = json.loads(started.stdout)["last_error"]
    assert "the selection rules match none of the 1 source tables: public.orders" in error
