"""Definition validation: each problem is a ConfigError that starts with its JSON path."""

from __future__ import annotations

import json
from typing import Any

import pytest

from conveyor.core.errors import ConfigError
from conveyor.core.json_text import load_json
from conveyor.orchestration.asl import Integrations, ScriptedTask, parse_definition


def poll(**states: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "Start": {"Type": "Pass", "Next": "Poll"},
        "Poll": {"Type": "Wait", "Seconds": 5, "Next": "Done"},
        "Done": {"Type": "Succeed"},
    }
    base.update(states)
    return {"StartAt": "Start", "States": base}


def task(**fields: Any) -> dict[str, Any]:
    return {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke", "End": True, **fields}


def only(state: dict[str, Any]) -> dict[str, Any]:
    return {"StartAt": "S", "States": {"S": state}}


INVALID: list[tuple[str, Any, str]] = [
    ("not-an-object", [], "$: a state machine definition must be a JSON object"),
    ("missing-start-at", {"States": {"A": {"Type": "Succeed"}}}, "StartAt: missing"),
    (
        "start-at-unknown",
        {"StartAt": "Strat", "States": {"Start": {"Type": "Succeed"}}},
        "StartAt: no state named 'Strat'; did you mean 'Start'?",
    ),
    ("no-states", {"StartAt": "A", "States": {}}, "States: missing or empty"),
    (
        "unknown-top-field",
        {"StartAt": "A", "Sates": {}, "States": {"A": {"Type": "Succeed"}}},
        "Sates: unknown field; did you mean 'States'?",
    ),
    (
        "query-language",
        {"QueryLanguage": "JSONPointer", "StartAt": "A", "States": {"A": {"Type": "Succeed"}}},
        "QueryLanguage: must be 'JSONPath' or 'JSONata'",
    ),
    (
        "next-typo",
        poll(Start={"Type": "Pass", "Next": "Pol"}),
        "States.Start.Next: no state named 'Pol'; did you mean 'Poll'?",
    ),
    (
        "type-unknown",
        poll(Poll={"Type": "Wiat", "Seconds": 1, "Next": "Done"}),
        "States.Poll.Type: unknown state type 'Wiat'; did you mean 'Wait'?",
    ),
    ("type-missing", poll(Poll={"Seconds": 1}), "States.Poll.Type: missing"),
    (
        "no-next-no-end",
        poll(Start={"Type": "Pass"}),
        "States.Start: needs 'Next' (a state name) or 'End': true",
    ),
    (
        "next-and-end",
        poll(Start={"Type": "Pass", "Next": "Poll", "End": True}),
        "States.Start: has both 'Next' and 'End'",
    ),
    (
        "unknown-field",
        poll(Start={"Type": "Pass", "Next": "Poll", "ResultPth": "$.x"}),
        "States.Start.ResultPth: unknown field for a Pass state; did you mean 'ResultPath'?",
    ),
    (
        "result-outside-pass",
        poll(Poll={"Type": "Wait", "Seconds": 1, "Next": "Done", "Result": 1}),
        "States.Poll.Result: not allowed in a Wait state",
    ),
    (
        "result-path-in-choice",
        poll(
            Start={
                "Type": "Choice",
                "Choices": [{"Variable": "$.a", "IsPresent": True, "Next": "Poll"}],
                "ResultPath": "$.x",
            }
        ),
        "States.Start.ResultPath: not allowed in a Choice state",
    ),
    (
        "result-path-wildcard",
        poll(Start={"Type": "Pass", "Next": "Poll", "ResultPath": "$.a[*]"}),
        "States.Start.ResultPath: invalid reference path '$.a[*]'",
    ),
    (
        "result-path-type",
        poll(Start={"Type": "Pass", "Next": "Poll", "ResultPath": 3}),
        "States.Start.ResultPath: must be a reference path",
    ),
    (
        "input-path-bad",
        poll(Start={"Type": "Pass", "Next": "Poll", "InputPath": "a.b"}),
        "States.Start.InputPath: path 'a.b' must start with '$'",
    ),
    (
        "parameters-bad-path",
        poll(Start={"Type": "Pass", "Next": "Poll", "Parameters": {"a": {"b.$": "$.x["}}}),
        "States.Start.Parameters.a.b.$: invalid JSONPath",
    ),
    (
        "parameters-not-path",
        poll(Start={"Type": "Pass", "Next": "Poll", "Parameters": {"b.$": "x"}}),
        "States.Start.Parameters.b.$: 'x' is neither a path",
    ),
    (
        "parameters-non-string",
        poll(Start={"Type": "Pass", "Next": "Poll", "Parameters": {"b.$": 1}}),
        "States.Start.Parameters.b.$: a field ending in '.$' needs",
    ),
    (
        "parameters-bad-intrinsic",
        poll(Start={"Type": "Pass", "Next": "Poll", "Parameters": {"b.$": "States.Formatt('x')"}}),
        "States.Start.Parameters.b.$: unknown intrinsic function 'States.Formatt'",
    ),
    (
        "choice-no-choices",
        poll(Start={"Type": "Choice", "Default": "Poll"}),
        "States.Start.Choices: missing or empty",
    ),
    (
        "choice-empty-choices",
        poll(Start={"Type": "Choice", "Choices": []}),
        "States.Start.Choices: missing or empty",
    ),
    (
        "choice-next-typo",
        poll(Start={"Type": "Choice", "Choices": [{"Variable": "$.a", "IsPresent": True, "Next": "Dne"}]}),
        "States.Start.Choices[0].Next: no state named 'Dne'; did you mean 'Done'?",
    ),
    (
        "choice-default-typo",
        poll(
            Start={
                "Type": "Choice",
                "Choices": [{"Variable": "$.a", "IsPresent": True, "Next": "Done"}],
                "Default": "Pol",
            }
        ),
        "States.Start.Default: no state named 'Pol'",
    ),
    (
        "choice-operator-typo",
        poll(Start={"Type": "Choice", "Choices": [{"Variable": "$.a", "StringEqual": "x", "Next": "Poll"}]}),
        "States.Start.Choices[0].StringEqual: unknown comparison operator; did you mean 'StringEquals'?",
    ),
    (
        "choice-two-operators",
        poll(
            Start={
                "Type": "Choice",
                "Choices": [{"Variable": "$.a", "StringEquals": "x", "IsNull": True, "Next": "Poll"}],
            }
        ),
        "States.Start.Choices[0]: a comparison needs exactly one operator",
    ),
    (
        "choice-wrong-operand",
        poll(
            Start={"Type": "Choice", "Choices": [{"Variable": "$.a", "NumericEquals": "1", "Next": "Poll"}]}
        ),
        "States.Start.Choices[0].NumericEquals: Equals comparison needs a number",
    ),
    (
        "choice-bad-timestamp",
        poll(
            Start={
                "Type": "Choice",
                "Choices": [{"Variable": "$.a", "TimestampEquals": "2024-01-01", "Next": "Poll"}],
            }
        ),
        "States.Start.Choices[0].TimestampEquals",
    ),
    (
        "choice-nested-next",
        poll(
            Start={
                "Type": "Choice",
                "Choices": [{"Not": {"Variable": "$.a", "IsNull": True, "Next": "Poll"}, "Next": "Poll"}],
            }
        ),
        "States.Start.Choices[0].Not.Next: only top-level Choice rules may have 'Next'",
    ),
    (
        "choice-no-variable",
        poll(Start={"Type": "Choice", "Choices": [{"StringEquals": "x", "Next": "Poll"}]}),
        "States.Start.Choices[0].Variable: a comparison needs 'Variable'",
    ),
    (
        "choice-empty-and",
        poll(Start={"Type": "Choice", "Choices": [{"And": [], "Next": "Poll"}]}),
        "States.Start.Choices[0].And: must be a non-empty array",
    ),
    (
        "wait-two-fields",
        poll(Poll={"Type": "Wait", "Seconds": 5, "SecondsPath": "$.s", "Next": "Done"}),
        "States.Poll: a Wait needs exactly one of Seconds, SecondsPath",
    ),
    (
        "wait-negative",
        poll(Poll={"Type": "Wait", "Seconds": -1, "Next": "Done"}),
        "States.Poll.Seconds: must be an integer from 0",
    ),
    ("retry-not-list", only(task(Retry={"ErrorEquals": ["X"]})), "States.S.Retry: must be an array"),
    (
        "retry-no-errors",
        only(task(Retry=[{"IntervalSeconds": 1}])),
        "States.S.Retry[0].ErrorEquals: must be a non-empty array",
    ),
    (
        "retry-interval-zero",
        only(task(Retry=[{"ErrorEquals": ["X"], "IntervalSeconds": 0}])),
        "States.S.Retry[0].IntervalSeconds: must be an integer from 1 to 99999999, got 0",
    ),
    (
        "retry-attempts-negative",
        only(task(Retry=[{"ErrorEquals": ["X"], "MaxAttempts": -1}])),
        "States.S.Retry[0].MaxAttempts: must be an integer from 0",
    ),
    (
        "retry-backoff-small",
        only(task(Retry=[{"ErrorEquals": ["X"], "BackoffRate": 0.5}])),
        "States.S.Retry[0].BackoffRate: must be a number >= 1.0",
    ),
    (
        "retry-max-delay",
        only(task(Retry=[{"ErrorEquals": ["X"], "MaxDelaySeconds": 0}])),
        "States.S.Retry[0].MaxDelaySeconds: must be an integer from 1 to 31622400",
    ),
    (
        "retry-jitter",
        only(task(Retry=[{"ErrorEquals": ["X"], "JitterStrategy": "HALF"}])),
        "States.S.Retry[0].JitterStrategy: must be 'FULL' or 'NONE'",
    ),
    (
        "retry-all-not-last",
        only(task(Retry=[{"ErrorEquals": ["States.ALL"]}, {"ErrorEquals": ["X"]}])),
        "States.S.Retry[0].ErrorEquals: a retrier with 'States.ALL' must be the last one",
    ),
    (
        "retry-all-not-alone",
        only(task(Retry=[{"ErrorEquals": ["States.ALL", "X"]}])),
        "States.S.Retry[0].ErrorEquals: 'States.ALL' must appear alone",
    ),
    (
        "retry-unknown-field",
        only(task(Retry=[{"ErrorEquals": ["X"], "MaxAttempt": 1}])),
        "States.S.Retry[0].MaxAttempt: unknown retrier field; did you mean 'MaxAttempts'?",
    ),
    ("catch-no-next", only(task(Catch=[{"ErrorEquals": ["X"]}])), "States.S.Catch[0].Next: missing"),
    (
        "catch-next-typo",
        only(task(Catch=[{"ErrorEquals": ["X"], "Next": "T"}])),
        "States.S.Catch[0].Next: no state named 'T'",
    ),
    (
        "catch-result-path",
        only(task(Catch=[{"ErrorEquals": ["X"], "Next": "S", "ResultPath": "$..x"}])),
        "States.S.Catch[0].ResultPath: invalid reference path",
    ),
    ("task-no-resource", only({"Type": "Task", "End": True}), "States.S.Resource: missing"),
    ("task-timeout", only(task(TimeoutSeconds=0)), "States.S.TimeoutSeconds: must be an integer from 1"),
    (
        "task-heartbeat-too-long",
        only(task(TimeoutSeconds=5, HeartbeatSeconds=5)),
        "States.S.HeartbeatSeconds: must be smaller than TimeoutSeconds (5)",
    ),
    (
        "task-timeout-both",
        only(task(TimeoutSeconds=5, TimeoutSecondsPath="$.t")),
        "States.S: use either TimeoutSeconds or TimeoutSecondsPath",
    ),
    (
        "fail-error-both",
        only({"Type": "Fail", "Error": "E", "ErrorPath": "$.e"}),
        "States.S: use either Error or ErrorPath",
    ),
    (
        "fail-cause-path-bad",
        only({"Type": "Fail", "CausePath": "cause"}),
        "States.S.CausePath: 'cause' is neither a path",
    ),
    ("fail-with-next", only({"Type": "Fail", "Next": "S"}), "States.S.Next: unknown field for a Fail state"),
    ("parallel-no-branches", only({"Type": "Parallel", "End": True}), "States.S.Branches: missing or empty"),
    (
        "parallel-branch-next",
        only(
            {
                "Type": "Parallel",
                "End": True,
                "Branches": [{"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "S"}}}],
            }
        ),
        "States.S.Branches[0].States.A.Next: no state named 'S'",
    ),
    ("map-no-processor", only({"Type": "Map", "End": True}), "States.S.ItemProcessor: missing"),
    (
        "express-child-waits",
        only(
            {
                "Type": "Map",
                "End": True,
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"},
                    "StartAt": "A",
                    "States": {
                        "A": {
                            "Type": "Task",
                            "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                            "End": True,
                        }
                    },
                },
            }
        ),
        "States.S.ItemProcessor.States.A.Resource: arn:aws:states:::lambda:invoke.waitForTaskToken: "
        "an EXPRESS child workflow does not support the '.waitForTaskToken' integration pattern",
    ),
    (
        "execution-type",
        only(
            {
                "Type": "Map",
                "End": True,
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "FAST"},
                    "StartAt": "A",
                    "States": {"A": {"Type": "Succeed"}},
                },
            }
        ),
        "States.S.ItemProcessor.ProcessorConfig.ExecutionType: must be STANDARD or EXPRESS, got 'FAST'",
    ),
    (
        "map-mode",
        only(
            {
                "Type": "Map",
                "End": True,
                "ItemProcessor": {
                    "ProcessorConfig": {"Mode": "EXPRESS"},
                    "StartAt": "A",
                    "States": {"A": {"Type": "Succeed"}},
                },
            }
        ),
        "States.S.ItemProcessor.ProcessorConfig.Mode: must be INLINE or DISTRIBUTED",
    ),
    (
        "map-processor-start",
        only(
            {
                "Type": "Map",
                "End": True,
                "ItemProcessor": {"StartAt": "B", "States": {"A": {"Type": "Succeed"}}},
            }
        ),
        "States.S.ItemProcessor.StartAt: no state named 'B'",
    ),
    (
        "map-selector-both",
        only(
            {
                "Type": "Map",
                "End": True,
                "ItemSelector": {},
                "Parameters": {},
                "Iterator": {"StartAt": "A", "States": {"A": {"Type": "Succeed"}}},
            }
        ),
        "States.S: use either ItemSelector or Parameters",
    ),
    (
        "map-concurrency",
        only(
            {
                "Type": "Map",
                "End": True,
                "MaxConcurrency": -1,
                "Iterator": {"StartAt": "A", "States": {"A": {"Type": "Succeed"}}},
            }
        ),
        "States.S.MaxConcurrency: must be an integer from 0",
    ),
    (
        "duplicate-names",
        only(
            {
                "Type": "Parallel",
                "End": True,
                "Branches": [{"StartAt": "S", "States": {"S": {"Type": "Succeed"}}}],
            }
        ),
        "state name 'S' is also used at States.S",
    ),
    (
        "quoted-name",
        {"StartAt": "Wait on it", "States": {"Wait on it": {"Type": "Wait", "Next": "Nope"}}},
        'States["Wait on it"].Next: no state named',
    ),
]


@pytest.mark.parametrize(("definition", "message"), [pytest.param(d, m, id=i) for i, d, m in INVALID])
def test_invalid_definitions(definition: Any, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_definition(definition)
    assert message in str(info.value)


def test_unreachable_states_are_warnings() -> None:
    machine = parse_definition(poll(Orphan={"Type": "Succeed"}))
    assert machine.warnings == ["States.Orphan: unreachable from StartAt"]


def test_catch_targets_are_reachable() -> None:
    definition = {
        "StartAt": "T",
        "States": {
            "T": task(Catch=[{"ErrorEquals": ["States.ALL"], "Next": "H"}]),
            "H": {"Type": "Succeed"},
        },
    }
    assert parse_definition(definition).warnings == []


def test_resources_are_checked_against_the_registry() -> None:
    integrations = Integrations()
    integrations.register("arn:aws:states:::lambda:invoke", ScriptedTask([{}]))
    parse_definition(only(task()), resources=integrations)
    with pytest.raises(
        ConfigError, match=r"States.S.Resource: no integration handles 'arn:aws:states:::sns:publish'"
    ):
        parse_definition(only(task(Resource="arn:aws:states:::sns:publish")), resources=integrations)


def test_registry_prefixes() -> None:
    integrations = Integrations()
    a, b, c = ScriptedTask(["a"]), ScriptedTask(["b"]), ScriptedTask(["c"])
    integrations.register("arn:aws:lambda:", a, prefix=True)
    integrations.register("arn:aws:states:::lambda:invoke", b, prefix=True)
    integrations.register("arn:aws:states:::lambda:invoke.waitForTaskToken", c)
    assert integrations.resolve("arn:aws:lambda:us-east-1:1:function:f") is a
    assert integrations.resolve("arn:aws:states:::lambda:invoke") is b
    assert integrations.resolve("arn:aws:states:::lambda:invoke.waitForTaskToken") is c
    assert integrations.resolve("arn:aws:states:::states:startExecution.sync") is None


def test_json_text_errors_have_line_and_column() -> None:
    with pytest.raises(ConfigError, match=r"definition: not valid JSON at line 2 column 1"):
        load_json('{"StartAt": "A",\n}')


def test_typographic_quotes_are_repaired_with_a_warning() -> None:
    text = '{"StartAt": "A", "States": {"A": {"Type": "Pass", "Result": "x\u201d,\n"End": true}}}'
    machine = parse_definition(text)
    assert machine.states["A"].result == "x"
    assert machine.warnings == ["definition: typographic quote read as '\"' at line 1"]


def test_typographic_quotes_inside_strings_are_kept() -> None:
    text = json.dumps(
        {"StartAt": "A", "States": {"A": {"Type": "Pass", "Result": "\u201cquoted\u201d", "End": True}}}
    )
    machine = parse_definition(text)
    assert machine.states["A"].result == "\u201cquoted\u201d"
    assert machine.warnings == []


def test_parsed_states_are_typed() -> None:
    machine = parse_definition(
        only(
            task(
                Retry=[
                    {
                        "ErrorEquals": ["X"],
                        "IntervalSeconds": 2,
                        "MaxDelaySeconds": 9,
                        "JitterStrategy": "FULL",
                    }
                ],
                TimeoutSeconds=30,
                HeartbeatSeconds=10,
                ResultPath=None,
            )
        )
    )
    state = machine.states["S"]
    assert state.type == "Task" and state.result_path is None and state.timeout_seconds == 30
    retrier = state.retry[0]
    assert (retrier.interval_seconds, retrier.max_attempts, retrier.backoff_rate) == (2, 3, 2.0)
    assert (retrier.max_delay_seconds, retrier.jitter_strategy) == (9, "FULL")
