"""SQLite edge values (support/source_edges.py) and what each becomes in
PostgreSQL (``v::text``) and DuckDB (``CAST(v AS VARCHAR)``, when it differs):
SQLite's dynamic typing lets a column hold values of another storage class than
its declared type."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from support.edge_values import Refused
from support.source_edges import Corpus, Group

NOT_INTEGER = Refused("not int64")
NOT_REAL = Refused("real")
NOT_TEXT = Refused("text")
NOT_DATE = Refused("date")

CORPUS = Corpus(
    "sqlite",
    (
        Group(
            "int",
            "INTEGER",
            (
                ("min", "-9223372036854775808", "-9223372036854775808"),
                ("max", "9223372036854775807", "9223372036854775807"),
                ("null", "NULL", None),
                ("text_digits", "'42'", "42"),
                ("text", "'abc'", NOT_INTEGER),
                ("real", "1.5", NOT_INTEGER),
                ("real_whole", "2.0", "2"),
                ("blob", "x'00'", NOT_INTEGER),
                ("huge_text", "'99999999999999999999'", NOT_INTEGER),
            ),
        ),
        Group(
            "real",
            "REAL",
            (
                ("max", "1.7976931348623157e308", "1.7976931348623157e+308"),
                ("inf", "9e999", "Infinity", "inf"),
                ("neg_inf", "-9e999", "-Infinity", "-inf"),
                ("subnormal", "4.9406564584124654e-324", "5e-324"),
                ("neg_zero", "-0.0", "0", "0.0"),  # SQLite stores -0.0 as 0.0
                ("tenth", "0.1", "0.1"),
                ("int", "3", "3", "3.0"),
                ("text", "'x'", NOT_REAL),
                ("blob", "x'01'", NOT_REAL),
                ("null", "NULL", None),
            ),
        ),
        Group(
            "text",
            "TEXT",
            (
                ("empty", "''", ""),
                ("null_word", "'NULL'", "NULL"),
                ("emoji", "'😀🚀 𝄞 ☃'", "😀🚀 𝄞 ☃"),
                ("nul", "'a' || char(0) || 'b'", Refused("0x00"), "a\x00b"),  # PostgreSQL text holds no NUL
                ("int", "123", "123"),
                ("real", "1.5", "1.5"),
                ("blob", "x'00ff'", NOT_TEXT),
                ("long", "printf('%.200000c', 'x')", "x" * 200000),
            ),
        ),
        Group(
            "blob",
            "BLOB",
            (
                ("empty", "x''", "\\x", ""),
                ("nuls", "x'00ff00'", "\\x00ff00", "\\x00\\xFF\\x00"),
                ("text", "'abc'", "\\x616263", "abc"),  # a text in a BLOB column: its UTF-8 bytes
                ("int", "7", Refused("blob")),
            ),
        ),
        Group(
            "num",
            "NUMERIC",
            (
                ("int", "'12'", "12"),
                ("decimal", "'1.5'", "1.5"),
                (
                    "big",
                    "'123456789012345678901234567890'",
                    "123456789012345680000000000000",
                    "1.2345678901234568E+29",
                ),
                ("text", "'abc'", Refused("numeric")),
            ),
        ),
        Group(
            "dec",
            "DECIMAL(10,2)",
            (
                ("max", "'99999999.99'", "99999999.99"),
                ("cent", "'-0.01'", "-0.01"),
                ("too_precise", "'1.005'", Refused("decimal")),
            ),
        ),
        Group(
            "date",
            "DATE",
            (
                ("leap", "'2024-02-29'", "2024-02-29"),
                ("first", "'0001-01-01'", "0001-01-01"),
                ("last", "'9999-12-31'", "9999-12-31"),
                ("word", "'not a date'", NOT_DATE),
                ("bad_day", "'2024-02-30'", NOT_DATE),
                ("julian", "2460000.5", NOT_DATE),
            ),
        ),
        Group(
            "dtm",
            "DATETIME",
            (
                ("micro", "'2024-01-02 03:04:05.123456'", "2024-01-02 03:04:05.123456"),
                ("iso_t", "'2024-01-02T03:04:05'", "2024-01-02 03:04:05"),
                ("word", "'yesterday'", Refused("timestamp")),
                ("unix", "1700000000", Refused("timestamp")),
            ),
        ),
        Group(
            "bool",
            "BOOLEAN",
            (("false", "0", "false"), ("true", "1", "true"), ("two", "2", Refused("boolean"))),
        ),
    ),
)


def create(path: Path) -> None:
    """The corpus's tables in the SQLite file ``path``."""
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        for name, (column_type, _) in CORPUS.tables().items():
            conn.execute(f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, name TEXT NOT NULL, v {column_type})")
    conn.close()


def insert(path: Path) -> None:
    """Every row of the corpus."""
    with sqlite3.connect(path) as conn:
        for name, (_, edges) in CORPUS.tables().items():
            rows = ", ".join(f"({i}, '{e.name}', {e.literal})" for i, e in enumerate(edges, 1))
            conn.execute(f"INSERT INTO {name} VALUES {rows}")
    conn.close()
