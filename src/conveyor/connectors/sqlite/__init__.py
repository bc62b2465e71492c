"""SQLite as a source: full load, and change capture by triggers."""

from conveyor.connectors.engine import Engine

ENGINE = Engine(
    "sqlite",
    source="conveyor.connectors.sqlite.source:SQLiteSource",
    change_source="conveyor.connectors.sqlite.capture:SQLiteChangeSource",
)
