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


def column_for(i: int, names: list[str]) -> str:
    """A hostile column name for table ``i`` (the next name along, never ``id``)."""
    return names[(i + 7) % len(names)]
