"""Change-capture benchmark: Conveyor's CDC against ``pg_recvlogical``.

A private PostgreSQL server (tests/support/servers.py, loopback only) holds a
source database and a target database; ``orders`` (BENCHMARKS.md's shape,
bench/data.py) has ``--updates`` rows in both (the target's loaded once by
Conveyor's full load, bench/run_one.py). Cases:

  pg-pg       Each round creates three fresh pgoutput slots on the source
              *before* generating the round's changes, then makes
              ``--updates`` single-row UPDATEs (every row once, so no key
              repeats inside a batch) in 1,000-row transactions. The three
              slots therefore hold exactly the same WAL; each is drained once:
                reference  pg_recvlogical --endpos (pgoutput, protocol 1) > /dev/null
                read       Conveyor's PostgresChangeStream alone, as the e2e run
                           reads (rows passed through as COPY lines, see
                           docs/architecture.md), nothing applied (no acknowledgement)
                e2e        Conveyor's capture loop (ChangeCapture: stream, batch,
                           reduce, PostgresApplier into the target, checkpoint,
                           acknowledge) until the target holds every change
              The order alternates between rounds (ref, read, e2e; then
              e2e, read, ref ...) so neither side always reads a warm cache.
              Ratios are rates: reference median s / Conveyor median s
              (targets: e2e >= 0.9x, read >= 1.0x).
  latency     A paced writer inserts rows into ``lat`` at ``--rate`` changes/s
              (10-row transactions, absolute schedule) for
              ``--latency-seconds`` while Conveyor's capture loop runs (the
              writer's session has synchronous_commit on: the private server's
              default, off, delays the walsender by up to wal_writer_delay).
              Latency of a change = commit time of the target transaction
              that made it visible minus the source transaction's commit time,
              both read afterwards as ``pg_xact_commit_timestamp(xmin)``
              (track_commit_timestamp is on; source and target share one
              server, so one clock). Reports p50/p99 (target p99 < 1 s).
  mariadb-pg  The same ``--updates`` single-row UPDATEs in 1,000-row
              transactions on MariaDB (row binlog), applied into PostgreSQL
              by Conveyor's capture loop, against mariadb-binlog --raw draining the same binlog.
              With ``--interleave``, each UPDATE is followed by an upsert of
              ``order_notes`` in the same transaction (two tables written in
              turn: twice the changes).

``--toast`` (pg-pg) gives ``orders`` a ``doc`` column of 2,500 bytes per row,
stored out of line (STORAGE EXTERNAL), which the round's UPDATEs leave as it
is: PostgreSQL does not send it, so every change is a partial UPDATE; each
e2e run is also checked on ``count(doc)`` and ``sum(length(doc))``.

``--mapping`` (pg-pg) runs the e2e case with a mapping as users write them
(``MAPPING_RULES``): a source filter every row passes, customer_id changed to
int8, note's digits masked and an ``op`` column added ($AR_H_OPERATION), so
every change goes through each; each e2e run is also checked on every updated
row saying UPDATE and no note holding a digit. With ``--lake``, the filter
goes with a change log (the change files are checked the same way).

``--nats`` (pg-pg) makes the e2e target a private NATS JetStream (a stream
per run: the same changes published twice would be deduplicated): every
change an envelope with its old row (REPLICA IDENTITY FULL on ``orders``);
each e2e run is checked on the stream's envelope count and the sum of their
amounts.

Conveyor runs in a child process of its own (``bench/cdc.py child ...``), as in
bench/full_load.py, so its peak RSS is its own; its time is measured inside the
child from opening the stream until the batch holding the last change is
committed on the target (the reader: until the last change is decoded).
Every e2e run is checked: the target's ``count(*)`` and ``sum(amount)`` equal
the source's.

    .venv/bin/python bench/cdc.py --updates 100000 --rounds 3
    .venv/bin/python bench/cdc.py --quick            # CI-sized
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
if str(REPO / "tests") not in sys.path:
    sys.path.insert(0, str(REPO / "tests"))

import psycopg  # noqa: E402
import pymysql  # noqa: E402
from psycopg import sql  # noqa: E402

from bench import data  # noqa: E402
from bench.common import BenchFailure, Child, finish_child, log, num, render_table, start_child  # noqa: E402
from bench.full_load import psql_env  # noqa: E402
from support.servers import MariaDBServer, PostgresServer  # noqa: E402

CASES = ("pg-pg", "latency", "mariadb-pg")
RESULTS_DIR = REPO / "bench" / "results"
PG_SOURCE_DB = "bench_src"
PG_TARGET_DB = "bench_dst"
MARIADB_DB = "bench_src"
PUBLICATION = "bench_pub"
TXN_ROWS = 1_000
LATENCY_TXN_ROWS = 10
# Rate ratios to the reference (reference seconds / Conveyor seconds): at least.
RATIO_TARGETS = {"pg-pg e2e": 0.9, "pg-pg read": 1.0, "mariadb-pg e2e": 0.5}
P99_TARGET_S = 0.1  # issue 17: p99 < 100 ms at 2k changes/s

PG_UPDATES = """
CREATE OR REPLACE PROCEDURE bench_updates(n bigint, txn int) LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1..n LOOP
        UPDATE orders SET amount = amount + 1 WHERE id = i;
        IF i % txn = 0 THEN
            COMMIT;
        END IF;
    END LOOP;
    COMMIT;
END
$$
"""


def _mariadb_updates(also: str = "") -> str:
    """The procedure writing ``n`` single-row UPDATEs in transactions of
    ``txn``; ``also``, a statement after each (of row ``i``)."""
    return f"""
CREATE OR REPLACE PROCEDURE bench_updates(n BIGINT, txn INT)
BEGIN
    DECLARE i BIGINT DEFAULT 1;
    START TRANSACTION;
    WHILE i <= n DO
        UPDATE orders SET amount = amount + 1 WHERE id = i;
        {also}
        IF i % txn = 0 THEN
            COMMIT;
            START TRANSACTION;
        END IF;
        SET i = i + 1;
    END WHILE;
    COMMIT;
END
"""


MARIADB_UPDATES = _mariadb_updates()

# --interleave: each order's UPDATE is followed by a write to another table in
# the same transaction (an order, its note, the next order ...), as an
# application writing a parent and its child rows in turn does.
NOTES_DDL = "CREATE TABLE order_notes (id bigint PRIMARY KEY, amount decimal(12,2) NOT NULL)"
MARIADB_INTERLEAVED = _mariadb_updates(
    "INSERT INTO order_notes VALUES (i, 1) ON DUPLICATE KEY UPDATE amount = amount + 1;"
)

LAT_DDL = "CREATE TABLE IF NOT EXISTS lat (id bigint PRIMARY KEY, note text NOT NULL)"


# --- results -----------------------------------------------------------------------


@dataclass
class ChildRun:
    seconds: float  # inside the child: stream opened to last change on the target (or decoded)
    process_seconds: float
    peak_rss_mb: float
    changes: int
    cpu_seconds: float = 0.0  # the child's user + system CPU


@dataclass
class ThroughputResult:
    case: str
    changes: int
    reference: str | None
    reference_runs: list[float] = field(default_factory=list)
    conveyor_runs: list[ChildRun] = field(default_factory=list)

    @property
    def reference_median(self) -> float | None:
        return statistics.median(self.reference_runs) if self.reference_runs else None

    @property
    def conveyor_median(self) -> float | None:
        return statistics.median(r.seconds for r in self.conveyor_runs) if self.conveyor_runs else None

    @property
    def rate_ratio(self) -> float | None:
        ref, conv = self.reference_median, self.conveyor_median
        return ref / conv if ref and conv else None

    @property
    def reference_rate(self) -> float | None:
        ref = self.reference_median
        return self.changes / ref if ref else None

    @property
    def conveyor_rate(self) -> float | None:
        conv = self.conveyor_median
        return self.changes / conv if conv else None

    @property
    def peak_rss_mb(self) -> float | None:
        return max(r.peak_rss_mb for r in self.conveyor_runs) if self.conveyor_runs else None

    def verdict(self) -> str:
        target = RATIO_TARGETS.get(self.case)
        if target is None or self.rate_ratio is None:
            return ""
        return "ok" if self.rate_ratio >= target else f"below {target}x"

    def as_dict(self) -> dict[str, Any]:
        return {
            "case": self.case,
            "changes": self.changes,
            "reference": self.reference,
            "reference_runs_s": self.reference_runs,
            "conveyor_runs": [asdict(r) for r in self.conveyor_runs],
            "reference_median_s": self.reference_median,
            "conveyor_median_s": self.conveyor_median,
            "reference_changes_per_s": self.reference_rate,
            "conveyor_changes_per_s": self.conveyor_rate,
            "rate_ratio": self.rate_ratio,
            "rate_ratio_target": RATIO_TARGETS.get(self.case),
            "peak_rss_mb": self.peak_rss_mb,
            "verdict": self.verdict(),
        }


@dataclass
class LatencyRound:
    changes: int
    achieved_rate: float
    p50_s: float
    p99_s: float
    max_s: float
    peak_rss_mb: float


@dataclass
class LatencyResult:
    rate: float
    seconds: float
    rounds: list[LatencyRound] = field(default_factory=list)

    @property
    def p50(self) -> float | None:
        return statistics.median(r.p50_s for r in self.rounds) if self.rounds else None

    @property
    def p99(self) -> float | None:
        return statistics.median(r.p99_s for r in self.rounds) if self.rounds else None

    def verdict(self) -> str:
        if self.p99 is None:
            return ""
        return "ok" if self.p99 < P99_TARGET_S else f"p99 >= {P99_TARGET_S * 1000:.0f} ms"

    def as_dict(self) -> dict[str, Any]:
        return {
            "case": "latency",
            "rate": self.rate,
            "seconds": self.seconds,
            "rounds": [asdict(r) for r in self.rounds],
            "p50_median_s": self.p50,
            "p99_median_s": self.p99,
            "p99_target_s": P99_TARGET_S,
            "verdict": self.verdict(),
        }


# --- the child: Conveyor's side ------------------------------------------------------


def _child(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench/cdc.py child")
    parser.add_argument("mode", choices=("e2e", "read"))
    parser.add_argument("--engine", choices=("postgres", "mysql"), default="postgres")
    parser.add_argument("--source", required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--schema", default="public")
    parser.add_argument("--slot", help="PostgreSQL: the slot to read")
    parser.add_argument("--start", required=True, help="JSON of the start position")
    parser.add_argument("--changes", type=int, required=True)
    parser.add_argument("--result", type=Path, required=True)
    parser.add_argument("--ready", type=Path, help="touched once the stream is open")
    parser.add_argument("--profile", type=Path)
    parser.add_argument("--values", action="store_true", help="no encoded rows: the values path")
    parser.add_argument(
        "--lake", action="store_true", help="--target is a lake folder (Parquet change files)"
    )
    parser.add_argument("--mapping", action="store_true", help="the mapping of MAPPING_RULES")
    parser.add_argument("--nats-stream", help="--target is a NATS server: publish to this stream")
    args = parser.parse_args(argv)
    if args.profile is not None:
        profiler = cProfile.Profile()
        result = profiler.runcall(_child_run, args)
        profiler.dump_stats(args.profile)
    else:
        result = _child_run(args)
    args.result.write_text(json.dumps(result))
    return 0


def _child_run(args: argparse.Namespace) -> dict[str, Any]:
    from conveyor.connectors.base import EndpointConfig
    from conveyor.connectors.changes import ChangeStream, Commit, RowChange
    from conveyor.connectors.mysql.capture import MySQLChangeSource
    from conveyor.connectors.postgres.apply import PostgresApplier
    from conveyor.connectors.postgres.capture_stream import PostgresChangeStream
    from conveyor.connectors.postgres.pgoutput import parse_lsn
    from conveyor.connectors.postgres.source import PostgresSource
    from conveyor.core.batch import Checkpoint
    from conveyor.replication.cdc.capture_table import CaptureTable
    from conveyor.replication.cdc.runner import ChangeCapture
    from conveyor.replication.cdc.task import DEFAULT_BATCH_CHANGES, MAX_FLUSH_SECONDS
    from conveyor.replication.mappings import TableMappings

    source_config = EndpointConfig(name="bench-source", engine=args.engine, url=args.source)
    start = Checkpoint(args.engine, json.loads(args.start))
    mysql = MySQLChangeSource(source_config) if args.engine == "mysql" else None
    lister = mysql if mysql is not None else PostgresSource(source_config)
    tables = [t for t in lister.tables() if t.ref.name in {"orders", "lat", "order_notes"}]
    began = time.perf_counter()
    stream: ChangeStream
    if mysql is not None:
        stream = mysql.open_stream("bench", tables, start)
    else:
        stream = PostgresChangeStream(
            source_config, args.slot, [PUBLICATION], tables, parse_lsn(str(start.position["lsn"]))
        )
    if args.ready is not None:
        args.ready.touch()
    seen = 0
    try:
        if args.mode == "read":
            if isinstance(stream, PostgresChangeStream):  # as the capture loop asks for a PostgreSQL target
                stream.encode_rows({t.ref: t for t in tables})
            for event in stream.events(idle_timeout=0.2):
                if isinstance(event, RowChange):
                    seen += 1
                elif type(event).__name__ in ("ChangeBatch", "EncodedRows"):  # either version (--base)
                    seen += event.num_rows if hasattr(event, "num_rows") else len(event.rows)
                elif (isinstance(event, Commit) or event is None) and seen >= args.changes:
                    break
            return {"seconds": time.perf_counter() - began, "changes": seen}
        rules: list[dict[str, Any]] = [
            {
                "rule-type": "selection",
                "rule-id": "1",
                "rule-name": "all",
                "object-locator": {"schema-name": args.schema, "table-name": "%"},
                "rule-action": "include",
            }
        ]
        if args.mapping:
            rules = json.loads(json.dumps(MAPPING_RULES).replace("SCHEMA", args.schema))
        mappings = TableMappings.parse({"rules": rules}, "bench")
        mapped = mappings.select(tables)
        if args.values:  # as for a target table of other column types: rows go as values
            PostgresApplier.accepts_encoded = lambda *_: False  # type: ignore[method-assign]
        applier: Any
        if args.nats_stream:
            from conveyor.connectors.registry import open_applier

            settings = {"stream": args.nats_stream, "subject_prefix": args.nats_stream.lower()}
            applier = open_applier(
                EndpointConfig(name="bench-nats", engine="nats", url=args.target, options=settings)
            )
        elif args.lake:  # a change file a second, as a user wanting fresh files sets it
            from conveyor.connectors.lake.apply import LakeApplier

            options = {"format": "parquet", "settings": {"CdcMaxBatchInterval": 1}}
            applier = LakeApplier(
                EndpointConfig(name="bench-lake", engine="lake", path=args.target, options=options)
            )
        else:
            applier = PostgresApplier(EndpointConfig(name="bench-target", engine="postgres", url=args.target))
        done: list[float] = []
        stop = threading.Event()

        def on_batch(capture: ChangeCapture) -> None:
            if capture.progress.applied_changes >= args.changes and not done:
                done.append(time.perf_counter())
                stop.set()

        capture = ChangeCapture(
            task="bench",
            stream=stream,
            applier=applier,
            mappings=mappings,
            tables={m.source.ref: CaptureTable.of(m) for m in mapped},
            start=start,
            stop=stop,
            flush_seconds=MAX_FLUSH_SECONDS,  # what a task with default settings uses
            max_batch_changes=DEFAULT_BATCH_CHANGES,
            on_batch=on_batch,
        )
        try:
            capture.run()
        finally:
            applier.close()
        if not done:
            raise SystemExit("the capture stopped before applying every change")
        return {
            "seconds": done[0] - began,
            "changes": capture.progress.applied_changes,
            "batches": capture.progress.applied_batches,
        }
    finally:
        stream.close()
        if mysql is not None:
            mysql.close()


def run_child(
    mode: str,
    workdir: Path,
    timeout_s: float,
    *,
    source: str,
    target: str,
    start: dict[str, Any],
    changes: int,
    engine: str = "postgres",
    schema: str = "public",
    slot: str | None = None,
    profile: Path | None = None,
    ready: Path | None = None,
    background: bool = False,
    base: Path | None = None,
    values: bool = False,
    lake: bool = False,
    mapping: bool = False,
    nats_stream: str | None = None,
) -> ChildRun | Child:
    """Conveyor's side in a child; with ``background``, the started child (see
    ``child_run``); with ``base``, Conveyor as that checkout's ``src`` has it."""
    command = [sys.executable, str(Path(__file__).resolve()), "child", mode, "--engine", engine]
    command += ["--source", source, "--target", target, "--schema", schema]
    command += ["--start", json.dumps(start), "--changes", str(changes)]
    if slot is not None:
        command += ["--slot", slot]
    if profile is not None:
        command += ["--profile", str(profile)]
    if ready is not None:
        command += ["--ready", str(ready)]
    if values:
        command += ["--values"]
    if lake:
        command += ["--lake"]
    if mapping:
        command += ["--mapping"]
    if nats_stream is not None:
        command += ["--nats-stream", nats_stream]
    env = None if base is None else {**os.environ, "PYTHONPATH": str(base / "src")}
    child = start_child(command, workdir, mode, f"conveyor {mode}", env)
    return child if background else child_run(child, timeout_s)


def child_run(child: Child, timeout_s: float) -> ChildRun:
    out = finish_child(child, timeout_s)
    return ChildRun(
        seconds=float(out.result["seconds"]),
        process_seconds=out.process_seconds,
        peak_rss_mb=out.peak_rss_mb,
        changes=int(out.result["changes"]),
        cpu_seconds=out.cpu_seconds,
    )


def log_run(name: str, run: ChildRun, width: int) -> None:
    log(
        f"    conveyor {name:<{width}}{run.seconds:7.2f} s  {_rate(run):10,.0f} changes/s"
        f"  (process {run.process_seconds:.2f} s, peak RSS {run.peak_rss_mb:.0f} MB)"
    )


def _rate(run: ChildRun) -> float:
    return run.changes / run.seconds if run.seconds else 0.0


# --- PostgreSQL helpers --------------------------------------------------------------


def pg_recvlogical(server: PostgresServer, slot: str, endpos: str, timeout_s: float) -> float:
    """pg_recvlogical draining ``slot`` (pgoutput) up to ``endpos`` into /dev/null; seconds."""
    command = [
        str(server.bindir / "pg_recvlogical"),
        "-h",
        server.host,
        "-p",
        str(server.port),
        "-U",
        server.user,
        "-d",
        PG_SOURCE_DB,
        "--slot",
        slot,
        "--start",
        "--no-loop",
        "--endpos",
        endpos,
        "-o",
        "proto_version=1",
        "-o",
        f"publication_names={PUBLICATION}",
        "-f",
        "/dev/null",
    ]
    began = time.perf_counter()
    result = subprocess.run(
        command, stdin=subprocess.DEVNULL, capture_output=True, env=psql_env(), timeout=timeout_s, check=False
    )
    seconds = time.perf_counter() - began
    if result.returncode:
        raise BenchFailure(
            f"pg_recvlogical failed ({result.returncode}): {result.stderr.decode(errors='replace')}"
        )
    return seconds


def create_slots(url: str, names: list[str]) -> dict[str, str]:
    """Fresh pgoutput slots (dropped first if left over); name -> consistent point."""
    points = {}
    with psycopg.connect(url, autocommit=True) as conn:
        for name in names:
            conn.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s",
                (name,),
            )
            row = conn.execute(
                "SELECT lsn::text FROM pg_create_logical_replication_slot(%s, 'pgoutput')", (name,)
            ).fetchone()
            assert row is not None
            points[name] = str(row[0])
    return points


def drop_slots(url: str, names: list[str]) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for name in names:
            conn.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s",
                (name,),
            )


def pg_fingerprint(
    url: str, table: str = "orders", schema: str = "public", toast: bool = False
) -> tuple[int, str]:
    """(count, sum(amount)); with ``toast``, the sum followed by ``doc``'s count and total length."""
    doc = " || '|' || count(doc) || '|' || coalesce(sum(length(doc)), 0)" if toast else ""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            f'SELECT count(*), coalesce(sum(amount), 0)::text{doc} FROM "{schema}".{table}'
        ).fetchone()
    assert row is not None
    return int(row[0]), str(row[1])


def lake_fingerprint(folder: Path) -> tuple[int, str]:
    """(count, sum(amount)) of the change rows in a lake's Parquet change
    files: a round updates every row once, so they are the source's."""
    import pyarrow.parquet as pq

    count, total = 0, Decimal(0)
    for path in folder.rglob("*.parquet"):
        rows = pq.read_table(path, columns=["Op", "amount"])
        if set(rows.column("Op").to_pylist()) - {"U"}:
            raise BenchFailure(f"{path}: a change file holds other changes than the round's UPDATEs")
        count += rows.num_rows
        total += sum(rows.column("amount").to_pylist(), Decimal(0))
    return count, str(total)


def nats_fingerprint(url: str, stream: str) -> tuple[int, str]:
    """(count, sum(amount)) of the envelopes in a NATS stream: a round
    updates every row once, each an envelope whose ``before`` is the old row."""
    import asyncio

    import nats
    from nats.js.api import AckPolicy, ConsumerConfig

    async def read() -> tuple[int, str]:
        nc = await nats.connect(url)
        try:
            js = nc.jetstream()
            messages = (await js.stream_info(stream)).state.messages
            unacked = ConsumerConfig(ack_policy=AckPolicy.NONE)  # read, never redelivered
            sub = await js.pull_subscribe(f"{stream.lower()}.>", stream=stream, config=unacked)
            count, total = 0, Decimal(0)
            while count < messages:
                for msg in await sub.fetch(min(5000, messages - count), timeout=10):
                    envelope = json.loads(msg.data)
                    if envelope["op"] != "u" or envelope["before"] is None:
                        raise BenchFailure(
                            f"stream {stream}: an envelope other than an UPDATE with its old row"
                        )
                    count += 1
                    total += Decimal(envelope["after"]["amount"])
            await js.delete_stream(stream)
            return count, str(total)
        finally:
            await nc.close()

    return asyncio.run(read())


MAPPING_RULES: list[dict[str, Any]] = [
    {
        "rule-type": "selection",
        "rule-id": "1",
        "rule-name": "orders",
        "object-locator": {"schema-name": "SCHEMA", "table-name": "orders"},
        "rule-action": "include",
        "filters": [
            {
                "filter-type": "source",
                "column-name": "id",
                "filter-conditions": [{"filter-operator": "gte", "value": "1"}],
            }
        ],
    },
    {
        "rule-type": "transformation",
        "rule-id": "2",
        "rule-name": "customer as bigint",
        "rule-target": "column",
        "object-locator": {"schema-name": "SCHEMA", "table-name": "orders", "column-name": "customer_id"},
        "rule-action": "change-data-type",
        "data-type": {"type": "int8"},
    },
    {
        "rule-type": "transformation",
        "rule-id": "3",
        "rule-name": "note masked",
        "rule-target": "column",
        "object-locator": {"schema-name": "SCHEMA", "table-name": "orders", "column-name": "note"},
        "rule-action": "data-masking-digits-mask",
        "value": "#",
    },
    {
        "rule-type": "transformation",
        "rule-id": "4",
        "rule-name": "operation",
        "rule-target": "column",
        "object-locator": {"schema-name": "SCHEMA", "table-name": "orders"},
        "rule-action": "add-column",
        "value": "op",
        "expression": "$AR_H_OPERATION",
        "data-type": {"type": "string", "length": 10},
    },
]
"""``--mapping``: a filter every row passes, a type change, a mask and an added
column, as users write them (docs/mappings.md); every change then goes
through each of them."""
MAPPING_TARGET_DDL = "ALTER TABLE orders ADD COLUMN op varchar(10)"


def expect_mapped(url: str, updates: int) -> None:
    """``--mapping``: every updated row says UPDATE and its note is masked."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FILTER (WHERE op = 'UPDATE'), count(*) FILTER (WHERE note ~ '[0-9]') FROM orders"
        ).fetchone()
    if row != (updates, 0):
        raise BenchFailure(f"--mapping: (rows said UPDATE, notes with a digit) {row}, not ({updates}, 0)")


def expect_mapped_lake(folder: Path, updates: int) -> None:
    """``--mapping --lake``: every change row says UPDATE and its note is masked."""
    import pyarrow.parquet as pq

    said = digits = 0
    for path in folder.rglob("*.parquet"):
        rows = pq.read_table(path, columns=["op", "note"]).to_pylist()
        said += sum(1 for r in rows if r["op"] == "UPDATE")
        digits += sum(1 for r in rows if r["note"] is not None and any(ch.isdigit() for ch in r["note"]))
    if (said, digits) != (updates, 0):
        raise BenchFailure(
            f"--mapping: (rows said UPDATE, notes with a digit) {(said, digits)}, not ({updates}, 0)"
        )


def expect_same(what: str, got: tuple[int, str], want: tuple[int, str]) -> None:
    if got != want:
        raise BenchFailure(f"{what}: target (count, sum(amount)) {got} is not the source's {want}")


# --- the bench -------------------------------------------------------------------------


@dataclass
class Setup:
    updates: int
    rounds: int
    timeout_s: float
    workdir: Path
    latency_seconds: float
    rate: float
    profile_dir: Path | None
    base: Path | None = None
    values: bool = False
    interleave: bool = False
    lake: bool = False
    toast: bool = False
    mapping: bool = False
    nats: bool = False
    nats_url: str | None = None
    pg: PostgresServer | None = None
    mariadb: MariaDBServer | None = None

    @property
    def src(self) -> str:
        assert self.pg is not None
        return self.pg.url(PG_SOURCE_DB)

    @property
    def dst(self) -> str:
        assert self.pg is not None
        return self.pg.url(PG_TARGET_DB)

    def profile(self, name: str) -> Path | None:
        return None if self.profile_dir is None else self.profile_dir / f"{name}.prof"


def run_one_full_load(case: str, source: str, target: str, workdir: Path, timeout_s: float) -> None:
    """The target's initial copy, by Conveyor's full load (bench/run_one.py)."""
    from bench.full_load import run_conveyor

    run_conveyor(case, source, target, workdir, timeout_s, 10_000)


def start_postgres(setup: Setup, cases: list[str]) -> None:
    setup.pg = PostgresServer()
    setup.pg.start()
    with psycopg.connect(setup.pg.url(), autocommit=True) as conn:
        # Commit times of source and target transactions: the latency measurement.
        conn.execute("ALTER SYSTEM SET track_commit_timestamp = on")
    setup.pg.restart()
    with psycopg.connect(setup.pg.url(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {PG_TARGET_DB}")
        conn.execute(f"CREATE DATABASE {PG_SOURCE_DB}")
    log(f"postgres {setup.pg.bindir} on 127.0.0.1:{setup.pg.port}")
    if "pg-pg" in cases or "latency" in cases:
        began = time.perf_counter()
        count = data.build_postgres(setup.src, setup.updates, int(setup.timeout_s))
        with psycopg.connect(setup.src, autocommit=True) as conn:
            if setup.toast:  # out of line, uncompressed: never sent by an UPDATE that keeps it
                conn.execute("ALTER TABLE orders ADD COLUMN doc text")
                conn.execute("ALTER TABLE orders ALTER COLUMN doc SET STORAGE EXTERNAL")
                conn.execute("UPDATE orders SET doc = repeat(md5(id::text), 78) || id")
                conn.execute("VACUUM (FREEZE, ANALYZE) orders")
            if setup.nats:  # each envelope's before: the whole old row
                conn.execute("ALTER TABLE orders REPLICA IDENTITY FULL")
            conn.execute(PG_UPDATES)
            conn.execute(LAT_DDL)
            conn.execute(f"CREATE PUBLICATION {PUBLICATION} FOR TABLE orders, lat")
        run_one_full_load("pg-pg", setup.src, setup.dst, setup.workdir, setup.timeout_s)
        with psycopg.connect(setup.dst, autocommit=True) as conn:
            conn.execute(LAT_DDL)
            if setup.mapping:
                conn.execute(MAPPING_TARGET_DDL)
        toast = setup.toast
        expect_same(
            "initial copy", pg_fingerprint(setup.dst, toast=toast), pg_fingerprint(setup.src, toast=toast)
        )
        log(f"built postgres orders ({count:,} rows) and its copy in {time.perf_counter() - began:.1f} s")


def generate_pg(setup: Setup) -> str:
    """The round's updates; returns the WAL position after them (pg_recvlogical's endpos)."""
    began = time.perf_counter()
    with psycopg.connect(setup.src, autocommit=True) as conn:
        conn.execute("CALL bench_updates(%s, %s)", (setup.updates, TXN_ROWS))
        row = conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
    assert row is not None
    log(f"    generated {setup.updates:,} updates in {time.perf_counter() - began:.1f} s")
    return str(row[0])


def run_pg_throughput(setup: Setup) -> list[ThroughputResult]:
    assert setup.pg is not None
    pg = setup.pg
    values = " (values)" if setup.values else ""
    values += " to a lake" if setup.lake else ""
    values += " to NATS" if setup.nats else ""
    values += ", TOASTed doc unsent" if setup.toast else ""
    values += ", mapped (filter, type change, mask, added column)" if setup.mapping else ""
    e2e = ThroughputResult(f"pg-pg e2e{values}", setup.updates, "pg_recvlogical drain")
    read = ThroughputResult("pg-pg read", setup.updates, "pg_recvlogical drain")
    base = ThroughputResult(f"pg-pg e2e{values} (--base)", setup.updates, "pg_recvlogical drain")
    slots = ["bench_ref", "bench_read", "bench_e2e"] + (["bench_base"] if setup.base else [])
    for round_no in range(1, setup.rounds + 1):
        points = create_slots(setup.src, slots)  # before the changes: all three hold the same WAL
        endpos = generate_pg(setup)
        want = pg_fingerprint(setup.src, toast=setup.toast)
        with psycopg.connect(setup.dst, autocommit=True) as conn:
            conn.execute("CHECKPOINT")

        def reference(points: dict[str, str] = points, endpos: str = endpos) -> None:
            seconds = pg_recvlogical(pg, "bench_ref", endpos, setup.timeout_s)
            e2e.reference_runs.append(seconds)
            read.reference_runs.append(seconds)
            base.reference_runs.append(seconds)
            log(
                f"    reference (pg_recvlogical) {seconds:7.2f} s  {setup.updates / seconds:10,.0f} changes/s"
            )

        def reader(points: dict[str, str] = points, round_no: int = round_no) -> None:
            run = run_child(
                "read",
                setup.workdir,
                setup.timeout_s,
                source=setup.src,
                target=setup.dst,
                start={"lsn": points["bench_read"]},
                changes=setup.updates,
                slot="bench_read",
                profile=setup.profile(f"pg-read-{round_no}"),
            )
            assert isinstance(run, ChildRun)
            if run.changes != setup.updates:
                raise BenchFailure(f"the reader decoded {run.changes:,} changes, not {setup.updates:,}")
            read.conveyor_runs.append(run)
            log(f"    conveyor read              {run.seconds:7.2f} s  {_rate(run):10,.0f} changes/s")

        def end_to_end(
            points: dict[str, str] = points,
            round_no: int = round_no,
            want: Any = want,
            checkout: Path | None = None,
        ) -> None:
            """Conveyor's capture loop; with ``checkout``, that checkout's (``--base``)."""
            name, slot, result = (
                ("e2e", "bench_e2e", e2e) if checkout is None else ("e2e (--base)", "bench_base", base)
            )
            lake = setup.workdir / f"lake-{round_no}-{slot}"
            if setup.base is not None and not setup.lake and not setup.nats:
                _unapply(setup.dst)
            stream = f"BENCH{round_no}{slot.upper()}" if setup.nats else None
            if setup.mapping and not setup.lake:
                with psycopg.connect(setup.dst, autocommit=True) as conn:
                    conn.execute("UPDATE orders SET op = NULL")
            run = run_child(
                "e2e",
                setup.workdir,
                setup.timeout_s,
                source=setup.src,
                target=str(lake) if setup.lake else (setup.nats_url or "") if setup.nats else setup.dst,
                start={"lsn": points[slot]},
                changes=setup.updates,
                slot=slot,
                profile=setup.profile(f"pg-e2e-{round_no}") if checkout is None else None,
                base=checkout,
                values=setup.values,
                lake=setup.lake,
                mapping=setup.mapping,
                nats_stream=stream,
            )
            assert isinstance(run, ChildRun)
            if stream is not None:
                assert setup.nats_url is not None
                got = nats_fingerprint(setup.nats_url, stream)
            elif setup.lake:
                got = lake_fingerprint(lake)
            else:
                got = pg_fingerprint(setup.dst, toast=setup.toast)
            expect_same(f"conveyor pg-pg {name}", got, want)
            if setup.mapping:
                if setup.lake:
                    expect_mapped_lake(lake, setup.updates)
                else:
                    expect_mapped(setup.dst, setup.updates)
            shutil.rmtree(lake, ignore_errors=True)
            result.conveyor_runs.append(run)
            log_run(name, run, 18)

        def end_to_end_base() -> None:
            end_to_end(checkout=setup.base)

        order: list[Callable[[], None]] = [reference, reader, end_to_end]
        if setup.base is not None:
            order.append(end_to_end_base)
        if round_no % 2 == 0:
            order.reverse()
        log(f"  pg-pg round {round_no}: {', '.join(step.__name__ for step in order)}")
        for step in order:
            step()
        drop_slots(setup.src, slots)
    return [e2e, read] + ([base] if setup.base is not None else [])


def _unapply(target: str, schema: str = "public", tables: Sequence[str] = ("orders",)) -> None:
    """Make every target row differ from the source's, so that an e2e run after
    another in the same round (``--base``) must apply every change again for
    its fingerprint check to pass."""
    with psycopg.connect(target, autocommit=True) as conn:
        for name in tables:
            table = sql.Identifier(schema, name)
            conn.execute(sql.SQL("UPDATE {} SET amount = amount - 1").format(table))
            conn.execute(sql.SQL("VACUUM {}").format(table))


def run_latency(setup: Setup) -> LatencyResult:
    assert setup.pg is not None
    result = LatencyResult(setup.rate, setup.latency_seconds)
    total = int(setup.rate * setup.latency_seconds) // LATENCY_TXN_ROWS * LATENCY_TXN_ROWS
    interval = LATENCY_TXN_ROWS / setup.rate
    for round_no in range(1, setup.rounds + 1):
        for url in (setup.src, setup.dst):
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("TRUNCATE lat")
        points = create_slots(setup.src, ["bench_lat"])
        ready = setup.workdir / "ready"
        ready.unlink(missing_ok=True)
        started = run_child(
            "e2e",
            setup.workdir,
            setup.timeout_s,
            source=setup.src,
            target=setup.dst,
            start={"lsn": points["bench_lat"]},
            changes=total,
            slot="bench_lat",
            ready=ready,
            background=True,
        )
        assert isinstance(started, Child)
        deadline = time.monotonic() + 60
        while not ready.exists():
            if started.proc.poll() is not None or time.monotonic() > deadline:
                child_run(started, 1)
                raise BenchFailure("the latency run's capture did not start")
            time.sleep(0.01)
        # The paced writer: LATENCY_TXN_ROWS-row transactions on an absolute schedule.
        with psycopg.connect(setup.src, autocommit=True) as conn:
            # The private server runs with synchronous_commit off (fast tests); a
            # source whose commits wait for the WAL flush, as in production, has
            # its walsender woken at each commit, not every wal_writer_delay.
            conn.execute("SET synchronous_commit = on")
            first = time.monotonic()
            for index, low in enumerate(range(1, total + 1, LATENCY_TXN_ROWS)):
                wait = first + index * interval - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                conn.execute(
                    "INSERT INTO lat SELECT g, 'change ' || g FROM generate_series(%s::bigint, %s::bigint) g",
                    (low, low + LATENCY_TXN_ROWS - 1),
                )
            wrote = time.monotonic() - first
        run = child_run(started, setup.timeout_s)
        latencies = _latencies(setup)
        if len(latencies) != total:
            raise BenchFailure(f"latency: the target has {len(latencies):,} of {total:,} rows")
        cuts = statistics.quantiles(latencies, n=100, method="inclusive")
        item = LatencyRound(total, total / wrote, cuts[49], cuts[98], max(latencies), run.peak_rss_mb)
        result.rounds.append(item)
        drop_slots(setup.src, ["bench_lat"])
        log(
            f"  latency round {round_no}: {total:,} changes at {item.achieved_rate:,.0f}/s: "
            f"p50 {item.p50_s * 1000:.0f} ms, p99 {item.p99_s * 1000:.0f} ms, max {item.max_s * 1000:.0f} ms"
        )
    return result


def _latencies(setup: Setup) -> list[float]:
    query = "SELECT id, extract(epoch FROM pg_xact_commit_timestamp(xmin))::float8 FROM lat"
    with psycopg.connect(setup.src) as conn:
        source: dict[int, float] = dict(conn.execute(query).fetchall())
    with psycopg.connect(setup.dst) as conn:
        target: dict[int, float] = dict(conn.execute(query).fetchall())
    return [target[key] - committed for key, committed in source.items() if key in target]


def start_mariadb(setup: Setup) -> None:
    setup.mariadb = MariaDBServer()
    setup.mariadb.start()
    admin = pymysql.connect(host=setup.mariadb.host, port=setup.mariadb.port, user="root", password="")
    try:
        with admin.cursor() as cur:
            cur.execute(f"CREATE DATABASE {MARIADB_DB} CHARACTER SET utf8mb4")
    finally:
        admin.close()
    log(f"mariadb on 127.0.0.1:{setup.mariadb.port}")
    began = time.perf_counter()
    data.build_mariadb(
        setup.mariadb.host, setup.mariadb.port, MARIADB_DB, setup.updates, int(setup.timeout_s)
    )
    conn = _mariadb(setup)
    try:
        with conn.cursor() as cur:
            if setup.interleave:
                cur.execute(NOTES_DDL)
            cur.execute(MARIADB_INTERLEAVED if setup.interleave else MARIADB_UPDATES)
    finally:
        conn.close()
    with psycopg.connect(setup.dst, autocommit=True) as pg:
        pg.execute(f"DROP SCHEMA IF EXISTS {MARIADB_DB} CASCADE")
    run_one_full_load("mariadb-pg", setup.mariadb.url(MARIADB_DB), setup.dst, setup.workdir, setup.timeout_s)
    if setup.interleave:  # empty on the source: its target table as a full load would create it
        with psycopg.connect(setup.dst, autocommit=True) as pg:
            columns = "id bigint PRIMARY KEY, amount numeric(12,2) NOT NULL"
            pg.execute(f"CREATE TABLE {MARIADB_DB}.order_notes ({columns})")
    log(f"built mariadb orders and its copy in {time.perf_counter() - began:.1f} s")


def _mariadb(setup: Setup) -> Any:
    assert setup.mariadb is not None
    return pymysql.connect(
        host=setup.mariadb.host, port=setup.mariadb.port, user="root", password="", database=MARIADB_DB
    )


def _mariadb_tables(setup: Setup) -> tuple[str, ...]:
    return ("orders", "order_notes") if setup.interleave else ("orders",)


def _mariadb_fingerprint(setup: Setup) -> list[tuple[int, str]]:
    """Per table of the case, (count, sum(amount))."""
    conn = _mariadb(setup)
    found = []
    try:
        with conn.cursor() as cur:
            for name in _mariadb_tables(setup):
                cur.execute(f"SELECT count(*), coalesce(sum(amount), 0) FROM {name}")
                row = cur.fetchone()
                assert row is not None
                found.append((int(row[0]), str(row[1])))
    finally:
        conn.close()
    return found


def binlog_drain(setup: Setup, start: dict[str, Any]) -> float:
    """``mariadb-binlog --read-from-remote-server --raw`` from ``start`` to the end
    of the last binlog, into a temp dir (removed after); seconds."""
    assert setup.mariadb is not None
    out = Path(tempfile.mkdtemp(prefix="binlog-", dir=setup.workdir))
    command = [
        "mariadb-binlog",
        "--read-from-remote-server",
        "--raw",
        "--to-last-log",
        f"--host={setup.mariadb.host}",
        f"--port={setup.mariadb.port}",
        f"--user={setup.mariadb.user}",
        f"--start-position={int(start['pos'])}",
        f"--result-file={out}/",
        str(start["file"]),
    ]
    began = time.perf_counter()
    result = subprocess.run(
        command, stdin=subprocess.DEVNULL, capture_output=True, timeout=setup.timeout_s, check=False
    )
    seconds = time.perf_counter() - began
    size = sum(p.stat().st_size for p in out.iterdir())
    shutil.rmtree(out, ignore_errors=True)
    if result.returncode:
        stderr = result.stderr.decode(errors="replace")
        raise BenchFailure(f"mariadb-binlog failed ({result.returncode}): {stderr}")
    log(f"    reference (mariadb-binlog --raw) {seconds:7.2f} s  {size / 1e6:,.0f} MB of binlog")
    return seconds


def run_mariadb(setup: Setup) -> list[ThroughputResult]:
    from conveyor.connectors.base import EndpointConfig
    from conveyor.connectors.mysql.capture import MySQLChangeSource

    assert setup.mariadb is not None
    changes = setup.updates * len(_mariadb_tables(setup))
    case = "mariadb-pg e2e, two tables in turn" if setup.interleave else "mariadb-pg e2e"
    result = ThroughputResult(case, changes, "mariadb-binlog --raw drain")
    base = ThroughputResult(f"{case} (--base)", changes, "mariadb-binlog --raw drain")
    url = setup.mariadb.url(MARIADB_DB)
    for round_no in range(1, setup.rounds + 1):
        source = MySQLChangeSource(EndpointConfig(name="bench-source", engine="mysql", url=url))
        try:
            start = source.begin_capture("bench", [], export_snapshot=False).position
        finally:
            source.close()
        began = time.perf_counter()
        conn = _mariadb(setup)
        try:
            with conn.cursor() as cur:
                cur.execute("CALL bench_updates(%s, %s)", (setup.updates, TXN_ROWS))
            conn.commit()
        finally:
            conn.close()
        log(
            f"  mariadb-pg round {round_no}: generated {changes:,} changes "
            f"in {time.perf_counter() - began:.1f} s"
        )
        want = _mariadb_fingerprint(setup)

        def reference(start: Any = start) -> None:
            seconds = binlog_drain(setup, dict(start.position))
            result.reference_runs.append(seconds)
            base.reference_runs.append(seconds)

        def end_to_end(
            start: Any = start,
            round_no: int = round_no,
            want: list[tuple[int, str]] = want,
            checkout: Path | None = None,
        ) -> None:
            """Conveyor's capture loop; with ``checkout``, that checkout's (``--base``)."""
            name, into = ("e2e", result) if checkout is None else ("e2e (--base)", base)
            if setup.base is not None:
                _unapply(setup.dst, MARIADB_DB, _mariadb_tables(setup))
            run = run_child(
                "e2e",
                setup.workdir,
                setup.timeout_s,
                source=url,
                target=setup.dst,
                start=dict(start.position),
                changes=changes,
                engine="mysql",
                schema=MARIADB_DB,
                profile=setup.profile(f"mariadb-e2e-{round_no}") if checkout is None else None,
                base=checkout,
            )
            assert isinstance(run, ChildRun)
            for table_name, wanted in zip(_mariadb_tables(setup), want, strict=True):
                got = pg_fingerprint(setup.dst, table_name, schema=MARIADB_DB)
                expect_same(f"conveyor mariadb-pg {name}, {table_name}", got, wanted)
            into.conveyor_runs.append(run)
            log_run(name, run, 13)

        def end_to_end_base() -> None:
            end_to_end(checkout=setup.base)

        # Alternated, so neither side always reads the binlog from a warm page cache.
        order: list[Callable[[], None]] = [reference, end_to_end]
        if setup.base is not None:
            order.append(end_to_end_base)
        if round_no % 2 == 0:
            order.reverse()
        for step in order:
            step()
    return [result] + ([base] if setup.base is not None else [])


# --- output ----------------------------------------------------------------------------


def table(throughput: list[ThroughputResult], latency: LatencyResult | None) -> str:
    rows = []
    for r in throughput:
        target = RATIO_TARGETS.get(r.case)
        rows.append(
            (
                r.case,
                f"{r.changes:,}",
                r.reference or "-",
                num(r.reference_median, ".2f"),
                num(r.conveyor_median, ".2f"),
                num(r.reference_rate, ",.0f"),
                num(r.conveyor_rate, ",.0f"),
                "-" if r.rate_ratio is None else f"{r.rate_ratio:.2f}x",
                "-" if target is None else f">= {target:.1f}x",
                num(r.peak_rss_mb, ".0f"),
                r.verdict(),
            )
        )
    header = (
        "case",
        "changes",
        "reference",
        "ref median s",
        "conveyor median s",
        "ref changes/s",
        "conveyor changes/s",
        "rate ratio",
        "target",
        "peak RSS MB",
        "verdict",
    )
    text = render_table(header, rows, {1, 3, 4, 5, 6, 7, 9})
    if latency is not None and latency.rounds:
        lat_rows = [
            (
                f"pg-pg latency @ {latency.rate:,.0f}/s",
                f"{sum(r.changes for r in latency.rounds) // len(latency.rounds):,}",
                f"{statistics.median(r.achieved_rate for r in latency.rounds):,.0f}",
                num(None if latency.p50 is None else latency.p50 * 1000, ".0f"),
                num(None if latency.p99 is None else latency.p99 * 1000, ".0f"),
                f"{max(r.max_s for r in latency.rounds) * 1000:.0f}",
                f"< {P99_TARGET_S * 1000:.0f}",
                f"{max(r.peak_rss_mb for r in latency.rounds):.0f}",
                latency.verdict(),
            )
        ]
        lat_header = (
            "case",
            "changes/round",
            "achieved/s",
            "p50 ms (median)",
            "p99 ms (median)",
            "max ms",
            "p99 target ms",
            "peak RSS MB",
            "verdict",
        )
        text += "\n\n" + render_table(lat_header, lat_rows, {1, 2, 3, 4, 5, 7})
    return text


def environment(setup: Setup) -> dict[str, Any]:
    import platform

    env: dict[str, Any] = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "psycopg": psycopg.__version__,
    }
    if setup.pg is not None:
        with psycopg.connect(setup.pg.url()) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            env["postgres"] = row[0] if row else None
    if setup.mariadb is not None:
        conn2 = pymysql.connect(host=setup.mariadb.host, port=setup.mariadb.port, user="root", password="")
        try:
            with conn2.cursor() as cur:
                cur.execute("SELECT VERSION()")
                version = cur.fetchone()
            env["mariadb"] = version[0] if version else None
        finally:
            conn2.close()
    return env


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench/cdc.py",
        description="Change-capture benchmark of Conveyor against pg_recvlogical (see the module docstring).",
    )
    parser.add_argument("--updates", type=int, help="single-row UPDATEs per round (default 500000)")
    parser.add_argument("--rounds", type=int, help="alternated rounds per case (default 3)")
    parser.add_argument(
        "--cases", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)} (default all)"
    )
    parser.add_argument("--rate", type=float, default=2000.0, help="latency case: changes/s (default 2000)")
    parser.add_argument(
        "--latency-seconds", type=float, help="latency case: seconds of writing per round (20)"
    )
    parser.add_argument("--quick", action="store_true", help="CI-sized: 20000 updates, 3 rounds, 5 s latency")
    parser.add_argument("--timeout", type=float, help="seconds any one step may take (default: scaled)")
    parser.add_argument(
        "--profile", type=Path, help="write a cProfile of every Conveyor run into this directory"
    )
    parser.add_argument(
        "--no-json", action="store_true", help="do not write bench/results/cdc-<timestamp>.json"
    )
    parser.add_argument(
        "--values",
        action="store_true",
        help="pg-pg: Conveyor's e2e applies values, not COPY lines (as for a target of other types)",
    )
    parser.add_argument(
        "--lake",
        action="store_true",
        help="pg-pg: Conveyor's e2e writes the changes to a lake (local folder, Parquet change files)",
    )
    parser.add_argument(
        "--interleave",
        action="store_true",
        help="mariadb-pg: each transaction writes orders and order_notes in turn (twice the changes)",
    )
    parser.add_argument(
        "--toast",
        action="store_true",
        help="pg-pg: orders has a TOASTed doc column the UPDATEs leave unsent (every change partial)",
    )
    parser.add_argument(
        "--base",
        type=Path,
        help="pg-pg, mariadb-pg: also run the e2e case with another checkout's src (before/after in one run)",
    )
    parser.add_argument(
        "--mapping",
        action="store_true",
        help="pg-pg: the task's mapping filters (every row passes), converts, masks and adds a column"
        " (to a lake too: the filter with a change log)",
    )
    parser.add_argument(
        "--nats",
        action="store_true",
        help="pg-pg: the e2e target is a private NATS JetStream (each change an envelope with its old row)",
    )
    args = parser.parse_args(argv)
    if args.nats and (args.lake or args.toast or args.mapping):
        parser.error("--nats goes with neither --lake, --toast nor --mapping")
    if args.mapping and args.toast:
        parser.error("--mapping does not go with --toast")
    args.updates = args.updates or (20_000 if args.quick else 500_000)
    args.rounds = args.rounds or 3
    args.latency_seconds = args.latency_seconds or (5.0 if args.quick else 20.0)
    args.case_list = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in args.case_list if c not in CASES]
    if unknown or not args.case_list:
        parser.error(f"unknown case(s) {unknown}; choose from {', '.join(CASES)}")
    if args.updates < TXN_ROWS or args.rounds < 1 or args.rate <= 0:
        parser.error(f"--updates must be at least {TXN_ROWS}, --rounds at least 1, --rate positive")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["child"]:
        return _child(argv[1:])
    args = parse_args(argv)
    timeout_s = args.timeout or max(300.0, args.updates / 1000)
    started = datetime.now(UTC)
    workdir = Path(tempfile.mkdtemp(prefix="conveyor-bench-cdc-", dir="/tmp"))
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    setup = Setup(
        args.updates,
        args.rounds,
        timeout_s,
        workdir,
        args.latency_seconds,
        args.rate,
        args.profile,
        args.base.resolve() if args.base else None,
        args.values,
        args.interleave,
        args.lake,
        args.toast,
        args.mapping,
        args.nats,
    )
    throughput: list[ThroughputResult] = []
    latency: LatencyResult | None = None
    failure: str | None = None
    env: dict[str, Any] = {}
    log(
        f"conveyor cdc bench: {args.updates:,} updates in {TXN_ROWS:,}-row transactions, "
        f"{args.rounds} rounds, cases {args.case_list}"
    )
    nats_server = None
    try:
        if args.nats:
            from support.nats_server import NatsServer

            nats_server = NatsServer()
            nats_server.start()
            setup.nats_url = nats_server.url
        start_postgres(setup, args.case_list)
        if "mariadb-pg" in args.case_list:
            start_mariadb(setup)
        env = environment(setup)
        if "pg-pg" in args.case_list:
            log("pg-pg:")
            throughput += run_pg_throughput(setup)
        if "latency" in args.case_list:
            log(f"latency ({args.rate:,.0f} changes/s for {args.latency_seconds:.0f} s per round):")
            latency = run_latency(setup)
        if "mariadb-pg" in args.case_list:
            log("mariadb-pg:")
            throughput.extend(run_mariadb(setup))
    except BenchFailure as exc:
        failure = str(exc)
    finally:
        for server in (setup.mariadb, setup.pg, nats_server):
            if server is not None:
                server.close()
        shutil.rmtree(workdir, ignore_errors=True)
    print()
    print(table(throughput, latency))
    if not args.no_json:
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        path = RESULTS_DIR / f"cdc-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
        document = {
            "bench": "cdc",
            "started": started.isoformat(),
            "updates": args.updates,
            "transaction_rows": TXN_ROWS,
            "rounds": args.rounds,
            "cases": args.case_list,
            "environment": env,
            "results": [r.as_dict() for r in throughput] + ([latency.as_dict()] if latency else []),
            "failure": failure,
        }
        path.write_text(json.dumps(document, indent=2))
        print(f"\nresults: {path.relative_to(REPO)}")
    if failure is not None:
        print(f"\nFAILED: {failure}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
