"""DDL of the source, in commit order, for PostgreSQL change capture.

pgoutput describes a table only by its columns' names and types, before the
table's next change, and says nothing of a dropped table: a renamed column looks
like a DROP plus an ADD, and a DROP TABLE is silent. So capture installs two
event triggers in the source database (``conveyor_ddl_end`` on
ddl_command_end, ``conveyor_ddl_drop`` on sql_drop). Inside the DDL's own
transaction they write a transactional logical decoding message (prefix
``conveyor_ddl``) that the stream receives exactly where the DDL committed:

* after ALTER TABLE (and CREATE TABLE): the table's columns (name, type oid,
  typmod, in attnum order; generated columns left out, as pgoutput leaves
  them) and the columns renamed since the last DDL, told by attnum: a column
  keeps its attnum when renamed, while a dropped and re-added one gets a new
  attnum. The trigger keeps each table's last (attnum, name) pairs
  in ``conveyor_ddl.columns`` to compare with; ``known`` is false for a table it
  had not seen before, whose renames therefore are not known; and the names
  of its generated columns (``generated``), which pgoutput never shows, so an
  added one is not missed;
* after DROP TABLE: the table's name.

Partitions are left out, as the source's table list leaves them out: their
changes arrive as their partitioned table's.

Creating event triggers takes a superuser, and the messages PostgreSQL 14; where
either is missing capture goes on without them (a warning says so): a shape
that could be a rename then suspends the table instead of being guessed, and a
dropped table is not noticed. The functions are SECURITY DEFINER, so DDL by any
role is recorded. ``end_capture`` of the last task using them removes them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from conveyor.connectors.postgres.names import DDL_CAPTURE_SCHEMA
from conveyor.connectors.postgres.pgoutput import Relation, RelationColumn
from conveyor.core.schema import TableRef, TableSchema

PREFIX = "conveyor_ddl"
SCHEMA = DDL_CAPTURE_SCHEMA
END_TRIGGER, DROP_TRIGGER = "conveyor_ddl_end", "conveyor_ddl_drop"

_INSTALL = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {SCHEMA}.columns (
    relid oid NOT NULL, attnum int2 NOT NULL, attname name NOT NULL, PRIMARY KEY (relid, attnum));
CREATE TABLE IF NOT EXISTS {SCHEMA}.tasks (task text PRIMARY KEY);
CREATE OR REPLACE FUNCTION {SCHEMA}.on_ddl() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    rel oid;
    renamed jsonb;
    cols jsonb;
    gen jsonb;
    seen boolean;
BEGIN
    FOR rel IN SELECT DISTINCT c.objid FROM pg_event_trigger_ddl_commands() c
               WHERE c.classid = 'pg_class'::regclass AND c.object_type IN ('table', 'table column')
    LOOP
        SELECT coalesce(jsonb_object_agg(a.attname, s.attname), '{{}}'::jsonb) INTO renamed
          FROM pg_attribute a JOIN {SCHEMA}.columns s ON s.relid = a.attrelid AND s.attnum = a.attnum
         WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped AND a.attname <> s.attname;
        SELECT jsonb_agg(jsonb_build_array(a.attname, a.atttypid, a.atttypmod) ORDER BY a.attnum) INTO cols
          FROM pg_attribute a
         WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '';
        SELECT jsonb_agg(a.attname ORDER BY a.attnum) INTO gen
          FROM pg_attribute a
         WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated <> '';
        seen := EXISTS (SELECT 1 FROM {SCHEMA}.columns WHERE relid = rel);
        PERFORM pg_logical_emit_message(true, '{PREFIX}', jsonb_build_object(
                    'op', 'alter', 'schema', n.nspname, 'table', c.relname, 'known', seen,
                    'renamed', renamed, 'columns', coalesce(cols, '[]'::jsonb),
                    'generated', coalesce(gen, '[]'::jsonb))::text)
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
          WHERE c.oid = rel AND c.relkind IN ('r', 'p') AND NOT c.relispartition;
        DELETE FROM {SCHEMA}.columns WHERE relid = rel;
        INSERT INTO {SCHEMA}.columns SELECT attrelid, attnum, attname FROM pg_attribute
         WHERE attrelid = rel AND attnum > 0 AND NOT attisdropped;
    END LOOP;
END
$fn$;
CREATE OR REPLACE FUNCTION {SCHEMA}.on_drop() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $fn$
DECLARE
    obj record;
BEGIN
    FOR obj IN SELECT * FROM pg_event_trigger_dropped_objects()
               WHERE object_type = 'table' AND NOT is_temporary
    LOOP
        PERFORM pg_logical_emit_message(true, '{PREFIX}', jsonb_build_object(
                    'op', 'drop', 'schema', obj.schema_name, 'table', obj.object_name)::text);
        DELETE FROM {SCHEMA}.columns WHERE relid = obj.objid;
    END LOOP;
END
$fn$;
"""


def _can_install(conn: psycopg.Connection[Any]) -> str | None:
    """Why the DDL triggers cannot be installed here (None: they can)."""
    row = conn.execute(
        "SELECT current_setting('server_version_num')::int, rolsuper"
        " FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    if row is None or row[0] < 140000:
        return "the source is older than PostgreSQL 14 (no logical decoding messages)"
    if not row[1]:
        return "the endpoint's user is not a superuser (event triggers need one)"
    return None


def install(conn: psycopg.Connection[Any], task: str, tables: Sequence[TableSchema]) -> list[str]:
    """Install (idempotently) the DDL triggers for ``task`` and record the
    tables' current columns; returns a warning when they cannot be installed."""
    why = _can_install(conn)
    if why is not None:
        return [
            f"source DDL is not captured in commit order: {why}; a column rename then suspends "
            "its table (reload it) and a dropped table is not noticed"
        ]
    with conn.transaction():
        conn.execute(_INSTALL)
        for name, event, function in (
            (END_TRIGGER, "ddl_command_end", "on_ddl"),
            (DROP_TRIGGER, "sql_drop", "on_drop"),
        ):
            if conn.execute("SELECT 1 FROM pg_event_trigger WHERE evtname = %s", (name,)).fetchone() is None:
                conn.execute(f"CREATE EVENT TRIGGER {name} ON {event} EXECUTE FUNCTION {SCHEMA}.{function}()")
        conn.execute(f"INSERT INTO {SCHEMA}.tasks VALUES (%s) ON CONFLICT DO NOTHING", (task,))
        for table in tables:
            relid = "format('%%I.%%I', %s::text, %s::text)::regclass"
            names = (table.ref.schema, table.ref.name)
            conn.execute(f"DELETE FROM {SCHEMA}.columns WHERE relid = {relid}", names)
            conn.execute(
                f"INSERT INTO {SCHEMA}.columns SELECT attrelid, attnum, attname FROM pg_attribute"
                f" WHERE attrelid = {relid} AND attnum > 0 AND NOT attisdropped",
                names,
            )
    return []


def remove(conn: psycopg.Connection[Any], task: str) -> None:
    """Forget ``task``; the last task's removal drops the triggers and their schema."""
    with conn.transaction():
        if conn.execute("SELECT to_regclass(%s)", (f"{SCHEMA}.tasks",)).fetchone() == (None,):
            return
        conn.execute(f"DELETE FROM {SCHEMA}.tasks WHERE task = %s", (task,))
        if conn.execute(f"SELECT 1 FROM {SCHEMA}.tasks LIMIT 1").fetchone() is not None:
            return
        conn.execute(f"DROP EVENT TRIGGER IF EXISTS {END_TRIGGER}")
        conn.execute(f"DROP EVENT TRIGGER IF EXISTS {DROP_TRIGGER}")
        conn.execute(f"DROP FUNCTION IF EXISTS {SCHEMA}.on_ddl(), {SCHEMA}.on_drop()")
        conn.execute(f"DROP TABLE IF EXISTS {SCHEMA}.columns, {SCHEMA}.tasks")
        conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA}")


def active(conn: psycopg.Connection[Any]) -> bool:
    """Whether the source database records its DDL for the stream."""
    row = conn.execute(
        "SELECT count(*) FROM pg_event_trigger WHERE evtname IN (%s, %s) AND evtenabled <> 'D'",
        (END_TRIGGER, DROP_TRIGGER),
    ).fetchone()
    return row is not None and row[0] == 2


@dataclass(frozen=True)
class DdlMessage:
    """One decoded ``conveyor_ddl`` message."""

    table: TableRef
    dropped: bool
    relation: Relation | None = None  # the table's columns after an ALTER
    renamed: dict[str, str] | None = None  # new name -> old name; None: not known
    generated: frozenset[str] | None = None  # its generated columns; None: not told (an older trigger)


def decode(content: bytes) -> DdlMessage:
    document = json.loads(content)
    ref = TableRef(document["schema"], document["table"])
    if document["op"] == "drop":
        return DdlMessage(ref, dropped=True)
    columns = tuple(
        RelationColumn(False, name, int(oid), int(typmod)) for name, oid, typmod in document["columns"]
    )
    relation = Relation(0, ref.schema, ref.name, "d", columns)
    renamed = dict(document["renamed"]) if document["known"] else None
    generated = frozenset(document["generated"]) if "generated" in document else None
    return DdlMessage(ref, dropped=False, relation=relation, renamed=renamed, generated=generated)
