"""How DuckDB resolves names."""

from __future__ import annotations

IDENTIFIER_RULE = "DuckDB matches table and column names without regard to case"
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def fold_identifier(name: str) -> str:
    """The name DuckDB resolves ``name`` to: identifiers match without regard to
    case (ASCII letters only), quoted or not, so ``Mixed`` and ``MIXED`` are one
    table and ``Ä`` and ``ä`` are two."""
    return name.translate(_ASCII_LOWER)
