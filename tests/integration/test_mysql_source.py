"""MariaDB/MySQL as a source: catalog, types, values, snapshot and connection failures.

Every test runs on both drivers a snapshot reads through
(connectors/mysql/snapshot_connection.py): MySQL Connector/Python's C
extension, and PyMySQL, which a machine without it reads through."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeAlias
from urllib.parse import urlsplit

import pyarrow as pa
import pymysql
import pytest

from conveyor.connectors.base import EndpointConfig
from conveyor.connectors.mysql.snapshot_connection import DRIVER_VARIABLE, open_snapshot_connection
from conveyor.connectors.mysql.source import MySQLSnapshot, MySQLSource
from conveyor.connectors.mysql.types import NativeColumn, enum_labels, from_native
from conveyor.connectors.registry import open_source
from conveyor.core import types as t
from conveyor.core.errors import ConfigError, ConnectionFailed, TerminalError
from conveyor.core.schema import TableRef, TableSchema
from conveyor.core.types import ColumnType, Kind
from support.mariadb import mariadb_connect as _raw
from support.mariadb import run
from support.servers import MariaDBServer, free_port

if TYPE_CHECKING:
    Conn: TypeAlias = pymysql.connections.Connection[pymysql.cursors.Cursor]

pytestmark = pytest.mark.integration

UTC = dt.UTC
WEIRD_TABLE = "We`ird. ta;ble ñ 名 MiXed"
ENUM_LABELS = ("a", "it's, x", "p(q)", "back\\slash")


@pytest.fixture
def raw(mariadb_db: str) -> Iterator[Conn]:
    conn = _raw(mariadb_db)
    try:
        yield conn
    finally:
        conn.close()


@pytest.fixture(autouse=True, params=["connector", "pymysql"])
def driver(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(DRIVER_VARIABLE, request.param)
    return str(request.param)


@pytest.fixture
def source(mariadb_db: str) -> Iterator[MySQLSource]:
    src = MySQLSource(EndpointConfig(name="maria", engine="mysql", url=mariadb_db))
    try:
        yield src
    finally:
        src.close()


@pytest.fixture
def snapshot(source: MySQLSource) -> Iterator[MySQLSnapshot]:
    snap = source.snapshot()
    try:
        yield snap
    finally:
        snap.close()


def table_named(source: MySQLSource, name: str) -> TableSchema:
    found = [tbl for tbl in source.tables() if tbl.ref.name == name]
    assert len(found) == 1, [tbl.ref for tbl in source.tables()]
    return found[0]


def read_rows(snap: MySQLSnapshot, table: TableSchema, batch_rows: int = 1000, **kw: Any) -> list[Any]:
    batches = list(snap.read(table, batch_rows, **kw))
    for batch in batches:
        assert batch.schema == table.arrow_schema()
        assert batch.num_rows <= batch_rows
    rows: list[Any] = pa.Table.from_batches(batches, schema=table.arrow_schema()).to_pylist()
    return rows


# --- every type ----------------------------------------------------------------

ALL_TYPES_DDL = r"""
CREATE TABLE all_types (
  id int NOT NULL PRIMARY KEY,
  nn varchar(3) NOT NULL,
  ti tinyint, ti1 tinyint(1), bo bool, si smallint, siu smallint unsigned,
  mi mediumint, i int, iu int unsigned, bi bigint, biu bigint unsigned,
  d38 decimal(38,10), d65 decimal(65,30), d52 decimal(5,2),
  f float, db double,
  c char(5), vc varchar(20), tt tinytext, tx text, mt mediumtext, lt longtext,
  bn binary(4), vb varbinary(10), tb tinyblob, bl blob, mb mediumblob, lb longblob,
  dt date, tm time(6), dtm datetime(6), ts timestamp(6) NULL,
  yr year, js json, en enum('a','it''s, x','p(q)','back\\slash'), st set('x','y','z'),
  b1 bit(1), b10 bit(10), b64 bit(64), u uuid, g point, i6 inet6
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
"""


MAX_ROW = (
    "1, 'abc', 127, 5, 1, 32767, 65535, 8388607, 2147483647, 4294967295, 9223372036854775807, "
    "18446744073709551615, 9999999999999999999999999999.9999999999, "
    "99999999999999999999999999999999999.999999999999999999999999999999, 999.99, "
    "1.5, 1.7976931348623157e308, "
    "'ab', '😀 emoji ñ', 'tiny', REPEAT('x', 1000), '名前', 'long 😀 text', "
    f"x'0001', x'00ff00', '', x'000000626c6f62', x'{bytes(range(256)).hex()}', REPEAT(x'00', 100000), "
    "'9999-12-31', '23:59:59.999999', '9999-12-31 23:59:59.999999', '2038-01-19 08:14:07.999999', "
    "2155, '{\"k\": \"é😀\", \"n\": [1, 2]}', 'it''s, x', 'z,x', "
    "b'1', b'1111111111', b'1111111111111111111111111111111111111111111111111111111111111111', "
    "'123E4567-E89B-12D3-A456-426614174000', POINT(1, 2), '::1'"
)

MIN_ROW = (
    "3, '', -128, -1, 0, -32768, 0, -8388608, -2147483648, 0, -9223372036854775808, 0, "
    "-9999999999999999999999999999.9999999999, -0.000000000000000000000000000001, -0.01, "
    "-2.25, 2.2250738585072014e-308, "
    "'', '', '', '', '', '', "
    "x'00000000', '', '', '', '', '', "
    "'1000-01-01', '00:00:00', '1000-01-01 00:00:00.000001', '2020-06-01 12:00:00', "
    "1901, '[]', 'back\\\\slash', '', b'0', b'0', b'0', "
    "'00000000-0000-0000-0000-000000000000', POINT(0, 0), '2001:db8::1'"
)

EXPECTED_TYPES: dict[str, ColumnType] = {
    "id": t.simple(Kind.INT32),
    "nn": t.varchar(3),
    "ti": t.simple(Kind.INT16),
    "ti1": t.simple(Kind.INT16),
    "bo": t.simple(Kind.INT16),
    "si": t.simple(Kind.INT16),
    "siu": t.simple(Kind.INT32),
    "mi": t.simple(Kind.INT32),
    "i": t.simple(Kind.INT32),
    "iu": t.simple(Kind.INT64),
    "bi": t.simple(Kind.INT64),
    "biu": t.decimal(20, 0),
    "d38": t.decimal(38, 10),
    "d65": t.simple(Kind.NUMERIC),
    "d52": t.decimal(5, 2),
    "f": t.simple(Kind.FLOAT32),
    "db": t.simple(Kind.FLOAT64),
    "c": t.varchar(5),
    "vc": t.varchar(20),
    "tt": t.simple(Kind.TEXT),
    "tx": t.simple(Kind.TEXT),
    "mt": t.simple(Kind.TEXT),
    "lt": t.simple(Kind.TEXT),
    "bn": t.simple(Kind.BYTES),
    "vb": t.simple(Kind.BYTES),
    "tb": t.simple(Kind.BYTES),
    "bl": t.simple(Kind.BYTES),
    "mb": t.simple(Kind.BYTES),
    "lb": t.simple(Kind.BYTES),
    "dt": t.simple(Kind.DATE),
    "tm": t.simple(Kind.TIME),
    "dtm": t.simple(Kind.TIMESTAMP),
    "ts": t.simple(Kind.TIMESTAMPTZ),
    "yr": t.simple(Kind.INT16),
    "js": t.simple(Kind.JSON),
    "en": t.enum(ENUM_LABELS),
    "st": t.simple(Kind.TEXT),
    "b1": t.simple(Kind.BOOLEAN),
    "b10": t.simple(Kind.INT64),
    "b64": t.decimal(20, 0),
    "u": t.simple(Kind.UUID),
    "g": t.simple(Kind.TEXT),
    "i6": t.simple(Kind.TEXT),
}

COLUMNS = list(EXPECTED_TYPES)

EXPECTED_MAX = {
    "id": 1,
    "nn": "abc",
    "ti": 127,
    "ti1": 5,
    "bo": 1,
    "si": 32767,
    "siu": 65535,
    "mi": 8388607,
    "i": 2147483647,
    "iu": 4294967295,
    "bi": 9223372036854775807,
    "biu": Decimal("18446744073709551615"),
    "d38": Decimal("9999999999999999999999999999.9999999999"),
    "d65": "99999999999999999999999999999999999.999999999999999999999999999999",
    "d52": Decimal("999.99"),
    "f": 1.5,
    "db": 1.7976931348623157e308,
    "c": "ab",
    "vc": "😀 emoji ñ",
    "tt": "tiny",
    "tx": "x" * 1000,
    "mt": "名前",
    "lt": "long 😀 text",
    "bn": b"\x00\x01\x00\x00",
    "vb": b"\x00\xff\x00",
    "tb": b"",
    "bl": b"\x00\x00\x00blob",
    "mb": bytes(range(256)),
    "lb": b"\x00" * 100000,
    "dt": dt.date(9999, 12, 31),
    "tm": dt.time(23, 59, 59, 999999),
    "dtm": dt.datetime(9999, 12, 31, 23, 59, 59, 999999),
    # inserted as 08:14:07.999999 in a +05:00 session: the TIMESTAMP maximum in UTC
    "ts": dt.datetime(2038, 1, 19, 3, 14, 7, 999999, tzinfo=UTC),
    "yr": 2155,
    "js": '{"k": "é😀", "n": [1, 2]}',
    "en": "it's, x",
    "st": "x,z",
    "b1": True,
    "b10": 1023,
    "b64": Decimal(2**64 - 1),
    "u": "123e4567-e89b-12d3-a456-426614174000",
    "g": "POINT(1 2)",
    "i6": "::1",
}

EXPECTED_MIN = {
    "id": 3,
    "nn": "",
    "ti": -128,
    "ti1": -1,
    "bo": 0,
    "si": -32768,
    "siu": 0,
    "mi": -8388608,
    "i": -2147483648,
    "iu": 0,
    "bi": -9223372036854775808,
    "biu": Decimal(0),
    "d38": Decimal("-9999999999999999999999999999.9999999999"),
    "d65": "-0.000000000000000000000000000001",
    "d52": Decimal("-0.01"),
    "f": -2.25,
    "db": 2.2250738585072014e-308,
    "c": "",
    "vc": "",
    "tt": "",
    "tx": "",
    "mt": "",
    "lt": "",
    "bn": b"\x00\x00\x00\x00",
    "vb": b"",
    "tb": b"",
    "bl": b"",
    "mb": b"",
    "lb": b"",
    "dt": dt.date(1000, 1, 1),
    "tm": dt.time(0, 0),
    "dtm": dt.datetime(1000, 1, 1, 0, 0, 0, 1),
    "ts": dt.datetime(2020, 6, 1, 7, 0, tzinfo=UTC),
    "yr": 1901,
    "js": "[]",
    "en": "back\\slash",
    "st": "",
    "b1": False,
    "b10": 0,
    "b64": Decimal(0),
    "u": "00000000-0000-0000-0000-000000000000",
    "g": "POINT(0 0)",
    "i6": "2001:db8::1",
}


@pytest.fixture
def all_types(raw: Conn, source: MySQLSource) -> TableSchema:
    run(
        raw,
        ALL_TYPES_DDL,
        "SET time_zone = '+05:00'",
        f"INSERT INTO all_types ({', '.join(COLUMNS)}) VALUES ({MAX_ROW})",
        "INSERT INTO all_types (id, nn) VALUES (2, 'x')",
        f"INSERT INTO all_types ({', '.join(COLUMNS)}) VALUES ({MIN_ROW})",
        "CREATE VIEW v_all AS SELECT id FROM all_types",
    )
    return table_named(source, "all_types")


def test_catalog_types_keys_and_nullability(all_types: TableSchema, mariadb_db: str) -> None:
    database = urlsplit(mariadb_db).path.lstrip("/")
    assert all_types.ref == TableRef(database, "all_types")
    assert all_types.column_names == COLUMNS
    assert {c.name: c.type for c in all_types.columns} == EXPECTED_TYPES
    assert all_types.primary_key == ("id",)
    assert [c.name for c in all_types.columns if not c.nullable] == ["id", "nn"]
    natives = {c.name: c.type.native for c in all_types.columns}
    assert natives["biu"] == "bigint(20) unsigned"
    assert natives["ti1"] == "tinyint(1)"
    assert natives["d65"] == "decimal(65,30)"
    assert natives["js"] == "longtext"
    assert natives["en"] == "enum('a','it''s, x','p(q)','back\\\\slash')"
    assert all(c.type.native for c in all_types.columns)
    assert all_types.estimated_rows is not None
    assert all_types.native_engine == "mysql"


def test_views_are_not_tables(all_types: TableSchema, source: MySQLSource) -> None:
    assert [tbl.ref.name for tbl in source.tables()] == ["all_types"]


def test_read_every_value(all_types: TableSchema, snapshot: MySQLSnapshot, driver: str) -> None:
    assert snapshot.driver.startswith("mysql-connector" if driver == "connector" else "pymysql")
    rows = read_rows(snapshot, all_types, order_by_key=True)
    assert [r["id"] for r in rows] == [1, 2, 3]
    for expected, got in ((EXPECTED_MAX, rows[0]), (EXPECTED_MIN, rows[2])):
        for name in COLUMNS:
            assert got[name] == expected[name], name
            assert type(got[name]) is type(expected[name]), name
    nulls = rows[1]
    assert nulls["nn"] == "x"
    assert [name for name in COLUMNS if nulls[name] is not None] == ["id", "nn"]
    assert snapshot.count(all_types.ref) == 3


def test_read_in_small_batches(all_types: TableSchema, snapshot: MySQLSnapshot) -> None:
    batches = list(snapshot.read(all_types, 2, order_by_key=True))
    assert [b.num_rows for b in batches] == [2, 1]
    assert pa.Table.from_batches(batches).column("id").to_pylist() == [1, 2, 3]


# --- names -----------------------------------------------------------------------


def test_weird_names_and_composite_key(raw: Conn, source: MySQLSource) -> None:
    quoted = "`" + WEIRD_TABLE.replace("`", "``") + "`"
    run(
        raw,
        f"CREATE TABLE {quoted} (`select` int NOT NULL, `Order By` varchar(10) NOT NULL, "
        "`j``son` json, `from` int, PRIMARY KEY (`from`, `select`))",
        f"INSERT INTO {quoted} VALUES (2, 'b', '{{\"a\": 1}}', 1), (1, 'a', NULL, 1), (3, 'c', 'null', 0)",
    )
    table = table_named(source, WEIRD_TABLE)
    assert table.column_names == ["select", "Order By", "j`son", "from"]
    assert table.primary_key == ("from", "select")
    assert table.column("j`son").type == t.simple(Kind.JSON)
    assert not table.column("from").nullable
    snap = source.snapshot()
    try:
        rows = read_rows(snap, table, order_by_key=True)
        assert rows == [
            {"select": 3, "Order By": "c", "j`son": "null", "from": 0},
            {"select": 1, "Order By": "a", "j`son": None, "from": 1},
            {"select": 2, "Order By": "b", "j`son": '{"a": 1}', "from": 1},
        ]
        assert snap.count(table.ref) == 3
    finally:
        snap.close()


def test_enum_labels_parse_quotes_commas_and_escapes() -> None:
    assert enum_labels("enum('a','it''s, x','p(q)','back\\\\slash')") == ENUM_LABELS
    assert enum_labels("enum('','x\\'y',')')") == ("", "x'y", ")")
    col = NativeColumn("longtext", "longtext", is_json=False)
    assert from_native(col) == t.simple(Kind.TEXT)
    assert from_native(NativeColumn("json", "json")) == t.simple(Kind.JSON)
    assert from_native(NativeColumn("decimal", "decimal(10,2) unsigned", precision=10, scale=2)) == t.decimal(
        10, 2
    )
    assert from_native(NativeColumn("vector", "vector(3)")) == t.simple(Kind.TEXT)
    assert from_native(NativeColumn("vector", "vector(3)")).native == "vector(3)"


# --- values that cannot be represented --------------------------------------------


def test_zero_date_is_left_out_and_kept_as_a_rejection(raw: Conn, source: MySQLSource) -> None:
    run(
        raw,
        "SET SESSION sql_mode = ''",
        "CREATE TABLE zd (id int PRIMARY KEY, d date, dtm datetime)",
        "INSERT INTO zd VALUES (1, '2020-01-01', '2020-01-01 00:00:00'), (2, '0000-00-00', NULL)",
        "CREATE TABLE zdt (id int PRIMARY KEY, dtm datetime)",
        "INSERT INTO zdt VALUES (1, '0000-00-00 00:00:00')",
    )
    snap = source.snapshot()
    try:
        zd, zdt = table_named(source, "zd"), table_named(source, "zdt")
        assert [r["id"] for r in read_rows(snap, zd)] == [1]
        (rejected,) = snap.rejections(zd.ref)
        assert (rejected.key, rejected.column, rejected.value) == ({"id": 2}, "d", "0000-00-00")
        assert "'d'" in rejected.reason and "0000-00-00" in rejected.reason
        assert read_rows(snap, zdt) == []
        (rejected,) = snap.rejections(zdt.ref)
        assert rejected.column == "dtm" and "0000-00-00 00:00:00" in rejected.reason
        # A second read starts the table's list afresh; the snapshot stays usable.
        read_rows(snap, zd)
        assert len(snap.rejections(zd.ref)) == 1
        assert snap.count(zd.ref) == 2
    finally:
        snap.close()


@pytest.mark.parametrize(("value", "shown"), [("-00:00:01", "-00:00:01"), ("25:00:00.5", "25:00:00.5")])
def test_time_outside_a_day_is_left_out_and_kept_as_a_rejection(
    raw: Conn,
    source: MySQLSource,
    value: str,
    shown: str,
) -> None:
    run(
        raw,
        "CREATE TABLE tm (id int PRIMARY KEY, `t m` time(1))",
        f"INSERT INTO tm VALUES (1, '12:00:00'), (2, '{value}')",
    )
    snap = source.snapshot()
    try:
        tm = table_named(source, "tm")
        assert [r["id"] for r in read_rows(snap, tm)] == [1]
        (rejected,) = snap.rejections(tm.ref)
    finally:
        snap.close()
    assert rejected.key == {"id": 2} and rejected.column == "t m"
    assert "'t m'" in rejected.reason and shown in rejected.reason


# --- snapshot --------------------------------------------------------------------


def _numbers(raw: Conn, name: str, rows: int) -> None:
    run(
        raw,
        f"CREATE TABLE {name} (id int PRIMARY KEY, v varchar(20))",
        f"INSERT INTO {name} SELECT seq, CONCAT('row ', seq) FROM seq_1_to_{rows}",
    )


def test_snapshot_does_not_see_later_writes(raw: Conn, source: MySQLSource) -> None:
    _numbers(raw, "nums", 5)
    _numbers(raw, "other", 2)
    table = table_named(source, "nums")
    other = table_named(source, "other")
    snap = source.snapshot()
    try:
        run(raw, "INSERT INTO nums VALUES (6, 'late')", "DELETE FROM other")
        assert [r["id"] for r in read_rows(snap, table, order_by_key=True)] == [1, 2, 3, 4, 5]
        assert snap.count(table.ref) == 5
        assert len(read_rows(snap, other)) == 2
        assert snap.count(other.ref) == 2
    finally:
        snap.close()
    later = source.snapshot()
    try:
        assert later.count(table.ref) == 6
        assert later.count(other.ref) == 0
    finally:
        later.close()


def test_closing_a_read_early_leaves_the_snapshot_usable(raw: Conn, source: MySQLSource) -> None:
    _numbers(raw, "big", 5000)
    table = table_named(source, "big")
    snap = source.snapshot()
    try:
        reader = snap.read(table, 100, order_by_key=True)
        first = next(reader)
        assert first.column("id").to_pylist() == list(range(1, 101))
        reader.close()
        assert snap.count(table.ref) == 5000
        rows = read_rows(snap, table, batch_rows=700, order_by_key=True)
        assert [r["id"] for r in rows] == list(range(1, 5001))
        assert rows[-1]["v"] == "row 5000"
    finally:
        snap.close()


def test_second_read_in_the_same_thread_is_refused(raw: Conn, source: MySQLSource) -> None:
    _numbers(raw, "a", 10)
    _numbers(raw, "b", 10)
    snap = source.snapshot()
    try:
        first = snap.read(table_named(source, "a"), 3)
        next(first)
        with pytest.raises(TerminalError, match="still open"):
            next(snap.read(table_named(source, "b"), 3))
        first.close()
        assert len(read_rows(snap, table_named(source, "b"))) == 10
    finally:
        snap.close()


def test_parallel_readers_serialize_on_one_snapshot(raw: Conn, source: MySQLSource) -> None:
    names = ["p1", "p2", "p3", "p4"]
    for n, name in enumerate(names):
        _numbers(raw, name, 1000 * (n + 1))
    tables = {tbl.ref.name: tbl for tbl in source.tables()}
    snap = source.snapshot()
    run(raw, *(f"DELETE FROM {name}" for name in names))

    def read(name: str) -> list[int]:
        ids = []
        for batch in snap.read(tables[name], 250, order_by_key=True):
            ids.extend(batch.column("id").to_pylist())
        return ids

    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            results = dict(zip(names, pool.map(read, names), strict=True))
        for n, name in enumerate(names):
            assert results[name] == list(range(1, 1000 * (n + 1) + 1))
    finally:
        snap.close()


def test_closing_the_snapshot_during_a_read(raw: Conn, source: MySQLSource) -> None:
    _numbers(raw, "d", 3000)
    table = table_named(source, "d")
    snap = source.snapshot()
    reader = snap.read(table, 10)
    next(reader)
    snap.close()
    with pytest.raises(ConnectionFailed, match="closed before the read of"):
        list(reader)
    reader.close()
    with pytest.raises(ConnectionFailed, match="closed"):
        snap.count(table.ref)


def test_closed_snapshot_refuses_reads(raw: Conn, source: MySQLSource) -> None:
    _numbers(raw, "c", 3)
    table = table_named(source, "c")
    snap = source.snapshot()
    snap.close()
    snap.close()
    with pytest.raises(ConnectionFailed, match="closed"):
        snap.count(table.ref)


# --- connecting --------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["", "NO_BACKSLASH_ESCAPES"])
def test_string_literals_round_trip_in_either_sql_mode(mariadb_db: str, mode: str) -> None:
    """A source filter's literals (``escape``) read back as written, whichever
    way the session's sql_mode reads backslashes."""
    conn = open_snapshot_connection(EndpointConfig(name="m", engine="mysql", url=mariadb_db))
    try:
        conn.query(f"SET SESSION sql_mode = '{mode}'")
        text = "it's a \\ back'slash\" ñ \n%_ \\'"
        [(got,)] = conn.query(f"SELECT {conn.escape(text)}")
        assert (got.decode() if isinstance(got, bytes) else got) == text
    finally:
        conn.close()


def test_check_and_registry(mariadb_db: str) -> None:
    for scheme in ("mysql", "mariadb"):
        url = scheme + mariadb_db.removeprefix("mysql")
        src = open_source(EndpointConfig(name="m", engine="mysql", url=url))
        assert isinstance(src, MySQLSource)
        assert "MariaDB" in src.check()


def test_bad_password_is_reported_without_it(raw: Conn, mariadb_db: str) -> None:
    user = f"u_{uuid.uuid4().hex[:8]}"
    database = urlsplit(mariadb_db).path.lstrip("/")
    run(
        raw,
        f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY 'pw-secret-123'",
        f"GRANT SELECT ON `{database}`.* TO '{user}'@'127.0.0.1'",
    )
    url = mariadb_db.replace("root@", f"{user}@")
    wrong = "wrong-pw-secret-456"
    with pytest.raises(ConnectionFailed) as info:
        MySQLSource(EndpointConfig(name="m", engine="mysql", url=url, password=wrong)).check()
    message = str(info.value)
    assert f"access denied for user '{user}'" in message
    assert wrong not in message and "pw-secret-123" not in message
    good = MySQLSource(EndpointConfig(name="m", engine="mysql", url=url, password="pw-secret-123"))
    assert good.check()
    assert good.tables() == []


def test_refused_port(mariadb_server: MariaDBServer) -> None:
    url = f"mysql://root@127.0.0.1:{free_port()}/nothing"
    with pytest.raises(ConnectionFailed, match=r"connection refused at 127\.0\.0\.1:") as info:
        MySQLSource(EndpointConfig(name="m", engine="mysql", url=url, password="s3cret-pw")).tables()
    assert "s3cret-pw" not in str(info.value)


def test_unknown_database(mariadb_server: MariaDBServer) -> None:
    url = mariadb_server.url("no_such_db")
    with pytest.raises(ConnectionFailed, match="unknown database 'no_such_db'"):
        MySQLSource(EndpointConfig(name="m", engine="mysql", url=url)).snapshot()


@pytest.mark.parametrize("url", ["postgres://root@h/db", "mysql://root@h:3306/", "mysql://root@h:3306"])
def test_bad_urls(url: str) -> None:
    with pytest.raises(ConfigError):
        MySQLSource(EndpointConfig(name="m", engine="mysql", url=url))
