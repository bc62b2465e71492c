"""A binlog stream's view of the captured tables' shapes, kept current through
the DDL the binlog carries: a TRUNCATE of a captured table, tables dropped or
renamed away, columns altered (with the renames the statement explains), and
tables created that the task's selection may take."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pymysql

from conveyor.connectors.changes import ChangeEvent, TableDefinition, TableDropped, Truncate
from conveyor.connectors.mysql.capture_binlog import ControlConnection
from conveyor.connectors.mysql.connection import error_reason
from conveyor.connectors.mysql.ddl import (
    AlteredColumns,
    altered_columns,
    created_tables,
    ddl_verb,
    dropped_tables,
    renamed_away,
    truncated_table,
)
from conveyor.connectors.mysql.source import read_tables
from conveyor.core.errors import ConfigError, TransientError
from conveyor.core.schema import TableRef, TableSchema


class TableShapes:
    """The captured tables by name (``tables``), as the catalog last said.
    ``forget`` is called with each table whose shape is dropped or replaced
    (the row converters made for the old shape are released)."""

    def __init__(
        self,
        endpoint: str,
        database: str,
        tables: Sequence[TableSchema],
        control: ControlConnection,
        forget: Callable[[TableRef], None],
    ) -> None:
        self.tables: dict[TableRef, TableSchema] = {t.ref: t for t in tables}
        self._endpoint = endpoint
        self._database = database
        self._control = control
        self._forget = forget

    def ddl(self, query: str, default_schema: str) -> list[ChangeEvent]:
        """What the DDL statement ``query`` did to the captured tables, as change
        events ([] for any other statement, or one that touched none of them)."""
        verb = ddl_verb(query)
        if verb is None:
            return []
        if verb == "TRUNCATE":
            ref = truncated_table(query, default_schema)
            return [Truncate((ref,))] if ref is not None and ref in self.tables else []
        emitted: list[ChangeEvent] = []
        for ref in dropped_tables(query, default_schema) + renamed_away(query, default_schema):
            if self.tables.pop(ref, None) is not None:
                self._forget(ref)
                emitted.append(TableDropped(ref))
        emitted.extend(
            self.refresh(
                altered=altered_columns(query, default_schema),
                created=created_tables(query, default_schema),
            )
        )
        return emitted

    def refresh(
        self,
        only: TableRef | None = None,
        altered: AlteredColumns | None = None,
        created: Sequence[TableRef] = (),
    ) -> list[ChangeEvent]:
        """TableDefinitions for selected tables whose catalog shape changed. The
        columns renamed are those of the ALTER statement ``altered`` when it
        explains the catalog's new column names exactly; otherwise (the catalog
        is already past a later DDL, say) they are not known, and the runner
        suspends a table whose change could be a rename. Tables ``created`` by
        the statement and not captured yet come too: the runner decides whether
        the task's selection takes them (``add_table``)."""
        current = {t.ref: t for t in self._catalog()}
        changed: list[ChangeEvent] = [
            TableDefinition(current[ref], renamed=None)
            for ref in created
            if ref in current and ref not in self.tables
        ]
        for ref, known in list(self.tables.items()):
            if only is not None and ref != only:
                continue
            now = current.get(ref)
            if now is None or now == known:
                continue
            self.tables[ref] = now
            self._forget(ref)
            explained = (
                altered is not None
                and altered.table == ref
                and set(now.column_names) == altered.names_after(known.column_names)
            )
            changed.append(
                TableDefinition(now, altered.renamed if altered is not None and explained else None)
            )
        return changed

    def add(self, table: TableSchema) -> None:
        """Capture ``table`` from now on; it needs a primary key."""
        if not table.primary_key:
            raise ConfigError(
                f"table {table.ref} has no primary key: the rows its load and its capture both "
                "hold would be applied twice; add one, then reload the table"
            )
        self.tables[table.ref] = table
        self._forget(table.ref)

    def _catalog(self) -> list[TableSchema]:
        conn = self._control.get()
        try:
            tables = read_tables(conn, self._database)
            conn.rollback()
        except pymysql.err.MySQLError as exc:
            self._control.close()
            raise TransientError(
                f"endpoint {self._endpoint!r}: cannot re-read the table definitions: {error_reason(exc)}"
            ) from None
        return tables
