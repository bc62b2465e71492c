"""Asking for single-table reloads of a change-capture task (the CLI's
`conveyor tasks reload NAME --table SCHEMA.TABLE`): the names are checked
against the task's tables and the requests recorded in the metadata store,
where a run of the task picks them up."""

from __future__ import annotations

from collections.abc import Sequence

from conveyor.connectors.registry import open_source
from conveyor.core.errors import ConfigError, NotFoundError
from conveyor.core.schema import TableRef
from conveyor.replication.declarations import Declarations
from conveyor.replication.task_run import task_mappings
from conveyor.store.store import Store


def parse_table(text: str) -> tuple[str, str]:
    schema, dot, table = text.partition(".")
    if not dot or not schema or not table:
        raise ConfigError(f"--table {text!r}: give it as SCHEMA.TABLE (e.g. public.items)")
    return schema, table


def request_table_reloads(
    store: Store, stack: Declarations, name: str, tables: Sequence[str]
) -> list[TableRef]:
    """Record a reload request for each named table (a source or a target
    name); returns the source tables. Raises for a full-load task or a table
    the task does not capture, naming the tables it does."""
    spec = stack.tasks[name]
    if spec.migration_type == "full-load":
        raise ConfigError(
            f"task {name!r} is a full-load task: `--table` reloads a table of a change-capture task; "
            f"run `conveyor tasks start {name}` to load every table again"
        )
    wanted = [parse_table(t) for t in tables]
    mappings = task_mappings(stack, name)
    source = open_source(stack.endpoint_config(spec.source))
    try:
        mapped = mappings.select(source.tables(), allow_empty=True)
    finally:
        source.close()
    refs: list[TableRef] = []
    for schema, table in wanted:
        found = [
            m
            for m in mapped
            if (m.source.ref.schema, m.source.ref.name) == (schema, table)
            or (m.target.ref.schema, m.target.ref.name) == (schema, table)
        ]
        if not found:
            known = ", ".join(str(m.source.ref) for m in mapped) or "-"
            raise NotFoundError(f"task {name!r} captures no table {schema}.{table}; its tables: {known}")
        m = found[0]
        target = (m.target.ref.schema, m.target.ref.name)
        store.request_table_reload(name, m.source.ref.schema, m.source.ref.name, target)
        refs.append(m.source.ref)
    return refs
