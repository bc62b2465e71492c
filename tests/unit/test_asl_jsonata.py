"""JSONata states and workflow variables (Assign), after the AWS documentation's examples
("Transforming data with JSONata", "Passing data between states with variables").
moto's interpreter evaluates JSONata and variables through a JVM bridge that is not
installed, so these are checked against the documented results."""

from __future__ import annotations

from typing import Any

import pytest
from test_asl_harness import Case, check_engine, machine, run_engine

from conveyor.core.errors import ConfigError
from conveyor.orchestration.asl import Integrations, parse_definition


def jsonata(states: dict[str, Any], start: str | None = None) -> dict[str, Any]:
    return {"QueryLanguage": "JSONata", **machine(states, start)}


CASES = [
    Case(
        "output-expression",
        jsonata({"P": {"Type": "Pass", "Output": "{% $states.input.x + 1 %}", "End": True}}),
        {"x": 1},
        2,
    ),
    Case(
        "output-template",  # the docs' customer example: literals and expressions mixed
        jsonata(
            {
                "P": {
                    "Type": "Pass",
                    "Output": {
                        "name": "{% $states.input.customer.(firstName & ' ' & lastName) %}",
                        "total": "{% $sum($states.input.items.price) %}",
                        "source": "web",
                    },
                    "End": True,
                }
            }
        ),
        {"customer": {"firstName": "Ana", "lastName": "Lee"}, "items": [{"price": 2}, {"price": 3.5}]},
        {"name": "Ana Lee", "total": 5.5, "source": "web"},
    ),
    Case(
        "aws-functions",
        jsonata(
            {
                "P": {
                    "Type": "Pass",
                    "Output": {
                        "parts": "{% $partition([1,2,3,4], 2) %}",
                        "range": "{% $range(0, 10, 2) %}",
                        "parsed": "{% $parse('{\"a\": 1}') %}",
                        "hash": "{% $hash('input data', 'SHA-256') %}",
                    },
                    "End": True,
                }
            }
        ),
        {},
        {
            "parts": [[1, 2], [3, 4]],
            "range": [0, 2, 4, 6, 8, 10],
            "parsed": {"a": 1},
            "hash": "b4a697a057313163aee33cd8d40c66e9f0f177e00cac2de32475ffff6169c3e3",
        },
    ),
    Case(
        "choice-condition",
        jsonata(
            {
                "C": {
                    "Type": "Choice",
                    "Choices": [
                        {"Condition": "{% $states.input.type = 'Private' %}", "Next": "Private"},
                        {
                            "Condition": "{% $states.input.value > 20 %}",
                            "Next": "Big",
                            "Output": {"big": True},
                        },
                    ],
                    "Default": "Other",
                },
                "Private": {"Type": "Pass", "Output": "private", "End": True},
                "Big": {"Type": "Pass", "End": True},
                "Other": {"Type": "Pass", "Output": "other", "End": True},
            }
        ),
        {"type": "Public", "value": 30},
        {"big": True},
    ),
    Case(
        "map-items-selector",
        jsonata(
            {
                "M": {
                    "Type": "Map",
                    "Items": "{% $states.input.orders %}",
                    "ItemSelector": {
                        "id": "{% $states.context.Map.Item.Value.id %}",
                        "at": "{% $states.context.Map.Item.Index %}",
                        "shop": "{% $states.input.shop %}",
                    },
                    "ItemProcessor": {
                        "StartAt": "I",
                        "States": {
                            "I": {
                                "Type": "Pass",
                                "Output": "{% $states.input.id & '@' & $states.input.shop %}",
                                "End": True,
                            }
                        },
                    },
                    "Output": "{% $join($states.result, ',') %}",
                    "End": True,
                }
            }
        ),
        {"shop": "s1", "orders": [{"id": "a"}, {"id": "b"}]},
        "a@s1,b@s1",
    ),
    Case(
        "wait-seconds",
        jsonata({"W": {"Type": "Wait", "Seconds": "{% $states.input.delay %}", "End": True}}),
        {"delay": 5},
        {"delay": 5},
    ),
    Case(
        "fail-expressions",
        jsonata({"F": {"Type": "Fail", "Error": "{% 'Custom.' & $states.input.code %}", "Cause": "x"}}),
        {"code": "Bad"},
        error="Custom.Bad",
    ),
    Case(
        "query-evaluation-error",
        jsonata({"P": {"Type": "Pass", "Output": "{% $undefinedFunction() %}", "End": True}}),
        {},
        error="States.QueryEvaluationError",
    ),
    Case(
        "catch-error-output",
        jsonata(
            {
                "T": {
                    "Type": "Parallel",
                    "Branches": [machine({"F": {"Type": "Fail", "Error": "Oops", "Cause": "why"}})],
                    "Catch": [
                        {
                            "ErrorEquals": ["States.ALL"],
                            "Next": "After",
                            "Assign": {"caught": "{% $states.errorOutput.Error %}"},
                            "Output": {"was": "{% $states.input.n %}"},
                        }
                    ],
                    "End": True,
                },
                "After": {
                    "Type": "Pass",
                    "Output": {"was": "{% $states.input.was %}", "caught": "{% $caught %}"},
                    "End": True,
                },
            }
        ),
        {"n": 7},
        {"was": 7, "caught": "Oops"},
    ),
    # Variables: the docs' examples. Assign values all see the variables from before the state.
    Case(
        "assign-then-read",
        jsonata(
            {
                "A": {
                    "Type": "Pass",
                    "Assign": {"productName": "product1", "count": 42, "available": True, "x": 1},
                    "Next": "B",
                },
                "B": {
                    "Type": "Pass",
                    "Assign": {"x": "{% $x + 1 %}", "y": "{% $x %}"},
                    "Output": {"old": "{% $x %}"},
                    "Next": "C",
                },
                "C": {
                    "Type": "Pass",
                    "Output": {
                        "p": "{% $productName %}",
                        "n": "{% $count %}",
                        "x": "{% $x %}",
                        "y": "{% $y %}",
                    },
                    "End": True,
                },
            }
        ),
        {},
        {"p": "product1", "n": 42, "x": 2, "y": 1},
    ),
    Case(
        "assign-jsonpath",
        machine(
            {
                "A": {
                    "Type": "Pass",
                    "Result": {"id": 7, "tags": ["a"]},
                    "ResultPath": "$.res",
                    "Assign": {"id.$": "$.id", "first.$": "States.ArrayGetItem($.tags, 0)", "const": "k"},
                    "Next": "B",
                },
                "B": {
                    "Type": "Pass",
                    "Parameters": {"id.$": "$id", "first.$": "$first", "c.$": "$const"},
                    "End": True,
                },
            }
        ),
        {"x": 1},
        {"id": 7, "first": "a", "c": "k"},
    ),
    Case(
        "map-reads-outer-variables",
        jsonata(
            {
                "A": {"Type": "Pass", "Assign": {"rate": 3}, "Next": "M"},
                "M": {
                    "Type": "Map",
                    "ItemProcessor": {
                        "StartAt": "I",
                        "States": {
                            "I": {
                                "Type": "Pass",
                                "Assign": {"mine": "{% $states.input * $rate %}"},
                                "Next": "J",
                            },
                            "J": {"Type": "Pass", "Output": "{% $mine %}", "End": True},
                        },
                    },
                    "End": True,
                },
            }
        ),
        [1, 2, 3],
        [3, 6, 9],
    ),
    Case(
        "jsonpath-variables-in-choice-and-intrinsics",
        machine(
            {
                "A": {"Type": "Pass", "Assign": {"count": 3, "who": "ana"}, "Next": "C"},
                "C": {
                    "Type": "Choice",
                    "Choices": [
                        {
                            "Variable": "$count",
                            "NumericGreaterThan": 2,
                            "Assign": {"branch": "many"},
                            "Next": "Many",
                        }
                    ],
                    "Default": "Few",
                },
                "Many": {
                    "Type": "Pass",
                    "Parameters": {"text.$": "States.Format('{} has {}', $who, $count)", "b.$": "$branch"},
                    "End": True,
                },
                "Few": {"Type": "Pass", "End": True},
            }
        ),
        {},
        {"text": "ana has 3", "b": "many"},
    ),
    Case(
        "jsonpath-assign-reads-the-raw-result",  # before ResultSelector, as LocalStack does
        machine(
            {
                "P": {
                    "Type": "Parallel",
                    "Branches": [machine({"B": {"Type": "Pass", "Result": {"a": 1, "b": 2}, "End": True}})],
                    "ResultSelector": {"only.$": "$[0].a"},
                    "Assign": {"b.$": "$[0].b"},
                    "Next": "N",
                },
                "N": {"Type": "Pass", "Parameters": {"b.$": "$b", "in.$": "$"}, "End": True},
            }
        ),
        {},
        {"b": 2, "in": {"only": 1}},
    ),
    Case(
        "choice-default-takes-the-state-assign",
        jsonata(
            {
                "C": {
                    "Type": "Choice",
                    "Choices": [{"Condition": "{% false %}", "Assign": {"path": "rule"}, "Next": "N"}],
                    "Default": "N",
                    "Assign": {"path": "default"},
                    "Output": {"via": "default"},
                },
                "N": {
                    "Type": "Pass",
                    "Output": {"path": "{% $path %}", "via": "{% $states.input.via %}"},
                    "End": True,
                },
            }
        ),
        {},
        {"path": "default", "via": "default"},
    ),
    Case(
        "mixed-languages",  # a JSONata state in a JSONPath state machine
        machine(
            {
                "A": {"Type": "Pass", "Parameters": {"v.$": "$.a"}, "Next": "B"},
                "B": {
                    "Type": "Pass",
                    "QueryLanguage": "JSONata",
                    "Output": "{% $states.input.v * 2 %}",
                    "End": True,
                },
            }
        ),
        {"a": 4},
        8,
    ),
]


@pytest.mark.parametrize("case", [c.param() for c in CASES])
def test_jsonata_and_variables(case: Case) -> None:
    check_engine(case)


def test_jsonata_task_arguments_result_and_timeout() -> None:
    seen: list[Any] = []

    def handler(parameters: Any, context: Any) -> Any:
        seen.append((parameters, context.timeout_at is not None))
        return {"Payload": {"total": 10}}

    integrations = Integrations()
    integrations.register("arn:aws:states:::lambda:invoke", handler)
    definition = jsonata(
        {
            "T": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Arguments": {"FunctionName": "f", "Payload": {"order": "{% $states.input.order %}"}},
                "TimeoutSeconds": "{% $states.input.limit %}",
                "Assign": {"total": "{% $states.result.Payload.total %}"},
                "Output": {"total": "{% $states.result.Payload.total %}", "in": "{% $states.input.order %}"},
                "End": True,
            }
        }
    )
    outcome = run_engine(definition, {"order": "o1", "limit": 30}, integrations)
    assert outcome.output == {"total": 10, "in": "o1"}
    assert seen == [({"FunctionName": "f", "Payload": {"order": "o1"}}, True)]


REFUSED = [
    ("InputPath", {"InputPath": "$.a"}, "States.P.InputPath: not allowed in a JSONata state"),
    ("Parameters", {"Parameters": {}}, "States.P.Parameters: not allowed in a JSONata state"),
    ("ResultPath", {"ResultPath": "$.r"}, "States.P.ResultPath: not allowed in a JSONata state"),
    ("OutputPath", {"OutputPath": "$"}, "States.P.OutputPath: not allowed in a JSONata state"),
    ("syntax", {"Output": "{% $states.input. %}"}, "States.P.Output: invalid JSONata"),
    ("assign-name", {"Assign": {"bad-name": 1}}, "States.P.Assign.bad-name: a variable name"),
    ("assign-states", {"Assign": {"states": 1}}, "'states' is reserved"),
]


@pytest.mark.parametrize(("field", "extra", "message"), REFUSED, ids=[r[0] for r in REFUSED])
def test_jsonata_state_refuses_jsonpath_fields(field: str, extra: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("$", r"\$").replace(".", r"\.")):
        parse_definition(jsonata({"P": {"Type": "Pass", "End": True, **extra}}))


def test_jsonpath_state_refuses_jsonata_fields() -> None:
    with pytest.raises(ConfigError, match=r"States\.P\.Output: only a JSONata state has Output"):
        parse_definition(machine({"P": {"Type": "Pass", "Output": 1, "End": True}}))
    with pytest.raises(
        ConfigError, match="cannot use JSONPath when the state machine's QueryLanguage is JSONata"
    ):
        parse_definition(jsonata({"P": {"Type": "Pass", "QueryLanguage": "JSONPath", "End": True}}))


def test_inner_state_cannot_assign_an_outer_variable() -> None:
    inner = {"StartAt": "I", "States": {"I": {"Type": "Pass", "Assign": {"total": 1}, "End": True}}}
    definition = jsonata(
        {
            "A": {"Type": "Pass", "Assign": {"total": 0}, "Next": "M"},
            "M": {"Type": "Map", "ItemProcessor": inner, "End": True},
        }
    )
    with pytest.raises(ConfigError, match="variable 'total' belongs to an outer scope"):
        parse_definition(definition)


def test_variables_survive_a_restart_and_their_size_is_limited() -> None:
    big = jsonata({"A": {"Type": "Pass", "Assign": {"v": "{% $pad('', 300000, 'x') %}"}, "End": True}})
    outcome = run_engine(big, {})
    assert (outcome.status, outcome.error) == ("FAILED", "States.DataLimitExceeded")
    assert "at most 262144" in (outcome.cause or "")


def test_a_runaway_expression_fails_with_query_evaluation_error() -> None:
    recursive = "{% ($f := function($n){ $n > 0 ? 1 + $f($n - 1) : 0 }; $f(100000)) %}"
    outcome = run_engine(jsonata({"P": {"Type": "Pass", "Output": recursive, "End": True}}), {})
    assert (outcome.status, outcome.error) == ("FAILED", "States.QueryEvaluationError")


def test_the_docs_conversion_from_parameters_to_arguments_gives_the_same_call() -> None:
    """ "Transforming data with JSONata": a JSONPath Task's Parameters and the JSONata
    Arguments the guide converts them to (``.$`` keys gone, ``$customerName`` a variable;
    a string without ``{% %}`` stays a literal in both)."""
    calls: list[Any] = []
    integrations = Integrations()
    integrations.register("arn:aws:states:::lambda:invoke", lambda p, c: calls.append(p) or {})
    set_name = {"Type": "Pass", "Assign": {"customerName": "Ana"}, "Next": "T"}
    jsonpath_task = {
        "Type": "Task",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {
            "static": "Hello",
            "title.$": "$.title",
            "name.$": "$customerName",
            "not-evaluated": "$customerName",
        },
        "End": True,
    }
    jsonata_task = {
        "Type": "Task",
        "QueryLanguage": "JSONata",
        "Resource": "arn:aws:states:::lambda:invoke",
        "Arguments": {
            "static": "Hello",
            "title": "{% $states.input.title %}",
            "name": "{% $customerName %}",
            "not-evaluated": "$customerName",
        },
        "End": True,
    }
    for task in (jsonpath_task, jsonata_task):
        outcome = run_engine(machine({"S": set_name, "T": task}), {"title": "Dr"}, integrations)
        assert outcome.status == "SUCCEEDED", outcome.cause
    expected = {"static": "Hello", "title": "Dr", "name": "Ana", "not-evaluated": "$customerName"}
    assert calls == [expected, expected]
