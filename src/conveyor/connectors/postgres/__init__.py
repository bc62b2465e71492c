"""PostgreSQL: source (full load, pgoutput change capture) and target."""

from conveyor.connectors.engine import Engine

ENGINE = Engine(
    "postgres",
    source="conveyor.connectors.postgres.source:PostgresSource",
    change_source="conveyor.connectors.postgres.capture:PostgresChangeSource",
    target="conveyor.connectors.postgres.target:PostgresTarget",
    applier="conveyor.connectors.postgres.apply:PostgresApplier",
    control_tables="conveyor.connectors.postgres.control:PostgresControlTables",
)
