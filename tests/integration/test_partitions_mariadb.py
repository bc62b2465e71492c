"""parallel-load partitions rules on a partitioned MariaDB table, through the
stack file and the CLI: partitions-auto and partitions-list load the table
whole (read in one piece: one MariaDB snapshot serves one read at a time);
partitions-list's names are checked against information_schema, a wrong one
fails the table listing the table's partitions."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from support.cli import conveyor
from support.mariadb import mariadb_connect
from support.servers import MariaDBServer
from support.stacks import one_task, select_all

pytestmark = pytest.mark.integration


def test_partition_rules_from_mariadb(mariadb_server: MariaDBServer, tmp_path: Path) -> None:
    url = mariadb_server.url(mariadb_server.new_database())
    schema = url.rsplit("/", 1)[1]
    conn = mariadb_connect(url)
    with conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE parts (id int PRIMARY KEY, v varchar(10)) "
            "PARTITION BY RANGE (id) (PARTITION p_low VALUES LESS THAN (100), "
            "PARTITION p_high VALUES LESS THAN MAXVALUE)"
        )
        cur.executemany("INSERT INTO parts VALUES (%s, %s)", [(i, f"v{i}") for i in range(1, 251)])
    conn.close()
    home = tmp_path / "home"
    dw = tmp_path / "dw.duckdb"
    for load, loads in (
        ({"type": "partitions-auto"}, True),
        ({"type": "partitions-list", "partitions": ["p_mid"]}, False),
        ({"type": "partitions-list", "partitions": ["p_high"]}, True),
    ):
        rules = [
            select_all(schema),
            {
                "rule-type": "table-settings",
                "rule-id": "2",
                "rule-name": "parts",
                "object-locator": {"schema-name": schema, "table-name": "parts"},
                "parallel-load": load,
            },
        ]
        stack = one_task(
            tmp_path / "conveyor.yaml",
            {"engine": "mysql", "url": url},
            {"engine": "duckdb", "path": str(dw)},
            migration_type="full-load",
            rules=rules,
        )
        assert conveyor(home, "apply", str(stack)).returncode == 0
        started = conveyor(home, "tasks", "start", "sync", "--wait", "--json", timeout=120)
        if loads:
            assert started.returncode == 0, started.stdout + started.stderr
            (table,) = json.loads(started.stdout)["tables"]
            assert (table["TableState"], table["FullLoadRows"]) == ("Table completed", 250)
            with duckdb.connect(str(dw), read_only=True) as db:
                row = db.execute(f'SELECT count(*), sum(id) FROM "{schema}".parts').fetchone()
            assert row == (250, 250 * 251 // 2)
        else:
            assert started.returncode != 0
            assert "partitions-list names 'p_mid', not a leaf partition of the table" in started.stdout
            assert "(its leaf partitions: p_high, p_low)" in started.stdout
