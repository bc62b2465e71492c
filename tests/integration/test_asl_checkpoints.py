"""A Map whose process is killed midway: the resumed execution (claimed by another
process, as `conveyor serve` claims it) runs only the iterations that had not finished."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conveyor.orchestration.bus import event_sink
from conveyor.orchestration.executions import Executions
from conveyor.stack.loader import load_stack
from conveyor.store.store import Store

pytestmark = pytest.mark.integration

FUNCTION = """
import os, time
from pathlib import Path

def handler(event, context):
    folder = Path(os.environ["ITEMS_DIR"])
    (folder / f"{event}.{os.getpid()}").write_text("")
    while event == 3 and (folder / "block").exists():
        time.sleep(0.05)
    return event * 10
"""
DEFINITION = {
    "StartAt": "M",
    "States": {
        "M": {
            "Type": "Map",
            "MaxConcurrency": 1,
            "ItemProcessor": {
                "StartAt": "T",
                "States": {
                    "T": {
                        "Type": "Task",
                        "Resource": "arn:aws:states:::lambda:invoke",
                        "Parameters": {"FunctionName": "items_fn:handler", "Payload.$": "$"},
                        "OutputPath": "$.Payload",
                        "End": True,
                    }
                },
            },
            "End": True,
        }
    },
}
RUNNER = """
import sys
from pathlib import Path
from conveyor.orchestration.bus import event_sink
from conveyor.orchestration.executions import Executions
from conveyor.stack.loader import load_stack
from conveyor.store.store import Store

stack = load_stack(Path(sys.argv[1]))
store = Store.open(home=Path(sys.argv[2]))
executions = Executions(store, lambda: stack, events=event_sink(store))
executions.start("each", [1, 2, 3, 4], name="killed", run="inline")
"""


def test_killed_map_resumes_without_rerunning_finished_iterations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = tmp_path / "items"
    items.mkdir()
    (items / "block").write_text("")
    (tmp_path / "items_fn.py").write_text(FUNCTION)
    stack_file = tmp_path / "conveyor.yaml"
    stack_file.write_text(f"state_machines:\n  each: {{definition: {json.dumps(DEFINITION)}}}\n")
    home = tmp_path / "home"
    env = os.environ | {
        "ITEMS_DIR": str(items),
        "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    child = subprocess.Popen([sys.executable, "-c", RUNNER, str(stack_file), str(home)], env=env)
    try:
        deadline = time.monotonic() + 60
        while not any(p.name.startswith("3.") for p in items.iterdir()):
            assert time.monotonic() < deadline, "item 3 never started"
            assert child.poll() is None, "the runner ended early"
            time.sleep(0.05)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    (items / "block").unlink()
    monkeypatch.setenv("ITEMS_DIR", str(items))
    monkeypatch.syspath_prepend(str(tmp_path))
    stack = load_stack(stack_file)
    store = Store.open(home=home)
    try:
        executions = Executions(store, lambda: stack, events=event_sink(store))
        execution_id = executions.resolve("killed")["id"]
        described = executions.run(execution_id)
        assert described["status"] == "SUCCEEDED", described
        assert json.loads(described["output"]) == [10, 20, 30, 40]
    finally:
        store.close()
    runs = sorted(p.name.split(".")[0] for p in items.iterdir())
    assert runs == ["1", "2", "3", "3", "4"]  # 1 and 2 finished before the kill: not run again
