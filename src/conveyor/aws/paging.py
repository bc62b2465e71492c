"""Paging of the AWS services' list and describe operations, as each service
names it (DMS ``MaxRecords``/``Marker``, Step Functions ``maxResults``/
``nextToken``, EventBridge ``Limit``/``NextToken`` ...), so SDK paginators work.

An operation answers its whole list (or, where it reads the limit member, the
first ``offset + limit + 1`` items); :func:`page` cuts the page out and names
the next. A token is the position after the page in the list's order, with the
operation it belongs to: a token of another operation, or not one Conveyor
gave, is refused with the service's error. Lists ordered newest first (the
executions) show an item created between two pages again on the next page;
none is skipped.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from conveyor.aws.base import AwsError, Paging


def page(operation: str, paging: Paging, invalid: str, p: dict[str, Any], run: Any) -> dict[str, Any]:
    """Run ``run(p)`` and answer one page of its ``paging.items``."""
    limit = _limit(paging, invalid, p.get(paging.limit))
    offset = _offset(operation, paging.invalid_token or invalid, p.get(paging.token))
    inner = {k: v for k, v in p.items() if k not in (paging.limit, paging.token)}
    if paging.passes_limit:
        inner[paging.limit] = offset + limit + 1
    answer = dict(run(inner))
    items = list(answer.get(paging.items) or [])
    answer[paging.items] = items[offset : offset + limit]
    answer.pop(paging.token, None)
    if len(items) > offset + limit:
        answer[paging.token] = _token(operation, offset + limit)
    return answer


def _limit(paging: Paging, invalid: str, value: Any) -> int:
    if value is None or (value == 0 and paging.zero_is_default):
        return paging.default
    if isinstance(value, bool) or not isinstance(value, int):
        raise AwsError(invalid, f"{paging.limit} must be an integer (it is {value!r})")
    if not paging.minimum <= value <= paging.maximum:
        raise AwsError(
            invalid,
            f"{paging.limit} must be between {paging.minimum} and {paging.maximum} (it is {value})",
        )
    return value


def _token(operation: str, offset: int) -> str:
    raw = json.dumps({"op": operation, "at": offset}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode()


def _offset(operation: str, invalid: str, token: Any) -> int:
    if token is None or token == "":
        return 0
    try:
        decoded = json.loads(base64.urlsafe_b64decode(str(token).encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        decoded = None
    if (
        not isinstance(decoded, dict)
        or decoded.get("op") != operation
        or not isinstance(decoded.get("at"), int)
        or decoded["at"] < 0
    ):
        raise AwsError(invalid, f"{token!r} is not a token {operation} gave")
    return int(decoded["at"])
