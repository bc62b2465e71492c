"""`conveyor validate` flags every value of the MariaDB edge-value corpus changed
behind Conveyor's back on PostgreSQL and DuckDB targets, and never raises
(support/validation_mutations.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from support import validation_mutations as vm
from support.servers import PostgresServer

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("target", ["postgres", "duckdb"])
def test_every_changed_value_is_flagged(
    target: str, mariadb_db: str, pg_server: PostgresServer, tmp_path: Path
) -> None:
    vm.check_every_changed_value_is_flagged(target, pg_server, tmp_path, mariadb_url=mariadb_db)
