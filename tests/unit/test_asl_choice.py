"""Choice rules: every operator, with and without ...Path, And/Or/Not, type tests."""

from __future__ import annotations

from typing import Any

import pytest
from test_asl_harness import Case, MotoOracle, check_engine, check_moto, machine, moto_oracle

from conveyor.orchestration.asl.choice import string_matches

oracle = pytest.fixture(scope="module")(moto_oracle)


def decide(rule: dict[str, Any]) -> dict[str, Any]:
    """A machine that outputs true when ``rule`` matches, false otherwise (Default)."""
    return machine(
        {
            "C": {"Type": "Choice", "Choices": [{**rule, "Next": "Yes"}], "Default": "No"},
            "Yes": {"Type": "Pass", "Result": True, "End": True},
            "No": {"Type": "Pass", "Result": False, "End": True},
        }
    )


DATA = {
    "s": "beta",
    "s2": "gamma",
    "n": 10,
    "f": 2.5,
    "n2": 10.0,
    "b": True,
    "t": "2024-05-01T12:00:00Z",
    "t2": "2024-05-01T14:00:00+02:00",
    "t3": "2024-06-01T00:00:00.123Z",
    "nul": None,
    "obj": {"k": [1, 2]},
    "file": "log-2024.txt",
    "star": "a*b",
}

# (id, rule, expected) — each evaluated against DATA
RULES: list[tuple[str, dict[str, Any], bool]] = [
    ("str-eq", {"Variable": "$.s", "StringEquals": "beta"}, True),
    ("str-eq-no", {"Variable": "$.s", "StringEquals": "Beta"}, False),
    ("str-eq-path", {"Variable": "$.s", "StringEqualsPath": "$.s2"}, False),
    ("str-lt", {"Variable": "$.s", "StringLessThan": "gamma"}, True),
    ("str-lt-path", {"Variable": "$.s", "StringLessThanPath": "$.s2"}, True),
    ("str-gt", {"Variable": "$.s", "StringGreaterThan": "alpha"}, True),
    ("str-gt-path", {"Variable": "$.s", "StringGreaterThanPath": "$.s2"}, False),
    ("str-le", {"Variable": "$.s", "StringLessThanEquals": "beta"}, True),
    ("str-le-path", {"Variable": "$.s2", "StringLessThanEqualsPath": "$.s"}, False),
    ("str-ge", {"Variable": "$.s", "StringGreaterThanEquals": "beta"}, True),
    ("str-ge-path", {"Variable": "$.s2", "StringGreaterThanEqualsPath": "$.s"}, True),
    ("str-on-number", {"Variable": "$.n", "StringEquals": "10"}, False),
    ("matches-star", {"Variable": "$.file", "StringMatches": "log-*.txt"}, True),
    ("matches-no", {"Variable": "$.file", "StringMatches": "log-*.csv"}, False),
    ("matches-escaped-star", {"Variable": "$.star", "StringMatches": "a\\*b"}, True),
    ("matches-escaped-star-no", {"Variable": "$.file", "StringMatches": "log\\*"}, False),
    ("num-eq", {"Variable": "$.n", "NumericEquals": 10}, True),
    ("num-eq-float", {"Variable": "$.n2", "NumericEquals": 10}, True),
    ("num-eq-path", {"Variable": "$.n", "NumericEqualsPath": "$.n2"}, True),
    ("num-lt", {"Variable": "$.f", "NumericLessThan": 3}, True),
    ("num-lt-path", {"Variable": "$.f", "NumericLessThanPath": "$.n"}, True),
    ("num-gt", {"Variable": "$.n", "NumericGreaterThan": 10}, False),
    ("num-gt-path", {"Variable": "$.n", "NumericGreaterThanPath": "$.f"}, True),
    ("num-le", {"Variable": "$.n", "NumericLessThanEquals": 10}, True),
    ("num-le-path", {"Variable": "$.n", "NumericLessThanEqualsPath": "$.f"}, False),
    ("num-ge", {"Variable": "$.f", "NumericGreaterThanEquals": 2.5}, True),
    ("num-ge-path", {"Variable": "$.f", "NumericGreaterThanEqualsPath": "$.n"}, False),
    ("num-on-string", {"Variable": "$.s", "NumericEquals": 1}, False),
    ("num-on-bool", {"Variable": "$.b", "NumericEquals": 1}, False),
    ("bool-eq", {"Variable": "$.b", "BooleanEquals": True}, True),
    ("bool-eq-false", {"Variable": "$.b", "BooleanEquals": False}, False),
    ("bool-eq-path", {"Variable": "$.b", "BooleanEqualsPath": "$.b"}, True),
    ("ts-eq-offset", {"Variable": "$.t", "TimestampEquals": "2024-05-01T14:00:00+02:00"}, True),
    ("ts-eq-path", {"Variable": "$.t", "TimestampEqualsPath": "$.t2"}, True),
    ("ts-lt", {"Variable": "$.t", "TimestampLessThan": "2024-05-01T12:00:01Z"}, True),
    ("ts-lt-path", {"Variable": "$.t", "TimestampLessThanPath": "$.t3"}, True),
    ("ts-gt", {"Variable": "$.t3", "TimestampGreaterThan": "2024-06-01T00:00:00Z"}, True),
    ("ts-gt-path", {"Variable": "$.t", "TimestampGreaterThanPath": "$.t3"}, False),
    ("ts-le", {"Variable": "$.t", "TimestampLessThanEquals": "2024-05-01T12:00:00Z"}, True),
    ("ts-le-path", {"Variable": "$.t3", "TimestampLessThanEqualsPath": "$.t"}, False),
    ("ts-ge", {"Variable": "$.t", "TimestampGreaterThanEquals": "2024-05-01T12:00:00Z"}, True),
    ("ts-ge-path", {"Variable": "$.t3", "TimestampGreaterThanEqualsPath": "$.t"}, True),
    ("ts-on-plain-string", {"Variable": "$.s", "TimestampEquals": "2024-05-01T12:00:00Z"}, False),
    ("is-null", {"Variable": "$.nul", "IsNull": True}, True),
    ("is-null-false", {"Variable": "$.s", "IsNull": False}, True),
    ("is-present", {"Variable": "$.s", "IsPresent": True}, True),
    ("is-present-missing", {"Variable": "$.missing", "IsPresent": True}, False),
    ("is-present-false-missing", {"Variable": "$.missing", "IsPresent": False}, True),
    ("is-numeric", {"Variable": "$.f", "IsNumeric": True}, True),
    ("is-numeric-bool", {"Variable": "$.b", "IsNumeric": True}, False),
    ("is-string", {"Variable": "$.s", "IsString": True}, True),
    ("is-string-number", {"Variable": "$.n", "IsString": False}, True),
    ("is-boolean", {"Variable": "$.b", "IsBoolean": True}, True),
    ("is-timestamp", {"Variable": "$.t3", "IsTimestamp": True}, True),
    ("is-timestamp-no", {"Variable": "$.s", "IsTimestamp": True}, False),
    ("nested-field", {"Variable": "$.obj.k[1]", "NumericEquals": 2}, True),
    ("context-variable", {"Variable": "$$.State.Name", "StringEquals": "C"}, True),
    (
        "and",
        {"And": [{"Variable": "$.n", "NumericGreaterThan": 1}, {"Variable": "$.s", "StringEquals": "beta"}]},
        True,
    ),
    (
        "and-one-false",
        {"And": [{"Variable": "$.n", "NumericGreaterThan": 1}, {"Variable": "$.s", "StringEquals": "x"}]},
        False,
    ),
    (
        "or",
        {"Or": [{"Variable": "$.n", "NumericLessThan": 1}, {"Variable": "$.s", "StringEquals": "beta"}]},
        True,
    ),
    ("not", {"Not": {"Variable": "$.s", "StringEquals": "beta"}}, False),
    (
        "nested-and-or-not",
        {
            "And": [
                {"Not": {"Variable": "$.b", "BooleanEquals": False}},
                {
                    "Or": [
                        {"Variable": "$.missing", "IsPresent": True},
                        {
                            "And": [
                                {"Variable": "$.f", "IsNumeric": True},
                                {"Variable": "$.f", "NumericEquals": 2.5},
                            ]
                        },
                    ]
                },
            ]
        },
        True,
    ),
]

CASES = [Case(rid, decide(rule), DATA, expected) for rid, rule, expected in RULES]

CASES += [
    Case(
        "first-matching-rule-wins",
        machine(
            {
                "C": {
                    "Type": "Choice",
                    "Choices": [
                        {"Variable": "$.n", "NumericGreaterThan": 100, "Next": "A"},
                        {"Variable": "$.n", "NumericGreaterThan": 1, "Next": "B"},
                        {"Variable": "$.n", "NumericGreaterThan": 0, "Next": "A"},
                    ],
                },
                "A": {"Type": "Pass", "Result": "A", "End": True},
                "B": {"Type": "Pass", "Result": "B", "End": True},
            }
        ),
        {"n": 5},
        "B",
    ),
    Case(
        "no-match-no-default",
        machine(
            {
                "C": {"Type": "Choice", "Choices": [{"Variable": "$.n", "NumericEquals": 1, "Next": "A"}]},
                "A": {"Type": "Succeed"},
            }
        ),
        {"n": 5},
        error="States.NoChoiceMatched",
    ),
    Case(
        "missing-variable",
        decide({"Variable": "$.missing", "StringEquals": "x"}),
        DATA,
        error="States.Runtime",
    ),
    Case(
        "choice-input-output-path",
        machine(
            {
                "C": {
                    "Type": "Choice",
                    "InputPath": "$.inner",
                    "OutputPath": "$.v",
                    "Choices": [{"Variable": "$.v", "NumericEquals": 1, "Next": "Done"}],
                },
                "Done": {"Type": "Succeed"},
            }
        ),
        {"inner": {"v": 1}},
        1,
    ),
]

_MOTO_TS = "moto parses only %Y-%m-%dT%H:%M:%SZ; RFC 3339 allows offsets and fractional seconds"
MOTO_DIFFERS = {
    "matches-escaped-star": "moto does not honour the \\* escape in StringMatches",
    "ts-eq-offset": _MOTO_TS,
    "ts-eq-path": _MOTO_TS,
    "ts-lt-path": _MOTO_TS,
    "ts-gt": _MOTO_TS,
    "ts-gt-path": _MOTO_TS,
    "ts-ge-path": _MOTO_TS,
    "is-timestamp": _MOTO_TS,
    "no-match-no-default": "moto fails with States.Runtime; AWS documents States.NoChoiceMatched",
    "missing-variable": "moto treats a missing Variable as no match; AWS fails with States.Runtime",
}
for case in CASES:
    case.moto = MOTO_DIFFERS.get(case.id)


@pytest.mark.parametrize("case", [c.param() for c in CASES])
def test_choice_engine(case: Case) -> None:
    check_engine(case)


@pytest.mark.parametrize("case", [c.param() for c in CASES])
def test_choice_moto(oracle: MotoOracle, case: Case) -> None:
    check_moto(oracle, case)


@pytest.mark.parametrize(
    ("value", "pattern", "expected"),
    [
        ("abc", "abc", True),
        ("abc", "a*", True),
        ("abc", "*c", True),
        ("abc", "*b*", True),
        ("abc", "*d*", False),
        ("", "*", True),
        ("a*c", "a\\*c", True),
        ("abc", "a\\*c", False),
        ("a\\c", "a\\\\c", True),
        ("a.c", "a.c", True),
        ("abc", "a.c", False),
        ("line1\nline2", "line1*", True),
    ],
)
def test_string_matches(value: str, pattern: str, expected: bool) -> None:
    assert string_matches(value, pattern) is expected
