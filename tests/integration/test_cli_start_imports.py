"""`conveyor tasks start NAME --wait` imports only what its path needs (issue 17's
fixed cost: start-up is most of a short command's time). The real command line
runs a PostgreSQL -> PostgreSQL full load of one row in a child process, through
``python -m conveyor``'s own entry, and says which modules it had loaded."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import psycopg
import pytest

from support.cli import conveyor, environment
from support.servers import PostgresServer

pytestmark = pytest.mark.e2e

NOT_ON_THE_PATH = [
    # libraries: each a measurable share of start-up (bench/profiles/README.md)
    "pyarrow.compute",  # the column conversions call kernels; a raw COPY calls none
    "pyarrow.dataset",
    "pandas",
    "yaml",  # the applied stack is stored as JSON
    "rich",  # --json prints no table
    "sqlglot",
    "botocore",
    "boto3",
    "alembic",  # the store is already at its head revision
    "duckdb",
    "deltalake",
    "adbc_driver_postgresql",
    "fastapi",
    "uvicorn",
    # Conveyor's own: other commands' and other task types' modules
    "conveyor.replication.cdc.task",
    "conveyor.connectors.postgres.pgoutput",  # change capture's decoding (and its DDL capture)
    "conveyor.connectors.postgres.ddl_capture",
    "conveyor.orchestration.executions",
    "conveyor.orchestration.asl",
    "conveyor.lake.curate",
    "conveyor.cli.orchestration",
    "conveyor.cli.lake",
]

# The command line as `python -m conveyor` runs it; then the loaded modules on stderr's last line.
RUN_AND_LIST = textwrap.dedent(
    """
    import json, runpy, sys
    sys.argv = ["conveyor", *sys.argv[1:]]
    try:
        runpy.run_module("conveyor", run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        code = exc.code
    print(json.dumps({"exit": code, "modules": sorted(sys.modules)}), file=sys.stderr)
    """
)


def test_a_one_row_full_load_from_the_cli_loads_no_module_off_its_path(
    pg_server: PostgresServer, tmp_path: Path
) -> None:
    source, target = pg_server.new_database(), pg_server.new_database()
    with psycopg.connect(pg_server.url(source), autocommit=True) as conn:
        conn.execute("CREATE TABLE one (id bigint PRIMARY KEY, note text)")
        conn.execute("INSERT INTO one VALUES (1, 'the only row')")
    stack = {
        "endpoints": {
            "src": {"engine": "postgres", "url": pg_server.url(source)},
            "dst": {"engine": "postgres", "url": pg_server.url(target)},
        },
        "tasks": {
            "one": {
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
            }
        },
    }
    stack_file = tmp_path / "conveyor.yaml"
    stack_file.write_text(json.dumps(stack))
    home = tmp_path / "home"
    applied = conveyor(home, "apply", str(stack_file))
    assert applied.returncode == 0, applied.stderr

    ran = subprocess.run(
        [sys.executable, "-c", RUN_AND_LIST, "tasks", "start", "one", "--wait", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment(home),
        check=False,
    )
    listed = json.loads(ran.stderr.strip().splitlines()[-1])
    assert listed["exit"] == 0, ran.stderr[-3000:]
    described = json.loads(ran.stdout)
    assert (described["status"], [t["FullLoadRows"] for t in described["tables"]]) == ("stopped", [1])
    with psycopg.connect(pg_server.url(target)) as conn:
        assert conn.execute("SELECT id, note FROM public.one").fetchall() == [(1, "the only row")]

    loaded = set(listed["modules"])
    # The list is the child's own: it did load the path's driver and the store.
    assert {"psycopg", "sqlalchemy", "conveyor.connectors.postgres.source"} <= loaded
    assert sorted(m for m in NOT_ON_THE_PATH if m in loaded) == []
