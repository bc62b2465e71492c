"""MySQL and MariaDB as a source: full load and row-binlog change capture."""

from conveyor.connectors.engine import Engine

ENGINE = Engine(
    "mysql",
    source="conveyor.connectors.mysql.source:MySQLSource",
    change_source="conveyor.connectors.mysql.capture:MySQLChangeSource",
)
