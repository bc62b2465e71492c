"""Debezium-style change envelopes, their subjects and their message IDs.

An envelope is one JSON object per row change::

    {"before": {...} | null, "after": {...} | null,
     "source": {"connector": "conveyor", "name": ..., "db": ..., "schema": ..., "table": ...,
                "task": ..., "position": {...}, "index": N, "ts_ms": ..., "snapshot": "true" | "false"},
     "op": "r" | "c" | "u" | "d" | "t", "ts_ms": ...}

Its message ID (the ``Nats-Msg-Id`` header) is a function of where the change
sits in the source: the same change published again (a replay after a crash)
carries the same ID, and JetStream's deduplication drops it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from conveyor.connectors.nats.values import Unrepresentable, encode_value
from conveyor.core.schema import TableRef, TableSchema

MAX_ID_CHARS = 200
_NOT_IN_TOKEN = re.compile(r"[\s.*>\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Message:
    subject: str
    payload: bytes
    msg_id: str


@dataclass(frozen=True)
class SourceInfo:
    """What the envelope's ``source`` block says of the source: its endpoint
    (``name``), database, and the task publishing."""

    name: str | None = None
    db: str | None = None
    task: str | None = None


def subject_token(name: str) -> str:
    """A schema or table name as one subject token: whitespace, ``.``, ``*``,
    ``>`` and control characters become ``_`` (NATS forbids them in a token)."""
    return _NOT_IN_TOKEN.sub("_", name) or "_"


def table_subject(prefix: str, ref: TableRef) -> str:
    return f"{prefix}.{subject_token(ref.schema)}.{subject_token(ref.name)}"


def message_id(*parts: str) -> str:
    """The parts joined by ``:``; a long ID keeps its start and ends in a digest."""
    text = ":".join(parts)
    if len(text) <= MAX_ID_CHARS and text.isascii():
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{text[:60].encode('ascii', 'replace').decode()}~{digest}"


def position_text(position: Mapping[str, Any]) -> str:
    return ",".join(f"{k}={position[k]}" for k in sorted(position))


def row_json(table: TableSchema, row: Mapping[str, Any]) -> dict[str, Any]:
    """A row image in ``table``'s column order, each value encoded exactly;
    columns the row does not hold (values the source did not send) are left out."""
    out: dict[str, Any] = {}
    for column in table.columns:
        if column.name in row:
            try:
                out[column.name] = encode_value(column.type, row[column.name])
            except Unrepresentable as exc:
                raise Unrepresentable(f"column {column.name!r}: {exc}", column.name) from None
    unknown = row.keys() - out.keys() - {c.name for c in table.columns}
    if unknown:
        raise Unrepresentable(f"columns {sorted(unknown)} are not in table {table.ref}'s shape")
    return out


def envelope(
    table: TableSchema,
    op: str,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    source: SourceInfo,
    position: Mapping[str, Any] | None,
    index: int | None,
    source_ts_ms: int | None,
    ts_ms: int,
) -> bytes:
    """The envelope's JSON bytes (UTF-8); raises Unrepresentable."""
    document = {
        "before": None if before is None else row_json(table, before),
        "after": None if after is None else row_json(table, after),
        "source": {
            "connector": "conveyor",
            "name": source.name,
            "db": source.db,
            "schema": table.ref.schema,
            "table": table.ref.name,
            "task": source.task,
            "position": dict(position) if position is not None else None,
            "index": index,
            "ts_ms": source_ts_ms,
            "snapshot": "true" if op == "r" else "false",
        },
        "op": op,
        "ts_ms": ts_ms,
    }
    try:
        text = json.dumps(
            document, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_refuse
        )
        return text.encode("utf-8")
    except (ValueError, UnicodeEncodeError) as exc:
        raise Unrepresentable(f"table {table.ref}: {exc}") from None


def _refuse(value: Any) -> Any:
    raise Unrepresentable(f"value {value!r} has no JSON form")
