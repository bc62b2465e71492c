"""A Distributed Map's items: ``ItemReader`` answers turned into items, and ``ItemBatcher``.

The reader's ``Resource`` is called through the integrations registry like a Task (so
the engine does no I/O): ``s3:listObjectsV2`` answers ``{"Contents": [...]}`` (every
page), ``s3:getObject`` ``{"Body": "<text>"}``. :func:`items_from` reads them as Step
Functions does: the objects' ``Key``, ``Etag``, ``LastModified``, ``Size``,
``StorageClass``; a JSON array, JSON Lines, or CSV rows (objects keyed by the header,
values as strings) per ``ReaderConfig``; ``MaxItems`` keeps the first ones.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from conveyor.orchestration.asl import errors as E
from conveyor.orchestration.asl.errors import StatesError

LIST_OBJECTS = "arn:aws:states:::s3:listObjectsV2"
GET_OBJECT = "arn:aws:states:::s3:getObject"
READERS = {LIST_OBJECTS, GET_OBJECT}
OBJECT_FIELDS = ("Key", "Etag", "LastModified", "Size", "StorageClass")
_DELIMITERS = {"COMMA": ",", "PIPE": "|", "SEMICOLON": ";", "SPACE": " ", "TAB": "\t"}


def _fail(message: str) -> StatesError:
    return StatesError(E.ITEM_READER_FAILED, message)


def items_from(resource: str, answer: Any, config: dict[str, Any]) -> list[Any]:
    """The items of a reader's answer, at most ``MaxItems``."""
    if not isinstance(answer, dict):
        raise _fail(f"{resource} answered {type(answer).__name__}, not an object")
    if resource == LIST_OBJECTS:
        items: list[Any] = [
            {key: item[key] for key in OBJECT_FIELDS if key in item} for item in answer.get("Contents", [])
        ]
    else:
        items = _parse_body(str(answer.get("Body", "")), config)
    limit = config.get("MaxItems")
    return items if limit is None else items[: int(limit)]


def _parse_body(body: str, config: dict[str, Any]) -> list[Any]:
    kind = config.get("InputType")
    if kind == "JSON":
        try:
            value = json.loads(body)
        except ValueError as exc:
            raise _fail(f"the object is not JSON: {exc}") from None
        if not isinstance(value, list):
            raise _fail("a JSON object read by ItemReader must hold a JSON array")
        return value
    if kind == "JSONL":
        items = []
        for number, line in enumerate(body.splitlines(), 1):
            if line.strip():
                try:
                    items.append(json.loads(line))
                except ValueError as exc:
                    raise _fail(f"line {number} is not JSON: {exc}") from None
        return items
    delimiter = _DELIMITERS.get(config.get("CSVDelimiter", "COMMA"), ",")
    rows = list(csv.reader(io.StringIO(body), delimiter=delimiter))
    if config.get("CSVHeaderLocation", "FIRST_ROW") == "GIVEN":
        headers = [str(h) for h in config.get("CSVHeaders", [])]
    else:
        if not rows:
            return []
        headers, rows = rows[0], rows[1:]
    out = []
    for number, row in enumerate(rows, 1):
        if not row:
            continue
        if len(row) > len(headers):
            raise _fail(f"CSV row {number} has {len(row)} fields but there are {len(headers)} headers")
        out.append({header: (row[i] if i < len(row) else "") for i, header in enumerate(headers)})
    return out


def batches(items: list[Any], max_items: int | None, max_bytes: int | None, batch_input: Any) -> list[Any]:
    """``ItemBatcher``: ``{"Items": [...]}`` (plus ``BatchInput``) of at most ``max_items``
    items and ``max_bytes`` bytes of JSON each (an item larger alone is its own batch)."""
    out: list[Any] = []
    current: list[Any] = []
    size = 0
    for item in items:
        item_bytes = len(json.dumps(item, separators=(",", ":")).encode())
        full = max_items is not None and len(current) >= max_items
        too_big = max_bytes is not None and current and size + item_bytes > max_bytes
        if full or too_big:
            out.append(current)
            current, size = [], 0
        current.append(item)
        size += item_bytes
    if current:
        out.append(current)
    return [{"Items": batch} | ({} if batch_input is None else {"BatchInput": batch_input}) for batch in out]
