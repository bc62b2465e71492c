"""A decoder for PostgreSQL's ``pgoutput`` logical replication protocol, version 1.

Each XLogData payload a ``pgoutput`` slot streams is one message; ``decode``
turns it into one of the dataclasses below. Column values of a tuple are
``None`` (SQL NULL, tag ``n``), ``UNCHANGED`` (an unchanged TOASTed value the
server did not send, tag ``u``) or ``str`` (the type's text output, tag ``t``).
LSNs are integers; ``format_lsn``/``parse_lsn`` convert them to and from
PostgreSQL's ``X/Y`` spelling.

Reference: https://www.postgresql.org/docs/current/protocol-logicalrep-message-formats.html
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from conveyor.core.errors import DataError


class _Unchanged:
    """The marker of an unchanged TOASTed value (tag ``u``): not NULL, not sent."""

    _instance: _Unchanged | None = None

    def __new__(cls) -> _Unchanged:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNCHANGED"

    def __reduce__(self) -> str:
        return "UNCHANGED"


UNCHANGED: Final = _Unchanged()

TupleValue = str | None | _Unchanged
TupleData = list[TupleValue]

_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)

_I8 = struct.Struct("!b")
_I16 = struct.Struct("!h")
_I32 = struct.Struct("!i")
_U32 = struct.Struct("!I")
_I64 = struct.Struct("!q")
_BEGIN = struct.Struct("!QqI")
_COMMIT = struct.Struct("!bQQq")
_COLUMN_TAIL = struct.Struct("!Ii")


@dataclass(frozen=True, slots=True)
class Begin:
    final_lsn: int
    commit_time: datetime
    xid: int


@dataclass(frozen=True, slots=True)
class Commit:
    commit_lsn: int
    end_lsn: int
    commit_time: datetime


@dataclass(frozen=True, slots=True)
class RelationColumn:
    is_key: bool
    name: str
    type_oid: int
    typmod: int


@dataclass(frozen=True, slots=True)
class Relation:
    oid: int
    namespace: str
    name: str
    replica_identity: str  # 'd' default, 'n' nothing, 'f' full, 'i' index
    columns: tuple[RelationColumn, ...]


@dataclass(frozen=True, slots=True)
class Insert:
    oid: int
    new: TupleData


@dataclass(frozen=True, slots=True)
class Update:
    oid: int
    old_key: TupleData | None  # 'K': the replica identity's columns (others None)
    old: TupleData | None  # 'O': the whole old row (REPLICA IDENTITY FULL)
    new: TupleData


@dataclass(frozen=True, slots=True)
class Delete:
    oid: int
    key: TupleData | None
    old: TupleData | None


TRUNCATE_CASCADE = 1
TRUNCATE_RESTART_IDENTITY = 2


@dataclass(frozen=True, slots=True)
class Truncate:
    oids: tuple[int, ...]
    options: int


@dataclass(frozen=True, slots=True)
class Type:
    oid: int
    namespace: str
    name: str


@dataclass(frozen=True, slots=True)
class Origin:
    lsn: int
    name: str


@dataclass(frozen=True, slots=True)
class Message:
    """A logical decoding message (``pg_logical_emit_message``)."""

    transactional: bool
    lsn: int
    prefix: str
    content: bytes


PgOutputMessage = Begin | Commit | Relation | Insert | Update | Delete | Truncate | Type | Origin | Message


def format_lsn(lsn: int) -> str:
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def parse_lsn(text: str) -> int:
    high, _, low = text.partition("/")
    try:
        return (int(high, 16) << 32) | int(low, 16)
    except ValueError:
        raise ValueError(f"{text!r} is not a PostgreSQL LSN (X/Y)") from None


def pg_time(micros: int) -> datetime:
    """A pgoutput timestamp (microseconds since 2000-01-01 UTC) as an aware datetime."""
    return _PG_EPOCH + timedelta(microseconds=micros)


class Decoder:
    """Decodes pgoutput payloads; ``encoding`` is the database's (Python codec name)."""

    def __init__(self, encoding: str = "utf-8") -> None:
        self.encoding = encoding

    def decode(self, payload: bytes) -> PgOutputMessage | None:
        """One message; None for a message kind this decoder does not know."""
        try:
            kind = payload[:1]
            if kind in {b"I", b"U", b"D"}:
                return self._row(kind, payload)
            if kind == b"B":
                lsn, ts, xid = _BEGIN.unpack_from(payload, 1)
                return Begin(lsn, pg_time(ts), xid)
            if kind == b"C":
                _flags, commit_lsn, end_lsn, ts = _COMMIT.unpack_from(payload, 1)
                return Commit(commit_lsn, end_lsn, pg_time(ts))
            if kind == b"R":
                return self._relation(payload)
            if kind == b"T":
                (count,) = _I32.unpack_from(payload, 1)
                (options,) = _I8.unpack_from(payload, 5)
                oids = struct.unpack_from(f"!{count}I", payload, 6)
                return Truncate(tuple(oids), options)
            if kind == b"Y":
                (oid,) = _U32.unpack_from(payload, 1)
                namespace, pos = self._string(payload, 5)
                name, pos = self._string(payload, pos)
                return Type(oid, namespace, name)
            if kind == b"O":
                (lsn,) = _I64.unpack_from(payload, 1)
                name, _ = self._string(payload, 9)
                return Origin(lsn, name)
            if kind == b"M":
                (flags,) = _I8.unpack_from(payload, 1)
                (lsn,) = _I64.unpack_from(payload, 2)
                prefix, pos = self._string(payload, 10)
                (length,) = _I32.unpack_from(payload, pos)
                content = bytes(payload[pos + 4 : pos + 4 + length])
                return Message(bool(flags & 1), lsn, prefix, content)
        except (struct.error, IndexError, UnicodeDecodeError) as exc:
            raise DataError(f"malformed pgoutput message {payload[:1]!r}: {exc}") from None
        return None

    def _string(self, payload: bytes, pos: int) -> tuple[str, int]:
        end = payload.index(b"\x00", pos)
        return payload[pos:end].decode(self.encoding), end + 1

    def _relation(self, payload: bytes) -> Relation:
        (oid,) = _U32.unpack_from(payload, 1)
        namespace, pos = self._string(payload, 5)
        name, pos = self._string(payload, pos)
        identity = chr(payload[pos])
        (ncols,) = _I16.unpack_from(payload, pos + 1)
        pos += 3
        columns = []
        for _ in range(ncols):
            flags = payload[pos]
            col_name, pos = self._string(payload, pos + 1)
            type_oid, typmod = _COLUMN_TAIL.unpack_from(payload, pos)
            pos += 8
            columns.append(RelationColumn(bool(flags & 1), col_name, type_oid, typmod))
        return Relation(oid, namespace or "pg_catalog", name, identity, tuple(columns))

    def _row(self, kind: bytes, payload: bytes) -> Insert | Update | Delete:
        (oid,) = _U32.unpack_from(payload, 1)
        tag = payload[5:6]
        # All ASCII (the common case): decoded at once, byte and character offsets agree.
        text = payload.decode("latin-1") if payload.isascii() else None
        data, pos = self._tuple(payload, 6, text)
        if kind == b"I":
            return Insert(oid, data)
        if kind == b"D":
            return Delete(oid, data if tag == b"K" else None, data if tag == b"O" else None)
        if tag == b"N":
            return Update(oid, None, None, data)
        new, _ = self._tuple(payload, pos + 1, text)
        return Update(oid, data if tag == b"K" else None, data if tag == b"O" else None, new)

    def _tuple(self, payload: bytes, pos: int, text: str | None = None) -> tuple[TupleData, int]:
        """The tuple at ``pos``; ``text``, when given, is the whole payload as
        characters at the same offsets (an ASCII payload decoded as latin-1)."""
        (ncols,) = _I16.unpack_from(payload, pos)
        pos += 2
        values: TupleData = []
        append = values.append
        unpack_len = _I32.unpack_from
        encoding = self.encoding
        for _ in range(ncols):
            tag = payload[pos]
            if tag == 0x74:  # 't'
                start = pos + 5
                pos = start + unpack_len(payload, pos + 1)[0]
                append(payload[start:pos].decode(encoding) if text is None else text[start:pos])
            elif tag == 0x6E:  # 'n'
                append(None)
                pos += 1
            elif tag == 0x75:  # 'u'
                append(UNCHANGED)
                pos += 1
            else:
                raise DataError(f"unknown pgoutput tuple value tag {chr(tag)!r}")
        return values, pos
