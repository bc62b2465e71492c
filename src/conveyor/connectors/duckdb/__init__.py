"""DuckDB as a target: the embedded warehouse."""

from conveyor.connectors.engine import Engine

ENGINE = Engine(
    "duckdb",
    target="conveyor.connectors.duckdb.target:DuckDBTarget",
    applier="conveyor.connectors.duckdb.apply:DuckDBApplier",
    control_tables="conveyor.connectors.duckdb.control:DuckDBControlTables",
)
