"""The fast row-image decoder (connectors/mysql/row_images.py) gives exactly
pymysqlreplication's values, types and none sources for every column type it
handles, on real binlog events of a private MariaDB server; tables with a type
it does not handle are left to pymysqlreplication."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TypeAlias

import pymysql
import pytest
from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

from conveyor.connectors.base import EndpointConfig
from conveyor.connectors.mysql.capture import MySQLChangeSource
from conveyor.connectors.mysql.row_images import RowImageDecoder, compile_columns
from support.mariadb import mariadb_connect, run

if TYPE_CHECKING:
    Conn: TypeAlias = pymysql.connections.Connection[pymysql.cursors.Cursor]

pytestmark = pytest.mark.integration
WAIT_S = 20.0

# Every type the decoder handles, each in its edge forms.
DDL = """
CREATE TABLE fast_types (
    id bigint NOT NULL PRIMARY KEY,
    ti tinyint, tiu tinyint unsigned, si smallint, siu smallint unsigned,
    mi mediumint, miu mediumint unsigned, i int, iu int unsigned,
    bi bigint, biu bigint unsigned, yr year,
    f float, d double,
    d1 decimal(1,0), d5 decimal(5,2), d12 decimal(12,2), d18 decimal(18,9), d30 decimal(30,10),
    d65 decimal(65,30), du decimal(10,4) unsigned,
    c char(3), c255 char(255) CHARACTER SET latin1, vc varchar(10), vcl varchar(300),
    vlat varchar(20) CHARACTER SET latin1, bn binary(4), vb varbinary(600),
    tt tinytext, tx text, mt mediumtext, lt longtext, tb tinyblob, bl blob, mb mediumblob, lb longblob,
    js json,
    dt date, dtm0 datetime, dtm3 datetime(3), dtm6 datetime(6), dtm1 datetime(1),
    ts0 timestamp NULL, ts2 timestamp(2) NULL, ts6 timestamp(6) NULL, ts5 timestamp(5) NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
"""
COLUMNS = (
    "id, ti, tiu, si, siu, mi, miu, i, iu, bi, biu, yr, f, d, d1, d5, d12, d18, d30, d65, du, "
    "c, c255, vc, vcl, vlat, bn, vb, tt, tx, mt, lt, tb, bl, mb, lb, js, "
    "dt, dtm0, dtm3, dtm6, dtm1, ts0, ts2, ts6, ts5"
)
ROWS = [
    "1, 127, 255, 32767, 65535, 8388607, 16777215, 2147483647, 4294967295, "
    "9223372036854775807, 18446744073709551615, 2155, 3.4e38, 1.7976931348623157e308, "
    "9, 999.99, 9999999999.99, 999999999.999999999, 99999999999999999999.9999999999, "
    "99999999999999999999999999999999999.999999999999999999999999999999, 999999.9999, "
    "'abc', REPEAT('é', 255), 'ten chars!', REPEAT('x😀', 150), 'Grüße', x'00ff0a00', REPEAT(x'ff00', 300), "
    "'tiny 😀', REPEAT('t', 1000), REPEAT('m', 70000), '{\"a\": [1, 2.5, \"x\"]}', x'00', x'0102', "
    "REPEAT(x'ab', 70000), x'', '{\"k\": null}', "
    "'9999-12-31', '9999-12-31 23:59:59', '9999-12-31 23:59:59.999', '9999-12-31 23:59:59.999999', "
    "'2024-02-29 12:00:00.5', '2038-01-19 03:14:07', '2038-01-19 03:14:07.99', "
    "'2038-01-19 03:14:07.999999', '2000-01-01 00:00:00.00001'",
    "2, -128, 0, -32768, 0, -8388608, 0, -2147483648, 0, "
    "-9223372036854775808, 0, 1901, -1.17549e-38, -2.2250738585072014e-308, "
    "-9, -999.99, -9999999999.99, -999999999.999999999, -0.0000000001, "
    "-99999999999999999999999999999999999.999999999999999999999999999999, 0, "
    "'', '', '', '', '', x'', x'', '', '', '', '', x'', x'', x'', x'', '[]', "
    "'1000-01-01', '1000-01-01 00:00:00', '1000-01-01 00:00:00.001', '1000-01-01 00:00:00.000001', "
    "'1970-01-01 00:00:00.1', '1970-01-01 00:00:01', '1970-01-01 00:00:01.01', "
    "'1970-01-01 00:00:01.000001', '1970-01-01 00:00:01.00001'",
    "3, 0, 1, -1, 1, -1, 1, -1, 1, -1, 1, 2000, 0, 0, 0, 0.01, -0.01, 0.000000001, 1, -0.5, 0.0001, "
    "'a', 'b', 'c', 'd', 'e', x'01', x'02', 'f', 'g', 'h', 'i', x'03', x'04', x'05', x'06', '1', "
    "'0000-00-00', '0000-00-00 00:00:00', '2024-00-10 10:00:00.5', '2024-01-00 00:00:00', "
    "'2024-06-15 08:30:00', NULL, NULL, '2024-06-15 08:30:00.123456', NULL",
]
NULL_ROW = "4" + ", NULL" * (COLUMNS.count(",") + 0)


@pytest.fixture
def raw(mariadb_db: str) -> Iterator[Conn]:
    conn = mariadb_connect(mariadb_db)
    try:
        yield conn
    finally:
        conn.close()


def _events(source: MySQLChangeSource, task: str, raw: Conn, table: str, statements: list[str]) -> list[Any]:
    """The rows events ``statements`` write, read back by the capture's own
    binlog reader (bounded in time)."""
    [schema] = [t for t in source.tables() if t.ref.name == table]
    start = source.begin_capture(task, [schema], export_snapshot=False)
    stream = source.open_stream(task, [schema], start.position)
    try:
        run(raw, *statements)
        found: list[Any] = []
        deadline = time.monotonic() + WAIT_S
        idle = 0
        while time.monotonic() < deadline and idle < 20:
            event = stream._reader.fetchone()
            if event is None:
                idle += 1 if found else 0
                time.sleep(0.05)
                continue
            if isinstance(event, WriteRowsEvent | UpdateRowsEvent | DeleteRowsEvent) and event.table == table:
                found.append(event)
        return found
    finally:
        stream.close()


def _same(fast: Any, slow: Any) -> None:
    """Equal, of the same type, and for Decimals the same digits (exponent)."""
    assert type(fast) is type(slow), (fast, slow)
    assert fast == slow, (fast, slow)
    if type(fast).__name__ == "Decimal":
        assert str(fast) == str(slow)


def _compare(events: list[Any]) -> tuple[int, int]:
    """Each event decoded both ways (the fast one first: it does not consume the
    packet); the number of rows compared, and of values a MINIMAL image left out."""
    decoder = RowImageDecoder()
    compared = left_out = 0
    for event in events:
        fast = decoder._fast(event)
        assert fast is not None, f"{type(event).__name__} was left to pymysqlreplication"
        slow = event.rows
        assert len(fast) == len(slow)
        for fast_row, slow_row in zip(fast, slow, strict=True):
            assert fast_row.keys() == slow_row.keys()
            for part, values in fast_row.items():
                assert values.keys() == slow_row[part].keys(), part
                for name, value in values.items():
                    _same(value, slow_row[part][name])
                    left_out += value == "cols bitmap"
            compared += 1
    return compared, left_out


def test_every_handled_type_decodes_as_pymysqlreplication_does(mariadb_db: str, raw: Conn) -> None:
    run(raw, DDL)
    source = MySQLChangeSource(EndpointConfig(name="maria", engine="mysql", url=mariadb_db))
    try:
        events = _events(
            source,
            f"task-{uuid.uuid4().hex[:8]}",
            raw,
            "fast_types",
            [
                "SET SESSION sql_mode = ''",  # zero dates and out-of-range parts, as old data holds
                "SET time_zone = '+00:00'",
                "BEGIN",
                *(f"INSERT INTO fast_types ({COLUMNS}) VALUES ({row})" for row in ROWS),
                f"INSERT INTO fast_types ({COLUMNS}) VALUES ({NULL_ROW})",
                "COMMIT",
                "UPDATE fast_types SET ti = ti, d12 = -d12, vc = 'changed', ts6 = NULL, dt = '2024-01-01'",
                "UPDATE fast_types SET id = id + 10 WHERE id IN (1, 4)",
                "INSERT INTO fast_types (id) SELECT seq FROM seq_100_to_350",  # multi-row events
                "SET SESSION binlog_row_image = 'MINIMAL'",  # images without every column
                "UPDATE fast_types SET vc = 'minimal', dtm6 = NULL WHERE id >= 100 AND id < 110",
                "DELETE FROM fast_types",
            ],
        )
    finally:
        source.close()
    kinds = {type(e).__name__ for e in events}
    assert kinds == {"WriteRowsEvent", "UpdateRowsEvent", "DeleteRowsEvent"}
    compared, left_out = _compare(events)
    assert compared == 4 + 4 + 2 + 251 + 10 + 255
    assert left_out > 0  # the MINIMAL images went through the decoder too


def test_a_table_with_a_type_left_to_pymysqlreplication_is_read_by_it(mariadb_db: str, raw: Conn) -> None:
    run(raw, "CREATE TABLE other_types (id int PRIMARY KEY, e enum('a', 'b'), b bit(3), t time(2))")
    source = MySQLChangeSource(EndpointConfig(name="maria", engine="mysql", url=mariadb_db))
    try:
        events = _events(
            source,
            f"task-{uuid.uuid4().hex[:8]}",
            raw,
            "other_types",
            ["INSERT INTO other_types VALUES (1, 'b', b'101', '-01:02:03.5')"],
        )
    finally:
        source.close()
    [event] = events
    assert compile_columns(event.columns) is None
    decoder = RowImageDecoder()
    assert decoder.rows(event)[0]["values"] == {
        "id": 1,
        "e": "b",
        "b": "101",
        "t": event.rows[0]["values"]["t"],
    }
    assert decoder.decoded_events == 0
