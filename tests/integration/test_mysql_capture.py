"""MariaDB change capture from the binlog: values equal to the full load's, commit
positions, the snapshot handover, resuming, DDL, TRUNCATE and a purged binlog."""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeAlias

import pyarrow as pa
import pymysql
import pytest

from conveyor.connectors import captured_rows
from conveyor.connectors.arrow_rows import Unrepresentable, rows_to_batch
from conveyor.connectors.base import EndpointConfig
from conveyor.connectors.captured_rows import CHUNK_ROWS
from conveyor.connectors.changes import ChangeEvent, Commit, RowChange, TableDefinition, Truncate
from conveyor.connectors.mysql.capture import (
    MySQLChangeSource,
    MySQLChangeStream,
    capture_problems_message,
    grant_problems,
    server_id_for,
    setting_problems,
)
from conveyor.connectors.mysql.source import MySQLSnapshot
from conveyor.core.batch import ChangeBatch, Checkpoint, Op
from conveyor.core.errors import ConfigError, DataError, TerminalError, TransientError
from conveyor.core.schema import TableRef, TableSchema
from support.mariadb import mariadb_connect as _raw
from support.mariadb import run

if TYPE_CHECKING:
    Conn: TypeAlias = pymysql.connections.Connection[pymysql.cursors.Cursor]

pytestmark = pytest.mark.integration

IDLE = 0.2
WAIT_S = 20.0
MAX_EVENTS = 5000


@pytest.fixture
def raw(mariadb_db: str) -> Iterator[Conn]:
    conn = _raw(mariadb_db)
    try:
        yield conn
    finally:
        conn.close()


@pytest.fixture
def source(mariadb_db: str) -> Iterator[MySQLChangeSource]:
    src = MySQLChangeSource(EndpointConfig(name="maria", engine="mysql", url=mariadb_db))
    try:
        yield src
    finally:
        src.close()


@pytest.fixture
def task() -> str:
    return f"task-{uuid.uuid4().hex[:8]}"


def table_named(source: MySQLChangeSource, name: str) -> TableSchema:
    found = [tbl for tbl in source.tables() if tbl.ref.name == name]
    assert len(found) == 1
    return found[0]


def read_rows(snap: MySQLSnapshot, table: TableSchema) -> list[dict[str, Any]]:
    batches = list(snap.read(table, 1000, order_by_key=True))
    rows: list[dict[str, Any]] = pa.Table.from_batches(batches, schema=table.arrow_schema()).to_pylist()
    return rows


def full_load(source: MySQLChangeSource, table: TableSchema) -> list[dict[str, Any]]:
    snap = source.snapshot()
    try:
        return read_rows(snap, table)
    finally:
        snap.close()


def collect(
    stream: MySQLChangeStream, done: Callable[[list[ChangeEvent]], bool], wait_s: float = WAIT_S
) -> list[ChangeEvent]:
    """Events until ``done`` holds (bounded in time and count)."""
    got: list[ChangeEvent] = []
    deadline = time.monotonic() + wait_s
    for event in stream.events(IDLE):
        if event is not None:
            got.append(event)
        if done(got) or time.monotonic() > deadline or len(got) > MAX_EVENTS:
            break
    return got


def commits(n: int) -> Callable[[list[ChangeEvent]], bool]:
    return lambda got: sum(isinstance(e, Commit) for e in got) >= n


def row_changes(events: list[ChangeEvent]) -> list[RowChange]:
    """Every row change of a stream not asked for whole rows (``capture_rows``):
    each comes in a captured batch of changes taken one at a time, given back
    one by one (through Arrow)."""
    batches = [e for e in events if isinstance(e, ChangeBatch)]
    assert all(b.one_at_a_time for b in batches)
    return [c for b in batches for c in captured_rows.row_changes(b)]


def arrow_rows(table: TableSchema, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows through Arrow, as the runner carries them."""
    result: list[dict[str, Any]] = pa.Table.from_pylist(rows, schema=table.arrow_schema()).to_pylist()
    return result


def replay(table: TableSchema, changes: list[RowChange], state: dict[Any, dict[str, Any]]) -> None:
    for change in changes:
        key = tuple(change.values[k] for k in table.primary_key)
        if change.op is Op.DELETE:
            assert change.old_key is not None
            del state[tuple(change.old_key[k] for k in table.primary_key)]
        elif change.op is Op.UPDATE:
            old = key if change.old_key is None else tuple(change.old_key[k] for k in table.primary_key)
            assert old in state
            del state[old]
            state[key] = change.values
        else:
            assert key not in state
            state[key] = change.values


# --- preflight -------------------------------------------------------------------


def test_setting_problems_name_each_wrong_setting() -> None:
    good = {
        "log_bin": "ON",
        "binlog_format": "ROW",
        "binlog_row_image": "FULL",
        "binlog_row_metadata": "FULL",
    }
    assert setting_problems(good) == []
    assert setting_problems({k: v for k, v in good.items() if k != "binlog_row_metadata"}) == []
    bad = {
        "LOG_BIN": "OFF",
        "binlog_format": "MIXED",
        "binlog_row_image": "MINIMAL",
        "binlog_row_metadata": "MINIMAL",
    }
    problems = setting_problems(bad)
    assert problems == [
        "log_bin is OFF (needs ON: log_bin under [mysqld] in the server's configuration, "
        "then restart the server)",
        "binlog_format is MIXED (needs ROW: SET GLOBAL binlog_format = 'ROW', "
        "and binlog_format=ROW under [mysqld])",
        "binlog_row_image is MINIMAL (needs FULL: SET GLOBAL binlog_row_image = 'FULL', "
        "and binlog_row_image=FULL under [mysqld])",
        "binlog_row_metadata is MINIMAL (needs FULL: SET GLOBAL binlog_row_metadata = 'FULL', "
        "and binlog_row_metadata=FULL under [mysqld])",
    ]
    message = capture_problems_message("src", problems)
    for problem in problems:
        assert problem in message
    (unset,) = setting_problems({"binlog_format": "ROW", "binlog_row_image": "FULL"})
    assert unset.startswith("log_bin is not set (needs ON: log_bin under [mysqld]")


def test_grant_problems() -> None:
    assert grant_problems(["GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION"]) == []
    assert grant_problems(["GRANT SELECT, REPLICATION SLAVE, BINLOG MONITOR ON *.* TO `repl`@`%`"]) == []
    assert grant_problems(["GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'r'@'%'"]) == []
    only_select = grant_problems(["GRANT USAGE ON *.* TO `r`@`%`", "GRANT SELECT ON `db`.* TO `r`@`%`"])
    assert len(only_select) == 2
    assert "REPLICATION SLAVE" in only_select[0]
    assert "BINLOG MONITOR" in only_select[1]
    # Privileges through a role cannot be told from SHOW GRANTS: no complaint.
    assert grant_problems(["GRANT USAGE ON *.* TO `r`@`%`", "GRANT `replicator` TO `r`@`%`"]) == []


def test_preflight_passes_and_warns_about_tables_without_key(raw: Conn, source: MySQLChangeSource) -> None:
    run(raw, "CREATE TABLE keyed (id int PRIMARY KEY)", "CREATE TABLE heap (v int)")
    warnings = source.preflight(source.tables())
    assert len(warnings) == 1
    assert "heap" in warnings[0] and "primary key" in warnings[0]


def test_preflight_passes_on_the_test_server(source: MySQLChangeSource) -> None:
    assert source.preflight([]) == []


def test_server_ids_are_stable_and_high() -> None:
    assert server_id_for("a") == server_id_for("a")
    assert server_id_for("a") != server_id_for("b")
    assert 0x60000000 <= server_id_for("x") < 0x80000000


# --- values ----------------------------------------------------------------------

TYPES_DDL = r"""
CREATE TABLE all_types (
  id int NOT NULL PRIMARY KEY,
  nn varchar(3) NOT NULL,
  ti tinyint, si smallint, siu smallint unsigned, mi mediumint, i int, iu int unsigned,
  bi bigint, biu bigint unsigned,
  d38 decimal(38,10), d65 decimal(65,30), d122 decimal(12,2),
  f float, db double,
  c char(5), vc varchar(20), tx text, lt longtext,
  bn binary(4), vb varbinary(10), bl blob,
  dt date, tm time(6), tm0 time, dtm datetime(6), dtm0 datetime, ts timestamp(6) NULL, ts0 timestamp NULL,
  yr year, js json, en enum('a','it''s, x','p(q)'), st set('x','y','z'),
  b1 bit(1), b10 bit(10), b64 bit(64), u uuid, g point
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4
"""

COLUMNS = (
    "id, nn, ti, si, siu, mi, i, iu, bi, biu, d38, d65, d122, f, db, c, vc, tx, lt, bn, vb, bl, "
    "dt, tm, tm0, dtm, dtm0, ts, ts0, yr, js, en, st, b1, b10, b64, u, g"
)

MAX_ROW = (
    "1, 'abc', 127, 32767, 65535, 8388607, 2147483647, 4294967295, 9223372036854775807, "
    "18446744073709551615, 9999999999999999999999999999.9999999999, "
    "99999999999999999999999999999999999.999999999999999999999999999999, 9999999999.99, "
    "16777217, 1.7976931348623157e308, "
    "'ab', '😀 emoji ñ', REPEAT('x', 1000), 'long 😀 text', "
    "x'0001', x'00ff00', x'00626c6f6200', "
    "'9999-12-31', '23:59:59.999999', '23:59:59', '9999-12-31 23:59:59.999999', '9999-12-31 23:59:59', "
    "'2038-01-19 03:14:07.999999', '2038-01-19 03:14:07', "
    "2155, '{\"k\": \"é😀\", \"n\": [1, 2]}', 'it''s, x', 'z,x', "
    "b'1', b'1111111111', b'1111111111111111111111111111111111111111111111111111111111111111', "
    "'123E4567-E89B-12D3-A456-426614174000', POINT(1, 2)"
)

MIN_ROW = (
    "3, '', -128, -32768, 0, -8388608, -2147483648, 0, -9223372036854775808, 0, "
    "-9999999999999999999999999999.9999999999, -0.000000000000000000000000000001, -0.01, "
    "-2.25, 2.2250738585072014e-308, "
    "'', '', '', '', "
    "x'00000000', '', '', "
    "'1000-01-01', '00:00:00', '00:00:00', '1000-01-01 00:00:00.000001', '1000-01-01 00:00:00', "
    "'1970-01-01 05:00:01', '1970-01-01 05:00:01', "
    "1901, '[]', 'a', '', b'0', b'0', b'0', "
    "'00000000-0000-0000-0000-000000000000', POINT(0, 0)"
)


@pytest.fixture
def all_types(raw: Conn, source: MySQLChangeSource) -> TableSchema:
    run(raw, TYPES_DDL)
    return table_named(source, "all_types")


def test_row_values_equal_the_full_load(
    raw: Conn, source: MySQLChangeSource, all_types: TableSchema, task: str
) -> None:
    start = source.begin_capture(task, [all_types], export_snapshot=False)
    assert start.snapshot_id is None
    stream = source.open_stream(task, [all_types], start.position)
    try:
        run(
            raw,
            "SET time_zone = '+05:00'",  # TIMESTAMPs are instants whatever the writer's zone
            "BEGIN",
            f"INSERT INTO all_types ({COLUMNS}) VALUES ({MAX_ROW})",
            "INSERT INTO all_types (id, nn) VALUES (2, 'n')",
            f"INSERT INTO all_types ({COLUMNS}) VALUES ({MIN_ROW})",
            "COMMIT",
        )
        inserted = full_load(source, all_types)
        assert [r["id"] for r in inserted] == [1, 2, 3]
        run(
            raw,
            "UPDATE all_types SET vc = 'changed 😀', st = 'y', tm = '01:02:03.5', js = '{\"x\": 1}', "
            "biu = 18446744073709551614, bn = x'61', dtm = NULL, b1 = b'0', "
            "u = 'f47ac10b-58cc-4372-a567-0e02b2c3d479' WHERE id = 1",
            "UPDATE all_types SET id = 30, nn = 'pk' WHERE id = 3",
            "DELETE FROM all_types WHERE id = 2",
        )
        final = full_load(source, all_types)
        events = collect(stream, commits(4))
    finally:
        stream.close()

    changes = row_changes(events)
    assert [(c.op, c.values["id"]) for c in changes] == [
        (Op.INSERT, 1),
        (Op.INSERT, 2),
        (Op.INSERT, 3),
        (Op.UPDATE, 1),
        (Op.UPDATE, 30),
        (Op.DELETE, 2),
    ]
    # Inserts: exactly the full load's values, also through Arrow.
    inserts = [c.values for c in changes[:3]]
    for event_row, loaded in zip(inserts, inserted, strict=True):
        assert event_row == loaded
        assert {k: type(v) for k, v in event_row.items()} == {k: type(v) for k, v in loaded.items()}
    assert arrow_rows(all_types, inserts) == inserted
    assert all(c.table == all_types.ref for c in changes)
    assert all(not c.unchanged for c in changes)

    # Update keeps its key; a key change carries the old key; delete carries the key.
    # (Through a captured batch, a moved row's old key and a DELETE's are the
    # whole old row, as FULL row images send it, and a DELETE's row is it too.)
    assert changes[3].old_key is None
    assert changes[3].before == inserted[0]
    assert changes[4].old_key == changes[4].before == inserted[2]
    assert changes[5].old_key == changes[5].values == inserted[1]
    state: dict[Any, dict[str, Any]] = {}
    replay(all_types, changes, state)
    assert arrow_rows(all_types, [state[k] for k in sorted(state)]) == final
    assert [state[k] for k in sorted(state)] == final


def expanded(events: list[ChangeEvent]) -> list[RowChange]:
    """Every row change, a captured batch's one by one (through Arrow), in
    whichever form the batch holds them."""
    return [c for e in events if isinstance(e, ChangeBatch) for c in captured_rows.row_changes(e)]


def test_rows_in_arrow_equal_the_row_changes(
    raw: Conn, source: MySQLChangeSource, all_types: TableSchema, task: str
) -> None:
    """Every type, captured in Arrow (``capture_rows``), gives the values of
    the row changes through Arrow; a key change comes in its place, in a
    batch of changes taken one at a time."""
    start = source.begin_capture(task, [all_types], export_snapshot=False)
    in_arrow = source.open_stream(task, [all_types], start.position)
    one_by_one = source.open_stream(task, [all_types], start.position)
    in_arrow.capture_rows({all_types.ref: all_types})
    try:
        run(
            raw,
            "SET time_zone = '+05:00'",
            "BEGIN",
            f"INSERT INTO all_types ({COLUMNS}) VALUES ({MAX_ROW})",
            "INSERT INTO all_types (id, nn) VALUES (2, 'n')",
            f"INSERT INTO all_types ({COLUMNS}) VALUES ({MIN_ROW})",
            "COMMIT",
            "UPDATE all_types SET vc = 'changed 😀', st = 'y', js = '{\"x\": 1}', dtm = NULL WHERE id = 1",
            "UPDATE all_types SET id = 30, nn = 'pk' WHERE id = 3",
            "DELETE FROM all_types WHERE id = 2",
        )
        got = collect(in_arrow, commits(4))
        want = collect(one_by_one, commits(4))
    finally:
        in_arrow.close()
        one_by_one.close()
    assert [type(e).__name__ for e in got] == [
        "ChangeBatch", "Commit", "ChangeBatch", "Commit", "ChangeBatch", "Commit", "ChangeBatch", "Commit"
    ]  # fmt: skip
    batches = [e for e in got if isinstance(e, ChangeBatch)]
    assert [(b.num_rows, b.one_at_a_time) for b in batches] == [(3, False), (1, False), (1, True), (1, False)]
    assert all(
        b.changes is not None and b.changes.schema.names[1:] == list(all_types.column_names)
        for b in batches
        if not b.one_at_a_time
    )
    arrow, rows = expanded(got), row_changes(want)
    # The moved row's old key comes as its whole old row (the inserted id 3).
    assert [(c.op, c.old_key) for c in arrow] == [
        (Op.INSERT, None), (Op.INSERT, None), (Op.INSERT, None),
        (Op.UPDATE, None), (Op.UPDATE, arrow[2].values), (Op.DELETE, {"id": 2}),
    ]  # fmt: skip
    assert arrow[2].values["id"] == 3
    assert [c.values for c in arrow if c.op is not Op.DELETE] == arrow_rows(
        all_types, [c.values for c in rows if c.op is not Op.DELETE]
    )
    assert arrow[-1].values == {"id": 2}


def test_rows_in_arrow_keep_commit_order(raw: Conn, source: MySQLChangeSource, task: str) -> None:
    """A table's whole rows come as captured batches of at most CHUNK_ROWS
    rows; a changed key or a row image without every column cuts the
    table's run (another table's row does not), and every change keeps its
    place among its table's changes."""
    run(raw, "CREATE TABLE t (id int PRIMARY KEY, v varchar(10))", "CREATE TABLE u (id int PRIMARY KEY)")
    t, u = table_named(source, "t"), table_named(source, "u")
    start = source.begin_capture(task, [t, u], export_snapshot=False)
    stream = source.open_stream(task, [t, u], start.position)
    stream.capture_rows({t.ref: t})
    try:
        run(
            raw,
            "SET SESSION max_recursive_iterations = 10000",
            "BEGIN",
            "INSERT INTO t WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 2500) "
            "SELECT n, 'a' FROM s",
            "INSERT INTO u VALUES (1)",
            "UPDATE t SET id = 0 WHERE id = 7",
            "UPDATE t SET v = 'b' WHERE id < 3",
            "DELETE FROM t WHERE id = 9",
            "SET SESSION binlog_row_image = 'MINIMAL'",
            "UPDATE t SET v = 'c' WHERE id = 10",
            "SET SESSION binlog_row_image = 'FULL'",
            "DELETE FROM t WHERE id = 11",
            "COMMIT",
        )
        events = collect(stream, commits(1))
        final = full_load(source, t)
    finally:
        stream.close()
    assert isinstance(events[-1], Commit)
    assert all(isinstance(e, ChangeBatch) for e in events[:-1])
    batches = [e for e in events if isinstance(e, ChangeBatch)]
    # u's row does not cut t's run: the moved key does (after 2,500 = 2 x 1,000 + 500),
    # and so does the MINIMAL image, each going in a batch taken one at a time.
    # u's run (not asked whole) stays open beside t's until the commit delivers both.
    assert [(b.table, b.num_rows, b.one_at_a_time) for b in batches] == [
        (t, CHUNK_ROWS, False),
        (t, CHUNK_ROWS, False),
        (t, 500, False),
        (t, 1, True),
        (t, 4, False),
        (t, 1, True),
        (u, 1, True),
        (t, 1, False),
    ]
    got = [(c.table.name, c.op, c.values.get("id"), c.old_key) for c in expanded(events)]
    assert [c for c in got if c[0] == "u"] == [("u", Op.INSERT, 1, None)]
    assert got.index(("u", Op.INSERT, 1, None)) == 2500 + 1 + 4 + 1  # after t's runs delivered before it
    assert [c for c in got if c[0] == "t"] == [
        *(("t", Op.INSERT, n, None) for n in range(1, 2501)),
        ("t", Op.UPDATE, 0, {"id": 7, "v": "a"}),  # a moved row's old key: its whole old row
        ("t", Op.UPDATE, 0, None),
        ("t", Op.UPDATE, 1, None),
        ("t", Op.UPDATE, 2, None),
        ("t", Op.DELETE, 9, {"id": 9}),
        ("t", Op.UPDATE, None, {"id": 10}),  # one at a time: MINIMAL's image lacks columns
        ("t", Op.DELETE, 11, {"id": 11}),
    ]
    state: dict[Any, dict[str, Any]] = {}
    for c in expanded(events):
        if c.table != t.ref:
            continue
        old = (c.old_key or c.values)["id"]
        if c.op is Op.DELETE:
            del state[old]
        else:
            row = {**state.pop(old, {}), **c.values}  # a partial UPDATE keeps the unsent columns
            state[row["id"]] = row
    assert [state[k] for k in sorted(state)] == final


def test_commits_carry_increasing_positions_and_times(
    raw: Conn, source: MySQLChangeSource, task: str
) -> None:
    run(raw, "CREATE TABLE t (id int PRIMARY KEY, v varchar(10))")
    table = table_named(source, "t")
    start = source.begin_capture(task, [table], export_snapshot=False)
    assert start.position.engine == "mysql"
    assert set(start.position.position) == {"file", "pos", "gtid"}
    stream = source.open_stream(task, [table], start.position)
    try:
        for i in range(5):
            run(raw, f"INSERT INTO t VALUES ({i}, 'v{i}')")
        events = collect(stream, commits(5))
    finally:
        stream.close()
    found = [e for e in events if isinstance(e, Commit)]
    assert len(found) == 5
    positions = [(c.position.position["file"], c.position.position["pos"]) for c in found]
    start_pos = (start.position.position["file"], start.position.position["pos"])
    assert positions == sorted(positions) and len(set(positions)) == 5
    assert positions[0] > start_pos
    gtids = [c.position.position["gtid"] for c in found]
    assert all(g.count("-") == 2 for g in gtids) and len(set(gtids)) == 5
    now = dt.datetime.now(dt.UTC)
    for c in found:
        assert c.time is not None and abs(now - c.time) < dt.timedelta(minutes=5)
    # Each transaction: its row change (a batch of it alone), then its commit.
    assert [type(e) for e in events] == [ChangeBatch, Commit] * 5
    assert [c.values for c in row_changes(events)] == [{"id": i, "v": f"v{i}"} for i in range(5)]
    assert all(e.num_rows == 1 for e in events if isinstance(e, ChangeBatch))


def test_idle_stream_yields_none(raw: Conn, source: MySQLChangeSource, task: str) -> None:
    run(raw, "CREATE TABLE t (id int PRIMARY KEY)", "CREATE TABLE other (id int PRIMARY KEY)")
    table = table_named(source, "t")
    start = source.begin_capture(task, [table], export_snapshot=False)
    stream = source.open_stream(task, [table], start.position)
    try:
        began = time.monotonic()
        first = next(iter(stream.events(0.3)))
        assert first is None
        assert time.monotonic() - began < 3
        # Other tables' transactions move the position on without row changes.
        run(raw, "INSERT INTO other VALUES (1)")
        events = collect(stream, commits(1), wait_s=5)
        assert not row_changes(events)
        assert len(events) == 1 and isinstance(events[0], Commit)
    finally:
        stream.close()


# --- full load handover, resuming ------------------------------------------------


def test_exported_snapshot_matches_the_capture_start(raw: Conn, source: MySQLChangeSource, task: str) -> None:
    run(raw, "CREATE TABLE t (id int PRIMARY KEY, v varchar(10))")
    run(raw, *(f"INSERT INTO t VALUES ({i}, 'before')" for i in range(1, 4)))
    table = table_named(source, "t")
    start = source.begin_capture(task, [table], export_snapshot=True)
    assert start.snapshot_id
    run(raw, "INSERT INTO t VALUES (4, 'after'), (5, 'after')", "UPDATE t SET v = 'changed' WHERE id = 1")
    snapshot = source.capture_snapshot(start)
    try:
        assert read_rows(snapshot, table) == [{"id": i, "v": "before"} for i in range(1, 4)]
    finally:
        snapshot.close()
    with pytest.raises(TerminalError, match="no snapshot"):
        source.capture_snapshot(start)
    stream = source.open_stream(task, [table], start.position)
    try:
        events = collect(stream, commits(2))
    finally:
        stream.close()
    assert [(c.op, c.values["id"], c.values["v"]) for c in row_changes(events)] == [
        (Op.INSERT, 4, "after"),
        (Op.INSERT, 5, "after"),
        (Op.UPDATE, 1, "changed"),
    ]


def test_reopening_from_an_acked_position_does_not_redeliver(
    raw: Conn, source: MySQLChangeSource, task: str
) -> None:
    run(raw, "CREATE TABLE t (id int PRIMARY KEY)")
    table = table_named(source, "t")
    start = source.begin_capture(task, [table], export_snapshot=False)
    stream = source.open_stream(task, [table], start.position)
    try:
        run(raw, "INSERT INTO t VALUES (1)", "INSERT INTO t VALUES (2)")
        events = collect(stream, commits(2))
        acked = [e for e in events if isinstance(e, Commit)][-1].position
        stream.ack(acked)
        assert stream.acked == acked
    finally:
        stream.close()
    run(raw, "INSERT INTO t VALUES (3)", "DELETE FROM t WHERE id = 1")
    reopened = source.open_stream(task, [table], acked)
    try:
        events = collect(reopened, commits(2))
        # Nothing more arrives afterwards.
        tail = collect(reopened, lambda got: False, wait_s=1)
    finally:
        reopened.close()
    assert [(c.op, c.values["id"]) for c in row_changes(events)] == [(Op.INSERT, 3), (Op.DELETE, 1)]
    assert tail == []


def test_add_column_mid_stream(raw: Conn, source: MySQLChangeSource, task: str) -> None:
    run(raw, "CREATE TABLE t (id int PRIMARY KEY, v varchar(10))")
    table = table_named(source, "t")
    start = source.begin_capture(task, [table], export_snapshot=False)
    stream = source.open_stream(task, [table], start.position)
    try:
        run(
            raw,
            "INSERT INTO t VALUES (1, 'a')",
            "ALTER TABLE t ADD COLUMN extra decimal(5,1) DEFAULT 7",
            "INSERT INTO t VALUES (2, 'b', 2.5)",
        )
        events = collect(stream, commits(3))
    finally:
        stream.close()
    kinds = [type(e) for e in events]
    assert kinds == [ChangeBatch, Commit, TableDefinition, Commit, ChangeBatch, Commit]
    definition = events[2]
    (first,), (second,) = row_changes(events[:1]), row_changes(events[4:5])
    assert first.values == {"id": 1, "v": "a"}
    assert isinstance(definition, TableDefinition)
    assert definition.schema.column_names == ["id", "v", "extra"]
    assert definition.schema.column("extra").type.describe() == "decimal(5,1)"
    assert second.values == {"id": 2, "v": "b", "extra": Decimal("2.5")}
    # Each batch has its table's shape of the time.
    first_batch, second_batch = events[0], events[4]
    assert isinstance(first_batch, ChangeBatch) and isinstance(second_batch, ChangeBatch)
    assert first_batch.table.column_names == ["id", "v"]
    assert second_batch.table == definition.schema
    assert full_load(source, definition.schema) == [
        {"id": 1, "v": "a", "extra": Decimal("7.0")},
        {"id": 2, "v": "b", "extra": Decimal("2.5")},
    ]


def test_truncate(raw: Conn, source: MySQLChangeSource, task: str) -> None:
    run(raw, "CREATE TABLE t (id int PRIMARY KEY)", "CREATE TABLE u (id int PRIMARY KEY)")
    table = table_named(source, "t")
    start = source.begin_capture(task, [table], export_snapshot=False)
    stream = source.open_stream(task, [table], start.position)
    try:
        run(
            raw,
            "INSERT INTO t VALUES (1)",
            "TRUNCATE TABLE u",
            "TRUNCATE TABLE t",
            "INSERT INTO t VALUES (2)",
        )
        events = collect(stream, commits(3))
    finally:
        stream.close()
    assert [type(e) for e in events] == [ChangeBatch, Commit, Truncate, Commit, ChangeBatch, Commit]
    assert [(c.op, c.values) for c in row_changes(events)] == [(Op.INSERT, {"id": 1}), (Op.INSERT, {"id": 2})]
    truncate = events[2]
    assert isinstance(truncate, Truncate) and truncate.tables == (TableRef(table.ref.schema, "t"),)


def purge_through(raw: Conn, file: str) -> None:
    """Rotate and purge until ``file`` is gone (MariaDB keeps a binlog until its
    binlog checkpoint has moved on)."""
    deadline = time.monotonic() + 20
    with raw.cursor() as cur:
        while time.monotonic() < deadline:
            cur.execute("FLUSH BINARY LOGS")
            cur.execute("SHOW MASTER STATUS")
            row = cur.fetchone()
            assert row is not None
            cur.execute(f"PURGE BINARY LOGS TO '{row[0]}'")
            cur.execute("SHOW BINARY LOGS")
            if file not in {r[0] for r in cur.fetchall()}:
                return
            time.sleep(0.2)
    pytest.fail(f"could not purge {file}")


def test_purged_binlog_requires_a_resync(raw: Conn, source: MySQLChangeSource, task: str) -> None:
    run(raw, "CREATE TABLE t (id int PRIMARY KEY)")
    table = table_named(source, "t")
    start = source.begin_capture(task, [table], export_snapshot=False)
    run(raw, "INSERT INTO t VALUES (1)")
    purge_through(raw, str(start.position.position["file"]))
    stream = source.open_stream(task, [table], start.position)
    try:
        with pytest.raises(TerminalError, match="resync required"):
            collect(stream, commits(1), wait_s=5)
    finally:
        stream.close()


def test_not_a_binlog_checkpoint(source: MySQLChangeSource, task: str) -> None:
    with pytest.raises(TerminalError, match="resync required"):
        source.open_stream(task, [], Checkpoint("postgres", {"lsn": "0/1"}))


def test_preflight_reports_every_wrong_setting(monkeypatch: pytest.MonkeyPatch, mariadb_db: str) -> None:
    """The real preflight with SHOW VARIABLES answers replaced: one ConfigError
    naming every wrong setting."""
    from conveyor.connectors.mysql import capture

    real = capture.setting_problems
    monkeypatch.setattr(
        capture,
        "setting_problems",
        lambda variables: real({**variables, "binlog_format": "STATEMENT", "binlog_row_image": "MINIMAL"}),
    )
    src = MySQLChangeSource(EndpointConfig(name="maria", engine="mysql", url=mariadb_db))
    try:
        with pytest.raises(ConfigError) as info:
            src.preflight([])
    finally:
        src.close()
    assert "binlog_format is STATEMENT (needs ROW: SET GLOBAL binlog_format" in str(info.value)
    assert "binlog_row_image is MINIMAL (needs FULL: SET GLOBAL binlog_row_image" in str(info.value)
    assert "'maria'" in str(info.value)


def test_snapshot_and_stream_split_concurrent_writes_exactly(
    raw: Conn, mariadb_db: str, source: MySQLChangeSource, task: str
) -> None:
    """Rows committed while capture starts are in the snapshot or in the stream,
    never both, never neither."""
    run(raw, "CREATE TABLE t (id int PRIMARY KEY)")
    table = table_named(source, "t")
    total = 400
    started = threading.Event()

    def write() -> None:
        conn = _raw(mariadb_db)
        try:
            for i in range(1, total + 1):
                run(conn, f"INSERT INTO t VALUES ({i})")
                if i == 50:
                    started.set()
                time.sleep(0.003)
        finally:
            conn.close()

    writer = threading.Thread(target=write)
    writer.start()
    try:
        assert started.wait(20)
        start = source.begin_capture(task, [table], export_snapshot=True)
    finally:
        writer.join(60)
    snapshot = source.capture_snapshot(start)
    try:
        in_snapshot = {row["id"] for row in read_rows(snapshot, table)}
    finally:
        snapshot.close()
    assert 50 <= len(in_snapshot) < total  # capture started while the writer wrote
    expected = total - len(in_snapshot)
    stream = source.open_stream(task, [table], start.position)
    try:
        events = collect(
            stream,
            lambda got: len(row_changes(got)) >= expected and isinstance(got[-1], Commit),
        )
        extra = collect(stream, lambda got: False, wait_s=0.5)
    finally:
        stream.close()
    in_stream = [c.values["id"] for c in row_changes(events)]
    assert not row_changes(extra)
    assert len(in_stream) == len(set(in_stream))
    assert not in_snapshot & set(in_stream)
    assert in_snapshot | set(in_stream) == set(range(1, total + 1))


def test_stream_follows_a_binlog_rotation(raw: Conn, source: MySQLChangeSource, task: str) -> None:
    run(raw, "CREATE TABLE t (id int PRIMARY KEY)")
    table = table_named(source, "t")
    start = source.begin_capture(task, [table], export_snapshot=False)
    stream = source.open_stream(task, [table], start.position)
    try:
        run(raw, "INSERT INTO t VALUES (1)")
        first = collect(stream, commits(1))
        run(raw, "FLUSH BINARY LOGS", "INSERT INTO t VALUES (2)")
        second = collect(stream, commits(1))
    finally:
        stream.close()
    assert [c.values["id"] for c in row_changes(first + second)] == [1, 2]
    before, after = first[-1], second[-1]
    assert isinstance(before, Commit) and isinstance(after, Commit)
    assert after.position.position["file"] > before.position.position["file"]
    # Resuming from the last commit before the rotation sees the one after it.
    resumed = source.open_stream(task, [table], before.position)
    try:
        again = collect(resumed, commits(1))
    finally:
        resumed.close()
    assert [c.values["id"] for c in row_changes(again)] == [2]


def test_a_consumer_may_stop_mid_transaction(raw: Conn, source: MySQLChangeSource, task: str) -> None:
    run(raw, "CREATE TABLE t (id int PRIMARY KEY)")
    table = table_named(source, "t")
    start = source.begin_capture(task, [table], export_snapshot=False)
    stream = source.open_stream(task, [table], start.position)
    try:
        # More rows than one batch holds: the transaction comes in several.
        run(
            raw,
            "SET SESSION max_recursive_iterations = 10000",
            "INSERT INTO t WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 2500) "
            "SELECT n FROM s",
        )
        taken: list[ChangeEvent] = []
        for event in stream.events(IDLE):
            if event is not None:
                taken.append(event)
                break  # closes the generator after the first batch of rows
        rest = collect(stream, commits(1))
    finally:
        stream.close()
    assert [type(e) for e in taken + rest] == [ChangeBatch, ChangeBatch, ChangeBatch, Commit]
    assert [c.values["id"] for c in row_changes(taken + rest)] == list(range(1, 2501))


@pytest.mark.parametrize(
    ("column", "value", "text"),
    [
        ("d", "'0000-00-00'", "0000-00-00"),
        ("dtm", "'2020-00-10 00:00:00'", "0000-00-00 00:00:00"),  # the binlog's image of it
        ("ts", "'0000-00-00 00:00:00'", "0000-00-00 00:00:00"),
        ("t", "'-01:00:00'", "-1 day, 23:00:00"),
    ],
)
def test_values_the_full_load_refuses_are_data_errors(
    raw: Conn, source: MySQLChangeSource, task: str, column: str, value: str, text: str
) -> None:
    run(
        raw,
        "SET SESSION sql_mode = ''",
        "CREATE TABLE z (id int PRIMARY KEY, d date, dtm datetime, ts timestamp NULL, t time)",
    )
    table = table_named(source, "z")
    start = source.begin_capture(task, [table], export_snapshot=False)
    stream = source.open_stream(task, [table], start.position)
    try:
        run(raw, f"INSERT INTO z (id, {column}) VALUES (1, {value})")
        (change,) = row_changes(collect(stream, commits(1), wait_s=5))
    finally:
        stream.close()
    # Captured as unrepresentable: the applier refuses it, suspending the table by column.
    refused = change.values[column]
    assert isinstance(refused, Unrepresentable), refused
    assert refused.text == text and refused.reason.startswith("not a "), refused  # through Arrow's refusal
    with pytest.raises(DataError, match=f"column '{column}'"):
        rows_to_batch(table, [change.values], [column])
    snapshot = source.snapshot()
    try:
        assert read_rows(snapshot, table) == []  # left out, and kept for the exceptions table
        (rejected,) = snapshot.rejections(table.ref)
    finally:
        snapshot.close()
    assert (rejected.key, rejected.column) == ({"id": 1}, column)
    assert f"column '{column}'" in rejected.reason


def test_table_ids_reused_after_a_server_restart_name_the_right_tables() -> None:
    """MariaDB numbers tables afresh after a restart: a rows event after it must be
    read with the table map of its own file (table maps are parsed once per id)."""
    from support.servers import MariaDBServer

    server = MariaDBServer()
    server.start()
    try:
        url = server.url(server.new_database())
        conn = _raw(url)
        run(conn, "CREATE TABLE ta (id int PRIMARY KEY, a int)", "CREATE TABLE tb (k int PRIMARY KEY, z int)")
        conn.close()
        capture = MySQLChangeSource(EndpointConfig(name="maria", engine="mysql", url=url))
        try:
            tables = [t for t in capture.tables() if t.ref.name in {"ta", "tb"}]
            start = capture.begin_capture("restart", tables, export_snapshot=False)
            conn = _raw(url)
            run(conn, "INSERT INTO ta VALUES (1, 1)")
            conn.close()
            server.restart()
            conn = _raw(url)
            run(conn, "INSERT INTO tb VALUES (100, 7)", "INSERT INTO ta VALUES (2, 2)")
            conn.close()
            stream = capture.open_stream("restart", tables, start.position)
            try:
                events = collect(stream, commits(3))
            finally:
                stream.close()
        finally:
            capture.close()
    finally:
        server.close()
    assert [(c.table.name, c.values) for c in row_changes(events)] == [
        ("ta", {"id": 1, "a": 1}),
        ("tb", {"k": 100, "z": 7}),
        ("ta", {"id": 2, "a": 2}),
    ]


def test_a_transaction_cut_off_by_a_lost_connection_is_delivered_once(mariadb_db: str) -> None:
    """The dump connection is lost after part of a transaction was produced: the
    stream reads again from the last commit and hands on only what it had not."""
    from pymysqlreplication.row_event import WriteRowsEvent  # type: ignore[import-untyped]

    conn = _raw(mariadb_db)
    run(conn, "CREATE TABLE cut (id int PRIMARY KEY)")
    capture = MySQLChangeSource(EndpointConfig(name="maria", engine="mysql", url=mariadb_db))
    try:
        tables = [t for t in capture.tables() if t.ref.name == "cut"]
        start = capture.begin_capture("cut", tables, export_snapshot=False)
        run(conn, "INSERT INTO cut VALUES (1), (2)")  # delivered whole
        run(conn, "INSERT INTO cut VALUES (3), (4), (5), (6), (7)")  # cut off before its commit
        stream = capture.open_stream("cut", tables, start.position)
        # A stream hands rows on in batches, at their commit at the latest: the
        # connection is lost on the read after the second transaction's rows
        # event (its rows produced, its commit not yet read), as a failed read.
        fetch, writes, lost = stream._fetch, list[Any](), list[bool]()

        def cut_off_fetch() -> Any:
            if len(writes) == 2 and not lost:
                lost.append(True)
                raise TransientError("cut off by the test")
            event = fetch()
            if isinstance(event, WriteRowsEvent):
                writes.append(event)
            return event

        stream._fetch = cut_off_fetch  # type: ignore[method-assign]
        seen: list[tuple[str, Any]] = []
        deadline = time.monotonic() + WAIT_S
        try:
            for event in stream.events(IDLE):
                assert time.monotonic() < deadline and len(seen) < MAX_EVENTS, f"only {seen} arrived"
                if isinstance(event, ChangeBatch):
                    assert event.one_at_a_time
                    seen += [("row", c.values["id"]) for c in captured_rows.row_changes(event)]
                elif isinstance(event, Commit):
                    seen.append(("commit", None))
                    if len(seen) == 9:
                        break
        finally:
            stream.close()
    finally:
        conn.close()
        capture.close()
    rows = [("row", i) for i in range(3, 8)]
    assert seen == [("row", 1), ("row", 2), ("commit", None), *rows, ("commit", None)]
    assert lost and len(writes) == 3  # the cut transaction's rows were read again


def test_the_stream_reconnects_after_a_server_restart_with_nothing_repeated() -> None:
    """A server down mid-stream (a transaction before, one after) is a pause, not an
    end: the stream waits, then reopens by itself from the last commit it delivered."""
    from support.servers import MariaDBServer

    server = MariaDBServer()
    server.start()
    try:
        url = server.url(server.new_database())
        conn = _raw(url)
        run(conn, "CREATE TABLE r (id int PRIMARY KEY, v int)")
        conn.close()
        capture = MySQLChangeSource(EndpointConfig(name="maria", engine="mysql", url=url))
        try:
            tables = [t for t in capture.tables() if t.ref.name == "r"]
            start = capture.begin_capture("restart2", tables, export_snapshot=False)
            conn = _raw(url)
            run(conn, "INSERT INTO r VALUES (1, 1), (2, 2)")
            conn.close()
            stream = capture.open_stream("restart2", tables, start.position)
            try:
                events = collect(stream, commits(1))
                server.stop()
                assert collect(stream, lambda got: False, wait_s=2) == []  # polls a stopped server
                server.start()
                conn = _raw(url)
                run(conn, "UPDATE r SET v = 10 WHERE id = 1", "INSERT INTO r VALUES (3, 3)")
                conn.close()
                events += collect(stream, commits(2), wait_s=60)
            finally:
                stream.close()
        finally:
            capture.close()
    finally:
        server.close()
    assert [(c.op, c.values) for c in row_changes(events)] == [
        (Op.INSERT, {"id": 1, "v": 1}),
        (Op.INSERT, {"id": 2, "v": 2}),
        (Op.UPDATE, {"id": 1, "v": 10}),
        (Op.INSERT, {"id": 3, "v": 3}),
    ]
    assert sum(isinstance(e, Commit) for e in events) == 3
