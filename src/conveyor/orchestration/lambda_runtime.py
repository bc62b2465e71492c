"""Lambda functions as written, each invocation in a child process.

A function declared in the stack file (``functions: NAME: {handler:
path/file.py:lambda_handler}``) runs as Lambda runs it: ``handler(event,
context)``, its module loaded afresh, with ``AWS_ENDPOINT_URL`` and a key pair
pointing the AWS SDK at the ``conveyor serve`` that runs the execution. So a
function that calls ``boto3.client("dms")`` works unchanged against Conveyor.
The child gets the event on stdin and writes its answer to a file; what it
prints is its log. A timeout kills it, as Lambda does.

Run as ``python -m conveyor.orchestration.lambda_runtime FILE FUNCTION ANSWER``.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conveyor.core.arns import arn

log = logging.getLogger(__name__)
REGION = "us-east-1"


@dataclass(frozen=True)
class Invocation:
    """What one call of a declared function needs."""

    name: str
    file: str
    function: str
    environment: dict[str, str]
    timeout: int
    aws_endpoint: str | None


class FunctionFailed(Exception):
    """The function raised, timed out or its process died: Lambda's error shape."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


def invoke(call: Invocation, event: Any) -> Any:
    """Run the function on ``event`` in a child process; its return value."""
    env = (
        os.environ | call.environment | {"AWS_LAMBDA_FUNCTION_NAME": call.name, "AWS_DEFAULT_REGION": REGION}
    )
    key_id = os.environ.get("CONVEYOR_AWS_ACCESS_KEY_ID")
    secret = os.environ.get("CONVEYOR_AWS_SECRET_ACCESS_KEY")
    if call.aws_endpoint is not None:
        env["AWS_ENDPOINT_URL"] = call.aws_endpoint
    if key_id and secret:
        env |= {"AWS_ACCESS_KEY_ID": key_id, "AWS_SECRET_ACCESS_KEY": secret}
        env.pop("AWS_SESSION_TOKEN", None)
    with tempfile.TemporaryDirectory(prefix="conveyor-lambda-") as folder:
        answer = Path(folder) / "answer.json"
        command = [sys.executable, "-m", __name__, call.file, call.function, str(answer), str(call.timeout)]
        try:
            done = subprocess.run(
                command,
                input=json.dumps(event),
                capture_output=True,
                text=True,
                env=env,
                timeout=call.timeout + 10,  # the child's own start-up beside the function's time
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise FunctionFailed(
                "Sandbox.Timedout", f"function {call.name} timed out after {call.timeout} seconds"
            ) from None
        for line in (done.stdout + done.stderr).splitlines():
            log.info("function %s: %s", call.name, line)
        if not answer.exists():
            tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise FunctionFailed(
                "Runtime.ExitError", f"function {call.name} exited with {done.returncode}: {tail}"
            )
        result = json.loads(answer.read_text(encoding="utf-8"))
    if "errorType" in result:
        raise FunctionFailed(str(result["errorType"]), str(result.get("errorMessage", "")))
    return result["result"]


class _Context:
    """The parts of Lambda's context object functions use."""

    def __init__(self, function: str, timeout: int) -> None:
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", function)
        self.function_version = "$LATEST"
        self.aws_request_id = str(uuid.uuid4())
        self.invoked_function_arn = arn("lambda", f"function:{self.function_name}")
        self.memory_limit_in_mb = 128
        self._deadline = time.monotonic() + timeout

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def main(argv: list[str]) -> int:
    file, function, answer, timeout = argv
    try:
        spec = importlib.util.spec_from_file_location(Path(file).stem, file)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {file}")
        module = importlib.util.module_from_spec(spec)
        sys.path.insert(0, str(Path(file).parent))
        spec.loader.exec_module(module)
        handler = getattr(module, function)
        event = json.loads(sys.stdin.read() or "null")
        result: dict[str, Any] = {"result": handler(event, _Context(function, int(timeout)))}
        json.dumps(result)  # the answer must be JSON, as Lambda's is
    except Exception as exc:
        result = {"errorType": type(exc).__name__, "errorMessage": str(exc)}
    Path(answer).write_text(json.dumps(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
