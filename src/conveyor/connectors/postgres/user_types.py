"""User-defined types a PostgreSQL table's columns use (composites, domains and
the enums they refer to) as CREATE statements, dependencies first, so that a
PostgreSQL target can create them before the table (``TableSchema.native_types``).

Every type a definition refers to is spelled in full (schema and name), and a
type is created in the schema it has on the source. A column of another
table's row type, of a user-defined range or of an extension's type is not
described here: the target says by column that it lacks the type.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from conveyor.core.schema import NativeType, TableSchema

_SYSTEM_SCHEMAS = frozenset({"pg_catalog", "information_schema"})
_MAX_DEPTH = 32  # nesting rounds; PostgreSQL itself forbids cycles

_TYPES_SQL = """
SELECT t.oid, t.typtype, t.typcategory = 'A' AND t.typelem <> 0, t.typelem, n.nspname, t.typname,
       t.typrelid, coalesce(r.relkind, ''), t.typbasetype, t.typtypmod, t.typnotnull, t.typdefault,
       CASE WHEN t.typcollation <> 0 AND t.typcollation IS DISTINCT FROM b.typcollation
            THEN format('%%I.%%I', cn.nspname, co.collname) END
FROM pg_type t
JOIN pg_namespace n ON n.oid = t.typnamespace
LEFT JOIN pg_class r ON r.oid = t.typrelid
LEFT JOIN pg_type b ON b.oid = t.typbasetype
LEFT JOIN pg_collation co ON co.oid = t.typcollation
LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace
WHERE t.oid = ANY(%s)
"""

_ATTRIBUTES_SQL = """
SELECT a.attrelid, a.attname, a.atttypid, a.atttypmod,
       CASE WHEN a.attcollation <> 0 AND a.attcollation <> ty.typcollation
            THEN format('%%I.%%I', cn.nspname, co.collname) END
FROM pg_attribute a
JOIN pg_type ty ON ty.oid = a.atttypid
LEFT JOIN pg_collation co ON co.oid = a.attcollation
LEFT JOIN pg_namespace cn ON cn.oid = co.collnamespace
WHERE a.attrelid = ANY(%s) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attrelid, a.attnum
"""

_CHECKS_SQL = """
SELECT contypid, conname, pg_get_constraintdef(oid) FROM pg_constraint
WHERE contypid = ANY(%s) AND contype = 'c' ORDER BY contypid, conname
"""

_LABELS_SQL = (
    "SELECT enumtypid, enumlabel FROM pg_enum WHERE enumtypid = ANY(%s) ORDER BY enumtypid, enumsortorder"
)


@dataclass(frozen=True)
class _Type:
    oid: int
    typtype: str
    is_array: bool
    element: int
    schema: str
    name: str
    relid: int
    relkind: str
    base: int
    base_typmod: int
    not_null: bool
    default: str | None
    collation: str | None

    @property
    def user_defined(self) -> bool:
        """Described here: an enum, a domain, or a composite made by CREATE TYPE."""
        if self.schema in _SYSTEM_SCHEMAS or self.is_array:
            return False
        return self.typtype in {"e", "d"} or (self.typtype == "c" and self.relkind == "c")


@dataclass(frozen=True)
class _Attribute:
    name: str
    type_oid: int
    typmod: int
    collation: str | None


class _Catalog:
    """The types reachable from some type OIDs, read in a few rounds of queries."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self.types: dict[int, _Type] = {}
        self.attributes: dict[int, list[_Attribute]] = {}
        self.checks: dict[int, list[tuple[str, str]]] = {}
        self.labels: dict[int, list[str]] = {}
        self._spelled: dict[tuple[int, int], str] = {}

    def load(self, oids: Iterable[int]) -> None:
        pending = {o for o in oids if o} - set(self.types)
        for _ in range(_MAX_DEPTH):
            if not pending:
                return
            found = [_Type(*row) for row in self.conn.execute(_TYPES_SQL, (list(pending),)).fetchall()]
            for described in found:
                self.types[described.oid] = described
            user = [d for d in found if d.user_defined]
            composites = {d.relid: d.oid for d in user if d.typtype == "c"}
            domains = [d.oid for d in user if d.typtype == "d"]
            enums = [d.oid for d in user if d.typtype == "e"]
            following = {d.element for d in found if d.is_array} | {self.types[o].base for o in domains}
            if composites:
                for relid, name, type_oid, typmod, collation in self.conn.execute(
                    _ATTRIBUTES_SQL, (list(composites),)
                ).fetchall():
                    self.attributes.setdefault(composites[relid], []).append(
                        _Attribute(name, type_oid, typmod, collation)
                    )
                    following.add(type_oid)
            if domains:
                for oid, name, definition in self.conn.execute(_CHECKS_SQL, (domains,)).fetchall():
                    self.checks.setdefault(oid, []).append((name, definition))
            if enums:
                for oid, label in self.conn.execute(_LABELS_SQL, (enums,)).fetchall():
                    self.labels.setdefault(oid, []).append(label)
            pending = following - set(self.types) - {0}

    def spell(self, oid: int, typmod: int) -> str:
        """A type as a definition refers to it: user-defined types in full."""
        described = self.types.get(oid)
        if described is not None and described.is_array:
            return self.spell(described.element, typmod) + "[]"
        if described is not None and described.user_defined:
            return self._name(described)
        key = (oid, typmod)
        if key not in self._spelled:
            row = self.conn.execute("SELECT format_type(%s, %s)", (oid, typmod)).fetchone()
            assert row is not None
            self._spelled[key] = str(row[0])
        return self._spelled[key]

    def _name(self, described: _Type) -> str:
        return (
            sql.SQL("{}.{}")
            .format(sql.Identifier(described.schema), sql.Identifier(described.name))
            .as_string(self.conn)
        )

    def definition(self, described: _Type) -> str:
        name = self._name(described)
        if described.typtype == "e":
            labels = ", ".join(
                sql.Literal(label).as_string(self.conn) for label in self.labels.get(described.oid, [])
            )
            return f"CREATE TYPE {name} AS ENUM ({labels})"
        if described.typtype == "c":
            fields = [
                f"{sql.Identifier(a.name).as_string(self.conn)} {self.spell(a.type_oid, a.typmod)}"
                + (f" COLLATE {a.collation}" if a.collation else "")
                for a in self.attributes.get(described.oid, [])
            ]
            return f"CREATE TYPE {name} AS ({', '.join(fields)})"
        parts = [f"CREATE DOMAIN {name} AS {self.spell(described.base, described.base_typmod)}"]
        if described.collation:
            parts.append(f"COLLATE {described.collation}")
        if described.default is not None:
            parts.append(f"DEFAULT {described.default}")
        if described.not_null:
            parts.append("NOT NULL")
        for constraint, check in self.checks.get(described.oid, []):
            parts.append(f"CONSTRAINT {sql.Identifier(constraint).as_string(self.conn)} {check}")
        return " ".join(parts)

    def needed(self, oids: Iterable[int]) -> tuple[NativeType, ...]:
        """The user-defined types behind ``oids``, each after those it uses."""
        ordered: list[NativeType] = []
        seen: set[int] = set()

        def visit(oid: int) -> None:
            described = self.types.get(oid)
            if described is None or oid in seen:
                return
            seen.add(oid)
            if described.is_array:
                visit(described.element)
                return
            if not described.user_defined:
                return
            for attribute in self.attributes.get(oid, []):
                visit(attribute.type_oid)
            if described.typtype == "d":
                visit(described.base)
            base = self.spell(described.base, described.base_typmod) if described.typtype == "d" else None
            ordered.append(NativeType(described.schema, described.name, self.definition(described), base))

        for oid in oids:
            visit(oid)
        return tuple(ordered)


def native_types(
    conn: psycopg.Connection[Any], columns: Mapping[int, list[int]]
) -> dict[int, tuple[NativeType, ...]]:
    """For each table (by OID), the user-defined types its columns' types
    (``columns``: table OID -> column type OIDs) need, dependencies first."""
    catalog = _Catalog(conn)
    catalog.load(oid for oids in columns.values() for oid in oids)
    return {table: catalog.needed(oids) for table, oids in columns.items()}


def columns_over(table: TableSchema, bases: Iterable[str]) -> list[str]:
    """The table's columns whose type is one of ``bases`` (built-in names), an
    array of one, or a domain over one (through ``native_types``, dependencies
    first), scalar or array."""
    names = set(bases)
    for native in table.native_types:
        if native.base is not None and _bare_type(native.base) in names:
            names.add(native.name)
    return [c.name for c in table.columns if _bare_type(c.type.native or "") in names]


def xml_columns(table: TableSchema) -> list[str]:
    """The table's columns of type xml, xml[] or a domain over xml."""
    return columns_over(table, ["xml"])


def xml_array_columns(table: TableSchema) -> list[str]:
    """Those of ``xml_columns`` that are arrays (of xml or of a domain over it)."""
    held = set(xml_columns(table))
    return [c.name for c in table.columns if c.name in held and (c.type.native or "").endswith("[]")]


def _bare_type(spelled: str) -> str:
    """A type's name without schema, quotes or array brackets."""
    return spelled.removesuffix("[]").rsplit(".", 1)[-1].strip('"')
