"""The catalog ``conveyor query`` reads: every curated Delta table registered
in an in-memory DuckDB as the view ``<schema>.<table>``, the local counterpart
of the seed's crawler and Data Catalog.

DuckDB runs core-only here (no delta extension), so each table is handed over
as a pyarrow dataset from deltalake's reader: DuckDB scans it lazily and
pushes column projections and filters down to the Parquet files of the
table's current version.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa

from conveyor.connectors.duckdb.names import IDENTIFIER_RULE, fold_identifier
from conveyor.core.errors import ConfigError
from conveyor.lake.controller import Controller, Lake
from conveyor.lake.delta_commits import open_delta


@dataclass
class Catalog:
    connection: duckdb.DuckDBPyConnection
    tables: dict[str, str] = field(default_factory=dict)
    """``schema.table`` -> where the Delta table lives."""
    unreachable: dict[str, str] = field(default_factory=dict)
    """``schema.table`` -> why it has no view (its name is another's to DuckDB)."""


log = logging.getLogger(__name__)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def build_catalog(lakes: Iterable[Lake]) -> Catalog:
    """A DuckDB connection with a view per curated table of ``lakes``. A table
    curated in two lakes is registered once, from the first lake."""
    con = duckdb.connect(":memory:")
    catalog = Catalog(con)
    count = 0
    viewed: dict[tuple[str, str], str] = {}  # DuckDB's resolved name -> its view's table
    for lake in lakes:
        for table in sorted(Controller(lake).entries):
            if table in catalog.tables:
                continue
            dt = open_delta(lake, table)
            if dt is None:
                continue
            schema, name = table.split(".", 1)
            first = viewed.setdefault((fold_identifier(schema), fold_identifier(name)), table)
            if first != table:
                reason = f"no view for {table}: the view {first} has its name to DuckDB ({IDENTIFIER_RULE})"
                log.warning("%s", reason)
                catalog.unreachable[table] = reason
                continue
            hidden = f"__lake_{count}"
            count += 1
            con.register(hidden, dt.to_pyarrow_dataset())
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {_ident(schema)}")
            con.execute(f"CREATE VIEW {_ident(schema)}.{_ident(name)} AS SELECT * FROM {hidden}")
            catalog.tables[table] = lake.table_uri(table)
    return catalog


def run_query(catalog: Catalog, sql: str) -> pa.Table:
    """The result of ``sql`` over the catalog, as Arrow."""
    try:
        result: Any = catalog.connection.sql(sql)
    except duckdb.Error as exc:
        raise ConfigError(f"query failed: {exc}") from None
    if result is None:  # a statement without a result (CREATE VIEW ...)
        return pa.table({})
    try:
        return result.to_arrow_table()
    except duckdb.Error as exc:
        raise ConfigError(f"query failed: {exc}") from None
