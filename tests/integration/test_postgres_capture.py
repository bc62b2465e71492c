"""PostgreSQL change capture (pgoutput) against a private server: values of
every type equal the full-load path's, TOAST, replica identities, DDL,
exported snapshots without gap or overlap, resuming and acknowledging."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from datetime import time as dtime
from decimal import Decimal
from typing import Any

import psycopg
import pyarrow as pa
import pytest

from conveyor.connectors.arrow_rows import Unrepresentable, batch_rows, rows_to_batch
from conveyor.connectors.base import EndpointConfig
from conveyor.connectors.captured_rows import row_changes
from conveyor.connectors.changes import ChangeEvent, Commit, RowChange, TableDefinition, Truncate
from conveyor.connectors.postgres.capture import PostgresChangeSource
from conveyor.connectors.postgres.capture_slots import capture_name
from conveyor.connectors.postgres.capture_stream import PostgresChangeStream
from conveyor.connectors.postgres.pgoutput import parse_lsn
from conveyor.connectors.postgres.source import PostgresSnapshot
from conveyor.core.batch import ChangeBatch, Checkpoint, Op
from conveyor.core.calendar import days_from_civil
from conveyor.core.errors import ConfigError, DataError, TerminalError
from conveyor.core.schema import TableRef, TableSchema
from conveyor.replication.cdc.reduce import TableReducer
from support.postgres_types import TYPES_DDL

pytestmark = pytest.mark.integration

TEXT = "emoji 🚀 tab\tnewline\nbackslash\\ quote' \" end"


def _config(url: str, **options: Any) -> EndpointConfig:
    return EndpointConfig(name="src", engine="postgres", url=url, options=options)


def _execute(url: str, *statements: str, timezone: str | None = None) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        if timezone:
            conn.execute(f"SET TimeZone = '{timezone}'")
        for statement in statements:
            conn.execute(statement)


def _tables(source: PostgresChangeSource, *names: str) -> list[TableSchema]:
    return [s for s in source.tables() if s.ref.name in names]


def _collect(stream: PostgresChangeStream, commits: int, timeout: float = 15.0) -> list[ChangeEvent]:
    """Events until ``commits`` commits have arrived, or ``timeout`` seconds."""
    events: list[ChangeEvent] = []
    seen = 0
    deadline = time.monotonic() + timeout
    for event in stream.events(0.2):
        if event is not None:
            events.append(event)
            if isinstance(event, Commit):
                seen += 1
        if seen >= commits or time.monotonic() > deadline:
            break
    return events


def _rows(events: list[ChangeEvent]) -> list[RowChange]:
    """Every row change, one by one (a stream delivers them in captured batches)."""
    return _expanded(events)


def _lsn(event: ChangeEvent) -> int:
    assert isinstance(event, Commit)
    return parse_lsn(event.position.position["lsn"])


@pytest.fixture
def capture(pg_db: str) -> Iterator[tuple[str, PostgresChangeSource]]:
    source = PostgresChangeSource(_config(pg_db))
    yield pg_db, source
    source.end_capture("t1")
    source.close()


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b)


def test_values_of_every_type_equal_the_full_load(capture: tuple[str, PostgresChangeSource]) -> None:
    url, source = capture
    _execute(url, TYPES_DDL)
    tables = _tables(source, "typed")
    start = source.begin_capture("t1", tables, export_snapshot=False)
    assert start.snapshot_id is None
    stream = source.open_stream("t1", tables, start.position)
    try:
        _execute(
            url,
            "INSERT INTO typed VALUES (1, -32768, 9223372036854775807, -9999999999.99,"
            " 123456789012345678901234567890.000000000000000000001, 'NaN', 'Infinity',"
            f" {psycopg.sql.Literal(TEXT).as_string(None)}, 'varchar ü', 'ab', '\\x00ff5c0a'::bytea, true,"
            " '0001-01-01', '23:59:59.999999', '0001-01-01 00:00:00', '2024-06-01 12:00:00+02',"
            " '1 year 2 mons -3 days 04:05:06.789', 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11',"
            ' \'{"k": "välue",  "n": [1, 2.5, null]}\', \'{"a": {"b": "🚀"}}\','
            " '{1,NULL,-3}', ARRAY['a,b', 'c\"d', '{e}', NULL, '', 'NULL', ' x '],"
            " 'happy ''quoted'', yes', '{sad,ok}', '192.168.0.1/24')",
            "INSERT INTO typed VALUES (2, 0, 0, 0.01, 'NaN', '-Infinity', -0.0, '', '', '', '', false,"
            " '9999-12-31', '00:00:00', '9999-12-31 23:59:59.999999', '2024-06-01 15:30:00',"
            " '-00:00:00.000001', '00000000-0000-0000-0000-000000000000', '[]', '{}', '{}', '{}',"
            " 'sad', '{}', '::1')",
            "INSERT INTO typed (id) VALUES (3)",
            timezone="Asia/Kolkata",  # the writer's session zone must not matter
        )
        _execute(
            url,
            "INSERT INTO typed (id, d, ts, tstz, n12, f4)"
            " VALUES (4, 'infinity', '-infinity', 'infinity', 5, 1.1)",
            "UPDATE typed SET t = 'changed', d = '-infinity' WHERE id = 4",
            "DELETE FROM typed WHERE id = 4",
        )
        events = _collect(stream, 6)
    finally:
        stream.close()

    assert not [e for e in events if isinstance(e, TableDefinition)], "the relation matches the catalog"
    commits = [e for e in events if isinstance(e, Commit)]
    assert len(commits) == 6
    positions = [_lsn(c) for c in commits]
    assert positions == sorted(positions) and len(set(positions)) == 6
    assert all(isinstance(c.time, datetime) and c.time.tzinfo is not None for c in commits)
    rows = _rows(events)
    assert [(r.op, r.table) for r in rows] == [(Op.INSERT, TableRef("public", "typed"))] * 4 + [
        (Op.UPDATE, TableRef("public", "typed")),
        (Op.DELETE, TableRef("public", "typed")),
    ]
    first = rows[0].values
    assert first["i2"] == -32768 and first["i8"] == 2**63 - 1
    assert first["n12"] == Decimal("-9999999999.99")
    assert first["nu"] == "123456789012345678901234567890.000000000000000000001"
    assert math.isnan(first["f4"]) and first["f8"] == math.inf
    assert first["t"] == TEXT
    assert first["ch"] == "ab "
    assert first["b"] == b"\x00\xff\\\n"
    assert first["bo"] is True
    assert first["d"] == date(1, 1, 1)
    assert first["tm"] == dtime(23, 59, 59, 999999)
    assert first["ts"] == datetime(1, 1, 1)
    assert first["tstz"] == datetime(2024, 6, 1, 10, 0, tzinfo=UTC)
    assert first["iv"] == pa.MonthDayNano([14, -3, (4 * 3600 + 5 * 60 + 6) * 10**9 + 789_000_000])
    assert first["u"] == "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
    assert first["j"] == '{"k": "välue",  "n": [1, 2.5, null]}'
    assert first["jb"] == '{"a": {"b": "🚀"}}'
    assert first["ia"] == [1, None, -3]
    assert first["ta"] == ["a,b", 'c"d', "{e}", None, "", "NULL", " x "]
    assert first["m"] == "happy 'quoted', yes"
    assert first["ma"] == ["sad", "ok"]
    assert first["addr"] == "192.168.0.1/24"
    second = rows[1].values
    assert second["nu"] == "NaN" and second["f4"] == -math.inf
    assert second["d"] == date(9999, 12, 31)
    assert second["ts"] == datetime(9999, 12, 31, 23, 59, 59, 999999)
    assert second["tstz"] == datetime(2024, 6, 1, 10, 0, tzinfo=UTC)
    assert second["iv"] == pa.MonthDayNano([0, 0, -1000])
    assert rows[2].values == {"id": 3} | {c: None for c in first if c != "id"}
    infinite = rows[3].values
    assert (infinite["d"], infinite["ts"], infinite["tstz"]) == ("infinity", "-infinity", "infinity")
    assert infinite["f4"] == pa.array([1.1], pa.float32()).to_pylist()[0]
    assert rows[4].values["d"] == "-infinity" and rows[4].old_key is None
    # A DELETE carries its old row (here its key) as its row too.
    assert rows[5].values == {"id": 4} and rows[5].old_key == {"id": 4}

    # The same rows read by the full-load path give the very same values.
    snapshot = PostgresSnapshot(source.config)
    try:
        loaded = [r for b in snapshot.read(tables[0], 100, order_by_key=True) for r in b.to_pylist()]
    finally:
        snapshot.close()
    assert len(loaded) == 3
    for full, change in zip(loaded, rows[:3], strict=True):
        for name, value in full.items():
            assert _same(change.values[name], value), (name, change.values[name], value)
            assert type(change.values[name]) is type(value), name


def _expanded(events: list[ChangeEvent]) -> list[RowChange]:
    """Every row change, a captured batch's one by one (through Arrow)."""
    return [change for e in events if isinstance(e, ChangeBatch) for change in row_changes(e)]


def _as_captured(table: TableSchema, change: RowChange) -> tuple[Any, ...]:
    """A change as ``_through_arrow`` gives it, from values already in the in-flight form."""
    key = table.primary_key
    old = change.old_key
    if change.op is Op.DELETE:
        assert old is not None
        return (change.table.name, change.op, {k: old[k] for k in key}, None)
    moved = old is not None and any(old[k] != change.values.get(k) for k in key)
    return (change.table.name, change.op, change.values, {k: old[k] for k in key} if moved and old else None)


def _through_arrow(table: TableSchema, change: RowChange) -> tuple[Any, ...]:
    """A row change as a captured batch carries it: values through Arrow (a
    DELETE's key alone; an UPDATE's old key where it moved the row)."""
    key = table.primary_key
    if change.op is Op.DELETE:
        assert change.old_key is not None
        return (change.table.name, change.op, {k: change.old_key[k] for k in key}, None)
    (values,) = batch_rows(rows_to_batch(table, [change.values], list(change.values)))
    old = change.old_key
    moved = old is not None and any(old[k] != change.values[k] for k in key)
    return (change.table.name, change.op, values, {k: old[k] for k in key} if moved and old else None)


def test_rows_in_arrow_equal_the_row_changes(pg_db: str) -> None:
    """Whole rows captured in Arrow (``capture_rows``) give exactly the values
    of the row changes, for every type, an UPDATE that left a TOASTed value
    unsent included (the value named unchanged); a moved key comes as a row
    change in its place; runs hold 1,000 rows at most."""
    source = PostgresChangeSource(_config(pg_db))
    _execute(
        pg_db,
        TYPES_DDL,
        "CREATE TABLE toasty (id int PRIMARY KEY, small text, big text)",
        "ALTER TABLE toasty ALTER COLUMN big SET STORAGE EXTERNAL",
        "CREATE TABLE full_id (id int PRIMARY KEY, v text)",
        "ALTER TABLE full_id REPLICA IDENTITY FULL",
        "CREATE TABLE keyed (a int, b text, v text, PRIMARY KEY (a, b))",
    )
    tables = _tables(source, "typed", "toasty", "full_id", "keyed")
    by_name = {t.ref.name: t for t in tables}
    try:
        in_arrow = source.open_stream("t1", tables, source.begin_capture("t1", tables, False).position)
        one_by_one = source.open_stream("t2", tables, source.begin_capture("t2", tables, False).position)
        in_arrow.capture_rows({t.ref: t for t in tables})
        big = "0123456789abcdef" * 6400
        try:
            _execute(
                pg_db,
                "INSERT INTO typed VALUES (1, -32768, 9223372036854775807, -9999999999.99,"
                " 123456789012345678901234567890.000000000000000000001, 'NaN', 'Infinity',"
                f" {psycopg.sql.Literal(TEXT).as_string(None)}, 'varchar ü', 'ab',"
                " '\\x00ff5c0a'::bytea, true,"
                " '0001-01-01', '23:59:59.999999', '0001-01-01 00:00:00', '2024-06-01 12:00:00+02',"
                " '1 year 2 mons -3 days 04:05:06.789', 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11',"
                " '{\"k\": 1}', '{\"a\": {\"b\": \"🚀\"}}', '{1,NULL,-3}', ARRAY['a,b', NULL, ''],"
                " 'happy ''quoted'', yes', '{sad,ok}', '192.168.0.1/24')",
                "INSERT INTO typed (id) VALUES (3)",
                "INSERT INTO typed (id, d, ts, tstz) VALUES (4, 'infinity', '-infinity', 'infinity')",
                "UPDATE typed SET d = '-infinity' WHERE id = 4",
                "DELETE FROM typed WHERE id = 3",
                f"INSERT INTO toasty VALUES (1, 's1', '{big}')",
                "UPDATE toasty SET small = 's2' WHERE id = 1",  # big unchanged: not sent
                "UPDATE toasty SET small = 's3', big = 'small now' WHERE id = 1",
                "INSERT INTO full_id VALUES (1, 'old')",
                "UPDATE full_id SET v = 'new' WHERE id = 1",  # the old row comes whole: same key
                "UPDATE full_id SET id = 2 WHERE id = 1",  # a moved key
                "DELETE FROM full_id WHERE id = 2",
                "INSERT INTO keyed SELECT g, 'x', 'v' || g FROM generate_series(1, 2500) AS g",
                "UPDATE keyed SET a = 0 WHERE a = 7",
                "UPDATE keyed SET v = 'w' WHERE a < 3",
                "DELETE FROM keyed WHERE a = 9",
            )
            commits = 16
            got = _collect(in_arrow, commits)
            want = _collect(one_by_one, commits)
        finally:
            in_arrow.close()
            one_by_one.close()
    finally:
        source.end_capture("t2")
        source.end_capture("t1")
        source.close()
    assert sum(isinstance(e, Commit) for e in got) == commits
    assert [e for e in got if isinstance(e, Commit)] == [e for e in want if isinstance(e, Commit)]
    batches = [e for e in got if isinstance(e, ChangeBatch)]
    assert all(0 < b.num_rows <= 1000 for b in batches)
    whole = [b for b in batches if not b.one_at_a_time]
    assert sum(b.num_rows for b in whole if b.table.ref.name == "keyed") == 2500 + 3 + 1
    # What still goes one change at a time, each in its place: the moved keys.
    assert [(b.table.ref.name, [c.op for c in row_changes(b)]) for b in batches if b.one_at_a_time] == [
        ("full_id", [Op.UPDATE]), ("keyed", [Op.UPDATE])
    ]  # fmt: skip
    assert all(b.one_at_a_time for b in want if isinstance(b, ChangeBatch))  # nothing asked in Arrow
    expected = [_through_arrow(by_name[c.table.name], c) for c in _rows(want)]
    arrived = [_as_captured(by_name[c.table.name], c) for c in _expanded(got)]
    unchanged = [i for i, c in enumerate(_rows(want)) if c.unchanged]
    assert len(unchanged) == 1
    assert _expanded(got)[unchanged[0]].unchanged == frozenset({"big"})
    for i, (a, e) in enumerate(zip(arrived, expected, strict=True)):
        if i in unchanged:  # not a whole row: as it came, values without the unsent column
            assert a[:2] == e[:2] and a[2] == {"id": 1, "small": "s2"}, a
            continue
        assert a[:2] == e[:2] and a[3] == e[3], (i, a, e)
        assert a[2].keys() == e[2].keys() and all(_same(a[2][k], v) for k, v in e[2].items()), (i, a, e)


def test_rows_in_arrow_and_encoded_rows_keep_commit_order(capture: tuple[str, PostgresChangeSource]) -> None:
    """One table's rows as COPY lines, another's in Arrow, interleaved in one
    transaction: every change comes once, in commit order among its table's
    changes, and each table's rows are gathered across the other's."""
    url, source = capture
    _execute(
        url,
        "CREATE TABLE lines (id int PRIMARY KEY, v text)",
        "CREATE TABLE arrow (id int PRIMARY KEY, v text)",
    )
    tables = _tables(source, "lines", "arrow")
    by_name = {t.ref.name: t for t in tables}
    stream = source.open_stream("t1", tables, source.begin_capture("t1", tables, False).position)
    stream.encode_rows({by_name["lines"].ref: by_name["lines"]})
    stream.capture_rows({by_name["arrow"].ref: by_name["arrow"]})
    try:
        statements = ["BEGIN"]
        for i in range(1, 1301):
            table = "lines" if (i // 100) % 2 else "arrow"  # runs of 100, alternating
            statements.append(f"INSERT INTO {table} VALUES ({i}, 'v{i}')")
        statements += ["DELETE FROM arrow WHERE id = 1", "UPDATE lines SET v = 'w' WHERE id = 100", "COMMIT"]
        _execute(url, *statements)
        events = _collect(stream, 1)
    finally:
        stream.close()
    order = []
    for event in events:
        if isinstance(event, ChangeBatch):
            assert event.changes is not None
            ops = event.changes.column("conveyor_op").to_pylist()
            ids = event.changes.column("id").to_pylist()
            order += [(event.table.ref.name, op.decode(), i) for op, i in zip(ops, ids, strict=True)]
    expected = [("lines" if (i // 100) % 2 else "arrow", "c", i) for i in range(1, 1301)]
    expected += [("arrow", "d", 1), ("lines", "u", 100)]
    for name in ("lines", "arrow"):
        assert [c for c in order if c[0] == name] == [c for c in expected if c[0] == name]
    assert len(order) == len(expected)
    sizes = {
        (e.table.ref.name, e.num_rows) for e in events if isinstance(e, ChangeBatch) and e.changes is not None
    }
    assert ("arrow", 700) in sizes  # 699 inserts in seven runs of 100 and the delete, one batch
    kinds = {
        (e.table.ref.name, "conveyor_encoded" in e.changes.schema.names)
        for e in events
        if isinstance(e, ChangeBatch) and e.changes is not None
    }
    assert kinds == {("lines", True), ("arrow", False)}


def test_unchanged_toast_value(capture: tuple[str, PostgresChangeSource]) -> None:
    url, source = capture
    _execute(
        url,
        "CREATE TABLE toasty (id int PRIMARY KEY, small text, big text)",
        "ALTER TABLE toasty ALTER COLUMN big SET STORAGE EXTERNAL",
    )
    tables = _tables(source, "toasty")
    stream = source.open_stream("t1", tables, source.begin_capture("t1", tables, False).position)
    try:
        big = "0123456789abcdef" * 6400  # 100 kB, stored out of line
        _execute(
            url,
            f"INSERT INTO toasty VALUES (1, 's1', '{big}')",
            "UPDATE toasty SET small = 's2' WHERE id = 1",
        )
        rows = _rows(_collect(stream, 2))
    finally:
        stream.close()
    assert rows[0].values == {"id": 1, "small": "s1", "big": big}
    assert rows[1].op is Op.UPDATE
    assert rows[1].values == {"id": 1, "small": "s2"}
    assert rows[1].unchanged == frozenset({"big"})


def test_old_rows_and_keys(capture: tuple[str, PostgresChangeSource]) -> None:
    url, source = capture
    _execute(
        url,
        "CREATE TABLE full_id (id int PRIMARY KEY, v text)",
        "ALTER TABLE full_id REPLICA IDENTITY FULL",
        "CREATE TABLE keyed (a int, b text, v text, PRIMARY KEY (a, b))",
        "INSERT INTO full_id VALUES (1, 'old')",
        "INSERT INTO keyed VALUES (1, 'x', 'v1')",
    )
    tables = _tables(source, "full_id", "keyed")
    stream = source.open_stream("t1", tables, source.begin_capture("t1", tables, False).position)
    try:
        _execute(
            url,
            "UPDATE full_id SET v = 'new' WHERE id = 1",
            "DELETE FROM full_id WHERE id = 1",
            "UPDATE keyed SET v = 'v2'",
            "UPDATE keyed SET a = 2",
            "DELETE FROM keyed",
        )
        rows = _rows(_collect(stream, 5))
    finally:
        stream.close()
    assert [(r.table.name, r.op) for r in rows] == [
        ("full_id", Op.UPDATE),
        ("full_id", Op.DELETE),
        ("keyed", Op.UPDATE),
        ("keyed", Op.UPDATE),
        ("keyed", Op.DELETE),
    ]
    # The whole old row of an UPDATE that kept its key is its before (its old key is its key).
    assert rows[0].before == {"id": 1, "v": "old"} and rows[0].old_key is None
    assert rows[0].values == {"id": 1, "v": "new"}
    assert rows[1].old_key == {"id": 1, "v": "new"}
    assert rows[2].old_key is None and rows[2].values == {"a": 1, "b": "x", "v": "v2"}
    assert rows[3].old_key == {"a": 1, "b": "x"} and rows[3].values == {"a": 2, "b": "x", "v": "v2"}
    assert rows[4].old_key == {"a": 2, "b": "x"}


def test_add_column_and_truncate(capture: tuple[str, PostgresChangeSource]) -> None:
    url, source = capture
    _execute(url, "CREATE TABLE grows (id int PRIMARY KEY, v text)")
    tables = _tables(source, "grows")
    stream = source.open_stream("t1", tables, source.begin_capture("t1", tables, False).position)
    try:
        _execute(
            url,
            "INSERT INTO grows VALUES (1, 'a')",
            "ALTER TABLE grows ADD COLUMN n numeric(5,1) NOT NULL DEFAULT 0",
            "INSERT INTO grows VALUES (2, 'b', 2.5)",
            "TRUNCATE grows",
        )
        events = _collect(stream, 4)
    finally:
        stream.close()
    kinds = [type(e).__name__ for e in events]
    # The DDL arrives in its own transaction, where it committed (ddl_capture's message).
    assert kinds == [
        "ChangeBatch",
        "Commit",
        "TableDefinition",
        "Commit",
        "ChangeBatch",
        "Commit",
        "Truncate",
        "Commit",
    ]
    definition = events[2]
    assert isinstance(definition, TableDefinition)
    assert definition.schema.column_names == ["id", "v", "n"]
    assert definition.schema.primary_key == ("id",)
    assert definition.schema.column("n").type.describe() == "decimal(5,1)"
    assert not definition.schema.column("n").nullable
    assert definition.renamed == {}
    assert _rows(events)[1].values == {"id": 2, "v": "b", "n": Decimal("2.5")}
    assert events[6] == Truncate((TableRef("public", "grows"),))


def test_exported_snapshot_has_no_gap_and_no_overlap(capture: tuple[str, PostgresChangeSource]) -> None:
    url, source = capture
    _execute(url, "CREATE TABLE snap (id int PRIMARY KEY)", "INSERT INTO snap SELECT generate_series(1, 3)")
    tables = _tables(source, "snap")
    start = source.begin_capture("t1", tables, export_snapshot=True)
    assert start.snapshot_id
    _execute(
        url, "INSERT INTO snap VALUES (4)", "INSERT INTO snap VALUES (5)", "DELETE FROM snap WHERE id = 1"
    )
    snapshot = source.capture_snapshot(start)
    try:
        seen = sorted(r["id"] for b in snapshot.read(tables[0], 100) for r in b.to_pylist())
        assert snapshot.count(tables[0].ref) == 3
    finally:
        snapshot.close()  # releases the exporting replication connection
    with pytest.raises(Exception, match="snapshot"):
        PostgresSnapshot(source.config, snapshot_id=start.snapshot_id).count(tables[0].ref)
    assert seen == [1, 2, 3]
    stream = source.open_stream("t1", tables, start.position)
    try:
        rows = _rows(_collect(stream, 3))
    finally:
        stream.close()
    assert [(r.op, r.values or r.old_key) for r in rows] == [
        (Op.INSERT, {"id": 4}),
        (Op.INSERT, {"id": 5}),
        (Op.DELETE, {"id": 1}),
    ]
    # begin_capture again: the slot exists, no snapshot
    again = source.begin_capture("t1", tables, export_snapshot=True)
    assert again.snapshot_id is None


def test_resume_from_positions(capture: tuple[str, PostgresChangeSource]) -> None:
    url, source = capture
    _execute(url, "CREATE TABLE seq (id int PRIMARY KEY)")
    tables = _tables(source, "seq")
    start = source.begin_capture("t1", tables, False)
    for i in (1, 2, 3):
        _execute(url, f"INSERT INTO seq VALUES ({i})")

    stream = source.open_stream("t1", tables, start.position)
    try:
        events = _collect(stream, 3)
    finally:
        stream.close()
    commits = [e for e in events if isinstance(e, Commit)]
    assert [r.values["id"] for r in _rows(events)] == [1, 2, 3]

    # Nothing acknowledged: from the first commit's position, 2 and 3 come again.
    stream = source.open_stream("t1", tables, commits[0].position)
    try:
        again = _collect(stream, 2)
        assert [r.values["id"] for r in _rows(again)] == [2, 3]
        assert [e.position for e in again if isinstance(e, Commit)] == [c.position for c in commits[1:]]
        stream.ack(commits[2].position)
    finally:
        stream.close()

    _execute(url, "INSERT INTO seq VALUES (4)")
    # Acknowledged up to 3: even from the start position, 1..3 are not delivered again.
    stream = source.open_stream("t1", tables, start.position)
    try:
        later = _collect(stream, 1)
    finally:
        stream.close()
    assert [r.values["id"] for r in _rows(later)] == [4]
    assert _lsn(later[-1]) > _lsn(commits[2])


def test_heartbeat_advances_an_idle_stream(pg_db: str) -> None:
    source = PostgresChangeSource(_config(pg_db, heartbeat_seconds=0.5))
    _execute(pg_db, "CREATE TABLE quiet (id int PRIMARY KEY)")
    tables = _tables(source, "quiet")
    start = source.begin_capture("hb", tables, False)
    stream = source.open_stream("hb", tables, start.position)
    try:
        events = _collect(stream, 1, timeout=10)
        assert events and isinstance(events[-1], Commit)
        assert _lsn(events[-1]) >= parse_lsn(start.position.position["lsn"])
        stream.ack(events[-1].position)
    finally:
        stream.close()
        source.end_capture("hb")


def test_dropped_slot_requires_a_resync(capture: tuple[str, PostgresChangeSource]) -> None:
    url, source = capture
    _execute(url, "CREATE TABLE lost (id int PRIMARY KEY)")
    tables = _tables(source, "lost")
    start = source.begin_capture("t1", tables, False)
    slot = source.slot_name("t1")
    assert slot.startswith("conveyor_t1_")  # the database is part of a slot's name
    _execute(url, f"SELECT pg_drop_replication_slot('{slot}')")
    with pytest.raises(TerminalError, match=r"resync required") as info:
        source.open_stream("t1", tables, start.position)
    assert slot in str(info.value)


def test_end_capture_removes_slot_and_publications(capture: tuple[str, PostgresChangeSource]) -> None:
    url, source = capture
    _execute(url, "CREATE TABLE gone (id int PRIMARY KEY)", "CREATE TABLE nokey (v text)")
    tables = _tables(source, "gone", "nokey")
    start = source.begin_capture("t1", tables, False)
    assert start.warnings == [
        "updates and deletes of public.nokey cannot be captured: no primary key; "
        "set REPLICA IDENTITY FULL or add a key"
    ]
    wal = source.retained_wal_bytes("t1")
    assert wal is not None and wal >= 0
    stream = source.open_stream("t1", tables, start.position)  # an active walsender
    try:
        # The key-less table stays writable on the source, and its inserts are captured.
        _execute(url, "INSERT INTO nokey VALUES ('a')", "UPDATE nokey SET v = 'b'", "DELETE FROM nokey")
        rows = _rows(_collect(stream, 1))
        assert [(r.op, r.values) for r in rows] == [(Op.INSERT, {"v": "a"})]
        source.end_capture("t1")
    finally:
        stream.close()
    with psycopg.connect(url, autocommit=True) as conn:
        assert conn.execute(
            "SELECT count(*) FROM pg_replication_slots WHERE database = current_database()"
        ).fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM pg_publication").fetchone() == (0,)
    assert source.retained_wal_bytes("t1") is None


def test_preflight(pg_db: str) -> None:
    source = PostgresChangeSource(_config(pg_db))
    _execute(
        pg_db,
        "CREATE TABLE with_key (id int PRIMARY KEY)",
        "CREATE TABLE without_key (v text)",
        "CREATE TABLE full_row (v text)",
        "ALTER TABLE full_row REPLICA IDENTITY FULL",
    )
    tables = _tables(source, "with_key", "without_key", "full_row")
    assert source.preflight(tables) == [
        "updates and deletes of public.without_key cannot be captured: no primary key; "
        "set REPLICA IDENTITY FULL or add a key"
    ]
    with psycopg.connect(pg_db) as conn:  # the user's tables are left alone
        row = conn.execute("SELECT relreplident FROM pg_class WHERE relname = 'without_key'").fetchone()
        assert row == ("d",)


def test_names() -> None:
    assert capture_name("Orders-Sync.2") == "conveyor_orders_sync_2"
    long = capture_name("x" * 100)
    assert len(long) == 63 and long.startswith("conveyor_xxx")
    assert capture_name("x" * 100) != capture_name("x" * 101)
    source = PostgresChangeSource(
        _config("postgresql://h/db", slot_name="their_slot", publication_name="their_pub")
    )
    assert source.slot_name("t") == "their_slot"
    assert source.publications("t") == ["their_pub"]
    assert Checkpoint("postgres", {"lsn": "0/0"}).engine == "postgres"


def test_transactions_the_start_position_covers_are_skipped() -> None:
    from conveyor.connectors.postgres import pgoutput
    from conveyor.connectors.postgres.capture_decode import Relation
    from conveyor.connectors.postgres.text_values import converter
    from conveyor.core import types as ct
    from conveyor.core.schema import Column

    stream = PostgresChangeStream.__new__(PostgresChangeStream)
    stream.start_lsn = 1000
    stream._skip = False
    stream._known = {}
    stream._selected = None
    int4 = ct.simple(ct.Kind.INT32)
    schema = TableSchema(TableRef("public", "x"), (Column("id", int4),), ("id",))
    stream._relations = {7: Relation(schema, ["id"], ["id"], [converter(int4)])}
    when = datetime(2024, 1, 1, tzinfo=UTC)

    def feed(*messages: pgoutput.PgOutputMessage) -> list[ChangeEvent]:
        out = [stream._event_of(m) for m in messages]
        return [e for e in out if e is not None]

    replayed = feed(pgoutput.Begin(900, when, 1), pgoutput.Insert(7, ["1"]), pgoutput.Commit(900, 1000, when))
    assert replayed == []
    fresh = feed(pgoutput.Begin(1000, when, 2), pgoutput.Insert(7, ["2"]), pgoutput.Commit(1000, 1100, when))
    assert fresh == [
        RowChange(TableRef("public", "x"), Op.INSERT, {"id": 2}),
        Commit(Checkpoint("postgres", {"lsn": "0/44C"}), when),
    ]
    heartbeats = feed(
        pgoutput.Message(False, 999, "conveyor_heartbeat", b""),
        pgoutput.Message(False, 1200, "conveyor_heartbeat", b""),
        pgoutput.Message(False, 1300, "someone_else", b""),
    )
    assert heartbeats == [Commit(Checkpoint("postgres", {"lsn": "0/4B0"}), None)]


def test_the_fast_row_path_agrees_with_the_general_one() -> None:
    import struct

    from conveyor.connectors.postgres import pgoutput
    from conveyor.connectors.postgres.capture_decode import Relation
    from conveyor.connectors.postgres.text_values import converter
    from conveyor.core import types as ct
    from conveyor.core.schema import Column

    stream = PostgresChangeStream.__new__(PostgresChangeStream)
    stream.start_lsn = 0
    stream._skip = False
    stream._selected = {TableRef("public", "x")}
    stream._decoder = pgoutput.Decoder("utf-8")
    types = [
        ct.simple(ct.Kind.INT64),
        ct.simple(ct.Kind.TEXT),
        ct.ColumnType(ct.Kind.DECIMAL, precision=12, scale=2),
        ct.simple(ct.Kind.TIMESTAMPTZ),
        ct.simple(ct.Kind.BOOLEAN),
    ]
    names = ["id", "t", "n", "ts", "b"]
    schema = TableSchema(
        TableRef("public", "x"), tuple(Column(n, c) for n, c in zip(names, types, strict=True)), ("id",)
    )
    other = TableSchema(TableRef("public", "y"), (Column("id", types[0]),), ("id",))
    stream._relations = {
        7: Relation(schema, names, ["id"], [converter(c) for c in types]),
        8: Relation(other, ["id"], ["id"], [converter(types[0])]),
    }

    def tup(*values: str | object | None) -> bytes:
        out = struct.pack("!h", len(values))
        for v in values:
            if v is None:
                out += b"n"
            elif v is pgoutput.UNCHANGED:
                out += b"u"
            else:
                data = str(v).encode()
                out += b"t" + struct.pack("!i", len(data)) + data
        return out

    row = ("1", "plain", "12.50", "2024-03-05 11:22:33.5+00", "t")
    fast = [
        b"I" + struct.pack("!I", 7) + b"N" + tup(*row),
        b"U" + struct.pack("!I", 7) + b"N" + tup(*row),
        b"U" + struct.pack("!I", 7) + b"N" + tup("2", "tëxt ✓", None, "2024-03-05 13:22:33+02", "f"),
        b"I" + struct.pack("!I", 7) + b"N" + tup("3", None, "-0.01", "infinity", None),
        # An unchanged TOASTed value: not sent, named unchanged.
        b"U" + struct.pack("!I", 7) + b"N" + tup("1", pgoutput.UNCHANGED, "1", "2024-01-01 00:00:00+00", "t"),
    ]
    for payload in fast:
        event = stream._fast_row(payload)
        assert event is not None
        assert event == stream._event_of(stream._decoder.decode(payload))
    assert stream._fast_row(fast[2]).values == {  # type: ignore[union-attr]
        "id": 2,
        "t": "tëxt ✓",
        "n": None,
        "ts": datetime(2024, 3, 5, 11, 22, 33, tzinfo=UTC),
        "b": False,
    }
    general = [
        b"I" + struct.pack("!I", 7) + b"N" + tup("1", pgoutput.UNCHANGED, "1", "2024-01-01 00:00:00+00", "t"),
        b"U" + struct.pack("!I", 7) + b"K" + tup("0", None, None, None, None) + b"N" + tup(*row),
        b"D" + struct.pack("!I", 7) + b"K" + tup("1", None, None, None, None),
        b"I" + struct.pack("!I", 8) + b"N" + tup("1"),  # not a selected table
        b"I" + struct.pack("!I", 9) + b"N" + tup("1"),  # an unknown relation
        b"I" + struct.pack("!I", 7) + b"N" + tup("1", "too few"),
        b"B" + struct.pack("!QqI", 1, 0, 1),
    ]
    for payload in general:
        assert stream._fast_row(payload) is None
    assert stream._fast_row(fast[4]) == RowChange(
        TableRef("public", "x"),
        Op.UPDATE,
        {"id": 1, "n": Decimal("1"), "ts": datetime(2024, 1, 1, tzinfo=UTC), "b": True},
        None,
        frozenset({"t"}),
    )
    bad = b"I" + struct.pack("!I", 7) + b"N" + tup("1", "x", "1", "2024-13-01 00:00:00+00 BC", "t")
    assert stream._fast_row(bad) is None  # the general path names the column
    with pytest.raises(DataError, match=r"public.x column 'ts'"):
        stream._event_of(stream._decoder.decode(bad))


def test_preflight_refuses_a_user_without_replication(pg_db: str) -> None:
    _execute(pg_db, "CREATE ROLE plain_user LOGIN PASSWORD 'secret-pw'")
    try:
        url = pg_db.replace("postgres@", "plain_user@")
        source = PostgresChangeSource(EndpointConfig("src", "postgres", url=url, password="secret-pw"))
        with pytest.raises(ConfigError, match="REPLICATION") as info:
            source.preflight([])
        assert "secret-pw" not in str(info.value)
    finally:
        _execute(pg_db, "DROP ROLE plain_user")


def test_a_value_without_python_form_arrives_exactly(capture: tuple[str, PostgresChangeSource]) -> None:
    """A BC date has no Python date: it arrives as date32's day count (exact), and
    a timestamp past int64 microseconds as Unrepresentable (refused at apply)."""
    url, source = capture
    _execute(url, "CREATE TABLE old_dates (id int PRIMARY KEY, d date, ts timestamp)")
    tables = _tables(source, "old_dates")
    stream = source.open_stream("t1", tables, source.begin_capture("t1", tables, False).position)
    try:
        _execute(url, "INSERT INTO old_dates VALUES (1, '0044-03-15 BC', '294276-12-31 23:59:59')")
        (change,) = _rows(_collect(stream, 1))
        assert change.values["d"] == days_from_civil(-43, 3, 15)
        assert isinstance(change.values["ts"], Unrepresentable)
    finally:
        stream.close()


def test_text_arrives_in_the_server_encoding_whatever_the_environment(
    capture: tuple[str, PostgresChangeSource], monkeypatch: pytest.MonkeyPatch
) -> None:
    """pgoutput converts text to the replication session's client encoding: the
    stream pins it to the server's, so PGCLIENTENCODING cannot garble or refuse it."""
    url, source = capture
    _execute(url, "CREATE TABLE enc (id int PRIMARY KEY, t text)")
    tables = _tables(source, "enc")
    start = source.begin_capture("t1", tables, export_snapshot=False)
    monkeypatch.setenv("PGCLIENTENCODING", "LATIN1")
    stream = source.open_stream("t1", tables, start.position)
    monkeypatch.delenv("PGCLIENTENCODING")
    try:
        assert stream.encoded_format == "postgres-copy-text/utf-8"
        _execute(url, "INSERT INTO enc VALUES (1, 'grüße € 🚀')")
        events = _collect(stream, 1)
    finally:
        stream.close()
    assert [r.values for r in _rows(events)] == [{"id": 1, "t": "grüße € 🚀"}]


def test_a_copy_line_tables_partial_updates_and_deletes_come_in_arrow_in_order(
    capture: tuple[str, PostgresChangeSource],
) -> None:
    """A table whose rows go as COPY lines and are also asked in Arrow: the
    changes a line cannot hold (UPDATEs that left a TOASTed value unsent,
    DELETEs) come in Arrow runs, every change in its table's commit order;
    reduced together they give the source's rows."""
    url, source = capture
    _execute(
        url,
        "CREATE TABLE docs (id int PRIMARY KEY, small text, big text)",
        "ALTER TABLE docs ALTER COLUMN big SET STORAGE EXTERNAL",
    )
    [docs] = _tables(source, "docs")
    stream = source.open_stream("t1", [docs], source.begin_capture("t1", [docs], False).position)
    stream.encode_rows({docs.ref: docs})
    stream.capture_rows({docs.ref: docs})
    big = "0123456789abcdef" * 200  # 3.2 kB, out of line
    try:
        _execute(
            url,
            "BEGIN",
            f"INSERT INTO docs SELECT g, 's', '{big}' || g FROM generate_series(1, 30) AS g",
            "UPDATE docs SET small = 't' WHERE id <= 20",  # big unsent
            "DELETE FROM docs WHERE id > 25",
            "UPDATE docs SET small = 'u', big = 'now small' WHERE id = 1",  # whole: a line
            "UPDATE docs SET small = 'v' WHERE id = 2",  # big unsent again
            "INSERT INTO docs VALUES (26, 'back', 'b')",
            "COMMIT",
        )
        events = _collect(stream, 1)
        with psycopg.connect(url) as conn:
            want = {r[0]: (r[1], r[2]) for r in conn.execute("SELECT id, small, big FROM docs")}
        batches = [e for e in events if isinstance(e, ChangeBatch)]
        reducer = TableReducer(
            docs, {c: c for c in docs.column_names}, decode=lambda line: stream.decode_row(docs.ref, line)
        )
        for batch in batches:
            assert reducer.add_captured(batch)
        out = reducer.changes()
        rows = {r["id"]: (r["small"], r["big"]) for r in out.upserts.to_pylist()}
        for line in out.encoded_rows():
            row = stream.decode_row(docs.ref, line)
            rows[row["id"]] = (row["small"], row["big"])
    finally:
        stream.close()
    order: list[tuple[str, bool, int]] = []  # (op, as a line, id)
    assert not any(b.one_at_a_time for b in batches)  # every change in a form taken whole
    for batch in batches:
        assert batch.changes is not None
        lines = "conveyor_encoded" in batch.changes.schema.names
        ops = batch.changes.column("conveyor_op").to_pylist()
        order += [
            (op.decode(), lines, i) for op, i in zip(ops, batch.changes.column("id").to_pylist(), strict=True)
        ]
    expected = [("c", True, i) for i in range(1, 31)] + [("u", False, i) for i in range(1, 21)]
    expected += [("d", False, i) for i in range(26, 31)] + [("u", True, 1), ("u", False, 2), ("c", True, 26)]
    assert order == expected
    # Reduced, lines and rows in Arrow together: every key's final row is the source's.
    assert sorted(r["id"] for r in out.deletes.to_pylist()) == [27, 28, 29, 30]
    assert not out.partial  # each partial UPDATE's key was inserted in the batch
    assert rows == want
