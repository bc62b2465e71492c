"""Trigger-based change capture on SQLite files: events, values, positions, cleanup, concurrency."""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from conveyor.connectors.base import EndpointConfig
from conveyor.connectors.captured_rows import row_changes
from conveyor.connectors.changes import (
    CaptureLost,
    ChangeEvent,
    Commit,
    LosesCapture,
    RowChange,
    TableDefinition,
    TableDropped,
)
from conveyor.connectors.sqlite.capture import SQLiteChangeSource
from conveyor.connectors.sqlite.capture_stream import SQLiteChangeStream
from conveyor.connectors.sqlite.capture_triggers import trigger_name
from conveyor.connectors.sqlite.source import SQLiteSource, quote
from conveyor.core.batch import ChangeBatch, Checkpoint, Op
from conveyor.core.errors import ConfigError, TerminalError
from conveyor.core.schema import TableSchema

pytestmark = pytest.mark.integration

WEIRD = "we\"ird 'select' ✓ from"
WEIRD_Q = quote(WEIRD)
TASK = "t1"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "app.sqlite"
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(
            f"""
            CREATE TABLE orders (region TEXT, id INTEGER, amount REAL, big INTEGER, data BLOB, note TEXT,
                                 price DECIMAL(10,2), day DATE, flag BOOLEAN, PRIMARY KEY (region, id));
            CREATE TABLE {WEIRD_Q} ("select" INTEGER PRIMARY KEY, "Mixed ' Case" TEXT, "order" REAL);
            CREATE TABLE nokey (a INTEGER, b TEXT);
            """
        )
    return path


def source(path: Path) -> SQLiteChangeSource:
    return SQLiteChangeSource(EndpointConfig("app", "sqlite", path=str(path)))


def schemas(path: Path, *names: str) -> list[TableSchema]:
    by_name = {t.ref.name: t for t in SQLiteSource(EndpointConfig("app", "sqlite", path=str(path))).tables()}
    return [by_name[n] for n in names]


def write(path: Path, sql: str, *params: Any, many: bool = False) -> None:
    with closing(sqlite3.connect(path, timeout=10)) as conn, conn:
        if many:
            conn.executemany(sql, params[0])
        else:
            conn.execute(sql, params)


def drain(stream: SQLiteChangeStream, want: int, timeout: float = 10.0) -> list[ChangeEvent]:
    """Events until at least ``want`` row changes arrived and the stream went idle."""
    out: list[ChangeEvent] = []
    deadline = time.monotonic() + timeout
    for event in stream.events(0.05):
        if event is not None:
            out.append(event)
        elif sum(e.num_rows for e in out if isinstance(e, ChangeBatch)) >= want:
            break
        if time.monotonic() > deadline:
            break
    return out


def changes(events: list[ChangeEvent]) -> list[RowChange]:
    """Every row change, one by one (a stream delivers them in captured batches)."""
    return [c for e in events if isinstance(e, ChangeBatch) for c in row_changes(e)]


def full_load_rows(path: Path, table: TableSchema) -> list[dict[str, Any]]:
    snapshot = SQLiteSource(EndpointConfig("app", "sqlite", path=str(path))).snapshot()
    try:
        return [row for batch in snapshot.read(table, 100, order_by_key=True) for row in batch.to_pylist()]
    finally:
        snapshot.close()


@pytest.fixture
def captured(db: Path) -> Iterator[tuple[SQLiteChangeSource, list[TableSchema], SQLiteChangeStream]]:
    src = source(db)
    tables = schemas(db, "orders", WEIRD)
    start = src.begin_capture(TASK, tables, export_snapshot=False)
    assert start.snapshot_id is None and start.position == Checkpoint("sqlite", {"seq": 0})
    stream = src.open_stream(TASK, tables, start.position)
    yield src, tables, stream
    stream.close()


ORDER_ROWS = [
    ("eu", 1, 0.1 + 0.2, 2**63 - 1, b"\x00a\x00", "🚀 émoji", "12.30", "2024-02-29", 1),
    ("eu", 2, 1e-300, -(2**63), b"", "", "0.01", "0001-01-01", 0),
    ("us", 1, None, None, None, None, None, None, None),
]


def test_insert_update_delete_and_key_change_with_full_load_values(
    db: Path, captured: tuple[SQLiteChangeSource, list[TableSchema], SQLiteChangeStream]
) -> None:
    _, (orders, _), stream = captured
    write(db, "INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", ORDER_ROWS, many=True)
    inserted = changes(drain(stream, 3))
    assert [c.op for c in inserted] == [Op.INSERT] * 3
    assert [c.values for c in inserted] == full_load_rows(db, orders)
    first = inserted[0].values
    assert first["amount"] == 0.1 + 0.2 and first["amount"] != 0.3
    assert first["big"] == 2**63 - 1 and inserted[1].values["big"] == -(2**63)
    assert first["data"] == b"\x00a\x00" and first["note"] == "🚀 émoji"
    assert first["price"] == Decimal("12.30") and first["flag"] is True
    assert inserted[2].values["amount"] is None and inserted[2].values["data"] is None

    write(db, "UPDATE orders SET note = ?, amount = ? WHERE region = 'eu' AND id = 2", "x'y", 1 / 3)
    (updated,) = changes(drain(stream, 1))
    assert updated.op is Op.UPDATE and updated.old_key is None
    assert updated.values["note"] == "x'y" and updated.values["amount"] == 1 / 3

    write(db, "UPDATE orders SET region = 'asia', id = 7 WHERE region = 'us' AND id = 1")
    (moved,) = changes(drain(stream, 1))
    assert moved.op is Op.UPDATE
    assert moved.old_key == {"region": "us", "id": 1}
    assert (moved.values["region"], moved.values["id"]) == ("asia", 7)

    write(db, "DELETE FROM orders WHERE region = 'eu'")
    deleted = changes(drain(stream, 2))
    assert [(c.op, c.old_key) for c in deleted] == [
        (Op.DELETE, {"region": "eu", "id": 1}),
        (Op.DELETE, {"region": "eu", "id": 2}),
    ]


def test_weird_table_and_column_names(
    db: Path, captured: tuple[SQLiteChangeSource, list[TableSchema], SQLiteChangeStream]
) -> None:
    _, (_, weird), stream = captured
    write(
        db,
        f"INSERT INTO {WEIRD_Q} VALUES (?, ?, ?)",
        [(1, "a 'quoted' \"x\"", 0.1), (2, None, None)],
        many=True,
    )
    write(db, f'UPDATE {WEIRD_Q} SET "select" = 3 WHERE "select" = 2')
    write(db, f'DELETE FROM {WEIRD_Q} WHERE "select" = 1')
    got = changes(drain(stream, 4))
    assert all(c.table == weird.ref for c in got)
    # rows are read when polled: row 1 is gone by then, row 2 lives on as 3
    assert [(c.op, c.old_key) for c in got] == [
        (Op.DELETE, {"select": 1}),
        (Op.DELETE, {"select": 2}),
        (Op.UPDATE, {"select": 2}),
        (Op.DELETE, {"select": 1}),
    ]
    assert got[2].values == {"select": 3, "Mixed ' Case": None, "order": None}


def test_positions_ack_and_reopen(
    db: Path, captured: tuple[SQLiteChangeSource, list[TableSchema], SQLiteChangeStream]
) -> None:
    src, tables, stream = captured
    for i in range(5):
        write(db, f"INSERT INTO {WEIRD_Q} VALUES (?, 'v', 1.5)", i)
    events = drain(stream, 5)
    commits = [e for e in events if isinstance(e, Commit)]
    seqs = [c.position.position["seq"] for c in commits]
    assert seqs == sorted(set(seqs)) and seqs[-1] == 5
    assert all(c.time is not None and c.time.tzinfo is not None for c in commits)
    count = "SELECT count(*) FROM conveyor_changes"

    middle = Checkpoint("sqlite", {"seq": 2})
    stream.ack(middle)
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute(count).fetchone() == (3,)

    again = src.open_stream(TASK, tables, middle)
    try:
        replayed = changes(drain(again, 3))
        assert [c.values["select"] for c in replayed] == [2, 3, 4]
    finally:
        again.close()
    with pytest.raises(TerminalError, match="resync required"):
        src.open_stream(TASK, tables, Checkpoint("sqlite", {"seq": 1}))

    stream.ack(commits[-1].position)
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute(count).fetchone() == (0,)
    write(db, f"INSERT INTO {WEIRD_Q} VALUES (99, 'late', NULL)")
    (late,) = changes(drain(stream, 1))
    assert late.values["select"] == 99


def test_begin_is_idempotent_and_end_capture_cleans_up(db: Path) -> None:
    src = source(db)
    orders, weird = schemas(db, "orders", WEIRD)
    src.begin_capture(TASK, [orders, weird], export_snapshot=True)
    src.begin_capture(TASK, [orders], export_snapshot=True)  # narrowed: the weird table's triggers go
    other = src.begin_capture("other task", [weird], export_snapshot=False)
    write(db, "INSERT INTO orders (region, id) VALUES ('x', 1)")

    def objects() -> set[tuple[str, str]]:
        with closing(sqlite3.connect(db)) as conn:
            return {
                (r[0], r[1])
                for r in conn.execute("SELECT type, name FROM sqlite_schema WHERE name LIKE 'conveyor%'")
            }

    expected_t1 = {("trigger", trigger_name(TASK, "orders", s)) for s in ("ins", "upd", "del")}
    expected_other = {("trigger", trigger_name("other task", WEIRD, s)) for s in ("ins", "upd", "del")}
    tables = {("table", "conveyor_changes"), ("table", "conveyor_capture")}
    assert objects() == expected_t1 | expected_other | tables
    src.end_capture(TASK)
    assert objects() == expected_other | tables
    write(db, "INSERT INTO orders (region, id) VALUES ('x', 2)")  # the writer is unaffected
    stream = src.open_stream("other task", [weird], other.position)
    try:
        write(db, f"INSERT INTO {WEIRD_Q} VALUES (5, 'five', 5.0)")
        assert [c.values["select"] for c in changes(drain(stream, 1))] == [5]
    finally:
        stream.close()
    src.end_capture("other task")
    assert objects() == set()
    src.end_capture("other task")  # nothing left: a no-op
    write(db, f"INSERT INTO {WEIRD_Q} VALUES (6, 'six', 6.0)")
    with pytest.raises(TerminalError, match="resync required"):
        src.open_stream("other task", [weird], other.position)


def test_preflight(db: Path) -> None:
    src = source(db)
    orders, nokey = schemas(db, "orders", "nokey")
    warnings = src.preflight([orders])
    assert any("one INSERT" in w for w in warnings)
    assert not any("journal mode" in w for w in warnings)  # the fixture uses WAL
    with pytest.raises(ConfigError, match="'nokey' has no primary key"):
        src.preflight([orders, nokey])
    with pytest.raises(ConfigError, match="no primary key"):
        src.begin_capture(TASK, [nokey], export_snapshot=False)
    with pytest.raises(ConfigError, match="no SQLite database"):
        source(db.parent / "missing.sqlite").preflight([orders])


class ReadOnlyMount(SQLiteChangeSource):
    """The file as seen on a read-only mount (permissions do not stop root)."""

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)


def test_preflight_refuses_a_read_only_database(db: Path) -> None:
    src = ReadOnlyMount(EndpointConfig("app", "sqlite", path=str(db)))
    (orders,) = schemas(db, "orders")
    with pytest.raises(ConfigError, match="is read-only"):
        src.preflight([orders])
    with pytest.raises(ConfigError, match="is read-only"):
        src.begin_capture(TASK, [orders], export_snapshot=False)


def test_column_added_shows_as_table_definition(
    db: Path, captured: tuple[SQLiteChangeSource, list[TableSchema], SQLiteChangeStream]
) -> None:
    _, (_, weird), stream = captured
    write(db, f"INSERT INTO {WEIRD_Q} VALUES (1, 'a', 1.0)")
    drain(stream, 1)
    write(db, f"ALTER TABLE {WEIRD_Q} ADD COLUMN extra TEXT")
    write(db, f"INSERT INTO {WEIRD_Q} VALUES (2, 'b', 2.0, 'new')")
    events = drain(stream, 1)
    assert isinstance(events[0], TableDefinition)
    assert events[0].schema.column_names == [*weird.column_names, "extra"]
    assert changes(events)[0].values["extra"] == "new"


def _rebuild_orders(db: Path) -> None:
    """How SQLite changes a column's type (amount REAL to TEXT): a new table, copied, renamed."""
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:
        conn.executescript(
            """
            BEGIN;
            CREATE TABLE orders_new (region TEXT, id INTEGER, amount TEXT, big INTEGER, data BLOB, note TEXT,
                                     price DECIMAL(10,2), day DATE, flag BOOLEAN, PRIMARY KEY (region, id));
            INSERT INTO orders_new SELECT * FROM orders;
            DROP TABLE orders;
            ALTER TABLE orders_new RENAME TO orders;
            COMMIT;
            """
        )


def test_a_rebuilt_table_is_capture_lost_until_added_again(
    db: Path, captured: tuple[SQLiteChangeSource, list[TableSchema], SQLiteChangeStream]
) -> None:
    src, (orders, weird), stream = captured
    assert isinstance(stream, LosesCapture) and stream.captures(orders.ref)
    write(db, "INSERT INTO orders (region, id, amount) VALUES ('eu', 1, 1.5)")
    drain(stream, 1)
    _rebuild_orders(db)
    write(db, "UPDATE orders SET note = 'unseen' WHERE id = 1")
    write(db, f"INSERT INTO {WEIRD_Q} VALUES (1, 'a', 1.0)")
    events = drain(stream, 1)
    lost = [e for e in events if isinstance(e, CaptureLost)]
    assert [e.table for e in lost] == [orders.ref] and "resync required" in lost[0].reason
    assert "conveyor_t1_orders_" in lost[0].reason
    assert [c.table for c in changes(events)] == [weird.ref]  # the other table goes on
    assert not stream.captures(orders.ref)

    # Opened again (a resume, a restart after a crash): the loss is found, not a failure.
    again = src.open_stream(TASK, [orders, weird], stream.position)
    try:
        write(db, f"INSERT INTO {WEIRD_Q} VALUES (2, 'b', 2.0)")
        events = drain(again, 1)
        assert [e.table for e in events if isinstance(e, CaptureLost)] == [orders.ref]
        assert [c.table for c in changes(events)] == [weird.ref]
        rebuilt = schemas(db, "orders")[0]
        again.add_table(rebuilt)  # a reload captures it again
        assert again.captures(orders.ref)
        write(db, "UPDATE orders SET amount = 'x' WHERE id = 1")
        events = drain(again, 1)
        assert not [e for e in events if isinstance(e, CaptureLost)]
        assert [(c.table, c.values["amount"]) for c in changes(events)] == [(orders.ref, "x")]
    finally:
        again.close()


def test_a_table_dropped_while_stopped_is_dropped_when_reopened(
    db: Path, captured: tuple[SQLiteChangeSource, list[TableSchema], SQLiteChangeStream]
) -> None:
    src, (orders, weird), stream = captured
    write(db, "DROP TABLE orders")
    again = src.open_stream(TASK, [orders, weird], stream.position)
    try:
        write(db, f"INSERT INTO {WEIRD_Q} VALUES (1, 'a', 1.0)")
        events = drain(again, 1)
        assert [e.table for e in events if isinstance(e, TableDropped)] == [orders.ref]
        assert not [e for e in events if isinstance(e, CaptureLost)]
    finally:
        again.close()


@pytest.mark.parametrize("in_arrow", [False, True], ids=["row-changes", "in-arrow"])
def test_random_changes_converge(
    db: Path, captured: tuple[SQLiteChangeSource, list[TableSchema], SQLiteChangeStream], in_arrow: bool
) -> None:
    """Replaying the events by key onto a copy gives the source's final rows;
    also with whole rows captured in Arrow (a moved key still one by one)."""
    _, (orders, _), stream = captured
    if in_arrow:
        stream.capture_rows({orders.ref: orders})
    seen: list[ChangeEvent] = []

    def changes(events: list[ChangeEvent]) -> list[RowChange]:
        seen.extend(events)
        return [c for e in events if isinstance(e, ChangeBatch) for c in row_changes(e)]

    rng = random.Random(7)
    replica: dict[tuple[Any, ...], dict[str, Any]] = {}
    with closing(sqlite3.connect(db, timeout=10)) as conn:
        for _ in range(300):
            region, ident = rng.choice("ab"), rng.randrange(8)
            action = rng.randrange(4)
            with conn:
                if action == 0:
                    conn.execute(
                        "INSERT OR REPLACE INTO orders (region, id, amount, note) VALUES (?, ?, ?, ?)",
                        (region, ident, rng.random(), str(rng.random())),
                    )
                elif action == 1:
                    conn.execute(
                        "UPDATE orders SET amount = ? WHERE region = ? AND id = ?",
                        (rng.random(), region, ident),
                    )
                elif action == 2:
                    conn.execute(
                        "UPDATE OR IGNORE orders SET id = ? WHERE region = ? AND id = ?",
                        (rng.randrange(8), region, ident),
                    )
                else:
                    conn.execute("DELETE FROM orders WHERE region = ? AND id = ?", (region, ident))
            if rng.random() < 0.1:
                for change in changes(drain(stream, 0, timeout=2)):
                    apply(replica, change)
    for change in changes(drain(stream, 0, timeout=5)):
        apply(replica, change)
    expected = {(r["region"], r["id"]): r for r in full_load_rows(db, orders)}
    assert replica == expected
    batches = [e for e in seen if isinstance(e, ChangeBatch)]
    # Every change comes in a captured batch: in the whole form only when asked for.
    assert bool([b for b in batches if not b.one_at_a_time]) is in_arrow
    # A moved key (an UPDATE with an old key) goes one at a time either way.
    moved = [
        b.one_at_a_time
        for b in batches
        for c in row_changes(b)
        if c.op is Op.UPDATE and c.old_key is not None
    ]
    assert moved and all(moved), "moved keys one by one"


def apply(replica: dict[tuple[Any, ...], dict[str, Any]], change: RowChange) -> None:
    if change.old_key is not None:
        replica.pop((change.old_key["region"], change.old_key["id"]), None)
    if change.op is not Op.DELETE:
        replica[(change.values["region"], change.values["id"])] = change.values


@pytest.mark.parametrize("journal_mode", ["wal", "delete"])
def test_writer_keeps_working_while_streaming(db: Path, journal_mode: str) -> None:
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute(f"PRAGMA journal_mode={journal_mode}").fetchone() == (journal_mode,)
    src = source(db)
    tables = schemas(db, WEIRD)
    stream = src.open_stream(TASK, tables, src.begin_capture(TASK, tables, export_snapshot=False).position)
    total, errors = 1000, []

    def writer() -> None:
        try:
            with closing(sqlite3.connect(db, timeout=10)) as conn:
                for start in range(0, total, 5):
                    with conn:
                        conn.executemany(
                            f"INSERT INTO {WEIRD_Q} VALUES (?, 'w', ?)",
                            [(i, i / 7) for i in range(start, start + 5)],
                        )
        except Exception as exc:  # reported by the test
            errors.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    seen: list[int] = []
    deadline = time.monotonic() + 60
    try:
        for event in stream.events(0.05):
            if isinstance(event, ChangeBatch):
                seen.extend(c.values["select"] for c in row_changes(event))
            elif isinstance(event, Commit):
                stream.ack(event.position)  # takes the write lock between the writer's transactions
            if len(seen) >= total or time.monotonic() > deadline:
                break
    finally:
        thread.join(timeout=60)
        stream.close()
    assert not errors
    assert sorted(seen) == list(range(total)) and len(seen) == total
