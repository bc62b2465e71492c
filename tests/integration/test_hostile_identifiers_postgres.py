"""Hostile table and column names from a PostgreSQL source into PostgreSQL, DuckDB
and the lake (support/hostile_run.py): every table is loaded exactly or refused
by name, and the canary table is intact on the source and on each target."""

from __future__ import annotations

from pathlib import Path

import pytest

from support import hostile_run as hr
from support.servers import PostgresServer

pytestmark = pytest.mark.integration


def test_hostile_names_load_or_are_refused_by_name(pg_server: PostgresServer, tmp_path: Path) -> None:
    hr.check_hostile_names(hr.postgres_source(pg_server), pg_server, tmp_path)
