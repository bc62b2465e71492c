"""An edge-value corpus of PostgreSQL values, as named rows, with what each
becomes in every target: the target's text of the value (exact), or a
refusal with a fragment of its reason.

Each PostgreSQL type is one source table ``e_<slug>`` (``id``, ``name``,
``v``); each value a row named ``<slug>_<case>``. Values some target refuses
live in tables of their own (``r_<name>``): change capture refuses a value by
suspending its table, and the other values must still be checked.

Texts are what DuckDB prints (``CAST(v AS VARCHAR)``), for the DuckDB target
and for the curated lake table (``conveyor query``); the lake keeps times
and intervals as text (Delta has neither type). ``docs/types.md`` is checked
against this corpus (``tests/unit/test_types_doc.py``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Refused:
    reason: str
    """A fragment of the reason the target gives."""


Expected = str | None | Refused
SAME = object()


@dataclass(frozen=True)
class Edge:
    name: str
    pg_type: str
    literal: str
    duckdb: Expected
    lake: Expected | object = SAME

    @property
    def lake_expected(self) -> Expected:
        return self.duckdb if self.lake is SAME else self.lake  # type: ignore[return-value]

    def expected(self, target: str) -> Expected:
        return self.duckdb if target == "duckdb" else self.lake_expected

    @property
    def refused_somewhere(self) -> bool:
        return isinstance(self.duckdb, Refused) or isinstance(self.lake_expected, Refused)


@dataclass(frozen=True)
class TypeGroup:
    slug: str
    pg_type: str
    cases: tuple[tuple[str, str, Expected, Expected | object], ...]
    """(case, SQL literal, DuckDB text, lake text or SAME)."""

    def edges(self) -> list[Edge]:
        return [
            Edge(f"{self.slug}_{case}", self.pg_type, lit, dd, lake) for case, lit, dd, lake in self.cases
        ]


AFTER_INT64 = Refused("after 294247-01-10 04:00:54.775807")
BEYOND_INT64 = Refused("beyond int64 microseconds")
BOUNDS = Refused("lower bound other than 1")
DIMENSIONS = Refused("multi-dimensional array")
INTERVAL_RANGE = Refused("interval's time part exceeds")
DECIMAL_NAN = Refused("decimal")

GROUPS: tuple[TypeGroup, ...] = (
    TypeGroup(
        "int2",
        "smallint",
        (("min", "-32768", "-32768", SAME), ("max", "32767", "32767", SAME), ("null", "NULL", None, SAME)),
    ),
    TypeGroup(
        "int4",
        "integer",
        (("min", "-2147483648", "-2147483648", SAME), ("max", "2147483647", "2147483647", SAME)),
    ),
    TypeGroup(
        "int8",
        "bigint",
        (
            ("min", "-9223372036854775808", "-9223372036854775808", SAME),
            ("max", "9223372036854775807", "9223372036854775807", SAME),
        ),
    ),
    TypeGroup(
        "dec",
        "numeric(12,2)",
        (
            ("max", "9999999999.99", "9999999999.99", SAME),
            ("neg_cent", "-0.01", "-0.01", SAME),
        ),
    ),
    TypeGroup(
        "num",
        "numeric",
        (
            (
                "long",
                "123456789012345678901234567890.123456789",
                "123456789012345678901234567890.123456789",
                SAME,
            ),
            (
                "tiny",
                "0.000000000000000000000000000000000000000001",
                "0.000000000000000000000000000000000000000001",
                SAME,
            ),
            ("nan", "'NaN'", "NaN", SAME),
            ("inf", "'Infinity'", "Infinity", SAME),
            ("neg_inf", "'-Infinity'", "-Infinity", SAME),
        ),
    ),
    TypeGroup(
        "f4",
        "real",
        (
            ("nan", "'NaN'", "nan", SAME),
            ("inf", "'Infinity'", "inf", SAME),
            ("neg_inf", "'-Infinity'", "-inf", SAME),
            ("neg_zero", "'-0'", "-0.0", SAME),
            ("subnormal", "'1e-45'", "1e-45", SAME),
            ("max", "'3.4028235e38'", "3.4028235e+38", SAME),
        ),
    ),
    TypeGroup(
        "f8",
        "double precision",
        (
            ("nan", "'NaN'", "nan", SAME),
            ("inf", "'Infinity'", "inf", SAME),
            ("neg_zero", "'-0'", "-0.0", SAME),
            ("subnormal", "'5e-324'", "5e-324", SAME),
            ("max", "'1.7976931348623157e308'", "1.7976931348623157e+308", SAME),
            ("tenth", "'0.1'", "0.1", SAME),
        ),
    ),
    TypeGroup(
        "date",
        "date",
        (
            ("first", "'4714-11-24 BC'", "4714-11-24 (BC)", SAME),
            ("bc", "'0044-03-15 BC'", "0044-03-15 (BC)", SAME),
            ("year1", "'0001-01-01'", "0001-01-01", SAME),
            ("y9999", "'9999-12-31'", "9999-12-31", SAME),
            ("y10000", "'10000-01-01'", "10000-01-01", SAME),
            ("last", "'5874897-12-31'", "5874897-12-31", SAME),
            ("inf", "'infinity'", "infinity", SAME),
            ("neg_inf", "'-infinity'", "-infinity", SAME),
        ),
    ),
    TypeGroup(
        "ts",
        "timestamp",
        (
            ("first", "'4714-11-24 00:00:00 BC'", "4714-11-24 (BC) 00:00:00", SAME),
            ("micro", "'2000-01-01 00:00:00.000001'", "2000-01-01 00:00:00.000001", SAME),
            ("y10000", "'10000-01-01 00:00:00'", "10000-01-01 00:00:00", SAME),
            ("int64_last", "'294247-01-10 04:00:54.775806'", "294247-01-10 04:00:54.775806", SAME),
            ("inf", "'infinity'", "infinity", SAME),
            ("neg_inf", "'-infinity'", "-infinity", SAME),
        ),
    ),
    TypeGroup(
        "tstz",
        "timestamptz",
        (
            ("first", "'4714-11-24 00:00:00+00 BC'", "4714-11-24 (BC) 00:00:00+00", SAME),
            ("offset", "'2024-01-02 03:04:05.5+05:30'", "2024-01-01 21:34:05.5+00", SAME),
            ("inf", "'infinity'", "infinity", SAME),
        ),
    ),
    TypeGroup(
        "time",
        "time",
        (
            ("midnight", "'00:00:00'", "00:00:00", "00:00:00.000000"),
            ("last_micro", "'23:59:59.999999'", "23:59:59.999999", "23:59:59.999999"),
            ("day_end", "'24:00:00'", "24:00:00", "24:00:00.000000"),
        ),
    ),
    TypeGroup(
        "timetz",
        "timetz",
        (
            ("day_end", "'24:00:00+15:59'", "24:00:00+15:59", SAME),
            ("west", "'00:00:00-15:59'", "00:00:00-15:59", SAME),
        ),
    ),
    TypeGroup(
        "iv",
        "interval",
        (
            ("years", "'178000000 years'", "178000000 years", "P2136000000M0DT0S"),
            ("neg_years", "'-178000000 years'", "-178000000 years", "P-2136000000M0DT0S"),
            ("mixed", "'1 mon 2 days 3 microseconds'", "1 month 2 days 00:00:00.000003", "P1M2DT0.000003S"),
            (
                "time_max",
                "'2562047 hours 47 min 16.854775 s'",
                "2562047:47:16.854775",
                "P0M0DT9223372036.854775S",
            ),
        ),
    ),
    TypeGroup(
        "bytea",
        "bytea",
        (
            ("bytes", "'\\x00ff5c'::bytea", "\\x00\\xFF\\x5C", SAME),
            ("empty", "''::bytea", "", SAME),
        ),
    ),
    TypeGroup(
        "text",
        "text",
        (
            ("empty", "''", "", SAME),
            ("null_word", "'NULL'", "NULL", SAME),
            ("unicode", "'zürich ☃ 𝄞'", "zürich ☃ 𝄞", SAME),
            ("specials", "E'a\\tb\\nc\"d''e\\\\'", "a\tb\nc\"d'e\\", SAME),
        ),
    ),
    TypeGroup(
        "json",
        "json",
        (
            ("dup_keys", '\'{"b":1,"a":2,"a":3}\'', '{"b":1,"a":2,"a":3}', SAME),
            ("numbers", "'[1e400, 0.10, -0]'", "[1e400, 0.10, -0]", SAME),
        ),
    ),
    TypeGroup("jsonb", "jsonb", (("ordered", '\'{"b":1,"a":[0.10]}\'', '{"a": [0.10], "b": 1}', SAME),)),
    TypeGroup(
        "uuid",
        "uuid",
        (("upper", "'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", SAME),),
    ),
    TypeGroup(
        "ia",
        "integer[]",
        (
            ("nulls", "'{1,NULL,3}'", "[1, NULL, 3]", SAME),
            ("empty", "'{}'", "[]", SAME),
        ),
    ),
    TypeGroup(
        "tsa",
        "timestamp[]",
        (
            (
                "infinities",
                "'{infinity,-infinity,\"2020-01-01 00:00:00\",NULL}'",
                "[infinity, -infinity, '2020-01-01 00:00:00', NULL]",
                SAME,
            ),
        ),
    ),
    TypeGroup(
        "da",
        "date[]",
        (
            (
                "limits",
                '\'{infinity,"4714-11-24 BC","5874897-12-31"}\'',
                "[infinity, '4714-11-24 (BC)', 5874897-12-31]",
                SAME,
            ),
        ),
    ),
    TypeGroup(
        "ta",
        "text[]",
        (("quoting", '\'{"a,b",NULL,"NULL","","{x}"}\'', "['a,b', NULL, 'NULL', '', '{x}']", SAME),),
    ),
)

REFUSED: tuple[Edge, ...] = (
    Edge("ts_after_int64", "timestamp", "'294276-12-31 23:59:59'", AFTER_INT64),
    Edge("tstz_after_int64", "timestamptz", "'294276-12-31 23:59:59+00'", AFTER_INT64),
    Edge("tsa_after_int64", "timestamp[]", "'{\"294276-12-31 23:59:59\"}'", AFTER_INT64),
    Edge("ia_two_dims", "integer[]", "'{{1,2},{3,4}}'", DIMENSIONS),
    Edge("ia_lower_bound", "integer[]", "'[0:2]={7,8,9}'", BOUNDS),
    Edge("iv_time_overflow", "interval", "'3000000 hours'", INTERVAL_RANGE),
    Edge("dec_nan", "numeric(12,2)", "'NaN'", DECIMAL_NAN),
)
"""Values refused (reported) instead of carried; each in its own table. The
CDC reason differs in words for a timestamp past int64 (``BEYOND_INT64``)."""

CDC_REASONS = {
    "ts_after_int64": BEYOND_INT64,
    "tstz_after_int64": BEYOND_INT64,
    "tsa_after_int64": BEYOND_INT64,
}


def exact_edges() -> list[Edge]:
    return [e for g in GROUPS for e in g.edges() if not e.refused_somewhere]


def all_edges() -> list[Edge]:
    return [*exact_edges(), *REFUSED]


def tables() -> dict[str, tuple[str, list[Edge]]]:
    """Source table name -> (column type, its rows)."""
    found: dict[str, tuple[str, list[Edge]]] = {}
    for group in GROUPS:
        edges = [e for e in group.edges() if not e.refused_somewhere]
        if edges:
            found[f"e_{group.slug}"] = (group.pg_type, edges)
    for edge in REFUSED:
        found[f"r_{edge.name}"] = (edge.pg_type, [edge])
    return found


def create_sql() -> str:
    return "".join(
        f"CREATE TABLE {name} (id integer PRIMARY KEY, name text NOT NULL, v {pg_type});\n"
        for name, (pg_type, _) in tables().items()
    )


def insert_sql() -> list[str]:
    """One INSERT per table."""
    statements = []
    for name, (_, edges) in tables().items():
        rows = ", ".join(f"({i}, '{e.name}', {e.literal})" for i, e in enumerate(edges, 1))
        statements.append(f"INSERT INTO {name} VALUES {rows}")
    return statements
