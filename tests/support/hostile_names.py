"""Hostile table and column names, per source dialect: quotes, backticks,
spaces, ``;--``, unicode, reserved words, long names, names that differ only
in case, dots, path pieces. Each is a name a source engine accepts as a quoted
identifier; the canary table's name appears in the injection attempts, so a
name pasted into SQL unquoted would drop or change it."""

from __future__ import annotations

CANARY = "canary"

_INJECTIONS = [
    f'"; DROP TABLE {CANARY}; --',
    f"`; DROP TABLE {CANARY}; --",
    f"'; DROP TABLE {CANARY}; --",
    f'x"; DELETE FROM {CANARY}; --',
    f"x`; DELETE FROM {CANARY}; --",
    f"x'); DELETE FROM {CANARY}; --",
    'a"b',
    'a""b',
    '"',
    "`",
    "'",
    "a`b",
    "a;--b",
    "/* c */",
    "a]b[",
    "$1",
    "%s",
    "?",
    ":name",
    "{}",
]
_SPACES_AND_DOTS = [
    "with space",
    " leading space",
    "a.b",
    "a..b",
    "dotted.",
    "a,b",
    "a(b)",
    "a=b",
    "tab\there",
    "new\nline",
]
_PATHS = ["a/b", "..", ".hidden", "a\\b", "../escape"]
_RESERVED = [
    "select",
    "table",
    "order",
    "group",
    "user",
    "from",
    "where",
    "limit",
    "key",
    "index",
    "primary",
    "default",
    "null",
    "true",
    "desc",
    "column",
    "check",
    "references",
]
_UNICODE = ["café", "日本語", "Ärger", "ärger", "Ωmega", "naïve name", "ß", "İstanbul", "zero\u200bwidth"]
_CASE = ["Mixed", "MIXED", "mixed", "CamelCase", "camelcase"]
_LONG = [
    "l" * 63,  # the longest PostgreSQL name
    "é" * 31 + "x",  # 63 bytes, 32 characters
    "m" * 64,  # one byte over PostgreSQL's limit; MariaDB's longest (64 characters)
    "p" * 63 + "_one",  # these two share their first 63 bytes
    "p" * 63 + "_two",
    "ü" * 40,  # 80 bytes, 40 characters
]
_OTHER = ["1starts_with_digit", "_", "@at", "#hash", "awsdms_apply_exceptions", "Upper", "x" * 1 + "-dash"]


def _common() -> list[str]:
    return _INJECTIONS + _SPACES_AND_DOTS + _PATHS + _RESERVED + _UNICODE + _CASE + _OTHER


def postgres() -> list[str]:
    """PostgreSQL: anything but NUL; names past 63 bytes are cut by the server
    itself at CREATE (so the source never holds one)."""
    return _common() + [n for n in _LONG if len(n.encode()) <= 63] + ["🚀 rocket"]


def mariadb() -> list[str]:
    """MariaDB: no name ends in a space, none holds a character outside the
    BMP or is made of dots alone, at most 64 characters."""

    def fits(name: str) -> bool:
        return (
            not name.endswith((" ", "."))
            and all(ord(c) <= 0xFFFF for c in name)
            and len(name) <= 64
            and bool(name.strip("."))
        )

    return [n for n in _common() + _LONG if fits(n)]


def sqlite() -> list[str]:
    """SQLite: any name without NUL; names are matched without regard to
    ASCII case, so only one of each case-only family exists."""
    seen: set[str] = set()
    names = []
    for name in _common() + _LONG + ["🚀 rocket"]:
        folded = name.lower() if name.isascii() else name
        if folded not in seen:
            seen.add(folded)
            names.append(name)
    return names


def dynamodb_tables() -> list[str]:
    """DynamoDB table names: 3 to 255 of ``a-z A-Z 0-9 _ . -``, case kept (so
    case-only families exist); the dialect's own hostile names (dots, dashes,
    reserved words of the targets, names past their limits) added to those of
    the common list that fit."""
    own = [
        "a-b", "a--b", "a_.-b", "---", "...", "_._", "x.y.z", "UPPER.lower", "0abc", "..a", "a..",
        "__init__", "_-_", "with-dash-and.dot", "Order", "ORDER", "Select", "SELECT", "Table", "TABLE",
        "KEY", "NULL", "False", "public", "main", "dynamodb", "information_schema", "pg_catalog",
        "sqlite_master", "canary_", "canary.x", "canary-x", "a.b.c.d.e", "t" * 255,
    ]  # fmt: skip
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
    common = [n for n in _common() + _LONG if 3 <= len(n) <= 255 and set(n) <= allowed]
    return list(dict.fromkeys(common + own))


def dynamodb_attributes() -> list[str]:
    """DynamoDB attribute names: any UTF-8 text of 1 to 255 bytes (the key's too)."""
    return [n for n in _common() + _LONG + ["🚀 rocket"] if n != "id" and len(n.encode()) <= 255]


def column_for(i: int, names: list[str]) -> str:
    """A hostile column name for table ``i`` (the next name along, never ``id``)."""
    return names[(i + 7) % len(names)]
