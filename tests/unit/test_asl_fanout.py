"""Map and Parallel run their iterations / branches concurrently, checkpoint each one
that finishes (a resumed execution does not run it again), keep the task tokens of
iterations across a restart; Distributed Map reads items (ItemReader), batches them
(ItemBatcher) and tolerates failures (ToleratedFailure*)."""

from __future__ import annotations

import contextlib
import threading
import time
from datetime import datetime
from typing import Any

import pytest
from test_asl_harness import Case, MotoOracle, check_engine, check_moto, machine, moto_oracle, run_engine

from conveyor.orchestration.asl import (
    Execution,
    ExecutionSuspended,
    FakeClock,
    InMemoryExecutionStore,
    Integrations,
    TaskError,
)
from conveyor.orchestration.asl.tokens import InMemoryTaskTokens

oracle = pytest.fixture(scope="module")(moto_oracle)
TASK = "arn:aws:states:::lambda:invoke"


def map_of(task: dict[str, Any], **fields: Any) -> dict[str, Any]:
    processor = {"StartAt": "T", "States": {"T": {**task, "End": True}}}
    return machine({"M": {"Type": "Map", "ItemProcessor": processor, "End": True, **fields}})


def task(resource: str = TASK, **fields: Any) -> dict[str, Any]:
    return {"Type": "Task", "Resource": resource, **fields}


def registry(handler: Any, resource: str = TASK) -> Integrations:
    integrations = Integrations()
    integrations.register(resource, handler)
    return integrations


def test_map_iterations_run_concurrently_up_to_max_concurrency() -> None:
    lock = threading.Lock()
    running: list[int] = [0, 0]  # now, most at once
    barrier = threading.Barrier(3, timeout=5)

    def handler(parameters: Any, context: Any) -> Any:
        with lock:
            running[0] += 1
            running[1] = max(running)
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait()  # three iterations must be running together to pass
        with lock:
            running[0] -= 1
        return parameters * 10

    outcome = run_engine(map_of(task(), MaxConcurrency=3), [1, 2, 3, 4, 5, 6], registry(handler))
    assert outcome.output == [10, 20, 30, 40, 50, 60]
    assert running[1] == 3


def test_parallel_branches_run_concurrently() -> None:
    barrier = threading.Barrier(2, timeout=5)

    def handler(parameters: Any, context: Any) -> Any:
        barrier.wait()  # raises BrokenBarrierError (a failed Task) unless both run at once
        return parameters

    branches = [{"StartAt": n, "States": {n: task(End=True)}} for n in ("T1", "T2")]
    definition = machine({"P": {"Type": "Parallel", "Branches": branches, "End": True}})
    outcome = run_engine(definition, {"a": 1}, registry(handler))
    assert (outcome.status, outcome.output) == ("SUCCEEDED", [{"a": 1}, {"a": 1}])


class Crash:
    """A handler that 'kills the process' (ExecutionSuspended) on one item, once."""

    def __init__(self, crash_on: int) -> None:
        self.crash_on = crash_on
        self.calls: list[int] = []

    def __call__(self, parameters: Any, context: Any) -> Any:
        self.calls.append(parameters)
        if parameters == self.crash_on:
            self.crash_on = -1
            raise ExecutionSuspended
        return parameters + 100


def test_a_resumed_map_does_not_run_finished_iterations_again() -> None:
    store = InMemoryExecutionStore()
    crash = Crash(crash_on=3)
    integrations = registry(crash)
    first = Execution.start(
        map_of(task(), MaxConcurrency=1),
        [1, 2, 3, 4],
        store=store,
        integrations=integrations,
        clock=FakeClock(),
    )
    assert first.run().status == "RUNNING"
    assert sorted(store.load(first.execution_id).cursor.done) == ["M[0]", "M[1]"]  # type: ignore[union-attr]
    crash.calls.clear()
    resumed = Execution.resume(store, first.execution_id, integrations=integrations, clock=FakeClock())
    record = resumed.run()
    assert (record.status, record.output) == ("SUCCEEDED", [101, 102, 103, 104])
    assert crash.calls == [3, 4]
    assert store.load(first.execution_id).cursor is None


def test_a_resumed_parallel_inside_a_map_keeps_nested_checkpoints() -> None:
    store = InMemoryExecutionStore()
    crash = Crash(crash_on=12)
    branches = [{"StartAt": n, "States": {n: task(End=True)}} for n in ("T1", "T2")]
    inner = {
        "StartAt": "P",
        "States": {"P": {"Type": "Parallel", "Branches": branches, "End": True}},
    }
    definition = machine(
        {
            "M": {
                "Type": "Map",
                "MaxConcurrency": 1,
                "ItemProcessor": inner,
                "End": True,
            }
        }
    )
    first = Execution.start(definition, [5, 12], store=store, integrations=registry(crash), clock=FakeClock())
    assert first.run().status == "RUNNING"
    crash.calls.clear()
    record = Execution.resume(
        store, first.execution_id, integrations=registry(crash), clock=FakeClock()
    ).run()
    assert record.output == [[105, 105], [112, 112]]
    assert crash.calls.count(5) == 0  # item 0 finished before the crash
    assert 1 <= crash.calls.count(12) <= 2  # the branch that finished before the crash may be kept


class SuspendingClock(FakeClock):
    """Waiting for a token 'kills the process': the sleep raises ExecutionSuspended."""

    def sleep_until(self, when: datetime) -> None:
        raise ExecutionSuspended


def test_task_tokens_inside_map_iterations_survive_a_restart() -> None:
    store = InMemoryExecutionStore()
    tokens = InMemoryTaskTokens()
    sent: list[str] = []
    lock = threading.Lock()

    both = threading.Barrier(2, timeout=5)

    def submit(parameters: Any, context: Any) -> Any:
        with lock:
            sent.append(parameters["token"])
        if len(sent) <= 2:
            both.wait()  # both iterations are submitted before the 'kill'
        return {"queued": True}

    waiting = task(
        TASK + ".waitForTaskToken",
        Parameters={"token.$": "$$.Task.Token", "item.$": "$"},
    )
    definition = map_of(waiting)
    first = Execution.start(
        definition, [1, 2], store=store, integrations=registry(submit), clock=SuspendingClock(), tokens=tokens
    )
    assert first.run().status == "RUNNING"
    saved = store.load(first.execution_id).cursor.tokens  # type: ignore[union-attr]
    assert sorted(saved.values()) == sorted(sent) and len(sent) == 2
    for token in sent:
        tokens.succeed(token, {"answer": token[:6]})
    resumed = Execution.resume(
        store, first.execution_id, integrations=registry(submit), clock=FakeClock(), tokens=tokens
    )
    record = resumed.run()
    assert record.status == "SUCCEEDED"
    assert len(sent) == 2  # the integration was not called again
    assert sorted(r["answer"] for r in record.output) == sorted(t[:6] for t in sent)


def test_a_failed_iteration_fails_the_map_and_stops_the_others() -> None:
    calls: list[int] = []

    def handler(parameters: Any, context: Any) -> Any:
        calls.append(parameters)
        if parameters == 2:
            raise TaskError("Custom.Bad", "item 2")
        return parameters

    outcome = run_engine(map_of(task(), MaxConcurrency=1), [1, 2, 3, 4], registry(handler))
    assert (outcome.status, outcome.error) == ("FAILED", "Custom.Bad")
    assert calls == [1, 2]


DISTRIBUTED = {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"}}
CSV = "id,name\n1,ana\n2,bo\n3,cy\n4,di\n5,ed\n"


def distributed(reader: dict[str, Any], task_fields: dict[str, Any], **fields: Any) -> dict[str, Any]:
    processor = {**DISTRIBUTED, "StartAt": "T", "States": {"T": {**task(**task_fields), "End": True}}}
    state = {"Type": "Map", "ItemReader": reader, "ItemProcessor": processor, "End": True, **fields}
    return machine({"M": state})


def test_distributed_map_reads_a_csv_object_and_batches_it() -> None:
    reads: list[Any] = []

    def get_object(parameters: Any, context: Any) -> Any:
        reads.append(parameters)
        return {"Body": CSV}

    integrations = registry(lambda p, c: p)
    integrations.register("arn:aws:states:::s3:getObject", get_object)
    reader = {
        "Resource": "arn:aws:states:::s3:getObject",
        "ReaderConfig": {"InputType": "CSV", "CSVHeaderLocation": "FIRST_ROW", "MaxItems": 4},
        "Parameters": {"Bucket": "lake", "Key.$": "$.key"},
    }
    definition = distributed(
        reader,
        {},
        ItemBatcher={"MaxItemsPerBatch": 3, "BatchInput": {"run.$": "$.run"}},
        ItemSelector={"who.$": "$$.Map.Item.Value.name"},
    )
    outcome = run_engine(definition, {"key": "people.csv", "run": 7}, integrations)
    assert reads == [{"Bucket": "lake", "Key": "people.csv"}]
    assert outcome.output == [
        {"Items": [{"who": "ana"}, {"who": "bo"}, {"who": "cy"}], "BatchInput": {"run": 7}},
        {"Items": [{"who": "di"}], "BatchInput": {"run": 7}},
    ]


def test_distributed_map_over_listed_objects_tolerates_failures() -> None:
    listing = {"Contents": [{"Key": f"raw/{i}.json", "Size": i, "Owner": "x"} for i in range(10)]}

    def handler(parameters: Any, context: Any) -> Any:
        if parameters["Size"] in (3, 7):
            raise TaskError("Custom.Bad", parameters["Key"])
        return parameters["Key"]

    integrations = registry(handler)
    integrations.register("arn:aws:states:::s3:listObjectsV2", lambda p, c: listing)
    reader = {
        "Resource": "arn:aws:states:::s3:listObjectsV2",
        "Parameters": {"Bucket": "lake", "Prefix": "raw/"},
    }
    tolerant = distributed(reader, {}, ToleratedFailurePercentage=20)
    outcome = run_engine(tolerant, {}, integrations)
    assert outcome.status == "SUCCEEDED"
    assert outcome.output[3] == {"Error": "Custom.Bad", "Cause": "raw/3.json"}
    assert outcome.output[4] == "raw/4.json"
    strict = distributed(reader, {}, ToleratedFailureCount=1)
    outcome = run_engine(strict, {}, integrations)
    assert (outcome.status, outcome.error) == ("FAILED", "States.ExceedToleratedFailureThreshold")


def test_distributed_only_fields_are_refused_inline() -> None:
    from conveyor.core.errors import ConfigError
    from conveyor.orchestration.asl import parse_definition

    with pytest.raises(ConfigError, match=r"States\.M\.ToleratedFailureCount: only a Distributed Map"):
        parse_definition(map_of(task(), ToleratedFailureCount=1))
    with pytest.raises(ConfigError, match=r"States\.M\.ResultWriter: only a Distributed Map"):
        parse_definition(map_of(task(), ResultWriter={"WriterConfig": {"Transformation": "FLATTEN"}}))


PUT = "arn:aws:states:::s3:putObject"
LISTED = {
    "Resource": "arn:aws:states:::s3:listObjectsV2",
    "Parameters": {"Bucket": "lake", "Prefix": "raw/"},
}


@pytest.mark.parametrize(
    ("writer", "problem"),
    [
        ({}, r"ResultWriter: must be an object with Resource"),
        ({"Resource": PUT}, r"ResultWriter: Resource needs Parameters"),
        ({"Resource": "arn:aws:states:::s3:getObject", "Parameters": {}}, r"ResultWriter\.Resource: must be"),
        ({"WriterConfig": {"Transformation": "SQUASH"}}, r"Transformation: must be one of NONE, COMPACT"),
        ({"WriterConfig": {"OutputType": "JSONL"}}, r"OutputType: 'JSONL' is not supported by Conveyor"),
        ({"Writer": {}}, r"ResultWriter\.Writer: unknown field.*WriterConfig"),
    ],
)
def test_a_result_writer_that_cannot_run_is_refused(writer: dict[str, Any], problem: str) -> None:
    from conveyor.core.errors import ConfigError
    from conveyor.orchestration.asl import parse_definition

    with pytest.raises(ConfigError, match=problem):
        parse_definition(distributed(LISTED, {}, ResultWriter=writer))


def listed_objects(count: int) -> Integrations:
    """A Distributed Map's world: ``count`` listed objects, a task failing on sizes 1 and 3
    (an array for size 2), and a putObject keeping what it is given."""
    listing = {"Contents": [{"Key": f"raw/{i}.json", "Size": i} for i in range(count)]}

    def handler(parameters: Any, context: Any) -> Any:
        if parameters["Size"] in (1, 3):
            raise TaskError("Custom.Bad", parameters["Key"])
        return [parameters["Size"], "x"] if parameters["Size"] == 2 else parameters["Size"]

    integrations = registry(handler)
    integrations.register("arn:aws:states:::s3:listObjectsV2", lambda p, c: listing)
    return integrations


def test_result_writer_exports_results_and_a_manifest() -> None:
    """As the AWS developer guide's "ResultWriter (Map)" describes: the files under
    PREFIX/MAP_RUN_ID/, the manifest listing them by status, the Map's result naming the
    manifest; records (Transformation NONE, the export's default) for every iteration."""
    import json
    import re

    written: dict[str, str] = {}

    def put(parameters: Any, context: Any) -> Any:
        assert parameters["Bucket"] == "out"
        written[parameters["Key"]] = parameters["Body"]
        return {}

    integrations = listed_objects(4)
    integrations.register(PUT, put)
    writer = {"Resource": PUT, "Parameters": {"Bucket": "out", "Prefix.$": "$.prefix"}}
    definition = distributed(LISTED, {}, ToleratedFailureCount=2, ResultWriter=writer)
    outcome = run_engine(definition, {"prefix": "runs"}, integrations)
    assert outcome.status == "SUCCEEDED", outcome.error
    details = outcome.output["ResultWriterDetails"]
    run_id = outcome.output["MapRunArn"].rsplit(":", 1)[1]
    assert re.fullmatch(r"arn:aws:states:::mapRun:StateMachine/M:[0-9a-f-]{36}", outcome.output["MapRunArn"])
    assert details == {"Bucket": "out", "Key": f"runs/{run_id}/manifest.json"}
    manifest = json.loads(written[details["Key"]])
    succeeded, failed = f"runs/{run_id}/SUCCEEDED_0.json", f"runs/{run_id}/FAILED_0.json"
    assert manifest == {
        "DestinationBucket": "out",
        "MapRunArn": outcome.output["MapRunArn"],
        "ResultFiles": {
            "FAILED": [{"Key": failed, "Size": len(written[failed])}],
            "PENDING": [],
            "SUCCEEDED": [{"Key": succeeded, "Size": len(written[succeeded])}],
        },
    }
    records = json.loads(written[succeeded])
    assert [(r["Name"], json.loads(r["Output"]), r["Status"]) for r in records] == [
        ("0", 0, "SUCCEEDED"),
        ("2", [2, "x"], "SUCCEEDED"),
    ]
    assert json.loads(records[0]["Input"]) == {"Key": "raw/0.json", "Size": 0}
    assert records[0]["InputDetails"] == records[0]["OutputDetails"] == {"Included": True}
    assert [(r["Name"], r["Error"], r["Cause"], r["Status"]) for r in json.loads(written[failed])] == [
        ("1", "Custom.Bad", "raw/1.json", "FAILED"),
        ("3", "Custom.Bad", "raw/3.json", "FAILED"),
    ]


@pytest.mark.parametrize(
    ("transformation", "expected"),
    [("COMPACT", [0, [2, "x"], 4]), ("FLATTEN", [0, 2, "x", 4])],
)
def test_result_writer_transformations(transformation: str, expected: list[Any]) -> None:
    """Without an export the state's result is transformed; a failed iteration is its
    record (NONE), as the guide says; with one, the files hold the transformed results."""
    import json

    writer = {"WriterConfig": {"Transformation": transformation}}
    definition = distributed(LISTED, {}, ToleratedFailureCount=2, ResultWriter=writer)
    outcome = run_engine(definition, {}, listed_objects(5))
    failed = [r for r in outcome.output if isinstance(r, dict)]
    assert [r for r in outcome.output if not isinstance(r, dict)] == expected
    assert [(r["Name"], r["Status"]) for r in failed] == [("1", "FAILED"), ("3", "FAILED")]

    written: dict[str, str] = {}
    integrations = listed_objects(5)
    integrations.register(PUT, lambda p, c: written.update({p["Key"]: p["Body"]}))
    exported = {**writer, "Resource": PUT, "Parameters": {"Bucket": "out", "Prefix": ""}}
    outcome = run_engine(
        distributed(LISTED, {}, ToleratedFailureCount=2, ResultWriter=exported), {}, integrations
    )
    key = next(k for k in written if k.endswith("SUCCEEDED_0.json"))
    assert json.loads(written[key]) == expected
    assert not key.startswith("/")


def test_a_result_writer_that_cannot_write_fails_the_map() -> None:
    def put(parameters: Any, context: Any) -> Any:
        raise TaskError("S3.NoSuchBucket", "no bucket 'out'")

    integrations = listed_objects(1)
    integrations.register(PUT, put)
    writer = {"Resource": PUT, "Parameters": {"Bucket": "out", "Prefix": "p"}}
    outcome = run_engine(distributed(LISTED, {}, ResultWriter=writer), {}, integrations)
    assert (outcome.status, outcome.error) == ("FAILED", "States.ResultWriterFailed")
    assert "S3.NoSuchBucket" in (outcome.cause or "")
    missing = {"Resource": PUT, "Parameters": {"Prefix": "p"}}
    outcome = run_engine(distributed(LISTED, {}, ResultWriter=missing), {}, integrations)
    assert (outcome.status, outcome.error) == ("FAILED", "States.ResultWriterFailed")
    assert "needs a Bucket and a Prefix" in (outcome.cause or "")


# The inline Map's concurrency changes nothing in its output: checked against moto too.
ORACLE = [
    Case(
        "map-concurrent-order",
        machine(
            {
                "M": {
                    "Type": "Map",
                    "MaxConcurrency": 0,
                    "ItemProcessor": {
                        "StartAt": "W",
                        "States": {"W": {"Type": "Pass", "Parameters": {"v.$": "$"}, "End": True}},
                    },
                    "End": True,
                }
            }
        ),
        list(range(25)),
        [{"v": i} for i in range(25)],
    ),
    Case(
        "parallel-fails-with-a-branch",
        machine(
            {
                "P": {
                    "Type": "Parallel",
                    "Branches": [
                        {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}},
                        {"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "Custom.Branch"}}},
                    ],
                    "End": True,
                }
            }
        ),
        {},
        error="Custom.Branch",
    ),
]


@pytest.mark.parametrize("case", [c.param() for c in ORACLE])
def test_fanout_engine(case: Case) -> None:
    check_engine(case)


@pytest.mark.parametrize("case", [c.param() for c in ORACLE])
def test_fanout_moto(oracle: MotoOracle, case: Case) -> None:
    check_moto(oracle, case)


def test_a_failed_iteration_closes_the_token_a_sibling_waits_for() -> None:
    tokens = InMemoryTaskTokens()

    def fail_once_the_sibling_waits(parameters: Any, context: Any) -> Any:
        for _ in range(500):  # at most 5 s
            if tokens.issued:
                break
            time.sleep(0.01)
        raise TaskError("Custom.Bad", "item 0")

    integrations = registry(lambda p, c: {"queued": True}, TASK + ".waitForTaskToken")
    integrations.register("arn:aws:states:::glue:startJobRun", fail_once_the_sibling_waits)
    processor = {
        "StartAt": "Which",
        "States": {
            "Which": {
                "Type": "Choice",
                "Choices": [{"Variable": "$", "NumericEquals": 0, "Next": "Fails"}],
                "Default": "Waits",
            },
            "Fails": {"Type": "Task", "Resource": "arn:aws:states:::glue:startJobRun", "End": True},
            "Waits": {
                "Type": "Task",
                "Resource": TASK + ".waitForTaskToken",
                "Parameters": {"token.$": "$$.Task.Token"},
                "End": True,
            },
        },
    }
    definition = machine({"M": {"Type": "Map", "ItemProcessor": processor, "End": True}})
    execution = Execution.start(
        definition,
        [0, 1],
        store=InMemoryExecutionStore(),
        integrations=integrations,
        clock=FakeClock(),
        tokens=tokens,
    )
    record = execution.run()
    assert (record.status, record.error) == ("FAILED", "Custom.Bad")
    answer = tokens.answer(tokens.issued[0])
    assert answer is not None and answer.status == "closed"
    assert "MapIterationAborted" in [e.type for e in execution.history()]


# Distributed Map ItemReader on moto (its interpreter reads moto's own S3; it has no
# ItemBatcher) and on our engine (a getObject integration serving the same objects).
OBJECTS = {
    "people.csv": "id,name\n1,ana\n2,bo\n3,cy\n",
    "people.json": '[{"a": 1}, {"a": 2}, {"a": 3}]',
}
READS = [
    ("csv", {"InputType": "CSV", "CSVHeaderLocation": "FIRST_ROW"}, "people.csv", {}),
    ("json", {"InputType": "JSON"}, "people.json", {}),
    (
        "csv-max-items-selector",
        {"InputType": "CSV", "CSVHeaderLocation": "FIRST_ROW", "MaxItems": 2},
        "people.csv",
        {"ItemSelector": {"v.$": "$$.Map.Item.Value.name", "i.$": "$$.Map.Item.Index"}},
    ),
]


def reading(config: dict[str, Any], key: str, fields: dict[str, Any]) -> dict[str, Any]:
    reader = {
        "Resource": "arn:aws:states:::s3:getObject",
        "ReaderConfig": config,
        "Parameters": {"Bucket": "items-bucket", "Key": key},
    }
    processor = {**DISTRIBUTED, "StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
    return machine(
        {"M": {"Type": "Map", "ItemReader": reader, "ItemProcessor": processor, "End": True, **fields}}
    )


@pytest.mark.parametrize(("config", "key", "fields"), [r[1:] for r in READS], ids=[r[0] for r in READS])
def test_item_reader_as_moto_reads(
    oracle: MotoOracle, config: dict[str, Any], key: str, fields: dict[str, Any]
) -> None:
    import boto3

    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="items-bucket")
    for name, body in OBJECTS.items():
        s3.put_object(Bucket="items-bucket", Key=name, Body=body.encode())
    definition = reading(config, key, fields)
    expected = oracle.run(definition, {})
    assert expected.status == "SUCCEEDED", expected.cause
    integrations = Integrations()
    integrations.register("arn:aws:states:::s3:getObject", lambda p, c: {"Body": OBJECTS[p["Key"]]})
    assert run_engine(definition, {}, integrations).output == expected.output


def test_item_reader_jsonl_csv_given_headers_and_bad_rows() -> None:
    from conveyor.orchestration.asl.errors import StatesError
    from conveyor.orchestration.asl.item_reader import GET_OBJECT, items_from

    assert items_from(GET_OBJECT, {"Body": '{"a": 1}\n\n{"a": 2}\n'}, {"InputType": "JSONL"}) == [
        {"a": 1},
        {"a": 2},
    ]
    given = {
        "InputType": "CSV",
        "CSVHeaderLocation": "GIVEN",
        "CSVHeaders": ["x", "y"],
        "CSVDelimiter": "PIPE",
    }
    assert items_from(GET_OBJECT, {"Body": "1|2\n3\n"}, given) == [{"x": "1", "y": "2"}, {"x": "3", "y": ""}]
    with pytest.raises(StatesError, match="CSV row 1 has 3 fields but there are 2 headers"):
        items_from(GET_OBJECT, {"Body": "1|2|3\n"}, given)
