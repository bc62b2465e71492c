"""Reading stored events as people and programs ask for them: newest first, a
page at a time, from a point in time. One shape for the CLI and the API:
``{"Events": [...], "NextToken": str | None}``."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from conveyor.core.errors import ConfigError

if TYPE_CHECKING:
    from conveyor.store.store import Store

MAX_LIMIT = 1000
_AGO = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``--since``: an ISO 8601 time (UTC when it names no zone) or an age such
    as ``90s``, ``15m``, ``2h``, ``7d``."""
    ago = _AGO.match(text)
    if ago:
        delta = timedelta(**{_UNITS[ago.group(2)]: int(ago.group(1))})
        return (now or datetime.now(UTC)) - delta
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"--since {text!r}: give an ISO 8601 time (2026-12-04T08:00:00Z) or an age (15m, 2h, 7d)"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def events_page(
    store: Store, since: str | None = None, limit: int = 100, next_token: str | None = None
) -> dict[str, Any]:
    """One page of events, newest first, and the token of the next (older) page."""
    if not 1 <= limit <= MAX_LIMIT:
        raise ConfigError(f"limit must be between 1 and {MAX_LIMIT} (it is {limit})")
    before = None
    if next_token is not None:
        if not next_token.isdigit():
            raise ConfigError(f"next token {next_token!r} is not one this service gave")
        before = int(next_token)
    events, cursor = store.events_page(
        since=parse_since(since) if since else None, limit=limit, before=before
    )
    return {"Events": events, "NextToken": None if cursor is None else str(cursor)}
