"""A synchronous EXPRESS execution runs at most once: when the process running it for its
caller dies, `conveyor serve` fails it instead of running it again; a STANDARD one in
the same place is taken over and finishes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from support.aws import KEYS, TOKEN
from support.cli import conveyor, environment
from support.serve import Serve, wait_for
from support.servers import free_port

pytestmark = pytest.mark.e2e


def waits(seconds: int) -> str:
    return json.dumps(
        {
            "StartAt": "W",
            "States": {
                "W": {"Type": "Wait", "Seconds": seconds, "Next": "P"},
                "P": {"Type": "Pass", "Result": "done", "ResultPath": "$.p", "End": True},
            },
        }
    )


STACK = f"""
state_machines:
  quick: {{type: EXPRESS, definition: {waits(300)}}}
  steady: {{definition: {waits(20)}}}
"""

START = [sys.executable, "-m", "conveyor", "executions", "start"]


def described(home: Path, name: str, *, recorded: bool = True) -> dict[str, Any]:
    shown = conveyor(home, "executions", "describe", name, "--json")
    if not recorded and "no execution with id" in shown.stderr:
        return {}
    assert shown.returncode == 0, shown.stderr
    answer: dict[str, Any] = json.loads(shown.stdout)
    return answer


def test_a_synchronous_express_execution_runs_at_most_once(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (tmp_path / "conveyor.yaml").write_text(STACK)
    applied = conveyor(home, "apply", str(tmp_path / "conveyor.yaml"))
    assert applied.returncode == 0, applied.stderr
    waiting = {
        machine: subprocess.Popen(
            [*START, machine, "--name", f"{machine}-1", "--wait"],
            env=environment(home),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for machine in ("quick", "steady")
    }
    try:
        wait_for(
            lambda: all(
                described(home, f"{m}-1", recorded=False).get("currentState") == "W" for m in waiting
            ),
            90,
            "both to wait",
        )
    finally:
        for process in waiting.values():
            process.kill()  # SIGKILL: the callers are gone
            process.wait(timeout=30)
    assert described(home, "quick-1")["status"] == "RUNNING"

    server = Serve(home, free_port(), KEYS | TOKEN)
    try:
        server.ready()
        steady = wait_for(
            lambda: (d := described(home, "steady-1"))["status"] != "RUNNING" and d, 120, "steady to end"
        )
        assert steady["status"] == "SUCCEEDED" and json.loads(steady["output"]) == {"p": "done"}
        quick = wait_for(lambda: (d := described(home, "quick-1"))["status"] != "RUNNING" and d, 30, "quick")
        assert (quick["status"], quick["error"]) == ("FAILED", "States.Runtime")
        assert "runs at most once" in quick["cause"]
        history = conveyor(home, "executions", "history", "quick-1", "--json")
        types = [e["type"] for e in json.loads(history.stdout)["events"]]
        assert types[-1] == "ExecutionFailed" and "PassStateEntered" not in types  # not run on
    finally:
        server.kill()
