"""Full loads from a private MariaDB server into PostgreSQL (and DuckDB), checked
value by value and type by type for every MariaDB type the source maps."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from datetime import UTC, date, datetime, time
from decimal import Context, Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias
from uuid import UUID

import duckdb
import psycopg
import pymysql
import pytest

from conveyor.connectors.base import EndpointConfig, PrepMode
from conveyor.connectors.duckdb.target import DuckDBTarget
from conveyor.connectors.mysql.source import MySQLSource
from conveyor.connectors.postgres.target import PostgresTarget
from conveyor.core.schema import TableSchema
from conveyor.replication.full_load import FullLoad
from conveyor.replication.table_plan import TABLE_COMPLETED, TablePlan, TableProgress
from conveyor.replication.validation import MISMATCHED, VALIDATED, TableValidation, validate_table
from support.mariadb import mariadb_connect as _raw

if TYPE_CHECKING:
    Conn: TypeAlias = pymysql.connections.Connection[pymysql.cursors.Cursor]

pytestmark = pytest.mark.integration

WEIRD_TABLE = 'Wé`ird "Tab\'le"; x.y MiXed'
ENUM_LABELS = ("a", "it's, x", "p(q)", "back\\slash")
BATCH_ROWS = 2

TYPES_DDL = r"""
CREATE TABLE all_types (
  id int NOT NULL PRIMARY KEY,
  nn varchar(10) NOT NULL,
  ti tinyint, tiu tinyint unsigned, si smallint, siu smallint unsigned,
  mi mediumint, miu mediumint unsigned, i int, iu int unsigned, bi bigint, biu bigint unsigned,
  d12 decimal(12,2), d38 decimal(38,10), d65 decimal(65,30),
  f float, db double,
  c char(5), vc varchar(80), tx text,
  bn binary(4), vb varbinary(10), bl blob,
  dt date, tm time, tm6 time(6), dtm datetime(6), ts timestamp(6) NULL,
  js json, en enum('a','it''s, x','p(q)','back\\slash') NOT NULL DEFAULT 'a', st set('z','a','m'),
  b1 bit(1), b8 bit(8), yr year, u uuid
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
"""

COLUMNS = [
    "id", "nn", "ti", "tiu", "si", "siu", "mi", "miu", "i", "iu", "bi", "biu",
    "d12", "d38", "d65", "f", "db", "c", "vc", "tx", "bn", "vb", "bl",
    "dt", "tm", "tm6", "dtm", "ts", "js", "en", "st", "b1", "b8", "yr", "u",
]  # fmt: skip

TEXT = "emoji 😀🚀 tab\there newline\nthere backslash\\ quote' dquote\" cr\r end"
JSON_DOC = '{"k": "é😀 \\"q\\" \\\\ tab\\t", "n": [1, 2.5, null, true], "nested": {"a": []}}'

# Rows as parameters of one INSERT (pymysql quotes them), in the order of COLUMNS.
ROWS: list[tuple[Any, ...]] = [
    (
        1, "max", 127, 255, 32767, 65535, 8388607, 16777215, 2147483647, 4294967295,
        9223372036854775807, 18446744073709551615,
        Decimal("9999999999.99"), Decimal("9999999999999999999999999999.9999999999"),
        Decimal("99999999999999999999999999999999999.999999999999999999999999999999"),
        3.4028234663852886e38, 1.7976931348623157e308,
        "ab", TEXT, "long " + "😀" * 3000 + " text",
        b"\x00\x01", b"\x00\xff\x00", b"\x00\x00\x00blob\x00",
        "9999-12-31", "23:59:59", "23:59:59.999999", "9999-12-31 23:59:59.999999",
        "2038-01-19 03:14:07.999999",
        JSON_DOC, "it's, x", "a,z", 1, 255, 2155, "123E4567-E89B-12D3-A456-426614174000",
    ),
    (
        2, "", -128, 0, -32768, 0, -8388608, 0, -2147483648, 0, -9223372036854775808, 0,
        Decimal("-9999999999.99"), Decimal("-9999999999999999999999999999.9999999999"),
        Decimal("-0.000000000000000000000000000001"),
        -0.0, -0.0,
        "", "", "", b"\x00\x00\x00\x00", b"", b"",
        "1000-01-01", "00:00:00", "00:00:00.000001", "1000-01-01 00:00:00",
        "1970-01-01 00:00:01", "[]", "back\\slash", "", 0, 0, 1901,
        "00000000-0000-0000-0000-000000000000",
    ),
    (3, "nulls") + (None,) * 27 + ("a",) + (None,) * 5,
    (
        4, "small", 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
        Decimal("0.01"), Decimal("0.0000000001"), Decimal("1.5"),
        1.1754943508222875e-38, 5e-324,
        "x'y\"z", "'; DROP TABLE x; --", "\\N", b"'", b"\\", b"\\N",
        "2024-02-29", "12:34:56", "12:34:56.5", "2024-02-29 12:00:00.123456",
        "2024-03-10 02:30:00", '{"a": "é unicode 名 \\u0001"}', "p(q)", "z,m,a", 1, 129, 2024,
        "6ccd780c-baba-1026-9564-5b8c656024db",
    ),
    (
        5, "big", 0, 0, 0, 0, 0, 0, 0, 0, 0, 9223372036854775808,
        Decimal("0.00"), Decimal("0"),
        Decimal("-12345678901234567890123456789012345.123456789012345678901234567890"),
        -1.5e30, -2.2250738585072014e-308,
        "名前", "1.5e300", "NULL", None, None, None,
        "2000-01-01", "00:00:00", "23:59:59.999999", "2000-01-01 00:00:00.000001",
        None, '"just a string"', "a", "m", 0, 128, 2000, "ffffffff-ffff-ffff-ffff-ffffffffffff",
    ),
]  # fmt: skip


def _f32(value: float) -> float:
    """A double rounded to the float32 it is stored as."""
    result: float = struct.unpack("<f", struct.pack("<f", value))[0]
    return result


def _scaled(value: Decimal, places: int) -> Decimal:
    """``value`` with the column's scale, as the server keeps it."""
    return value.quantize(Decimal(10) ** -places, context=Context(prec=100))


def _expected_pg(row: tuple[Any, ...]) -> dict[str, Any]:
    """The row as psycopg reads it back from the PostgreSQL target."""
    values = dict(zip(COLUMNS, row, strict=True))
    out: dict[str, Any] = dict(values)
    if values["biu"] is not None:
        out["biu"] = Decimal(values["biu"])
    if values["d65"] is not None:
        # numeric with the column's 30 decimals, as MariaDB keeps it
        out["d65"] = _scaled(values["d65"], 30)
    if values["d12"] is not None:
        out["d12"] = _scaled(values["d12"], 2)
    if values["d38"] is not None:
        out["d38"] = _scaled(values["d38"], 10)
    for name in ("f", "db"):
        if values[name] == 0:
            out[name] = 0.0  # MariaDB has no negative zero: -0e0 is stored as 0
    if values["f"] is not None:
        out["f"] = _f32(out["f"])
    if values["bn"] is not None:
        out["bn"] = values["bn"].ljust(4, b"\x00")  # binary(n) pads with NUL bytes
    for name, parse in (
        ("dt", date.fromisoformat),
        ("tm", time.fromisoformat),
        ("tm6", time.fromisoformat),
        ("dtm", datetime.fromisoformat),
    ):
        if values[name] is not None:
            out[name] = parse(values[name])
    if values["ts"] is not None:
        out["ts"] = datetime.fromisoformat(values["ts"]).replace(tzinfo=UTC)
    if values["js"] is not None:
        out["js"] = json.loads(values["js"])
    if values["st"] is not None:
        # MariaDB spells a set's members in declaration order ('z','a','m').
        members = set(values["st"].split(",")) - {""}
        out["st"] = ",".join(m for m in ("z", "a", "m") if m in members)
    if values["b1"] is not None:
        out["b1"] = bool(values["b1"])
    if values["u"] is not None:
        out["u"] = UUID(values["u"])
    return out


# The weird table: a varchar key whose values sort differently in MariaDB's
# collations than in code point order, reserved-word and mixed-case columns.
WEIRD_KEYS = ["a", "B", "b", "Z", "é", "😀", "Ab"]
CI_KEYS = ["a", "a\t", "B", "c", "Z", "é", "😀", "10", "9", " x"]
UUID_KEYS = [
    "6ccd780c-baba-1026-9564-5b8c656024db",  # version 1 (MariaDB sorts these by time)
    "6ccd780c-baba-1126-9564-5b8c656024db",
    "00000000-0000-0000-0000-000000000001",
    "ffffffff-ffff-1fff-bfff-ffffffffffff",
    "12345678-1234-5678-9abc-def012345678",
    "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
    "a0eebc99-9c0b-1ef8-bb6d-6bb9bd380a11",
]


def _mq(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _pq(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@pytest.fixture
def source_url(mariadb_db: str) -> str:
    conn = _raw(mariadb_db)
    try:
        with conn.cursor() as cur:
            cur.execute("SET time_zone = '+00:00'")
            cur.execute(TYPES_DDL)
            placeholders = ", ".join(["%s"] * len(COLUMNS))
            for row in ROWS:
                params = tuple(
                    int(v) if name in {"b1", "b8"} and v is not None else v
                    for name, v in zip(COLUMNS, row, strict=True)
                )
                cur.execute(f"INSERT INTO all_types ({', '.join(COLUMNS)}) VALUES ({placeholders})", params)
            cur.execute(
                f"CREATE TABLE {_mq(WEIRD_TABLE)} ("
                "`Key` varchar(10) COLLATE utf8mb4_uca1400_as_cs NOT NULL PRIMARY KEY, "
                "`select` varchar(20), `Mixed Case` int NOT NULL, `from` text) DEFAULT CHARSET=utf8mb4"
            )
            cur.executemany(
                f"INSERT INTO {_mq(WEIRD_TABLE)} VALUES (%s, %s, %s, %s)",
                [(k, f"sel {k}", n, None if n % 2 else "from") for n, k in enumerate(WEIRD_KEYS)],
            )
            # The default collation (case- and accent-insensitive, PAD SPACE).
            cur.execute(
                "CREATE TABLE ci_keys (k varchar(10) NOT NULL PRIMARY KEY, v int) DEFAULT CHARSET=utf8mb4"
            )
            cur.executemany("INSERT INTO ci_keys VALUES (%s, %s)", [(k, n) for n, k in enumerate(CI_KEYS)])
            cur.execute("CREATE TABLE uuid_keys (u uuid NOT NULL PRIMARY KEY, v int)")
            cur.executemany(
                "INSERT INTO uuid_keys VALUES (%s, %s)", [(k, n) for n, k in enumerate(UUID_KEYS)]
            )
    finally:
        conn.close()
    return mariadb_db


TABLES = ["all_types", "ci_keys", "uuid_keys", WEIRD_TABLE]


def _load(
    source_url: str, target: Any
) -> tuple[list[TableProgress], list[TableValidation], list[TableSchema]]:
    source = MySQLSource(EndpointConfig("maria", "mysql", url=source_url))
    tables = source.tables()
    assert sorted(t.ref.name for t in tables) == sorted(TABLES)
    snapshot = source.snapshot()
    try:
        plans = [TablePlan(t, t) for t in tables]
        progress = FullLoad(
            snapshot, target, plans, PrepMode.DROP_AND_CREATE, batch_rows=BATCH_ROWS, parallel=2
        ).run()
        checks = [validate_table(snapshot, target, p.plan, BATCH_ROWS) for p in progress]
    finally:
        snapshot.close()
    return progress, checks, tables


def _assert_loaded(progress: list[TableProgress], checks: list[TableValidation]) -> None:
    assert [p.state for p in progress] == [TABLE_COMPLETED] * len(TABLES), [p.error for p in progress]
    rows = {p.plan.target.ref.name: p.rows for p in progress}
    assert rows == {
        "all_types": len(ROWS),
        "ci_keys": len(CI_KEYS),
        "uuid_keys": len(UUID_KEYS),
        WEIRD_TABLE: len(WEIRD_KEYS),
    }
    assert [c.state for c in checks] == [VALIDATED] * len(TABLES), [c.as_dict() for c in checks]


@pytest.fixture
def pg_target_url(pg_server: Any) -> str:
    url: str = pg_server.url(pg_server.new_database("target"))
    return url


def _same(want: Any, got: Any) -> bool:
    if isinstance(want, float) and isinstance(got, float):
        return struct.pack("<d", want) == struct.pack("<d", got)  # -0.0 is not 0.0
    if isinstance(want, Decimal) and isinstance(got, Decimal):
        return str(want) == str(got)  # the scale too
    return bool(want == got and type(want) is type(got))


PG_TYPES = {
    "id": ("integer", True),
    "nn": ("character varying(10)", True),
    "ti": ("smallint", False),
    "tiu": ("smallint", False),
    "si": ("smallint", False),
    "siu": ("integer", False),
    "mi": ("integer", False),
    "miu": ("integer", False),
    "i": ("integer", False),
    "iu": ("bigint", False),
    "bi": ("bigint", False),
    "biu": ("numeric(20,0)", False),
    "d12": ("numeric(12,2)", False),
    "d38": ("numeric(38,10)", False),
    "d65": ("numeric", False),
    "f": ("real", False),
    "db": ("double precision", False),
    "c": ("character varying(5)", False),
    "vc": ("character varying(80)", False),
    "tx": ("text", False),
    "bn": ("bytea", False),
    "vb": ("bytea", False),
    "bl": ("bytea", False),
    "dt": ("date", False),
    "tm": ("time(6) without time zone", False),
    "tm6": ("time(6) without time zone", False),
    "dtm": ("timestamp(6) without time zone", False),
    "ts": ("timestamp(6) with time zone", False),
    "js": ("json", False),
    "en": ("ENUM", True),
    "st": ("text", False),
    "b1": ("boolean", False),
    "b8": ("bigint", False),
    "yr": ("smallint", False),
    "u": ("uuid", False),
}

_PG_COLUMNS_SQL = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, t.typtype = 'e',
       ARRAY(SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = a.atttypid ORDER BY e.enumsortorder)
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_type t ON t.oid = a.atttypid
WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""

_PG_KEY_SQL = """
SELECT array_agg(a.attname::text ORDER BY k.ord)
FROM pg_index i
JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indisprimary AND n.nspname = %s AND c.relname = %s
"""


def test_mariadb_to_postgres_keeps_every_value_and_type(source_url: str, pg_target_url: str) -> None:
    target = PostgresTarget(EndpointConfig("dst", "postgres", url=pg_target_url))
    progress, checks, tables = _load(source_url, target)
    _assert_loaded(progress, checks)
    schema = tables[0].ref.schema
    with psycopg.connect(pg_target_url) as conn:
        conn.execute("SET timezone = 'Asia/Kolkata'")  # instants, not wall clocks, must match
        cur = conn.cursor(row_factory=psycopg.rows.dict_row)
        got = cur.execute(f"SELECT * FROM {_pq(schema)}.all_types ORDER BY id").fetchall()
        assert len(got) == len(ROWS)
        for row, actual in zip(ROWS, got, strict=True):
            want = _expected_pg(row)
            assert list(actual) == COLUMNS
            if actual["f"] is not None:
                actual["f"] = _f32(actual["f"])  # real's shortest text, back to its float32
            for name in COLUMNS:
                assert _same(want[name], actual[name]), (
                    f"row {row[0]} column {name}: {want[name]!r} != {actual[name]!r}"
                )
        # json keeps the document as written
        assert cur.execute(f"SELECT js::text AS j FROM {_pq(schema)}.all_types WHERE id = 1").fetchone() == {
            "j": JSON_DOC
        }

        columns = conn.execute(_PG_COLUMNS_SQL, (schema, "all_types")).fetchall()
        assert [c[0] for c in columns] == COLUMNS
        for name, formatted, not_null, is_enum, labels in columns:
            want_type, want_not_null = PG_TYPES[name]
            if want_type == "ENUM":
                assert is_enum and tuple(labels) == ENUM_LABELS, (name, formatted)
            else:
                assert (formatted, is_enum) == (want_type, False), name
            assert not_null == want_not_null, name
        assert conn.execute(_PG_KEY_SQL, (schema, "all_types")).fetchone() == (["id"],)

        weird = conn.execute(f"SELECT * FROM {_pq(schema)}.{_pq(WEIRD_TABLE)} ORDER BY 3").fetchall()
        assert weird == [(k, f"sel {k}", n, None if n % 2 else "from") for n, k in enumerate(WEIRD_KEYS)]
        assert [(c[0], c[1], c[2]) for c in conn.execute(_PG_COLUMNS_SQL, (schema, WEIRD_TABLE))] == [
            ("Key", "character varying(10)", True),
            ("select", "character varying(20)", False),
            ("Mixed Case", "integer", True),
            ("from", "text", False),
        ]
        assert conn.execute(_PG_KEY_SQL, (schema, WEIRD_TABLE)).fetchone() == (["Key"],)
        ci = conn.execute(f"SELECT k, v FROM {_pq(schema)}.ci_keys ORDER BY v").fetchall()
        assert ci == [(k, n) for n, k in enumerate(CI_KEYS)]
        uuids = conn.execute(f"SELECT u, v FROM {_pq(schema)}.uuid_keys ORDER BY v").fetchall()
        assert uuids == [(UUID(k), n) for n, k in enumerate(UUID_KEYS)]


def test_validation_finds_a_changed_value(source_url: str, pg_target_url: str) -> None:
    """Validation is not vacuous: a changed target row is reported by its key."""
    target = PostgresTarget(EndpointConfig("dst", "postgres", url=pg_target_url))
    source = MySQLSource(EndpointConfig("maria", "mysql", url=source_url))
    weird = next(t for t in source.tables() if t.ref.name == WEIRD_TABLE)
    snapshot = source.snapshot()
    try:
        plan = TablePlan(weird, weird)
        [progress] = FullLoad(snapshot, target, [plan], PrepMode.DROP_AND_CREATE, batch_rows=BATCH_ROWS).run()
        assert progress.state == TABLE_COMPLETED, progress.error
        with psycopg.connect(pg_target_url, autocommit=True) as conn:
            table = f"{_pq(weird.ref.schema)}.{_pq(WEIRD_TABLE)}"
            conn.execute(f"""UPDATE {table} SET "select" = 'changed' WHERE "Key" = 'b'""")
        result = validate_table(snapshot, target, plan, BATCH_ROWS)
    finally:
        snapshot.close()
    assert result.state == MISMATCHED
    assert (result.different, result.missing_on_target, result.extra_on_target) == (1, 0, 0)
    assert result.sample_keys == [["b"]]


@pytest.fixture
def duck(tmp_path: Path) -> Iterator[DuckDBTarget]:
    target = DuckDBTarget(EndpointConfig("dw", "duckdb", path=str(tmp_path / "dw.duckdb")))
    yield target
    target.close()


def test_mariadb_to_duckdb(source_url: str, duck: DuckDBTarget) -> None:
    progress, checks, tables = _load(source_url, duck)
    _assert_loaded(progress, checks)
    schema = tables[0].ref.schema
    duck.close()
    with duckdb.connect(str(duck.path), read_only=True) as conn:
        types = dict(
            conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = ? AND table_name = 'all_types'",
                [schema],
            ).fetchall()
        )
        row = conn.execute(
            f"SELECT biu::varchar, d65, vc, bn, dtm::varchar, en::varchar, b1, u::varchar "
            f"FROM {_pq(schema)}.all_types WHERE id = 1"
        ).fetchone()
        keys = conn.execute(f'SELECT "Key" FROM {_pq(schema)}.{_pq(WEIRD_TABLE)} ORDER BY 1').fetchall()
    assert types["biu"] == "DECIMAL(20,0)" and types["d65"] == "VARCHAR" and types["b1"] == "BOOLEAN"
    assert types["ts"] == "TIMESTAMP WITH TIME ZONE" and types["js"] == "JSON" and types["u"] == "UUID"
    assert row == (
        "18446744073709551615",
        "99999999999999999999999999999999999.999999999999999999999999999999",
        TEXT,
        b"\x00\x01\x00\x00",
        "9999-12-31 23:59:59.999999",
        "it's, x",
        True,
        "123e4567-e89b-12d3-a456-426614174000",
    )
    assert [k for (k,) in keys] == sorted(WEIRD_KEYS)


def _target(kind: str, pg_server: Any, tmp_path: Path) -> Any:
    if kind == "postgres":
        url = pg_server.url(pg_server.new_database("target"))
        return PostgresTarget(EndpointConfig("dst", "postgres", url=url))
    return DuckDBTarget(EndpointConfig("dw", "duckdb", path=str(tmp_path / "dw.duckdb")))


def _load_and_validate(url: str, target: Any, table: str) -> str:
    source = MySQLSource(EndpointConfig("maria", "mysql", url=url))
    [schema] = [t for t in source.tables() if t.ref.name == table]
    snapshot = source.snapshot()
    try:
        plan = TablePlan(schema, schema)
        [progress] = FullLoad(snapshot, target, [plan], PrepMode.DROP_AND_CREATE).run()
        assert progress.state == TABLE_COMPLETED, progress.error
        return validate_table(snapshot, target, plan).state
    finally:
        snapshot.close()
        target.close()


@pytest.mark.parametrize("kind", ["postgres", "duckdb"])
def test_json_in_any_spelling_validates(kind: str, mariadb_db: str, pg_server: Any, tmp_path: Path) -> None:
    conn = _raw(mariadb_db)
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE js (id int PRIMARY KEY, j json)")
            cur.execute("""INSERT INTO js VALUES (1, '{"b":1,"a":[1, 2.50]}'), (2, '"\\\\u00e9"')""")
    finally:
        conn.close()
    assert _load_and_validate(mariadb_db, _target(kind, pg_server, tmp_path), "js") == VALIDATED


@pytest.mark.parametrize("kind", ["postgres", "duckdb"])
def test_enum_key_validates(kind: str, mariadb_db: str, pg_server: Any, tmp_path: Path) -> None:
    conn = _raw(mariadb_db)
    try:
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE ek (e enum('b','a','c') NOT NULL PRIMARY KEY, v int)")
            cur.execute("INSERT INTO ek VALUES ('a', 1), ('b', 2), ('c', 3)")
    finally:
        conn.close()
    assert _load_and_validate(mariadb_db, _target(kind, pg_server, tmp_path), "ek") == VALIDATED


def test_validation_reads_mariadb_text_as_the_rendered_values(source_url: str) -> None:
    """Validation reads MariaDB's own text (canonically spelled); every value the
    load reads exactly, rendered as validation renders a target's, reads the same."""
    from conveyor.core.canonical_text import json_document, render_column
    from conveyor.core.types import Kind

    source = MySQLSource(EndpointConfig("maria", "mysql", url=source_url))
    table = next(t for t in source.tables() if t.ref.name == "all_types")
    snapshot = source.snapshot()
    try:
        printed = [row for batch in snapshot.read_text(table, 100) for row in batch]
        rendered: list[tuple[str | None, ...]] = []
        for batch in snapshot.read(table, 100, order_by_key=True):
            columns = [render_column(batch.column(i), c.type) for i, c in enumerate(table.columns)]
            rendered.extend(zip(*columns, strict=True))
    finally:
        snapshot.close()
    assert len(printed) == len(rendered) == len(ROWS)
    different = [
        (row[0], c.name, want, got)
        for row, other in zip(printed, rendered, strict=True)
        for c, want, got in zip(table.columns, row, other, strict=True)
        if (json_document(want) != json_document(got) if c.type.kind is Kind.JSON else want != got)
    ]
    assert different == []


# (column, how DuckDB's copy of row 1 is changed behind Conveyor's back)
MARIADB_CHANGES = [
    ("d12", "d12 = d12 - 0.01"),
    ("f", "f = f / 2"),
    ("db", "db = nextafter(db, 0)"),
    ("bn", "bn = '\\x00\\x02\\x00\\x00'::BLOB"),
    ("tm6", "tm6 = tm6 - INTERVAL 1 MICROSECOND"),
    ("dtm", "dtm = dtm - INTERVAL 1 MICROSECOND"),
    ("ts", "ts = ts - INTERVAL 1 MICROSECOND"),
    ("js", """js = '{"k": 1}'"""),
    ("b1", "b1 = NOT b1"),
    ("u", "u = '00000000-0000-0000-0000-000000000000'"),
]


def test_validation_finds_each_value_changed_on_duckdb(source_url: str, duck: DuckDBTarget) -> None:
    _, checks, tables = _load(source_url, duck)
    assert {c.state for c in checks} == {VALIDATED}
    schema = tables[0].ref.schema
    con = duck._connection()
    for _, change in MARIADB_CHANGES:
        con.execute(f"UPDATE {_pq(schema)}.all_types SET {change} WHERE id = 1")
    con.execute(f"DELETE FROM {_pq(schema)}.all_types WHERE id = 2")
    source = MySQLSource(EndpointConfig("maria", "mysql", url=source_url))
    table = next(t for t in tables if t.ref.name == "all_types")
    snapshot = source.snapshot()
    try:
        result = validate_table(snapshot, duck, TablePlan(table, table), BATCH_ROWS)
    finally:
        snapshot.close()
    assert result.compared_as == "source text, target rendered as source text"
    assert (result.different, result.missing_on_target, result.extra_on_target) == (1, 1, 0)
    changed = {f["Key"]["id"]: f["Columns"] for f in result.first_failures}
    assert changed == {"1": [c for c in COLUMNS if c in dict(MARIADB_CHANGES)], "2": []}
