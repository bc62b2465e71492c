"""How DuckDB resolves and spells names."""

from __future__ import annotations

from conveyor.core.schema import TableRef

IDENTIFIER_RULE = "DuckDB matches table and column names without regard to case"
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def fold_identifier(name: str) -> str:
    """The name DuckDB resolves ``name`` to: identifiers match without regard to
    case (ASCII letters only), quoted or not, so ``Mixed`` and ``MIXED`` are one
    table and ``Ä`` and ``ä`` are two."""
    return name.translate(_ASCII_LOWER)


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def qualified(ref: TableRef) -> str:
    return f"{quote(ref.schema)}.{quote(ref.name)}"


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
