"""Talking to a private MariaDB server by its URL, as the tests' own client."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pymysql
from pymysql.connections import Connection


def mariadb_connect(url: str, **options: Any) -> Connection[Any]:
    """A pymysql connection to ``mysql://user@host:port/db`` (utf8mb4, autocommit
    unless ``options`` say otherwise)."""
    parts = urlsplit(url)
    settings: dict[str, Any] = {"charset": "utf8mb4", "autocommit": True} | options
    return pymysql.connect(
        host=parts.hostname,
        port=parts.port or 3306,
        user=parts.username,
        password="",
        database=parts.path.lstrip("/") or None,
        **settings,
    )


def run(conn: Connection[Any], *statements: str) -> None:
    with conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)
