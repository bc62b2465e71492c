"""Shared helpers for the ASL tests: run a definition on our engine, and on moto's
(LocalStack's) interpreter as a conformance oracle. Imported by the other test_asl_* files."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from conveyor.orchestration.asl import Execution, FakeClock, InMemoryExecutionStore, Integrations


@dataclass
class Case:
    """One table row: a definition, its input, and the output or error expected."""

    id: str
    definition: dict[str, Any]
    input: Any = field(default_factory=dict)
    output: Any = None
    error: str | None = None
    moto: str | None = None  # None: compare with moto; otherwise why moto is skipped

    def param(self) -> Any:
        return pytest.param(self, id=self.id)


def machine(states: dict[str, Any], start: str | None = None) -> dict[str, Any]:
    return {"StartAt": start or next(iter(states)), "States": states}


def pass_state(**fields: Any) -> dict[str, Any]:
    """A machine of one Pass state with ``fields``."""
    return machine({"P": {"Type": "Pass", "End": True, **fields}})


@dataclass
class Outcome:
    status: str
    output: Any = None
    error: str | None = None
    cause: str | None = None


def run_engine(
    definition: dict[str, Any], execution_input: Any, integrations: Integrations | None = None, seed: int = 7
) -> Outcome:
    execution = Execution.start(
        definition,
        execution_input,
        store=InMemoryExecutionStore(),
        integrations=integrations or Integrations(),
        clock=FakeClock(),
        seed=seed,
    )
    record = execution.run()
    return Outcome(record.status, record.output, record.error, record.cause)


def check_engine(case: Case) -> None:
    outcome = run_engine(case.definition, case.input)
    if case.error is not None:
        assert (outcome.status, outcome.error) == ("FAILED", case.error), outcome.cause
    else:
        assert outcome.status == "SUCCEEDED", f"{outcome.error}: {outcome.cause}"
        assert outcome.output == case.output


class MotoOracle:
    """moto's ASL interpreter, in-process (``mock_aws`` with execute_state_machine)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def run(self, definition: dict[str, Any], execution_input: Any) -> Outcome:
        name = uuid.uuid4().hex[:20]
        arn = self.client.create_state_machine(
            name=name, definition=json.dumps(definition), roleArn="arn:aws:iam::123456789012:role/sfn"
        )["stateMachineArn"]
        run_arn = self.client.start_execution(
            stateMachineArn=arn, name=name, input=json.dumps(execution_input)
        )["executionArn"]
        deadline = time.monotonic() + 10
        while True:
            desc = self.client.describe_execution(executionArn=run_arn)
            # moto's execution thread sets the status a moment before the output or the error.
            status = desc["status"]
            finished = status != "RUNNING" and (
                "output" in desc if status == "SUCCEEDED" else "error" in desc if status == "FAILED" else True
            )
            if finished or time.monotonic() > deadline:
                break
            time.sleep(0.002)
        output = _decode(desc["output"]) if desc.get("output") else None
        return Outcome(desc["status"], output, desc.get("error"), desc.get("cause"))


def _decode(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:  # moto returns a top-level string output unencoded
        return text


def moto_oracle() -> Iterator[MotoOracle]:
    """Body of a module-scoped fixture: ``oracle = pytest.fixture(scope="module")(moto_oracle)``."""
    boto3 = pytest.importorskip("boto3")
    moto = pytest.importorskip("moto")
    with pytest.MonkeyPatch.context() as mp:
        for key, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }.items():
            mp.setenv(key, value)
        with moto.mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
            yield MotoOracle(boto3.client("stepfunctions", region_name="us-east-1"))


def check_moto(oracle: MotoOracle, case: Case) -> None:
    if case.moto is not None and not os.environ.get("ASL_ORACLE_ALL"):
        pytest.skip(f"moto differs: {case.moto}")
    outcome = oracle.run(case.definition, case.input)
    if case.error is not None:
        assert (outcome.status, outcome.error) == ("FAILED", case.error), outcome.cause
    else:
        assert outcome.status == "SUCCEEDED", f"{outcome.error}: {outcome.cause}"
        assert outcome.output == case.output


oracle = pytest.fixture(scope="module")(moto_oracle)


def test_oracle_runs_a_pass_state(oracle: MotoOracle) -> None:
    case = Case("pass", pass_state(Result={"a": 1}), {}, {"a": 1})
    check_engine(case)
    check_moto(oracle, case)
