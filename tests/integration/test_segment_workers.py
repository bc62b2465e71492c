"""A big table's full load split across `conveyor worker` processes sharing a
PostgreSQL metadata store: 16 key-range segments read in the task's exported
snapshot, one worker SIGKILLed mid-segment, the table committed once and exact."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from conveyor.store.segments import DONE, SegmentQueue
from conveyor.store.store import Store
from support.cli import conveyor, environment
from support.servers import PostgresServer

pytestmark = pytest.mark.integration

ROWS = 2_000_000
SEGMENTS = 16
CHECKSUM = "SELECT count(*), count(DISTINCT id), sum(hashtext(t::text)::bigint) FROM big t"


def _stack(tmp_path: Path, source_url: str, target_url: str, settings: dict[str, Any]) -> Path:
    (tmp_path / "mappings.json").write_text(
        json.dumps(
            {
                "rules": [
                    {
                        "rule-type": "selection",
                        "rule-id": "1",
                        "rule-name": "big",
                        "object-locator": {"schema-name": "public", "table-name": "big"},
                        "rule-action": "include",
                    }
                ]
            }
        )
    )
    (tmp_path / "settings.json").write_text(json.dumps(settings))
    stack = tmp_path / "conveyor.yaml"
    stack.write_text(
        "endpoints:\n"
        f"  src: {{engine: postgres, url: '{source_url}'}}\n"
        f"  dw: {{engine: postgres, url: '{target_url}'}}\n"
        "tasks:\n"
        "  big-load: {source: src, target: dw, migration_type: full-load, "
        "table_mappings: file://mappings.json, settings: file://settings.json}\n"
    )
    return stack


def _worker(home: Path, store_url: str, log: Path) -> subprocess.Popen[bytes]:
    env = environment(home)
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "conveyor", "worker", "--store-url", store_url, "--idle-exit", "90"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )


def _kill_mid_segment(store_url: str, worker: subprocess.Popen[bytes], deadline: float) -> int:
    """SIGKILL ``worker`` as soon as it holds a segment, having finished one
    already; returns the seq of the segment it held when it died."""
    store = Store.open(url=store_url)
    try:
        queue = SegmentQueue(store)
        while time.monotonic() < deadline:
            run_id = store.task_status("big-load")["current_run"]
            segments = queue.segments(run_id) if run_id is not None else []
            mine = [s for s in segments if (s["owner"] or "").endswith(f":{worker.pid}")]
            if any(s["state"] == "running" for s in mine) and any(s["state"] == DONE for s in mine):
                worker.send_signal(signal.SIGKILL)
                worker.wait(timeout=30)
                held = [
                    s
                    for s in queue.segments(run_id)
                    if s["state"] == "running" and s["owner"].endswith(f":{worker.pid}")
                ]
                assert len(held) == 1, "the worker finished its segment before the kill landed"
                return int(held[0]["seq"])
            time.sleep(0.02)
    finally:
        store.close()
    raise AssertionError("the worker never loaded a second segment")


def test_two_workers_one_killed_load_is_exact(pg_server: PostgresServer, tmp_path: Path) -> None:
    source_url = pg_server.url(pg_server.new_database("segsrc"))
    target_url = pg_server.url(pg_server.new_database("segdst"))
    store_url = pg_server.url(pg_server.new_database("segstore"))
    with psycopg.connect(source_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE big (id integer PRIMARY KEY, a integer NOT NULL, b integer)")
        conn.execute(
            "INSERT INTO big SELECT g, (g::bigint * 7919 % 100003)::int, NULLIF(g % 13, 0)"
            f" FROM generate_series(1, {ROWS}) g"
        )
        conn.execute("ANALYZE big")
        expected = conn.execute(CHECKSUM).fetchone()
    settings = {
        "FullLoadSettings": {"CommitRate": 50000},
        "SegmentedLoadSettings": {
            "Workers": "store",
            "SplitAboveRows": ROWS // 2,
            "Segments": SEGMENTS,
            "LeaseSeconds": 3,
        },
    }
    home = tmp_path / "home"
    env = {"CONVEYOR_STORE_URL": store_url}
    applied = conveyor(home, "apply", str(_stack(tmp_path, source_url, target_url, settings)), env=env)
    assert applied.returncode == 0, applied.stderr

    doomed = _worker(home, store_url, tmp_path / "doomed.log")
    steady = _worker(home, store_url, tmp_path / "steady.log")
    began = time.monotonic()
    task = subprocess.Popen(
        [sys.executable, "-m", "conveyor", "tasks", "start", "big-load", "--wait", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment(home, env),
    )
    try:
        # The doomed worker is SIGKILLed once it has loaded a segment and is
        # loading another one (half a second into it).
        killed_in = _kill_mid_segment(store_url, doomed, deadline=time.monotonic() + 180)
        out, err = task.communicate(timeout=240)
        elapsed = time.monotonic() - began
        assert task.returncode == 0, out + err
        described = json.loads(out)
        assert (described["status"], described["stop_reason"]) == ("stopped", "FULL_LOAD_ONLY_FINISHED")
        (table,) = described["tables"]
        assert (table["TableState"], table["FullLoadRows"]) == ("Table completed", ROWS)
        assert doomed.wait(timeout=30) == -signal.SIGKILL
    finally:
        for process in (task, doomed, steady):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in (task, doomed, steady):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    print(f"2M rows in {SEGMENTS} segments by 2 workers (one killed): {elapsed:.1f} s")

    with psycopg.connect(target_url) as conn:
        assert conn.execute(CHECKSUM).fetchone() == expected
        staging = conn.execute("SELECT count(*) FROM pg_tables WHERE tablename LIKE '\\_cv\\_seg\\_%'")
        assert staging.fetchone() == (0,)

    store = Store.open(url=store_url)
    try:
        run_id = store.task_status("big-load")["current_run"]
        segments = SegmentQueue(store).segments(run_id)
    finally:
        store.close()
    assert len(segments) == SEGMENTS
    assert {s["state"] for s in segments} == {DONE}
    assert sum(s["rows"] for s in segments) == ROWS
    doomed_owner = next(o for s in segments for o in s["claims"] if o.endswith(f":{doomed.pid}"))
    steady_owner = next(o for s in segments for o in s["claims"] if o.endswith(f":{steady.pid}"))
    finishers = {s["owner"] for s in segments}
    assert doomed_owner in finishers and steady_owner in finishers  # both loaded segments
    (taken_over,) = [s for s in segments if s["seq"] == killed_in]
    assert taken_over["claims"] == [doomed_owner, steady_owner] and taken_over["owner"] == steady_owner
    assert os.path.getsize(tmp_path / "steady.log") > 0


def test_ranges_rule_with_the_sqlite_store_on_one_host(pg_server: PostgresServer, tmp_path: Path) -> None:
    """parallel-load ranges (and a selection filter) loaded by one worker
    sharing the default SQLite store under CONVEYOR_HOME."""
    source_url = pg_server.url(pg_server.new_database("segsrc"))
    target_url = pg_server.url(pg_server.new_database("segdst"))
    with psycopg.connect(source_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE big (id integer PRIMARY KEY, a integer NOT NULL, b integer)")
        conn.execute("INSERT INTO big SELECT g, g % 7, NULLIF(g % 5, 0) FROM generate_series(1, 20000) g")
        expected = conn.execute(CHECKSUM.replace("FROM big t", "FROM big t WHERE a <> 3")).fetchone()
    stack = _stack(tmp_path, source_url, target_url, {"SegmentedLoadSettings": {"Workers": "store"}})
    mappings = json.loads((tmp_path / "mappings.json").read_text())
    mappings["rules"][0]["filters"] = [
        {
            "filter-type": "source",
            "column-name": "a",
            "filter-conditions": [{"filter-operator": "noteq", "value": "3"}],
        }
    ]
    mappings["rules"].append(
        {
            "rule-type": "table-settings",
            "rule-id": "2",
            "rule-name": "split",
            "object-locator": {"schema-name": "public", "table-name": "big"},
            "parallel-load": {"type": "ranges", "columns": ["id"], "boundaries": [["5000"], ["12000"]]},
        }
    )
    (tmp_path / "mappings.json").write_text(json.dumps(mappings))
    home = tmp_path / "home"
    assert conveyor(home, "apply", str(stack)).returncode == 0
    worker = subprocess.Popen(
        [sys.executable, "-m", "conveyor", "worker", "--idle-exit", "120", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=environment(home),
    )
    try:
        started = conveyor(home, "tasks", "start", "big-load", "--wait", "--json", timeout=120)
        assert started.returncode == 0, started.stdout + started.stderr
        (table,) = json.loads(started.stdout)["tables"]
        assert (table["TableState"], table["FullLoadRows"]) == ("Table completed", expected[0])
        worker.send_signal(signal.SIGTERM)  # stops between segments, reports what it did
        out, _ = worker.communicate(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    # Three ranges and the NULL segment of the ranges rule (empty here: a key).
    assert json.loads(out)["segments_loaded"] == 4
    with psycopg.connect(target_url) as conn:
        assert conn.execute(CHECKSUM).fetchone() == expected


def test_partitions_auto_one_segment_per_partition(pg_server: PostgresServer, tmp_path: Path) -> None:
    """parallel-load partitions-auto: each leaf partition of a partitioned
    PostgreSQL table is a segment, copied raw into its staging table."""
    source_url = pg_server.url(pg_server.new_database("segsrc"))
    target_url = pg_server.url(pg_server.new_database("segdst"))
    with psycopg.connect(source_url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE big (id integer, region text, a integer NOT NULL, b integer,"
            " PRIMARY KEY (id, region)) PARTITION BY LIST (region)"
        )
        conn.execute("CREATE TABLE big_eu PARTITION OF big FOR VALUES IN ('eu')")
        conn.execute("CREATE TABLE big_us PARTITION OF big FOR VALUES IN ('us', 'ca')")
        conn.execute("CREATE TABLE big_other PARTITION OF big DEFAULT")
        conn.execute(
            "INSERT INTO big SELECT g, (ARRAY['eu', 'us', 'ca', 'ap', 'eu'])[g % 5 + 1], g % 11, g % 3"
            " FROM generate_series(1, 30000) g"
        )
        expected = conn.execute(CHECKSUM).fetchone()
    stack = _stack(tmp_path, source_url, target_url, {"SegmentedLoadSettings": {"Workers": "store"}})
    mappings = json.loads((tmp_path / "mappings.json").read_text())
    mappings["rules"].append(
        {
            "rule-type": "table-settings",
            "rule-id": "2",
            "rule-name": "by-partition",
            "object-locator": {"schema-name": "public", "table-name": "big"},
            "parallel-load": {"type": "partitions-auto"},
        }
    )
    (tmp_path / "mappings.json").write_text(json.dumps(mappings))
    home = tmp_path / "home"
    assert conveyor(home, "apply", str(stack)).returncode == 0
    worker = subprocess.Popen(
        [sys.executable, "-m", "conveyor", "worker", "--idle-exit", "120", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=environment(home),
    )
    try:
        started = conveyor(home, "tasks", "start", "big-load", "--wait", "--json", timeout=120)
        assert started.returncode == 0, started.stdout + started.stderr
        (table,) = json.loads(started.stdout)["tables"]
        assert (table["TableState"], table["FullLoadRows"]) == ("Table completed", expected[0])
        worker.send_signal(signal.SIGTERM)  # stops between segments, reports what it did
        out, _ = worker.communicate(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert json.loads(out)["segments_loaded"] == 3
    store = Store.open(home=home)
    try:
        segments = SegmentQueue(store).segments(store.task_status("big-load")["current_run"])
    finally:
        store.close()
    assert sorted(s["spec"]["relation"][1] for s in segments) == ["big_eu", "big_other", "big_us"]
    assert sorted(s["rows"] for s in segments) == [6000, 12000, 12000]
    with psycopg.connect(target_url) as conn:
        assert conn.execute(CHECKSUM).fetchone() == expected


def test_partitions_list_named_partitions_first_then_the_rest(
    pg_server: PostgresServer, tmp_path: Path
) -> None:
    """parallel-load partitions-list: the named leaf partitions are the first
    segments, in the rule's order, the other partitions follow (the table is
    loaded whole); a name that is not a leaf partition fails the table, saying
    which partitions it has."""
    source_url = pg_server.url(pg_server.new_database("plsrc"))
    target_url = pg_server.url(pg_server.new_database("pldst"))
    with psycopg.connect(source_url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE big (id integer, region text, a integer NOT NULL, b integer,"
            " PRIMARY KEY (id, region)) PARTITION BY LIST (region)"
        )
        conn.execute("CREATE TABLE big_eu PARTITION OF big FOR VALUES IN ('eu')")
        conn.execute("CREATE TABLE big_us PARTITION OF big FOR VALUES IN ('us', 'ca')")
        conn.execute("CREATE TABLE big_other PARTITION OF big DEFAULT")
        conn.execute(
            "INSERT INTO big SELECT g, (ARRAY['eu', 'us', 'ca', 'ap', 'eu'])[g % 5 + 1], g % 11, g % 3"
            " FROM generate_series(1, 3000) g"
        )
        expected = conn.execute(CHECKSUM).fetchone()
    stack = _stack(tmp_path, source_url, target_url, {"SegmentedLoadSettings": {"Workers": "store"}})
    base = json.loads((tmp_path / "mappings.json").read_text())

    def with_partitions(names: list[str]) -> None:
        rule = {
            "rule-type": "table-settings",
            "rule-id": "2",
            "rule-name": "named",
            "object-locator": {"schema-name": "public", "table-name": "big"},
            "parallel-load": {"type": "partitions-list", "partitions": names},
        }
        (tmp_path / "mappings.json").write_text(json.dumps({"rules": [*base["rules"], rule]}))
        assert conveyor(home, "apply", str(stack)).returncode == 0

    home = tmp_path / "home"
    with_partitions(["big_us", "big_nowhere"])
    failed = conveyor(home, "tasks", "start", "big-load", "--wait", "--json", timeout=120)
    assert failed.returncode != 0
    assert "partitions-list names 'big_nowhere', not a leaf partition of the table" in failed.stdout
    assert "(its leaf partitions: big_eu, big_other, big_us)" in failed.stdout

    with_partitions(["big_us", "big_eu"])
    worker = subprocess.Popen(
        [sys.executable, "-m", "conveyor", "worker", "--idle-exit", "120", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=environment(home),
    )
    try:
        started = conveyor(home, "tasks", "start", "big-load", "--wait", "--json", timeout=120)
        assert started.returncode == 0, started.stdout + started.stderr
        (table,) = json.loads(started.stdout)["tables"]
        assert (table["TableState"], table["FullLoadRows"]) == ("Table completed", expected[0])
        worker.send_signal(signal.SIGTERM)
        out, _ = worker.communicate(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert json.loads(out)["segments_loaded"] == 3
    store = Store.open(home=home)
    try:
        segments = SegmentQueue(store).segments(store.task_status("big-load")["current_run"])
    finally:
        store.close()
    ordered = sorted(segments, key=lambda s: s["seq"])
    assert [s["spec"]["relation"][1] for s in ordered] == ["big_us", "big_eu", "big_other"]
    with psycopg.connect(target_url) as conn:
        assert conn.execute(CHECKSUM).fetchone() == expected


def test_partitions_list_in_process_checks_the_names_and_loads_the_table_whole(
    pg_server: PostgresServer, tmp_path: Path
) -> None:
    """Without workers a partitions-list table is read in one piece, its
    partitions included; its names are still checked (never ignored)."""
    source_url = pg_server.url(pg_server.new_database("plisrc"))
    target_url = pg_server.url(pg_server.new_database("plidst"))
    with psycopg.connect(source_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE big (id integer PRIMARY KEY, a integer) PARTITION BY RANGE (id)")
        conn.execute("CREATE TABLE big_low PARTITION OF big FOR VALUES FROM (MINVALUE) TO (1000)")
        conn.execute("CREATE TABLE big_high PARTITION OF big FOR VALUES FROM (1000) TO (MAXVALUE)")
        conn.execute("INSERT INTO big SELECT g, g % 7 FROM generate_series(1, 2500) g")
        expected = conn.execute(CHECKSUM).fetchone()
    stack = _stack(tmp_path, source_url, target_url, {})
    base = json.loads((tmp_path / "mappings.json").read_text())
    home = tmp_path / "home"
    for names, loads in ((["big_middle"], False), (["big_high"], True)):
        rule = {
            "rule-type": "table-settings",
            "rule-id": "2",
            "rule-name": "named",
            "object-locator": {"schema-name": "public", "table-name": "big"},
            "parallel-load": {"type": "partitions-list", "partitions": names},
        }
        (tmp_path / "mappings.json").write_text(json.dumps({"rules": [*base["rules"], rule]}))
        assert conveyor(home, "apply", str(stack)).returncode == 0
        started = conveyor(home, "tasks", "start", "big-load", "--wait", "--json", timeout=120)
        if not loads:
            assert started.returncode != 0
            assert "names 'big_middle', not a leaf partition of the table" in started.stdout
            assert "(its leaf partitions: big_high, big_low)" in started.stdout
            continue
        assert started.returncode == 0, started.stdout + started.stderr
        (table,) = json.loads(started.stdout)["tables"]
        assert (table["TableState"], table["FullLoadRows"]) == ("Table completed", expected[0])
    with psycopg.connect(target_url) as conn:
        assert conn.execute(CHECKSUM).fetchone() == expected
