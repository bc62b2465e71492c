"""InputPath / Parameters / ResultSelector / ResultPath / OutputPath, on our engine and on moto."""

from __future__ import annotations

from typing import Any

import pytest
from test_asl_harness import Case, MotoOracle, check_engine, check_moto, machine, moto_oracle, pass_state

from conveyor.orchestration.asl.errors import StatesError
from conveyor.orchestration.asl.paths import apply_result_path, parse_reference_path, read_path

oracle = pytest.fixture(scope="module")(moto_oracle)

DOC = {"a": {"b": 1, "c": [10, 20, 30]}, "list": [{"x": 1, "n": "p"}, {"x": 5, "n": "q"}], "s": "str"}

CASES = [
    Case("input-path-default", pass_state(), DOC, DOC),
    Case("input-path-field", pass_state(InputPath="$.a"), DOC, DOC["a"]),
    Case("input-path-index", pass_state(InputPath="$.a.c[1]"), DOC, 20),
    Case("input-path-null", pass_state(InputPath=None), DOC, {}),
    Case("input-path-wildcard", pass_state(InputPath="$.list[*].x"), DOC, [1, 5]),
    Case("input-path-filter", pass_state(InputPath="$.list[?(@.x > 2)].n"), DOC, ["q"]),
    Case("input-path-missing", pass_state(InputPath="$.nope"), DOC, error="States.Runtime"),
    Case("output-path-field", pass_state(OutputPath="$.a.b"), DOC, 1),
    Case("output-path-null", pass_state(OutputPath=None), DOC, {}),
    Case("output-path-missing", pass_state(OutputPath="$.zzz"), DOC, error="States.Runtime"),
    Case("result-replaces", pass_state(Result={"r": 1}), DOC, {"r": 1}),
    Case("result-path-field", pass_state(Result="R", ResultPath="$.res"), {"k": 1}, {"k": 1, "res": "R"}),
    Case(
        "result-path-nested-creates",
        pass_state(Result=[1], ResultPath="$.x.y.z"),
        {"k": 1},
        {"k": 1, "x": {"y": {"z": [1]}}},
    ),
    Case(
        "result-path-overwrite",
        pass_state(Result=2, ResultPath="$.a.b"),
        {"a": {"b": 1, "c": 3}},
        {"a": {"b": 2, "c": 3}},
    ),
    Case("result-path-null-discards", pass_state(Result={"r": 1}, ResultPath=None), {"k": 1}, {"k": 1}),
    Case("result-path-root", pass_state(Result={"r": 1}, ResultPath="$"), {"k": 1}, {"r": 1}),
    Case(
        "result-path-bracket-name",
        pass_state(Result=1, ResultPath="$['my key']"),
        {},
        {"my key": 1},
    ),
    Case(
        "result-path-into-string",
        pass_state(Result=1, ResultPath="$.s.t"),
        {"s": "text"},
        error="States.ResultPathMatchFailure",
        moto="moto crashes (TypeError, as States.Runtime); AWS documents States.ResultPathMatchFailure",
    ),
    Case(
        "input-then-result-then-output",
        pass_state(InputPath="$.a", Result={"v": 9}, ResultPath="$.out", OutputPath="$.out"),
        DOC,
        {"v": 9},
    ),
    Case(
        "result-path-applies-to-raw-input",
        pass_state(InputPath="$.a", ResultPath="$.copy"),
        {"a": {"b": 1}, "z": 0},
        {"a": {"b": 1}, "z": 0, "copy": {"b": 1}},
    ),
    Case(
        "parameters-static-and-paths",
        pass_state(Parameters={"fixed": "f", "b.$": "$.a.b", "all.$": "$", "nested": {"c.$": "$.a.c"}}),
        DOC,
        {"fixed": "f", "b": 1, "all": DOC, "nested": {"c": [10, 20, 30]}},
    ),
    Case(
        "parameters-after-input-path",
        pass_state(InputPath="$.a", Parameters={"first.$": "$.c[0]"}),
        DOC,
        {"first": 10},
    ),
    Case(
        "parameters-array-of-objects",
        pass_state(Parameters={"arr": [{"v.$": "$.s"}, 2, "lit"]}),
        DOC,
        {"arr": [{"v": "str"}, 2, "lit"]},
    ),
    Case(
        "parameters-indefinite-path",
        pass_state(Parameters={"xs.$": "$.list[*].x"}),
        DOC,
        {"xs": [1, 5]},
    ),
    Case(
        "parameters-context-object",
        pass_state(Parameters={"state.$": "$$.State.Name", "input.$": "$$.Execution.Input.s"}),
        DOC,
        {"state": "P", "input": "str"},
    ),
    Case(
        "parameters-intrinsic",
        pass_state(Parameters={"n.$": "States.ArrayLength($.list)"}),
        DOC,
        {"n": 2},
    ),
    Case(
        "parameters-missing-path",
        pass_state(Parameters={"x.$": "$.missing"}),
        DOC,
        error="States.ParameterPathFailure",
        moto="moto reports States.Runtime; the AWS error docs name States.ParameterPathFailure",
    ),
    Case(
        "parameters-then-result-path",
        pass_state(Parameters={"b.$": "$.a.b"}, ResultPath="$.p"),
        {"a": {"b": 1}},
        {"a": {"b": 1}, "p": {"b": 1}},
    ),
    Case(
        "map-result-selector",
        machine(
            {
                "M": {
                    "Type": "Map",
                    "ItemsPath": "$.xs",
                    "ItemProcessor": {"StartAt": "I", "States": {"I": {"Type": "Pass", "End": True}}},
                    "ResultSelector": {"count.$": "States.ArrayLength($)", "first.$": "$[0]"},
                    "ResultPath": "$.summary",
                    "End": True,
                }
            }
        ),
        {"xs": [3, 4]},
        {"xs": [3, 4], "summary": {"count": 2, "first": 3}},
    ),
    Case(
        "parallel-result-selector-output-path",
        machine(
            {
                "Par": {
                    "Type": "Parallel",
                    "Branches": [
                        {"StartAt": "A", "States": {"A": {"Type": "Pass", "Result": "a", "End": True}}},
                        {"StartAt": "B", "States": {"B": {"Type": "Pass", "Result": "b", "End": True}}},
                    ],
                    "ResultSelector": {"joined.$": "States.Format('{}-{}', $[0], $[1])"},
                    "ResultPath": "$.r",
                    "OutputPath": "$.r.joined",
                    "End": True,
                }
            }
        ),
        {},
        "a-b",
    ),
]


@pytest.mark.parametrize("case", [c.param() for c in CASES])
def test_paths_engine(case: Case) -> None:
    check_engine(case)


@pytest.mark.parametrize("case", [c.param() for c in CASES])
def test_paths_moto(oracle: MotoOracle, case: Case) -> None:
    check_moto(oracle, case)


@pytest.mark.parametrize(
    ("path", "steps"),
    [
        ("$", ()),
        ("$.a", ("a",)),
        ("$.a.b[2]", ("a", "b", 2)),
        ("$['a b'].c", ("a b", "c")),
        ("$.a['it\\'s']", ("a", "it's")),
    ],
)
def test_reference_paths(path: str, steps: tuple[Any, ...]) -> None:
    assert parse_reference_path(path) == steps


@pytest.mark.parametrize("path", ["a.b", "$.a[*]", "$..a", "$.a[?(@.x)]", "$$.a", "$.a[1:2]"])
def test_reference_paths_refuse_wildcards(path: str) -> None:
    with pytest.raises(ValueError, match="reference path"):
        parse_reference_path(path)


def test_result_path_does_not_change_the_input() -> None:
    original = {"a": {"b": 1}}
    out = apply_result_path("$.a.c", original, 2)
    assert out == {"a": {"b": 1, "c": 2}}
    assert original == {"a": {"b": 1}}


def test_result_path_index() -> None:
    assert apply_result_path("$.xs[1]", {"xs": [0, 0]}, 5) == {"xs": [0, 5]}
    with pytest.raises(StatesError) as info:
        apply_result_path("$.xs[4]", {"xs": [0]}, 5)
    assert info.value.error == "States.ResultPathMatchFailure"


def test_read_path_errors_name_the_path() -> None:
    with pytest.raises(StatesError, match=r"\$\.q"):
        read_path("$.q", {"a": 1})
