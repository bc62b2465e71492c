"""PostgreSQL to PostgreSQL change capture passing rows through as COPY text
lines (copy_lines.py, captured ChangeBatches with ENCODED) instead of Python values: a hand-wired
ChangeCapture (as bench/cdc.py wires one) between two databases of the private
server, run in a thread and stopped by its stop event; the target must end
exactly equal to the source."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import psycopg
import pytest
from psycopg import sql

from conveyor.connectors.base import EndpointConfig
from conveyor.connectors.captured_rows import row_changes
from conveyor.connectors.changes import ChangeEvent, RowChange, TableDefinition
from conveyor.connectors.postgres.apply import PostgresApplier
from conveyor.connectors.postgres.capture import PostgresChangeSource
from conveyor.connectors.postgres.capture_stream import PostgresChangeStream
from conveyor.connectors.postgres.copy_lines import encoded_format, tuple_line
from conveyor.connectors.postgres.source import PostgresSource
from conveyor.core.batch import ENCODED, OP, ChangeBatch, Checkpoint
from conveyor.core.schema import TableRef, TableSchema
from conveyor.replication.cdc.capture_table import CaptureTable
from conveyor.replication.cdc.runner import ChangeCapture
from conveyor.replication.mappings import TableMappings
from support.postgres_types import TYPES_DDL
from support.servers import PostgresServer

pytestmark = pytest.mark.integration

TASK = "enc"
ROW_FORMS_LOG = "conveyor.replication.cdc.row_forms"
WAIT_S = 20.0  # for the target to catch up with the source
STOP_S = 15.0  # for a stopped capture's thread to end

TEXT = "emoji 🚀 tab\tnewline\nbackslash\\ quote' \" cr\r \\N end"

TYPED_ROWS = (
    "INSERT INTO typed VALUES (1, -32768, 9223372036854775807, -9999999999.99,"
    " 123456789012345678901234567890.000000000000000000001, 'NaN', 'Infinity',"
    f" {sql.Literal(TEXT).as_string(None)}, 'varchar ü\t\\', 'ab', '\\x00ff5c0a0d09'::bytea, true,"
    " '0001-01-01', '23:59:59.999999', '0001-01-01 00:00:00', '2024-06-01 12:00:00+02',"
    " '1 year 2 mons -3 days 04:05:06.789', 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11',"
    ' \'{"k": "välue\\\\t",  "n": [1, 2.5, null]}\', \'{"a": {"b": "🚀\\n"}}\','
    " '{1,NULL,-3}', ARRAY['a,b', 'c\"d', '{e}', NULL, '', 'NULL', ' x ', E'tab\\there', '\\N'],"
    " 'happy ''quoted'', yes', '{sad,ok}', '192.168.0.1/24')",
    "INSERT INTO typed VALUES (2, 0, 0, 0.01, 'NaN', '-Infinity', '-0', '', '', '', '', false,"
    " '9999-12-31', '00:00:00', '9999-12-31 23:59:59.999999', '9999-12-31 23:59:59.999999+00',"
    " '-00:00:00.000001', '00000000-0000-0000-0000-000000000000', '[]', '{}', '{}', '{}',"
    " 'sad', '{}', '::1')",
    "INSERT INTO typed (id) VALUES (3)",
    "INSERT INTO typed (id, d, ts, tstz, nu, f4, f8, t)"
    " VALUES (4, 'infinity', '-infinity', 'infinity', 'Infinity', '-0', 'NaN', '\\N')",
    "INSERT INTO typed (id, d, ts, tstz, f4, f8, b, ma)"
    " VALUES (5, '-infinity', 'infinity', '-infinity', 'Infinity', '-Infinity', '\\x',"
    " '{NULL,\"happy ''quoted'', yes\"}')",
)


def _execute(url: str, *statements: str, timezone: str | None = None) -> None:
    """The statements in ONE transaction (autocommit off: one commit at the end)."""
    with psycopg.connect(url) as conn:
        if timezone:
            conn.execute(f"SET TimeZone = '{timezone}'")
        for statement in statements:
            conn.execute(statement)


def _rows(url: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(query).fetchall()


def _json_rows(table: str, order: str = "id") -> str:
    return f"SELECT row_to_json(r)::text FROM {table} AS r ORDER BY {order}"


class RecordingStream:
    """A PostgresChangeStream that remembers what went through it: the events,
    the tables (and shapes) encoding was asked for, and rows decoded back."""

    def __init__(self, stream: PostgresChangeStream) -> None:
        self.stream = stream
        self.seen: list[ChangeEvent] = []
        self.requests: list[dict[TableRef, TableSchema]] = []
        self.decoded = 0

    def events(self, idle_timeout: float) -> Iterator[ChangeEvent | None]:
        for event in self.stream.events(idle_timeout):
            if event is not None:
                self.seen.append(event)
            yield event

    def ack(self, position: Checkpoint) -> None:
        self.stream.ack(position)

    def close(self) -> None:
        self.stream.close()

    @property
    def encoded_format(self) -> str:
        return self.stream.encoded_format

    def encode_rows(self, tables: Mapping[TableRef, TableSchema]) -> None:
        self.requests.append(dict(tables))
        self.stream.encode_rows(tables)

    def decode_row(self, table: TableRef, encoded: bytes) -> dict[str, Any]:
        self.decoded += 1
        return self.stream.decode_row(table, encoded)

    def encoded(self, name: str) -> list[ChangeBatch]:
        return [
            e for e in self.seen if isinstance(e, ChangeBatch) and _is_encoded(e) and e.table.ref.name == name
        ]

    def rows(self, name: str) -> list[ChangeBatch]:
        """The captured batches of row changes (not encoded rows) of table ``name``."""
        return [
            e
            for e in self.seen
            if isinstance(e, ChangeBatch) and not _is_encoded(e) and e.table.ref.name == name
        ]

    def changes(self, name: str) -> list[RowChange]:
        """The changes of table ``name`` not encoded, one by one."""
        return [c for b in self.rows(name) for c in row_changes(b)]


def _is_encoded(event: ChangeEvent | None) -> bool:
    return (
        isinstance(event, ChangeBatch) and event.changes is not None and ENCODED in event.changes.schema.names
    )


def _updates(captured: ChangeBatch) -> int:
    assert captured.changes is not None
    return captured.changes.column(OP).to_pylist().count(b"u")


def _keys(captured: ChangeBatch) -> list[tuple[Any, ...]]:
    assert captured.changes is not None
    columns = [captured.changes.column(k).to_pylist() for k in captured.table.primary_key]
    return list(zip(*columns, strict=True)) if columns else [()] * captured.num_rows


def _mappings(*rules: dict[str, Any]) -> TableMappings:
    rule = {
        "rule-type": "selection",
        "rule-id": "1",
        "rule-name": "all",
        "object-locator": {"schema-name": "public", "table-name": "%"},
        "rule-action": "include",
    }
    return TableMappings.parse({"rules": [rule, *rules]}, "test")


class Capture:
    """Capture of the named source tables into the target, in a thread."""

    def __init__(
        self, source_url: str, target_url: str, names: tuple[str, ...], rules: tuple[dict[str, Any], ...] = ()
    ) -> None:
        self.source_url, self.target_url = source_url, target_url
        self.source = PostgresChangeSource(EndpointConfig("src", "postgres", url=source_url))
        self.stream: RecordingStream | None = None
        self.applier: PostgresApplier | None = None
        self.thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.stop = threading.Event()
        # What change capture carries (as the task does): no generated columns.
        self.tables = [t.without_generated() for t in self.source.tables() if t.ref.name in names]
        assert sorted(t.ref.name for t in self.tables) == sorted(names)
        start = self.source.begin_capture(TASK, self.tables, export_snapshot=False)
        self.stream = RecordingStream(self.source.open_stream(TASK, self.tables, start.position))
        self.applier = PostgresApplier(EndpointConfig("dst", "postgres", url=target_url))
        mappings = _mappings(*rules)
        self.capture = ChangeCapture(
            task=TASK,
            stream=self.stream,
            applier=self.applier,
            mappings=mappings,
            tables={m.source.ref: CaptureTable.of(m) for m in mappings.select(self.tables)},
            start=start.position,
            stop=self.stop,
            flush_seconds=2.0,  # batches end at commits (the applier is idle), not on time
        )
        self.thread = threading.Thread(target=self._run, name="capture", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.capture.run()
        except BaseException as exc:
            self.error = exc

    def wait_equal(self, query: str) -> list[tuple[Any, ...]]:
        """Poll until the target gives what the source gives for ``query``."""
        expected = _rows(self.source_url, query)
        deadline = time.monotonic() + WAIT_S
        got: list[tuple[Any, ...]] | str = []
        while time.monotonic() < deadline:
            assert self.error is None, f"the capture failed: {self.error!r}"
            assert self.thread is not None and self.thread.is_alive(), "the capture ended"
            try:
                got = _rows(self.target_url, query)
            except psycopg.errors.UndefinedColumn as exc:  # an added column not there yet
                got = str(exc)
            if got == expected:
                return expected
            time.sleep(0.1)
        raise AssertionError(f"the target did not catch up in {WAIT_S}s:\n{got}\n!=\n{expected}")

    def finish(self) -> None:
        """Stop the capture (it applies what it holds first) and check it ended well."""
        self.stop.set()
        if self.thread is not None:
            self.thread.join(STOP_S)
            assert not self.thread.is_alive(), f"the capture did not stop within {STOP_S}s"
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(STOP_S)
        try:
            if self.stream is not None:
                self.stream.close()
            if self.applier is not None:
                self.applier.close()
            self.source.end_capture(TASK)
        finally:
            self.source.close()


@pytest.fixture
def dbs(pg_server: PostgresServer) -> tuple[str, str]:
    """A source and a target database on the private server."""
    return pg_server.url(pg_server.new_database("src")), pg_server.url(pg_server.new_database("dst"))


@pytest.fixture
def capture(dbs: tuple[str, str]) -> Iterator[Callable[..., Capture]]:
    started: list[Capture] = []

    def start(*names: str, rules: tuple[dict[str, Any], ...] = ()) -> Capture:
        started.append(Capture(*dbs, names, rules))
        return started[-1]

    yield start
    for one in started:
        one.close()


@pytest.fixture
def row_forms_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger=ROW_FORMS_LOG)
    return caplog


def _passed_through(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == ROW_FORMS_LOG and "pass to the target without conversion" in r.getMessage()
    ]


# --- PostgreSQL reads the lines -----------------------------------------------------


TRICKY = [
    "\\N",
    "\\.",
    "\\",
    "\t",
    "\n",
    "\r",
    "\\t",
    "\\\\N",
    "N",
    "",
    " ",
    "🚀",
    "\r\n",
    "ü",
    "\\x00ff",
    '"{,}"',
]


def _random_value(rng: random.Random) -> str | None:
    if rng.random() < 0.2:
        return None
    pieces = [rng.choice(TRICKY) if rng.random() < 0.5 else chr(rng.randint(1, 0x2FFF)) for _ in range(8)]
    return "".join(pieces[: rng.randint(0, 8)])


def test_postgres_reads_the_lines_back(pg_db: str) -> None:
    rng = random.Random(20240601)
    rows: list[list[str | None]] = [
        ["\\N", None, "a\tb"],
        [None, None, None],
        ["", "", ""],
        ["\\x00ff", "back\\slash\\", "cr\rlf\n"],
        ["välue 🚀", "\\\\t", "\t\n\r\\"],
    ]
    rows += [[_random_value(rng) for _ in range(3)] for _ in range(300)]
    lines = []
    for index, row in enumerate(rows):
        # Four columns; the first, the key, as four digits.
        payload = b"\x00\x04t\x00\x00\x00\x04" + f"{index:04d}".encode()
        for value in row:
            if value is None:
                payload += b"n"
            else:
                data = value.encode()
                payload += b"t" + len(data).to_bytes(4, "big") + data
        encoded = tuple_line(4, [(0, "id", int)], payload, 0, "utf-8")
        assert encoded is not None and encoded[1] == (index,)
        lines.append(encoded[0])
    with psycopg.connect(pg_db) as conn:
        conn.execute("CREATE TABLE lines (id int PRIMARY KEY, a text, b text, c text)")
        with conn.cursor() as cur, cur.copy("COPY lines (id, a, b, c) FROM STDIN") as copy:
            copy.write(b"".join(lines))
        back = conn.execute("SELECT a, b, c FROM lines ORDER BY id").fetchall()
    assert [list(r) for r in back] == rows


# --- capture between two databases --------------------------------------------------


def test_every_type_passes_through_unchanged(
    dbs: tuple[str, str], capture: Callable[..., Capture], row_forms_log: pytest.LogCaptureFixture
) -> None:
    source, target = dbs
    _execute(source, TYPES_DDL)
    _execute(target, TYPES_DDL)
    run = capture("typed")
    _execute(source, *TYPED_ROWS, timezone="Asia/Kolkata")  # the writer's zone must not matter
    # More than one chunk of encoded rows (ENCODED_CHUNK_ROWS) in one transaction.
    _execute(
        source,
        "INSERT INTO typed (id, i8, t, b, f8, d, iv, ta, jb)"
        " SELECT g, g::bigint * 1000000007, 'row ' || g || E'\\t\\\\N\\n',"
        " decode(lpad(to_hex(g), 8, '0'), 'hex'),"
        " g / 7.0, date '2000-01-01' + g, make_interval(secs => g / 3.0), ARRAY[g::text, NULL, E'\\\\'],"
        " jsonb_build_object('g', g, 's', E'\\t')"
        " FROM generate_series(100, 2599) AS g",
    )
    _execute(
        source,
        f"UPDATE typed SET t = {sql.Literal(TEXT + ' updated').as_string(None)}, f4 = '-0',"
        " ia = '{NULL}', b = '\\x5c4e'::bytea WHERE id = 1",
        "UPDATE typed SET nu = 'NaN', tstz = '-infinity', m = NULL WHERE id = 2",
        "UPDATE typed SET t = t || ' again' WHERE id BETWEEN 100 AND 149",
        "DELETE FROM typed WHERE id = 3 OR id BETWEEN 150 AND 199",
        "INSERT INTO typed (id, t) VALUES (3, 'back')",
    )
    expected = run.wait_equal(_json_rows("typed"))
    run.finish()
    assert len(expected) == 5 + 2500 - 50
    assert _rows(target, _json_rows("typed")) == expected
    # Each column as its text too (not only as JSON).
    columns = (
        "id, i2, i8, n12, nu, f4, f8, t, vc, ch, b, bo, d, tm, ts, tstz, iv, u, j, jb, ia, ta, m, ma, addr"
    )
    as_text = f"SELECT {', '.join(f'{c}::text' for c in columns.split(', '))} FROM typed ORDER BY id"
    assert _rows(target, as_text) == _rows(source, as_text)

    assert run.stream is not None
    encoded = run.stream.encoded("typed")
    assert sum(e.num_rows for e in encoded) >= 2505 + 4, "inserts and updates came encoded"
    assert sum(_updates(e) for e in encoded) >= 52
    assert len(encoded) >= 3 and max(e.num_rows for e in encoded) <= 1000
    assert all(len(_keys(e)) == e.num_rows for e in encoded)
    # Deletes still come as row changes, one at a time.
    assert {c.op.name for c in run.stream.changes("typed")} == {"DELETE"}
    assert all(b.one_at_a_time for b in run.stream.rows("typed"))
    assert _passed_through(row_forms_log) == [
        f"task {TASK}: 1 of 1 tables pass to the target without conversion"
    ]


def test_a_different_target_type_takes_the_values_path(
    dbs: tuple[str, str], capture: Callable[..., Capture], row_forms_log: pytest.LogCaptureFixture
) -> None:
    source, target = dbs
    _execute(
        source,
        "CREATE TABLE mism (id int PRIMARY KEY, qty integer, note text)",
        "CREATE TABLE same (id int PRIMARY KEY, qty integer, note text)",
        "CREATE TABLE loose (id int PRIMARY KEY, qty integer, note text)",
    )
    _execute(
        target,
        "CREATE TABLE mism (id int PRIMARY KEY, qty bigint, note text)",
        "CREATE TABLE same (id int PRIMARY KEY, qty integer, note text)",
        # Same types, another column order, no unique key (rows are replaced by delete and insert).
        "CREATE TABLE loose (note text, qty integer, id int)",
    )
    run = capture("mism", "same", "loose")
    for table in ("mism", "same", "loose"):
        _execute(
            source,
            f"INSERT INTO {table} SELECT g, g * 3, E'n\\t' || g FROM generate_series(1, 50) AS g",
            f"UPDATE {table} SET qty = -2147483648, note = NULL WHERE id = 7",
            f"DELETE FROM {table} WHERE id = 8",
        )
        _execute(source, f"UPDATE {table} SET qty = 2147483647 WHERE id BETWEEN 10 AND 12")
    for table in ("mism", "same", "loose"):
        run.wait_equal(f"SELECT id, qty::text, note FROM {table} ORDER BY id")
    run.finish()
    assert _rows(target, "SELECT id, qty, note FROM mism ORDER BY id") == _rows(
        source, "SELECT id, qty, note FROM mism ORDER BY id"
    )
    assert run.stream is not None
    assert [sorted(r.name for r in request) for request in run.stream.requests] == [["loose", "same"]]
    assert not run.stream.encoded("mism")
    assert len(run.stream.changes("mism")) == 50 + 1 + 1 + 3
    assert all(b.one_at_a_time for b in run.stream.rows("mism"))
    for table in ("same", "loose"):
        assert sum(e.num_rows for e in run.stream.encoded(table)) == 50 + 1 + 3
    assert _passed_through(row_forms_log) == [
        f"task {TASK}: 2 of 3 tables pass to the target without conversion"
    ]


def test_unchanged_toast_and_key_changes_on_encoded_rows_of_the_same_batch(
    dbs: tuple[str, str], capture: Callable[..., Capture]
) -> None:
    source, target = dbs
    ddl = "CREATE TABLE toasty (id int PRIMARY KEY, small text, big text)"
    before = "INSERT INTO toasty VALUES (4, 'old', repeat('before-capture ', 8000))"
    _execute(source, ddl, "ALTER TABLE toasty ALTER COLUMN big SET STORAGE EXTERNAL", before)
    _execute(target, ddl, before)
    pair = "CREATE TABLE pair (a int, b text, v text, PRIMARY KEY (b, a))"
    _execute(source, pair)
    _execute(target, pair)
    run = capture("toasty", "pair")
    big = {i: "".join(f"{i}:{n:06d}\t\\" for n in range(12_000)) for i in (1, 2, 3)}  # 120+ kB each
    _execute(
        source,
        *(
            f"INSERT INTO toasty VALUES ({i}, 's{i}', {sql.Literal(v).as_string(None)})"
            for i, v in big.items()
        ),
        "UPDATE toasty SET small = 'updated' WHERE id = 1",  # big unchanged: not sent
        "UPDATE toasty SET id = id + 1000 WHERE id = 2",  # a key change, big not sent
        "UPDATE toasty SET id = id + 1000, small = 'moved' WHERE id = 3",
        "UPDATE toasty SET small = 'updated' WHERE id = 4",  # a row the batch does not hold
        "INSERT INTO toasty VALUES (5, 'plain', 'short')",
        "UPDATE toasty SET id = 6 WHERE id = 5",
        "INSERT INTO pair VALUES (1, 'x', 'v1'), (2, 'y', 'v2'), (5, 'z', 'gone')",
        "UPDATE pair SET v = 'v1b' WHERE a = 1",
        "UPDATE pair SET a = 3 WHERE b = 'y'",  # the old key of a line the batch holds goes
        "DELETE FROM pair WHERE b = 'z'",
    )
    assert run.wait_equal(_json_rows("pair", "a")) == [
        ('{"a":1,"b":"x","v":"v1b"}',),
        ('{"a":3,"b":"y","v":"v2"}',),
    ]
    expected = run.wait_equal("SELECT id, small, md5(big), length(big) FROM toasty ORDER BY id")
    run.finish()
    assert [r[:2] for r in expected] == [
        (1, "updated"),
        (4, "updated"),
        (6, "plain"),
        (1002, "s2"),
        (1003, "moved"),
    ]
    assert _rows(target, "SELECT id, small, big FROM toasty ORDER BY id") == _rows(
        source, "SELECT id, small, big FROM toasty ORDER BY id"
    )
    assert run.stream is not None
    assert sum(e.num_rows for e in run.stream.encoded("toasty")) == 4  # the inserts
    assert sum(e.num_rows for e in run.stream.encoded("pair")) == 4
    assert all(b.one_at_a_time for b in run.stream.rows("toasty"))
    unchanged = [c for c in run.stream.changes("toasty") if c.unchanged]
    assert len(unchanged) == 4 and all(c.unchanged == {"big"} for c in unchanged)
    # The batch held rows 1, 2 and 3 as lines: their big values were decoded from them.
    assert run.stream.decoded >= 3


def test_lines_of_every_type_decoded_for_a_partial_update(
    dbs: tuple[str, str], capture: Callable[..., Capture]
) -> None:
    """A whole row the batch holds as a line, merged with a later update that
    left a TOASTed value unsent, goes to the target as values: every type."""
    source, target = dbs
    for url in dbs:
        _execute(url, TYPES_DDL, "ALTER TABLE typed ADD COLUMN big text")
    _execute(source, "ALTER TABLE typed ALTER COLUMN big SET STORAGE EXTERNAL")
    run = capture("typed")
    _execute(
        source,
        *TYPED_ROWS,
        "UPDATE typed SET big = repeat(id || E'\\t', 40000)",  # sent in full: lines
        "UPDATE typed SET i2 = coalesce(i2, 0) + 1",  # big not sent: the lines are decoded
        timezone="Asia/Kolkata",
    )
    expected = run.wait_equal(_json_rows("typed"))
    run.finish()
    assert len(expected) == 5
    assert _rows(target, "SELECT md5(big) FROM typed ORDER BY id") == _rows(
        source, "SELECT md5(big) FROM typed ORDER BY id"
    )
    assert run.stream is not None
    assert sum(e.num_rows for e in run.stream.encoded("typed")) == 10
    assert all(b.one_at_a_time for b in run.stream.rows("typed"))
    assert [c.unchanged for c in run.stream.changes("typed")] == [frozenset({"big"})] * 5
    assert run.stream.decoded == 5


def test_added_column_during_capture(dbs: tuple[str, str], capture: Callable[..., Capture]) -> None:
    source, target = dbs
    ddl = "CREATE TABLE grows (id int PRIMARY KEY, v text)"
    _execute(source, ddl)
    _execute(target, ddl)
    run = capture("grows")
    _execute(source, "INSERT INTO grows VALUES (1, 'a'), (2, 'b')")
    run.wait_equal(_json_rows("grows"))
    _execute(source, "ALTER TABLE grows ADD COLUMN n numeric(5,1), ADD COLUMN tags text[]")
    _execute(
        source,
        "INSERT INTO grows VALUES (3, 'c', 2.5, '{x,NULL}'), (4, E'd\\t', NULL, '{}')",
        "UPDATE grows SET n = 1.5 WHERE id = 1",
    )
    _execute(source, "INSERT INTO grows VALUES (5, 'e', -0.5, '{\"a b\"}')")
    run.wait_equal(_json_rows("grows"))
    _execute(source, "ALTER TABLE grows DROP COLUMN v")
    _execute(source, "INSERT INTO grows VALUES (6, 6.5, '{z}')", "UPDATE grows SET n = 0 WHERE id = 2")
    expected = run.wait_equal(_json_rows("grows"))
    run.finish()
    assert len(expected) == 6
    assert _rows(
        target,
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute"
        " WHERE attrelid = 'grows'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
    ) == [("id", "integer"), ("n", "numeric(5,1)"), ("tags", "text[]")]
    assert run.stream is not None
    seen = run.stream.seen
    definitions = [i for i, e in enumerate(seen) if isinstance(e, TableDefinition)]
    assert len(definitions) == 2
    spans = [seen[: definitions[0]], seen[definitions[0] : definitions[1]], seen[definitions[1] :]]
    encoded = [
        sum(e.num_rows for e in span if isinstance(e, ChangeBatch) and _is_encoded(e)) for span in spans
    ]
    assert encoded == [2, 4, 2], "rows of each new shape pass through too"
    shapes = [[c.name for c in r[TableRef("public", "grows")].columns] for r in run.stream.requests]
    assert shapes == [["id", "v"], ["id", "v", "n", "tags"], ["id", "n", "tags"]]


def test_generated_column(dbs: tuple[str, str], capture: Callable[..., Capture]) -> None:
    """pgoutput does not send generated columns: where the target computes
    them, change capture carries a table without them: lines hold the others,
    the target computes its own, and the relation's shape is no DDL."""
    source, target = dbs
    ddl = "CREATE TABLE gen (id int PRIMARY KEY, x int, g int GENERATED ALWAYS AS (x * 2) STORED, y text)"
    for url in dbs:
        _execute(url, ddl)
    changes = PostgresChangeSource(EndpointConfig(name="src", engine="postgres", url=source))
    try:
        [table] = [t for t in changes.tables() if t.ref.name == "gen"]
        assert [(c.name, c.generated) for c in table.columns] == [
            ("id", None),
            ("x", None),
            ("g", "(x * 2)"),
            ("y", None),
        ]
        assert table.without_generated().column_names == ["id", "x", "y"]
        warnings = changes.preflight([table])
    finally:
        changes.close()
    assert not any("generated column" in w for w in warnings), "a keyed table's are looked up if need be"
    run = capture("gen")
    _execute(source, "INSERT INTO gen (id, x, y) SELECT g, g, 'y' || g FROM generate_series(1, 20) AS g")
    _execute(source, "UPDATE gen SET x = -x WHERE id <= 5", "DELETE FROM gen WHERE id = 20")
    assert len(run.wait_equal("SELECT id, x, y FROM gen ORDER BY id")) == 19
    run.finish()
    columns = (
        "SELECT attname FROM pg_attribute"
        " WHERE attrelid = 'gen'::regclass AND attnum > 0 AND NOT attisdropped"
    )
    assert _rows(target, columns) == _rows(source, columns), "the target's generated column is kept"
    assert _rows(target, _json_rows("gen")) == _rows(source, _json_rows("gen"))
    assert run.stream is not None
    assert not [e for e in run.stream.seen if isinstance(e, TableDefinition)], "no DDL happened"
    assert sum(e.num_rows for e in run.stream.encoded("gen")) == 25


def test_table_without_primary_key_appends_every_row(
    dbs: tuple[str, str], capture: Callable[..., Capture]
) -> None:
    source, target = dbs
    ddl = "CREATE TABLE nokey (at int, msg text)"
    _execute(source, ddl)
    _execute(target, ddl)
    run = capture("nokey")
    _execute(source, "INSERT INTO nokey VALUES (1, 'dup'), (1, 'dup'), (NULL, NULL), (2, E'x\\ty')")
    _execute(source, "INSERT INTO nokey SELECT g % 10, 'bulk' FROM generate_series(1, 1500) AS g")
    _execute(source, "INSERT INTO nokey VALUES (1, 'dup')")
    query = "SELECT at, msg, count(*) FROM nokey GROUP BY at, msg ORDER BY at, msg"
    run.wait_equal(query)
    run.finish()
    assert _rows(target, query) == _rows(source, query)
    assert _rows(target, "SELECT count(*) FROM nokey") == [(1505,)]
    assert run.stream is not None
    assert sum(e.num_rows for e in run.stream.encoded("nokey")) == 1505
    assert all(k == () for e in run.stream.encoded("nokey") for k in _keys(e))


def test_replication_lost_in_the_middle_of_a_transaction(
    dbs: tuple[str, str], capture: Callable[..., Capture], caplog: pytest.LogCaptureFixture
) -> None:
    """The walsender ends while a large transaction's encoded rows stream (some
    already applied in partial batches): the stream reconnects, skips what it
    delivered and the target gets every row once (no key to hide duplicates)."""
    caplog.set_level(logging.INFO, logger="conveyor.connectors.postgres.capture")
    source = dbs[0]
    rows = 200_000
    for url in dbs:
        _execute(url, "CREATE TABLE stream (n int, s text)")
    run = capture("stream")
    _execute(source, f"INSERT INTO stream SELECT g, 's' || g FROM generate_series(1, {rows}) AS g")
    assert run.stream is not None
    deadline = time.monotonic() + WAIT_S
    while not run.stream.encoded("stream") and time.monotonic() < deadline:
        time.sleep(0.005)
    seen_at_loss = sum(e.num_rows for e in run.stream.encoded("stream"))
    assert 0 < seen_at_loss < rows, "the transaction was still streaming"
    with psycopg.connect(source, autocommit=True) as conn:
        ended = conn.execute(
            "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots"
            " WHERE database = current_database() AND active_pid IS NOT NULL"
        ).fetchall()
    assert ended == [(True,)]
    query = "SELECT count(*), count(DISTINCT n), sum(n), min(n), max(n) FROM stream"
    assert run.wait_equal(query) == [(rows, rows, rows * (rows + 1) // 2, 1, rows)]
    run.finish()
    assert sum(e.num_rows for e in run.stream.encoded("stream")) == rows
    assert any("reconnecting" in r.getMessage() for r in caplog.records)


# --- accepts_encoded directly -------------------------------------------------------


def test_accepts_encoded(dbs: tuple[str, str], pg_server: PostgresServer) -> None:
    source, target = dbs
    _execute(
        source,
        "CREATE TABLE exact (id int PRIMARY KEY, v varchar(20), n numeric(10,2))",
        "CREATE TABLE wider (id int PRIMARY KEY, v varchar(20))",
        "CREATE TABLE fewer (id int PRIMARY KEY, v text, w text)",
        "CREATE TABLE missing (id int PRIMARY KEY)",
    )
    _execute(
        target,
        "CREATE TABLE exact (extra text, n numeric(10,2), v varchar(20), id int PRIMARY KEY)",
        "CREATE TABLE wider (id int PRIMARY KEY, v varchar(30))",
        "CREATE TABLE fewer (id int PRIMARY KEY, v text)",
    )
    reader = PostgresSource(EndpointConfig("src", "postgres", url=source))
    try:
        tables = {t.ref.name: t for t in reader.tables()}
    finally:
        reader.close()
    applier = PostgresApplier(EndpointConfig("dst", "postgres", url=target))
    try:
        utf8 = encoded_format("utf-8")
        # Extra target columns and another column order do not matter.
        assert applier.accepts_encoded(tables["exact"], utf8)
        assert not applier.accepts_encoded(tables["exact"], encoded_format("latin-1"))
        assert not applier.accepts_encoded(tables["exact"], "some-other-format")
        assert not applier.accepts_encoded(tables["wider"], utf8)  # a type modifier differs
        assert not applier.accepts_encoded(tables["fewer"], utf8)
        assert not applier.accepts_encoded(tables["missing"], utf8)
    finally:
        applier.close()

    # A target database in another encoding takes the lines of its own encoding only.
    latin1 = f"latin1_{random.randrange(10**9)}"
    with psycopg.connect(pg_server.url(), autocommit=True) as conn:
        conn.execute(
            f"CREATE DATABASE {latin1} ENCODING 'LATIN1' TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'"
        )
    _execute(pg_server.url(latin1), "CREATE TABLE exact (id int PRIMARY KEY, v varchar(20), n numeric(10,2))")
    applier = PostgresApplier(EndpointConfig("dst", "postgres", url=pg_server.url(latin1)))
    try:
        assert not applier.accepts_encoded(tables["exact"], utf8)
        assert applier.accepts_encoded(tables["exact"], encoded_format("iso8859-1"))
    finally:
        applier.close()


def test_a_removed_column_is_not_passed_through(
    dbs: tuple[str, str], capture: Callable[..., Capture]
) -> None:
    """A remove-column rule: the target lacks a source column, so rows go as values."""
    source, target = dbs
    _execute(source, "CREATE TABLE t (id int PRIMARY KEY, v text, secret text)")
    _execute(target, "CREATE TABLE t (id int PRIMARY KEY, v text)")
    remove = {
        "rule-type": "transformation",
        "rule-id": "2",
        "rule-name": "drop-secret",
        "rule-target": "column",
        "object-locator": {"schema-name": "public", "table-name": "t", "column-name": "secret"},
        "rule-action": "remove-column",
    }
    run = capture("t", rules=(remove,))
    _execute(source, "INSERT INTO t VALUES (1, 'x', 'hidden'), (2, 'y', 'hidden')", "UPDATE t SET v = 'z'")
    assert run.wait_equal("SELECT id, v FROM t ORDER BY id") == [(1, "z"), (2, "z")]
    run.finish()
    assert run.stream is not None and run.stream.encoded("t") == []
    assert all(t.suspended is None for t in run.capture.tables.values())


def test_a_new_primary_key_keys_every_change_alike(
    dbs: tuple[str, str], capture: Callable[..., Capture]
) -> None:
    """After the source's primary key changes, encoded rows and deletes are keyed by
    the same (new) key: an update then a delete of a row in one batch leaves no row."""
    source, target = dbs
    for url in dbs:
        _execute(url, "CREATE TABLE t (id int PRIMARY KEY, b int NOT NULL, v text)")
        _execute(url, "INSERT INTO t VALUES (1, 10, 'a'), (2, 20, 'b')")
    run = capture("t")
    _execute(source, "ALTER TABLE t DROP CONSTRAINT t_pkey", "ALTER TABLE t ADD PRIMARY KEY (id, b)")
    _execute(target, "ALTER TABLE t DROP CONSTRAINT t_pkey", "ALTER TABLE t ADD PRIMARY KEY (id, b)")
    _execute(source, "UPDATE t SET v = 'changed' WHERE id = 2")
    run.wait_equal("SELECT * FROM t ORDER BY id")
    _execute(source, "UPDATE t SET v = 'new' WHERE id = 1", "DELETE FROM t WHERE id = 1")
    assert run.wait_equal("SELECT * FROM t ORDER BY id") == [(2, 20, "changed")]
    run.finish()
    assert all(t.suspended is None for t in run.capture.tables.values())
    assert run.stream is not None
    assert run.stream.requests[-1][TableRef("public", "t")].primary_key == ("id", "b"), "asked again"
    assert [k for e in run.stream.encoded("t") for k in _keys(e)][-2:] == [(2, 20), (1, 10)]
