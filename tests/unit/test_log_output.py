"""JSON log lines and the bounded, followable worker log files."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.core.log_format import JsonFormatter, bind, log_format
from conveyor.replication.run_logs import RunLogHandler, follow_log, read_log


@pytest.fixture
def json_log(tmp_path: Path) -> Iterator[tuple[logging.Logger, Path]]:
    """A logger writing JSON lines to a file (the root logger is pytest's)."""
    path = tmp_path / "out.log"
    handler = logging.FileHandler(path)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("conveyor.test")
    log.propagate, log.level = False, logging.INFO
    log.addHandler(handler)
    yield log, path
    log.removeHandler(handler)
    handler.close()
    bind(task=None, run_id=None)


def test_json_lines_carry_the_bound_and_extra_fields(json_log: tuple[logging.Logger, Path]) -> None:
    log, path = json_log
    bind(task="sync", run_id=7)
    log.info("table %s: %s", "public.items", "Table completed", extra={"rows": 3})
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        log.exception("it failed")
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(lines) == 2
    first, second = lines
    assert first["message"] == "table public.items: Table completed"
    assert (first["level"], first["logger"], first["task"], first["run_id"], first["rows"]) == (
        "INFO",
        "conveyor.test",
        "sync",
        7,
        3,
    )
    assert first["ts"].endswith("+00:00")
    assert second["level"] == "ERROR" and "ValueError: bad\nvalue" in second["exc"]


def test_log_format_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONVEYOR_LOG_FORMAT", raising=False)
    assert log_format() == "text"
    monkeypatch.setenv("CONVEYOR_LOG_FORMAT", "JSON")
    assert log_format() == "json"
    assert log_format("text") == "text"
    with pytest.raises(ValueError, match="text, json"):
        log_format("xml")


def test_the_run_log_is_bounded_and_followed_across_a_rollover(tmp_path: Path) -> None:
    path = tmp_path / "3.log"
    handler = RunLogHandler(path, limit=4096)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("conveyor.test.rollover")
    log.propagate = False
    log.addHandler(handler)
    done = threading.Event()
    got: list[str] = []

    def follow() -> None:
        got.extend(follow_log(path, done.is_set, poll=0.02))

    follower = threading.Thread(target=follow)
    try:
        path.touch()
        follower.start()
        for i in range(200):  # about 20 kB: several rollovers
            log.info("line %03d %s", i, "x" * 40)
            if i % 20 == 0:
                time.sleep(0.05)
        handler.flush()
        done.set()
        follower.join(timeout=10)
    finally:
        log.removeHandler(handler)
        handler.close()
    assert not follower.is_alive()
    assert path.stat().st_size <= 4096 and path.with_name("3.log.1").stat().st_size <= 4096
    assert not path.with_name("3.log.2").exists()
    followed = [json.loads(line)["message"] for line in "".join(got).splitlines()]
    # Every line written while following arrives once, in order (a rollover between two
    # polls larger than a whole part would lose lines: 40 lines a poll here).
    assert followed == [f"line {i:03d} {'x' * 40}" for i in range(200)]


def test_read_log_returns_whole_lines_from_an_offset(tmp_path: Path) -> None:
    path = tmp_path / "1.log"
    path.write_text("".join(f"line {i}\n" for i in range(100)))
    tail = read_log(path, None, 30)
    assert tail.text.splitlines() == ["line 97", "line 98", "line 99"]
    assert tail.next_offset == tail.size
    head = read_log(path, 0, 20)
    assert head.text == "line 0\nline 1\n" and head.next_offset == 14
    assert read_log(path, head.next_offset, 7).text == "line 2\n"
    assert read_log(path, 10**6).rotated
    assert read_log(tmp_path / "missing.log", 5).text == ""


def test_a_json_process_ends_with_json_lines_even_when_it_crashes(tmp_path: Path) -> None:
    script = """
import logging, threading, warnings
from conveyor.core.log_format import bind, configure_logging
configure_logging("json")
bind(task="t", run_id=1)
logging.getLogger("conveyor.x").info("hello")
warnings.warn("careful")
thread = threading.Thread(target=lambda: 1 / 0, name="applier")
thread.start(); thread.join()
raise RuntimeError("the end")
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 1
    records = [json.loads(line) for line in done.stderr.splitlines()]
    assert records[0]["message"] == "hello"
    assert any("careful" in r["message"] and r["logger"] == "py.warnings" for r in records)
    crashed = [r for r in records if r["level"] == "CRITICAL"]
    assert crashed[0]["message"] == "uncaught exception in thread applier"
    assert "ZeroDivisionError" in crashed[0]["exc"] and "RuntimeError: the end" in crashed[1]["exc"]
    assert all((r["task"], r["run_id"]) == ("t", 1) for r in records)
