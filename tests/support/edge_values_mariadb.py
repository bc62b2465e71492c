"""MariaDB edge values (support/source_edges.py) and what each becomes in
PostgreSQL (``v::text``, UTC session) and DuckDB (``CAST(v AS VARCHAR)``,
UTC). Rows are written with ``sql_mode = ''`` so zero dates can exist."""

from __future__ import annotations

from support.edge_values import Refused
from support.mariadb import mariadb_connect
from support.source_edges import SAME, Corpus, Group

ZERO_DATE = Refused("a date with a zero year, month or day has no calendar day")
TIME_RANGE = Refused("time")

MAX65 = "99999999999999999999999999999999999.999999999999999999999999999999"
EMOJI = "😀🚀 𝄞 zürich ☃"

CORPUS = Corpus(
    "mysql",
    (
        Group("ti", "tinyint", (("min", "-128", "-128"), ("max", "127", "127"), ("null", "NULL", None))),
        Group("tiu", "tinyint unsigned", (("zero", "0", "0"), ("max", "255", "255"))),
        Group("si", "smallint", (("min", "-32768", "-32768"), ("max", "32767", "32767"))),
        Group("siu", "smallint unsigned", (("max", "65535", "65535"),)),
        Group("mi", "mediumint", (("min", "-8388608", "-8388608"), ("max", "8388607", "8388607"))),
        Group("miu", "mediumint unsigned", (("max", "16777215", "16777215"),)),
        Group("i", "int", (("min", "-2147483648", "-2147483648"), ("max", "2147483647", "2147483647"))),
        Group("iu", "int unsigned", (("max", "4294967295", "4294967295"),)),
        Group(
            "bi",
            "bigint",
            (
                ("min", "-9223372036854775808", "-9223372036854775808"),
                ("max", "9223372036854775807", "9223372036854775807"),
            ),
        ),
        Group(
            "biu",
            "bigint unsigned",
            (
                ("zero", "0", "0"),
                ("past_int64", "9223372036854775808", "9223372036854775808"),
                ("max", "18446744073709551615", "18446744073709551615"),
            ),
        ),
        Group(
            "d65",
            "decimal(65,30)",
            (
                ("max", MAX65, MAX65),
                ("min", "-" + MAX65, "-" + MAX65),
                ("tiny", "0.000000000000000000000000000001", "0.000000000000000000000000000001"),
                ("zero", "0", "0.000000000000000000000000000000"),
            ),
        ),
        Group(
            "d38",
            "decimal(38,10)",
            (
                ("max", "9999999999999999999999999999.9999999999", "9999999999999999999999999999.9999999999"),
                ("neg_tiny", "-0.0000000001", "-0.0000000001"),
            ),
        ),
        Group(
            "d12", "decimal(12,2)", (("max", "9999999999.99", "9999999999.99"), ("cent", "-0.01", "-0.01"))
        ),
        Group(
            "f4",
            "float",
            (
                ("max", "3.4028234663852886e38", "3.4028235e+38"),
                ("min_normal", "1.1754943508222875e-38", "1.1754944e-38"),
                ("neg_zero", "-0e0", "0", "0.0"),
                ("big_int", "16777217", "1.6777216e+07", "16777216.0"),
            ),
        ),
        Group(
            "f8",
            "double",
            (
                ("max", "1.7976931348623157e308", "1.7976931348623157e+308"),
                ("min_normal", "2.2250738585072014e-308", "2.2250738585072014e-308"),
                ("neg_zero", "-0e0", "0", "0.0"),
                ("tenth", "0.1", "0.1"),
                ("neg", "-1.5e30", "-1.5e+30"),
            ),
        ),
        Group("b1", "bit(1)", (("zero", "b'0'", "false"), ("one", "b'1'", "true"))),
        Group("b8", "bit(8)", (("zero", "b'0'", "0"), ("max", "b'11111111'", "255"))),
        Group("b63", "bit(63)", (("max", "0x7fffffffffffffff", "9223372036854775807"),)),
        Group(
            "b64",
            "bit(64)",
            (
                ("max", "0xffffffffffffffff", "18446744073709551615"),
                ("high", "0x8000000000000000", "9223372036854775808"),
            ),
        ),
        Group("yr", "year", (("zero", "0000", "0"), ("first", "1901", "1901"), ("last", "2155", "2155"))),
        Group(
            "dt",
            "date",
            (
                ("first", "'1000-01-01'", "1000-01-01"),
                ("year1", "'0001-01-01'", "0001-01-01"),
                ("last", "'9999-12-31'", "9999-12-31"),
                ("leap", "'2024-02-29'", "2024-02-29"),
                ("zero", "'0000-00-00'", ZERO_DATE, ZERO_DATE),
                ("zero_month", "'2024-00-10'", ZERO_DATE, ZERO_DATE),
                ("zero_day", "'2024-01-00'", ZERO_DATE, ZERO_DATE),
                # Parses in Arrow (year 0), but has no calendar day in Python.
                ("zero_year", "'0000-01-01'", ZERO_DATE, ZERO_DATE),
            ),
        ),
        Group(
            "dtm",
            "datetime(6)",
            (
                ("first", "'1000-01-01 00:00:00'", "1000-01-01 00:00:00"),
                ("last", "'9999-12-31 23:59:59.999999'", "9999-12-31 23:59:59.999999"),
                ("micro", "'2000-01-01 00:00:00.000001'", "2000-01-01 00:00:00.000001"),
                ("zero", "'0000-00-00 00:00:00'", ZERO_DATE, ZERO_DATE),
                ("zero_year", "'0000-01-01 00:00:00'", ZERO_DATE, ZERO_DATE),
                ("year1", "'0001-01-01 00:00:00.5'", "0001-01-01 00:00:00.5"),
            ),
        ),
        Group(
            "ts",
            "timestamp(6) NULL",
            (
                ("first", "'1970-01-01 00:00:01'", "1970-01-01 00:00:01+00"),
                ("last", "'2038-01-19 03:14:07.999999'", "2038-01-19 03:14:07.999999+00"),
                ("zero", "'0000-00-00 00:00:00'", ZERO_DATE, ZERO_DATE),
            ),
        ),
        Group(
            "tm",
            "time(6)",
            (
                ("midnight", "'00:00:00'", "00:00:00", SAME, "00:00:00.000000"),
                ("last", "'23:59:59.999999'", "23:59:59.999999"),
                ("frac", "'12:34:56.5'", "12:34:56.5", SAME, "12:34:56.500000"),
                ("max", "'838:59:59'", TIME_RANGE, TIME_RANGE),
                ("min", "'-838:59:59'", TIME_RANGE, TIME_RANGE),
                ("neg_second", "'-00:00:01'", TIME_RANGE, TIME_RANGE),
                ("day", "'24:00:00'", TIME_RANGE, TIME_RANGE),
            ),
        ),
        Group(
            "en",
            "enum('a','it''s, x','p(q)')",
            (("first", "'a'", "a"), ("quoted", "'it''s, x'", "it's, x"), ("null", "NULL", None)),
        ),
        # information_schema spells a label's 4-byte character as '?': the enum's
        # labels cannot be read, so it travels as text, each label exact.
        Group("en4", "enum('a','😀','why?')", (("emoji", "'😀'", "😀"), ("question", "'why?'", "why?"))),
        Group(
            "st",
            "set('z','a','m')",
            (("empty", "''", ""), ("all", "'a,m,z'", "z,a,m"), ("one", "'m'", "m")),
        ),
        Group("st4", "set('z','🚀','a')", (("all", "'a,🚀,z'", "z,🚀,a"), ("emoji", "'🚀'", "🚀"))),
        Group(
            "js",
            "json",
            (
                ("object", '\'{"b":1,"a":[1,2.50,null]}\'', '{"b":1,"a":[1,2.50,null]}'),
                ("string", "'\"é 😀\"'", '"é 😀"'),
                ("big", "'12345678901234567890123456789'", "12345678901234567890123456789"),
                ("dup_keys", '\'{"a":1,"a":2}\'', '{"a":1,"a":2}'),
            ),
        ),
        Group(
            "c",
            "char(10)",
            (("empty", "''", ""), ("emoji", "'😀𝄞'", "😀𝄞"), ("padded", "'ab'", "ab")),
        ),
        Group(
            "vc",
            "varchar(100)",
            (
                ("empty", "''", ""),
                ("null_word", "'NULL'", "NULL"),
                ("emoji", f"'{EMOJI}'", EMOJI),
                ("specials", "'a\\tb\\nc\"d''e\\\\'", "a\tb\nc\"d'e\\"),
                ("trailing", "'x  '", "x  "),
            ),
        ),
        Group(
            "tx",
            "longtext",
            (("long", "REPEAT('😀', 70000)", "😀" * 70000), ("backslash_n", "'\\\\N'", "\\N")),
        ),
        Group(
            "bn",
            "binary(4)",
            (
                ("nul", "x'00'", "\\x00000000", "\\x00\\x00\\x00\\x00"),
                ("full", "x'ff00ff00'", "\\xff00ff00", "\\xFF\\x00\\xFF\\x00"),
            ),
        ),
        Group(
            "vb",
            "varbinary(10)",
            (("empty", "x''", "\\x", ""), ("nuls", "x'000100'", "\\x000100", "\\x00\\x01\\x00")),
        ),
        Group(
            "bl",
            "longblob",
            (("nuls", "x'00005c4e00'", "\\x00005c4e00", "\\x00\\x00\\x5CN\\x00"), ("null", "NULL", None)),
        ),
        Group(
            "geo",
            "geometry",
            (("point", "ST_GeomFromText('POINT(1 2)')", "POINT(1 2)"),),
        ),
    ),
)


def create(url: str) -> None:
    """The corpus's tables in the MariaDB database of ``url``."""
    conn = mariadb_connect(url)
    try:
        with conn.cursor() as cur:
            for name, (column_type, _) in CORPUS.tables().items():
                cur.execute(
                    f"CREATE TABLE {name} (id int PRIMARY KEY, name varchar(64) NOT NULL, v {column_type})"
                    " DEFAULT CHARSET=utf8mb4"
                )
    finally:
        conn.close()


def insert(url: str) -> None:
    """Every row of the corpus (``sql_mode = ''``: zero dates can exist)."""
    conn = mariadb_connect(url)
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION sql_mode = ''")
            cur.execute("SET SESSION time_zone = '+00:00'")
            for name, (_, edges) in CORPUS.tables().items():
                rows = ", ".join(f"({i}, '{e.name}', {e.literal})" for i, e in enumerate(edges, 1))
                cur.execute(f"INSERT INTO {name} VALUES {rows}")
    finally:
        conn.close()
