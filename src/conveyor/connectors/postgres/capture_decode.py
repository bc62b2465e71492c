"""Decoding pgoutput row tuples for the change stream: the relations it knows,
the one-pass decoder of new rows, and the chunk of encoded rows not yet delivered."""

from __future__ import annotations

import struct
from typing import Any

import psycopg
import pyarrow as pa

from conveyor.connectors.arrow_rows import keys_to_batch, large_binary_array
from conveyor.connectors.postgres import pgoutput
from conveyor.connectors.postgres.capture_replication import ENGINE
from conveyor.connectors.postgres.source import DOMAIN_BASES_SQL, RESOLVED_TYPE_SQL, read_tables
from conveyor.connectors.postgres.text_values import Converter
from conveyor.connectors.postgres.types import NativeColumn, from_native
from conveyor.core import types as t
from conveyor.core.batch import ENCODED, OP, ChangeBatch, Op, op_array
from conveyor.core.errors import DataError
from conveyor.core.schema import Column, TableRef, TableSchema

TYPES_SQL = (
    DOMAIN_BASES_SQL
    + """
SELECT format_type(m.oid, m.typmod), coalesce(et.typname, ty.typname),
       coalesce(ty.typcategory = 'A', false), coalesce(coalesce(et.typtype, ty.typtype) = 'e', false),
       coalesce(et.oid, ty.oid), coalesce(nullif(db.typmod, -1), nullif(eb.typmod, -1), m.typmod)
FROM unnest(%s::oid[], %s::int[]) WITH ORDINALITY AS m(oid, typmod, ord)
"""
    + RESOLVED_TYPE_SQL.format(oid="m.oid").replace("JOIN pg_type ty", "LEFT JOIN pg_type ty")
    + """
ORDER BY m.ord
"""
)
"""The relation's column types through their domains (a dropped type: NULLs)."""


class Relation:
    """A relation of the stream: its schema, column names (in the order of the
    tuples), key column names and per-column converters."""

    __slots__ = ("columns", "convert", "encode_keys", "key_names", "names", "ref", "schema", "wanted")

    def __init__(
        self, schema: TableSchema, names: list[str], key_names: list[str], convert: list[Converter]
    ) -> None:
        self.schema = schema
        self.names = names
        self.key_names = key_names
        self.convert = convert
        self.ref = schema.ref
        self.columns = tuple(zip(names, convert, strict=True)) if len(names) == len(convert) else None
        self.wanted: bool | None = None  # the stream's to say, on the first change
        # Set while the stream encodes this relation's rows (SupportsEncodedRows):
        # the primary key's (position, name, converter).
        self.encode_keys: tuple[tuple[int, str, Converter], ...] | None = None


_TEXT, _NULL, _UNCHANGED = 0x74, 0x6E, 0x75  # tuple value tags 't', 'n' and 'u'
INSERT_KIND, UPDATE_KIND = 0x49, 0x55  # message kinds 'I' and 'U'
read_oid = struct.Struct("!I").unpack_from
_COUNT = struct.Struct("!h").unpack_from
_LENGTH = struct.Struct("!i").unpack_from
FAST_ERRORS = (DataError, ValueError, ArithmeticError, IndexError, struct.error, UnicodeDecodeError)


def fast_values(
    columns: tuple[tuple[str, Converter], ...], payload: bytes, pos: int, text: str | None, encoding: str
) -> dict[str, Any] | None:
    """The tuple at ``pos`` converted, by column name, without its unchanged
    TOASTed values (not sent); None when it does not fit the relation (the
    general path then decodes it, and reports what is wrong). ``text`` is the
    payload decoded as latin-1 when it is all ASCII (then byte and character
    offsets agree)."""
    if _COUNT(payload, pos)[0] != len(columns):
        return None
    pos += 2
    values: dict[str, Any] = {}
    if text is not None:
        for name, convert in columns:
            tag = payload[pos]
            if tag == _TEXT:
                start = pos + 5
                pos = start + _LENGTH(payload, pos + 1)[0]
                values[name] = convert(text[start:pos])
            elif tag == _NULL:
                values[name] = None
                pos += 1
            elif tag == _UNCHANGED:
                pos += 1
            else:
                return None
    else:
        for name, convert in columns:
            tag = payload[pos]
            if tag == _TEXT:
                start = pos + 5
                pos = start + _LENGTH(payload, pos + 1)[0]
                values[name] = convert(payload[start:pos].decode(encoding))
            elif tag == _NULL:
                values[name] = None
                pos += 1
            elif tag == _UNCHANGED:
                pos += 1
            else:
                return None
    return values


class Chunk:
    """Encoded rows read but not yet delivered, by table (in commit order
    within each table, which is all the batches need: they reduce per table),
    delivered as captured ``ChangeBatch``es (``OP``, the key columns, ``ENCODED``)."""

    __slots__ = ("_tables", "size")

    def __init__(self) -> None:
        self.size = 0
        self._tables: dict[TableRef, tuple[TableSchema, list[tuple[Any, ...]], list[bytes], bytearray]] = {}

    def add(self, table: TableSchema, update: bool, line: bytes, key: tuple[Any, ...]) -> None:
        entry = self._tables.get(table.ref)
        if entry is None:
            entry = self._tables[table.ref] = (table, [], [], bytearray())
        entry[1].append(key)
        entry[2].append(line)
        entry[3].append(_UPDATE if update else _INSERT)
        self.size += 1

    def take(self, table: TableRef | None = None) -> list[ChangeBatch]:
        """The rows read so far, one batch per table (only ``table``'s, when given)."""
        if table is not None:
            entry = self._tables.pop(table, None)
            if entry is None:
                return []
            self.size -= len(entry[1])
            return [_captured(*entry)]
        taken = [_captured(*entry) for entry in self._tables.values()]
        self._tables = {}
        self.size = 0
        return taken


_INSERT, _UPDATE = ord(Op.INSERT), ord(Op.UPDATE)


def _captured(
    table: TableSchema, keys: list[tuple[Any, ...]], rows: list[bytes], ops: bytearray
) -> ChangeBatch:
    key_columns = keys_to_batch(table, keys)
    columns = [op_array(bytes(ops)), *key_columns.columns, large_binary_array(rows)]
    names = [OP, *key_columns.schema.names, ENCODED]
    return ChangeBatch.captured(table, pa.RecordBatch.from_arrays(columns, names=names))


def relation_schema(catalog: psycopg.Connection[Any], message: pgoutput.Relation) -> TableSchema:
    """The table as the relation message describes it (columns and types at
    this point of the WAL), with nullability and key from the catalog."""
    ref = TableRef(message.namespace, message.name)
    # One snapshot for read_tables' statements: a table dropped between them
    # would come back without its key (and its changes be applied keyless).
    with catalog.transaction():
        catalog.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        found = read_tables(catalog, only=ref)
    current = found[0] if found else None
    rows = catalog.execute(
        TYPES_SQL, ([c.type_oid for c in message.columns], [c.typmod for c in message.columns])
    ).fetchall()
    enum_oids = [r[4] for r in rows if r[3]]
    labels: dict[int, list[str]] = {}
    if enum_oids:
        for oid, label in catalog.execute(
            "SELECT enumtypid, enumlabel FROM pg_enum WHERE enumtypid = ANY(%s)"
            " ORDER BY enumtypid, enumsortorder",
            (enum_oids,),
        ).fetchall():
            labels.setdefault(oid, []).append(label)
    columns = []
    for col, (formatted, type_name, is_array, is_enum, base_oid, typmod) in zip(
        message.columns, rows, strict=True
    ):
        if type_name is None:  # a type dropped since: its text travels as text
            ctype = t.simple(t.Kind.TEXT, native="text")
        else:
            ctype = from_native(
                NativeColumn(type_name, formatted, typmod, is_array, is_enum, tuple(labels.get(base_oid, ())))
            )
        nullable = True
        if current is not None and col.name in current.column_names:
            nullable = current.column(col.name).nullable
            known = current.column(col.name).type
            if ctype.kind is t.Kind.ARRAY and known.kind is t.Kind.ARRAY and known.native == ctype.native:
                ctype = known  # the declared dimensions (pgoutput does not send them)
        columns.append(Column(col.name, ctype, nullable))
    names = {c.name for c in columns}
    if current is not None and all(k in names for k in current.primary_key):
        key = current.primary_key
    elif message.replica_identity in {"d", "i"}:
        key = tuple(c.name for c in message.columns if c.is_key)
    else:
        key = ()
    estimate = current.estimated_rows if current is not None else None
    types = current.native_types if current is not None else ()
    return TableSchema(ref, tuple(columns), key, estimate, ENGINE, types)


def shape(schema: TableSchema) -> tuple[tuple[tuple[str, str | None], ...], tuple[str, ...]]:
    """What encoding a table's rows depends on: column names and types, and the key."""
    return tuple((c.name, c.type.native) for c in schema.columns), schema.primary_key


def python_encoding(pg_encoding: str) -> str:
    from psycopg._encodings import pg2pyenc

    try:
        return pg2pyenc(pg_encoding.encode())
    except psycopg.NotSupportedError:
        return "utf-8"
