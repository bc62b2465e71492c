"""Map, Parallel, Wait (0 s), Succeed and Fail: on our engine and on moto."""

from __future__ import annotations

from typing import Any

import pytest
from test_asl_harness import Case, MotoOracle, check_engine, check_moto, machine, moto_oracle

oracle = pytest.fixture(scope="module")(moto_oracle)


def branch(states: dict[str, Any]) -> dict[str, Any]:
    return {"StartAt": next(iter(states)), "States": states}


def inline(states: dict[str, Any]) -> dict[str, Any]:
    return {"ProcessorConfig": {"Mode": "INLINE"}, **branch(states)}


DOUBLE = inline({"D": {"Type": "Pass", "Parameters": {"v.$": "States.MathAdd($.x, $.x)"}, "End": True}})

CASES = [
    Case(
        "map-items-path",
        machine({"M": {"Type": "Map", "ItemsPath": "$.items", "ItemProcessor": DOUBLE, "End": True}}),
        {"items": [{"x": 1}, {"x": 2}, {"x": 5}]},
        [{"v": 2}, {"v": 4}, {"v": 10}],
    ),
    Case(
        "map-empty",
        machine({"M": {"Type": "Map", "ItemsPath": "$.items", "ItemProcessor": DOUBLE, "End": True}}),
        {"items": []},
        [],
    ),
    Case(
        "map-item-selector-context",
        machine(
            {
                "M": {
                    "Type": "Map",
                    "ItemsPath": "$.names",
                    "ItemSelector": {
                        "i.$": "$$.Map.Item.Index",
                        "name.$": "$$.Map.Item.Value",
                        "tag.$": "$.tag",
                    },
                    "ItemProcessor": inline({"P": {"Type": "Pass", "End": True}}),
                    "ResultPath": "$.out",
                    "End": True,
                }
            }
        ),
        {"names": ["a", "b"], "tag": "T"},
        {
            "names": ["a", "b"],
            "tag": "T",
            "out": [{"i": 0, "name": "a", "tag": "T"}, {"i": 1, "name": "b", "tag": "T"}],
        },
    ),
    Case(
        "map-legacy-iterator-parameters",
        machine(
            {
                "M": {
                    "Type": "Map",
                    "ItemsPath": "$.xs",
                    "MaxConcurrency": 1,
                    "Parameters": {"x.$": "$$.Map.Item.Value"},
                    "Iterator": branch({"D": {"Type": "Pass", "Parameters": {"v.$": "$.x"}, "End": True}}),
                    "End": True,
                }
            }
        ),
        {"xs": [7, 8]},
        [{"v": 7}, {"v": 8}],
    ),
    Case(
        "map-with-choice-inside",
        machine(
            {
                "M": {
                    "Type": "Map",
                    "ItemProcessor": inline(
                        {
                            "C": {
                                "Type": "Choice",
                                "Choices": [{"Variable": "$", "NumericGreaterThan": 2, "Next": "Big"}],
                                "Default": "Small",
                            },
                            "Big": {"Type": "Pass", "Result": "big", "End": True},
                            "Small": {"Type": "Pass", "Result": "small", "End": True},
                        }
                    ),
                    "End": True,
                }
            }
        ),
        [1, 3],
        ["small", "big"],
    ),
    Case(
        "map-iteration-fails",
        machine(
            {
                "M": {
                    "Type": "Map",
                    "ItemProcessor": inline({"F": {"Type": "Fail", "Error": "Item.Bad", "Cause": "no"}}),
                    "End": True,
                }
            }
        ),
        [1],
        error="Item.Bad",
    ),
    Case(
        "map-failure-caught",
        machine(
            {
                "M": {
                    "Type": "Map",
                    "ItemsPath": "$.k",
                    "ItemProcessor": inline({"F": {"Type": "Fail", "Error": "Item.Bad", "Cause": "why"}}),
                    "Catch": [{"ErrorEquals": ["Item.Bad"], "ResultPath": "$.err", "Next": "Done"}],
                    "End": True,
                },
                "Done": {"Type": "Pass", "OutputPath": "$.err", "End": True},
            }
        ),
        {"k": [1]},
        {"Error": "Item.Bad", "Cause": "why"},
    ),
    Case(
        "map-items-not-array",
        machine({"M": {"Type": "Map", "ItemsPath": "$.x", "ItemProcessor": DOUBLE, "End": True}}),
        {"x": {"not": "a list"}},
        error="States.Runtime",
        moto="moto says States.QueryEvaluationError (a JSONata error name); JSONPath mode: States.Runtime",
    ),
    Case(
        "parallel-two-branches",
        machine(
            {
                "P": {
                    "Type": "Parallel",
                    "Branches": [
                        branch({"A": {"Type": "Pass", "InputPath": "$.a", "End": True}}),
                        branch(
                            {
                                "B1": {"Type": "Pass", "Result": {"b": 1}, "Next": "B2"},
                                "B2": {"Type": "Wait", "Seconds": 0, "Next": "B3"},
                                "B3": {"Type": "Succeed"},
                            }
                        ),
                    ],
                    "End": True,
                }
            }
        ),
        {"a": "A"},
        ["A", {"b": 1}],
    ),
    Case(
        "parallel-parameters-result-path",
        machine(
            {
                "P": {
                    "Type": "Parallel",
                    "Parameters": {"n.$": "$.n"},
                    "Branches": [
                        branch(
                            {
                                "A": {
                                    "Type": "Pass",
                                    "Parameters": {"v.$": "States.MathAdd($.n, 1)"},
                                    "End": True,
                                }
                            }
                        ),
                        branch(
                            {
                                "B": {
                                    "Type": "Pass",
                                    "Parameters": {"v.$": "States.MathAdd($.n, 2)"},
                                    "End": True,
                                }
                            }
                        ),
                    ],
                    "ResultPath": "$.res",
                    "Next": "After",
                },
                "After": {"Type": "Pass", "End": True},
            }
        ),
        {"n": 1},
        {"n": 1, "res": [{"v": 2}, {"v": 3}]},
    ),
    Case(
        "parallel-branch-fails",
        machine(
            {
                "P": {
                    "Type": "Parallel",
                    "Branches": [
                        branch({"A": {"Type": "Pass", "End": True}}),
                        branch({"F": {"Type": "Fail", "Error": "Branch.Err", "Cause": "c"}}),
                    ],
                    "End": True,
                }
            }
        ),
        {},
        error="Branch.Err",
    ),
    Case(
        "parallel-failure-caught",
        machine(
            {
                "P": {
                    "Type": "Parallel",
                    "Branches": [branch({"F": {"Type": "Fail", "Error": "Branch.Err", "Cause": "c"}})],
                    "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "H"}],
                    "End": True,
                },
                "H": {"Type": "Pass", "End": True},
            }
        ),
        {"x": 1},
        {"Error": "Branch.Err", "Cause": "c"},
    ),
    Case(
        "nested-map-in-parallel",
        machine(
            {
                "P": {
                    "Type": "Parallel",
                    "Branches": [
                        branch(
                            {"M": {"Type": "Map", "ItemsPath": "$.xs", "ItemProcessor": DOUBLE, "End": True}}
                        ),
                    ],
                    "OutputPath": "$[0]",
                    "End": True,
                }
            }
        ),
        {"xs": [{"x": 3}]},
        [{"v": 6}],
    ),
    Case(
        "fail-static",
        machine({"F": {"Type": "Fail", "Error": "My.Error", "Cause": "because"}}),
        {},
        error="My.Error",
    ),
    Case(
        "fail-error-path",
        machine({"F": {"Type": "Fail", "ErrorPath": "$.e", "CausePath": "$.c"}}),
        {"e": "Dyn.Error", "c": "dynamic cause"},
        error="Dyn.Error",
    ),
    Case(
        "fail-error-path-intrinsic",
        machine({"F": {"Type": "Fail", "ErrorPath": "States.Format('Err.{}', $.code)", "Cause": "x"}}),
        {"code": 42},
        error="Err.42",
    ),
    Case(
        "succeed-output-path",
        machine({"S": {"Type": "Succeed", "InputPath": "$.a", "OutputPath": "$.b"}}),
        {"a": {"b": [1]}},
        [1],
    ),
    Case(
        "wait-zero-then-pass",
        machine(
            {
                "W": {"Type": "Wait", "Seconds": 0, "OutputPath": "$.k", "Next": "P"},
                "P": {"Type": "Pass", "End": True},
            }
        ),
        {"k": "v"},
        "v",
    ),
    Case(
        "wait-seconds-path-zero",
        machine({"W": {"Type": "Wait", "SecondsPath": "$.s", "End": True}}),
        {"s": 0},
        {"s": 0},
    ),
    Case(
        "wait-timestamp-in-past",
        machine({"W": {"Type": "Wait", "Timestamp": "2000-01-01T00:00:00Z", "End": True}}),
        {"k": 1},
        {"k": 1},
    ),
    Case(
        "pass-chain-with-catch-free-states",
        machine(
            {
                "A": {"Type": "Pass", "Result": {"n": 1}, "ResultPath": "$.a", "Next": "B"},
                "B": {"Type": "Pass", "Parameters": {"sum.$": "States.MathAdd($.a.n, $.base)"}, "Next": "C"},
                "C": {"Type": "Succeed"},
            }
        ),
        {"base": 10},
        {"sum": 11},
    ),
]


@pytest.mark.parametrize("case", [c.param() for c in CASES])
def test_flow_engine(case: Case) -> None:
    check_engine(case)


@pytest.mark.parametrize("case", [c.param() for c in CASES])
def test_flow_moto(oracle: MotoOracle, case: Case) -> None:
    check_moto(oracle, case)
