"""The nats target end to end: a PostgreSQL source's full load (``op: r``) and
changes published to a private JetStream, through a stack file and the CLI.
The worker is SIGKILLed at crash points (in the full load, inside a large
transaction, between publishing and storing the checkpoint, between the
checkpoint and the source acknowledgement); a consumer then reads each change
exactly once, and the envelopes replayed over the snapshot equal the source."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import nats
import psycopg
import pytest

from conveyor.connectors.arrow_rows import change_batch
from conveyor.connectors.base import EndpointConfig
from conveyor.connectors.changes import LoggedChange, RefusedTables
from conveyor.connectors.registry import open_applier
from conveyor.core.batch import Checkpoint
from conveyor.core.faults import ENV as FAULT_ENV
from conveyor.core.schema import Column, TableRef, TableSchema
from conveyor.core.types import Kind, simple
from support import tasks as support_tasks
from support.cli import conveyor, worker_log
from support.mariadb import mariadb_connect, run
from support.nats_server import NatsServer
from support.servers import PostgresServer, free_port

pytestmark = pytest.mark.integration

DEADLINE_S = 60.0
STREAM, PREFIX = "CV", "cv"
SUBJECT = f"{PREFIX}.public.items"


@pytest.fixture(scope="module")
def nats_server() -> Iterator[NatsServer]:
    server = NatsServer()
    try:
        server.start()
        yield server
    finally:
        server.close()


def wait_until(check: Callable[[], bool], what: str, debug: Callable[[], Any] | None = None) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {DEADLINE_S} s waiting for {what}: {debug() if debug else ''}")


# --- reading the stream as a consumer would -------------------------------------------


def stream_size(url: str, stream: str) -> int:
    """How many messages ``stream`` holds."""

    async def count() -> int:
        nc = await nats.connect(url)
        try:
            return int((await nc.jetstream().stream_info(stream)).state.messages)
        finally:
            await nc.close()

    return asyncio.run(count())


def read_stream(
    url: str, stream: str = STREAM, prefix: str = PREFIX
) -> list[tuple[str, str, dict[str, Any]]]:
    """Every message of the stream, in order: (message ID, subject, envelope),
    through a JetStream pull consumer."""

    async def read() -> list[tuple[str, str, dict[str, Any]]]:
        nc = await nats.connect(url)
        try:
            js = nc.jetstream()
            total = (await js.stream_info(stream)).state.messages
            sub = await js.pull_subscribe(f"{prefix}.>", stream=stream)
            out: list[tuple[str, str, dict[str, Any]]] = []
            for _ in range(10_000):
                if len(out) >= total:
                    break
                for msg in await sub.fetch(min(500, total - len(out)), timeout=5):
                    out.append((msg.headers["Nats-Msg-Id"], msg.subject, json.loads(msg.data)))
                    await msg.ack()
            await sub.unsubscribe()
            return out
        finally:
            await nc.close()

    return asyncio.run(read())


def fold(messages: list[tuple[str, str, dict[str, Any]]]) -> dict[int, dict[str, Any]]:
    """The table a consumer builds from the envelopes: the last load's ``r``
    records, then each change applied in order. Every change's ``before`` must
    be the row as the consumer holds it (REPLICA IDENTITY FULL on the source),
    so a change read twice, or one missed, fails here."""
    rows: dict[int, dict[str, Any]] = {}
    load = None
    for _, subject, env in messages:
        if subject != SUBJECT:
            continue
        op, before, after = env["op"], env["before"], env["after"]
        if op == "r":
            if env["source"]["position"]["load"] != load:  # a load started again: a new snapshot
                load, rows = env["source"]["position"]["load"], {}
            assert before is None and env["source"]["snapshot"] == "true"
            rows[after["id"]] = after
            continue
        assert (
            env["source"]["snapshot"] == "false" and env["source"]["db"] and env["source"]["task"] == "sync"
        )
        if op == "c":
            assert before is None and after["id"] not in rows, env
            rows[after["id"]] = after
        elif op == "u":
            assert rows.get(before["id"]) == before, (env, rows.get(before["id"]))
            del rows[before["id"]]
            rows[after["id"]] = after
        elif op == "d":
            assert after is None and rows.get(before["id"]) == before, (env, rows.get(before["id"]))
            del rows[before["id"]]
        else:
            raise AssertionError(f"unexpected op {op!r}")
    return rows


def source_rows(url: str) -> dict[int, dict[str, Any]]:
    """The source's rows as the envelopes must spell them (docs/nats.md)."""

    def spell(value: Any) -> Any:
        if isinstance(value, Decimal):
            return format(value, "f")
        if isinstance(value, datetime):
            return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
        if isinstance(value, bytes):
            return base64.b64encode(value).decode()
        return value

    with psycopg.connect(url) as conn:
        cur = conn.execute("SELECT id, name, counter, note, amount, at, blob FROM items ORDER BY id")
        names = [d.name for d in cur.description or ()]
        return {row[0]: {n: spell(v) for n, v in zip(names, row, strict=True)} for row in cur.fetchall()}


# --- the source and the task ----------------------------------------------------------


@pytest.fixture
def source(pg_server: PostgresServer) -> str:
    url = pg_server.url(pg_server.new_database("natssrc"))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE items (id bigint PRIMARY KEY, name text, counter integer NOT NULL, note text,"
            " amount numeric(12,2), at timestamptz, blob bytea)"
        )
        conn.execute("ALTER TABLE items REPLICA IDENTITY FULL")
        conn.execute(
            "INSERT INTO items SELECT g, 'item ' || g, 0, repeat('x', 10), g * 1.25,"
            " '2024-01-01 00:00:00+00'::timestamptz + g * interval '1 second', '\\x00ff'::bytea"
            " FROM generate_series(1, 1000) g"
        )
    return url


def stack_file(path: Path, source: str, nats_url: str) -> Path:
    document = {
        "endpoints": {
            "src": {"engine": "postgres", "url": source},
            "bus": {
                "engine": "nats",
                "url": nats_url,
                "settings": {"stream": STREAM, "subject_prefix": PREFIX, "duplicate_window_seconds": 900},
            },
        },
        "tasks": {
            "sync": {
                "source": "src",
                "target": "bus",
                "migration_type": "full-load-and-cdc",
                "settings": {
                    "FullLoadSettings": {"CommitRate": 300},
                    "ChangeProcessingTuning": {"BatchSplitSize": 200},
                },
            }
        },
    }
    path.write_text(json.dumps(document))
    return path


class Writer:
    """Inserts, updates and deletes in small transactions until told to stop."""

    def __init__(self, url: str) -> None:
        self.url, self.until, self.error = url, threading.Event(), None
        self._rng = __import__("random").Random(11)
        self._live, self._next = list(range(1, 1001)), 1001
        self.operations = 0

    def run(self) -> None:
        try:
            with psycopg.connect(self.url, autocommit=True) as conn:
                while not self.until.is_set() and self.operations < 50_000:
                    with conn.transaction():
                        for _ in range(self._rng.randint(1, 10)):
                            self._one(conn)
                    time.sleep(0.005)
        except BaseException as exc:  # reported by the test
            self.error = exc

    def _one(self, conn: psycopg.Connection[Any]) -> None:
        roll = self._rng.random()
        self.operations += 1
        if roll < 0.4 or not self._live:
            conn.execute(
                "INSERT INTO items VALUES (%s, %s, 0, NULL, %s, now(), %s)",
                (self._next, f"n{self._next}", Decimal("0.01") * self._next, bytes([self._next % 256])),
            )
            self._live.append(self._next)
            self._next += 1
        elif roll < 0.85:
            key = self._rng.choice(self._live)
            conn.execute(
                "UPDATE items SET counter = counter + 1, name = %s, amount = amount + 0.5 WHERE id = %s",
                (f"u{self.operations}", key),
            )
        else:
            key = self._live.pop(self._rng.randrange(len(self._live)))
            conn.execute("DELETE FROM items WHERE id = %s", (key,))


CRASH_POINTS = [
    "full-load-batch:1",  # in the full load: it starts over, from a new snapshot (a new load ID)
    "nats-after-publish:2",  # published, checkpoint not stored: the batch is published again
    "capture-after-partial-apply:1",  # a large transaction, part of it published
    "capture-after-apply:2",  # checkpoint stored, source not acknowledged
]


def described(home: Path) -> dict[str, Any]:
    """`conveyor tasks describe sync --json`, read in this process (it is polled)."""
    return support_tasks.described(home, "sync")


def kill_worker(home: Path) -> None:
    pid = described(home).get("pid")
    if pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def test_full_load_and_changes_reach_a_consumer_exactly_once_across_sigkills(
    source: str, nats_server: NatsServer, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    stack = stack_file(tmp_path / "stack.json", source, nats_server.url)
    applied = conveyor(home, "apply", str(stack))
    assert applied.returncode == 0, applied.stderr
    writer = Writer(source)
    thread = threading.Thread(target=writer.run)
    thread.start()
    try:
        for index, point in enumerate(CRASH_POINTS):
            if point.startswith("capture-after-partial"):
                with psycopg.connect(source) as conn:  # one transaction of several BatchSplitSizes
                    conn.execute(
                        "INSERT INTO items (id, name, counter) "
                        "SELECT g, 'bulk' || g, 0 FROM generate_series(1000001, 1001500) AS g"
                    )
                    conn.execute("UPDATE items SET counter = counter + 1 WHERE id > 1000000")
            started = conveyor(
                home, "tasks", "start" if index == 0 else "resume", "sync", env={FAULT_ENV: point}
            )
            assert started.returncode == 0, started.stderr
            wait_until(
                lambda: described(home)["status"] == "failed",
                f"the worker to die at {point}",
                debug=lambda: (writer.error, described(home)),
            )
            assert "died" in described(home)["last_error"], worker_log(home, "sync")[-4000:]
        writer.until.set()
        thread.join(timeout=DEADLINE_S)
        assert writer.error is None
        assert conveyor(home, "tasks", "resume", "sync").returncode == 0
        expected = source_rows(source)
        wait_until(
            lambda: fold(read_stream(nats_server.url)) == expected,
            "the folded stream to equal the source",
            debug=lambda: len(fold(read_stream(nats_server.url))),
        )
    finally:
        writer.until.set()
        thread.join(timeout=DEADLINE_S)
        conveyor(home, "tasks", "stop", "sync")
        with contextlib.suppress(AssertionError):
            wait_until(lambda: described(home)["status"] == "stopped", "the task to stop")
        kill_worker(home)
    messages = read_stream(nats_server.url)
    changes = [(mid, env) for mid, subject, env in messages if subject == SUBJECT and env["op"] != "r"]
    ids = [mid for mid, _ in changes]
    assert len(ids) == len(set(ids)), "a change was published twice"
    where = [
        (json.dumps(env["source"]["position"], sort_keys=True), env["source"]["index"]) for _, env in changes
    ]
    assert len(where) == len(set(where)), "two envelopes for one source change"
    # every change the writer and the bulk transaction made, once: at least as
    # many changes as the writer made after the (last) snapshot
    assert len(changes) >= 1500 * 2 and writer.operations > 0
    ops = {env["op"] for _, env in changes}
    assert ops == {"c", "u", "d"}
    assert any(env["source"]["ts_ms"] for _, env in changes)  # the source's commit times
    snapshot = [env for _, subject, env in messages if subject == SUBJECT and env["op"] == "r"]
    assert len(snapshot) >= 1000 and all(env["source"]["ts_ms"] is None for env in snapshot)
    # the replays after the kills did publish again, and the stream dropped them
    assert "(a replay): deduplicated" in worker_log(home, "sync")


def test_values_the_encoding_cannot_carry_are_refused_before_anything_is_published(
    nats_server: NatsServer,
) -> None:
    config = EndpointConfig(
        "bus", "nats", url=nats_server.url, options={"stream": "REFUSE", "subject_prefix": "refuse"}
    )
    applier = open_applier(config)
    table = TableSchema(
        TableRef("public", "t"),
        (Column("id", simple(Kind.INT64)), Column("v", simple(Kind.TEXT))),
        primary_key=("id",),
    )
    good = TableSchema(TableRef("public", "ok"), (Column("id", simple(Kind.INT64)),), primary_key=("id",))
    at = Checkpoint("postgres", {"lsn": "0/10"})
    bad_log = [LoggedChange("c", None, {"id": 1, "v": "lone \udc80 surrogate"}, at, 0)]
    good_log = [LoggedChange("c", None, {"id": 1}, at, 1)]
    try:
        with pytest.raises(RefusedTables) as refused:
            applier.apply_changes(
                "t", [change_batch(table, log=bad_log), change_batch(good, log=good_log)], at
            )
        assert list(refused.value.reasons) == [TableRef("public", "t")]
        assert "surrogate" in refused.value.reasons[TableRef("public", "t")]
        assert applier.read_checkpoint("t") is None  # nothing stored, nothing published

        assert stream_size(nats_server.url, "REFUSE") == 0
        applier.apply_changes("t", [change_batch(good, log=good_log)], at)
        applier.apply_changes("t", [change_batch(good, log=good_log)], at)  # a replay: deduplicated
        assert stream_size(nats_server.url, "REFUSE") == 1
        assert applier.read_checkpoint("t") == at
    finally:
        applier.close()


def test_endpoints_test_connects_and_checks_an_existing_stream(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    async def small_stream() -> None:
        nc = await nats.connect(nats_server.url)
        try:
            await nc.jetstream().add_stream(name="SMALL", subjects=["small.>"], duplicate_window=60)
        finally:
            await nc.close()

    asyncio.run(small_stream())
    closed = f"nats://127.0.0.1:{free_port()}"  # nothing listens there
    endpoints = {
        "good": {
            "engine": "nats",
            "url": nats_server.url,
            "settings": {"stream": "GOOD", "subject_prefix": "g"},
        },
        "small": {
            "engine": "nats",
            "url": nats_server.url,
            "settings": {"stream": "SMALL", "subject_prefix": "small"},
        },
        "other": {
            "engine": "nats",
            "url": nats_server.url,
            "settings": {"stream": "SMALL", "subject_prefix": "x"},
        },
        "down": {"engine": "nats", "url": closed, "settings": {"connect_timeout_seconds": 1}},
    }
    stack = tmp_path / "stack.json"
    stack.write_text(json.dumps({"endpoints": endpoints}))
    home = tmp_path / "home"
    assert conveyor(home, "apply", str(stack)).returncode == 0

    def tested(name: str) -> dict[str, Any]:
        result = conveyor(home, "endpoints", "test", name, "--json")
        document: dict[str, Any] = json.loads(result.stdout)
        assert (result.returncode == 0) == (document["status"] == "successful")
        return document

    assert tested("good")["version"].startswith("NATS 2.")
    assert "deduplicates over 60 s" in tested("small")["error"]
    assert "not 'x.>'" in tested("other")["error"]
    assert "cannot connect to NATS" in tested("down")["error"]


def _maria(url: str, *statements: str) -> None:
    """``statements`` in one MariaDB transaction."""
    conn = mariadb_connect(url)
    try:
        run(conn, *statements)
        conn.commit()
    finally:
        conn.close()


def test_a_mariadb_sources_old_rows_are_published_whole(
    mariadb_db: str, nats_server: NatsServer, tmp_path: Path
) -> None:
    """A full binlog row image carries the whole old row: an UPDATE's before
    and a DELETE's are it."""
    _maria(
        mariadb_db,
        "CREATE TABLE items (id int PRIMARY KEY, name varchar(20), note text)",
        "INSERT INTO items VALUES (1, 'one', 'a'), (2, 'two', 'b')",
    )
    schema = mariadb_db.rsplit("/", 1)[1]
    stream, prefix = "CVMARIA", "cvmaria"  # a stream of its own (the others' keep their settings)
    subject = f"{prefix}.{schema}.items"
    home = tmp_path / "home"
    stack = tmp_path / "stack.json"
    stack.write_text(
        json.dumps(
            {
                "endpoints": {
                    "src": {"engine": "mysql", "url": mariadb_db},
                    "bus": {
                        "engine": "nats",
                        "url": nats_server.url,
                        "settings": {"stream": stream, "subject_prefix": prefix},
                    },
                },
                "tasks": {"sync": {"source": "src", "target": "bus", "migration_type": "full-load-and-cdc"}},
            }
        )
    )
    assert conveyor(home, "apply", str(stack)).returncode == 0

    def envelopes() -> list[dict[str, Any]]:
        try:
            return [env for _, s, env in read_stream(nats_server.url, stream, prefix) if s == subject]
        except nats.js.errors.NotFoundError:  # the task has not made the stream yet
            return []

    started = conveyor(home, "tasks", "start", "sync")
    assert started.returncode == 0, started.stderr
    try:
        wait_until(lambda: len(envelopes()) == 2, "the full load", envelopes)  # changes after it are captured
        _maria(mariadb_db, "UPDATE items SET name = 'uno' WHERE id = 1", "DELETE FROM items WHERE id = 2")
        wait_until(lambda: len(envelopes()) >= 4, "the changes", envelopes)
    finally:
        conveyor(home, "tasks", "stop", "sync")
        with contextlib.suppress(AssertionError):
            wait_until(lambda: described(home)["status"] == "stopped", "the task to stop")
        kill_worker(home)
    changes = [(env["op"], env["before"], env["after"]) for env in envelopes() if env["op"] != "r"]
    assert changes == [
        ("u", {"id": 1, "name": "one", "note": "a"}, {"id": 1, "name": "uno", "note": "a"}),
        ("d", {"id": 2, "name": "two", "note": "b"}, None),
    ]


def test_publishing_keeps_at_most_max_in_flight_unacknowledged_and_times_out_on_a_stalled_server(
    nats_server: NatsServer,
) -> None:
    """More messages than ``max_in_flight`` all reach the stream (each wait
    for an acknowledgement bounded); a server that stops acknowledging makes
    publishing fail as a transient error within the publish timeout, not hang."""
    from conveyor.connectors.nats.client import NatsLink
    from conveyor.connectors.nats.envelope import Message
    from conveyor.connectors.nats.settings import nats_settings
    from conveyor.core.errors import TransientError

    options = {"stream": "INFLIGHT", "subject_prefix": "inflight", "max_in_flight": 2}
    settings = nats_settings(
        EndpointConfig("bus", "nats", url=nats_server.url, options={**options, "publish_timeout_seconds": 2})
    )
    link = NatsLink(settings)
    process = nats_server.process
    assert process is not None
    try:
        link.ensure_stream()
        messages = [Message("inflight.t", f"m{i}".encode(), f"id-{i}") for i in range(25)]
        assert link.publish(messages) == 0
        assert link.publish(messages) == 25  # the same IDs again: all deduplicated

        assert stream_size(nats_server.url, "INFLIGHT") == 25
        process.send_signal(signal.SIGSTOP)
        try:
            began = time.monotonic()
            more = [Message("inflight.t", b"late", f"late-{i}") for i in range(5)]
            with pytest.raises(TransientError, match="did not acknowledge"):
                link.publish(more)
            assert time.monotonic() - began < 10
        finally:
            process.send_signal(signal.SIGCONT)
    finally:
        link.close()
