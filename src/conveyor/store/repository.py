"""The base of the store's repositories: one noun's reads and writes (its tables),
each call one short transaction on the store's engine, answering typed rows
(store/rows.py). ``Store`` keeps the methods callers use and hands them over."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine


def now() -> datetime:
    return datetime.now(UTC)


def aware(value: datetime | None) -> datetime | None:
    """SQLite gives datetimes back naive: they were stored as UTC."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def row_dict(row: Any) -> dict[str, Any]:
    """A result row as a dict, its datetimes timezone-aware."""
    return {k: (aware(v) if isinstance(v, datetime) else v) for k, v in row.items()}


class Repository:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn
