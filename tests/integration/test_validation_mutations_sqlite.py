"""`conveyor validate` flags every value of the SQLite edge-value corpus changed
behind Conveyor's back on a DuckDB target, and never raises
(support/validation_mutations.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from support import validation_mutations as vm
from support.servers import PostgresServer

pytestmark = pytest.mark.integration


def test_every_changed_value_is_flagged(pg_server: PostgresServer, tmp_path: Path) -> None:
    vm.check_every_changed_value_is_flagged("duckdb", pg_server, tmp_path, sqlite=True)
