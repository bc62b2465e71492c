"""Hostile table and attribute names from a DynamoDB source (moto, Streams) into
PostgreSQL, DuckDB and the lake (support/hostile_run.py): every table is loaded
exactly or refused by name, and the canary table is intact on the source and on
each target. DynamoDB allows only ``a-z A-Z 0-9 _ . -`` in table names, any text
in attribute names."""

from __future__ import annotations

from pathlib import Path

import pytest

from support import hostile_run as hr
from support.servers import PostgresServer

pytestmark = pytest.mark.integration


def test_hostile_names_load_or_are_refused_by_name(
    moto_url: str, pg_server: PostgresServer, tmp_path: Path
) -> None:
    try:
        hr.check_hostile_names(hr.dynamodb_source(moto_url), pg_server, tmp_path)
    finally:
        hr.delete_dynamodb_tables(moto_url)
