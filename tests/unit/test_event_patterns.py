"""Event patterns: one table of (pattern, event, expected), checked against our matcher and
against moto's as an oracle. Where moto is known to differ from the EventBridge documentation,
the oracle row is skipped with the reason in its id, never silently."""

from __future__ import annotations

import json
from typing import Any

import pytest

from conveyor.core.errors import ConfigError
from conveyor.events.lifecycle import FAILED, STOPPED, task_event
from conveyor.events.patterns import EventPattern

Pattern = dict[str, Any]
Event = dict[str, Any]

DMS_EVENT: Event = {
    "source": "aws.dms",
    "detail-type": "DMS Replication Task State Change",
    "resources": ["arn:aws:dms:local:000000000000:task:orders", "arn:aws:dms:local:000000000000:task:x"],
    "detail": {
        "eventId": "DMS-EVENT-0079",
        "detailMessage": "Stop Reason FULL_LOAD_ONLY_FINISHED",
        "rows": 1500,
        "ratio": 0.25,
        "exact": 5,
        "ok": True,
        "none": None,
        "empty": "",
        "tags": ["blue", "Green", 7],
        "nested": {"deep": {"level": 3}},
        "items": [{"name": "a", "qty": 1}, {"name": "b", "qty": 9}],
        "ip": "10.0.3.17",
        "ip6": "2001:db8::42",
        "path": "logs/2026/star*file.txt",
        "nothing": [],
        "hollow": {},
    },
}

# (id, pattern, expected). All rows run against DMS_EVENT unless the id is in EVENTS.
CASES: list[tuple[str, Pattern, bool]] = [
    # exact literals
    ("string", {"source": ["aws.dms"]}, True),
    ("string-miss", {"source": ["aws.s3"]}, False),
    ("string-alternatives", {"source": ["aws.s3", "aws.dms"]}, True),
    ("string-case-sensitive", {"source": ["AWS.DMS"]}, False),
    ("missing-key", {"detail": {"absent": ["x"]}}, False),
    ("number", {"detail": {"rows": [1500]}}, True),
    ("number-float-equal-int", {"detail": {"exact": [5.0]}}, True),
    ("number-not-string", {"detail": {"rows": ["1500"]}}, False),
    ("string-not-number", {"detail": {"eventId": [79]}}, False),
    ("bool", {"detail": {"ok": [True]}}, True),
    ("bool-miss", {"detail": {"ok": [False]}}, False),
    ("number-not-bool", {"detail": {"ok": [1]}}, False),
    ("null", {"detail": {"none": [None]}}, True),
    ("null-not-missing", {"detail": {"absent": [None]}}, False),
    ("empty-string", {"detail": {"empty": [""]}}, True),
    ("several-fields-all-must-match", {"source": ["aws.dms"], "detail": {"rows": [1]}}, False),
    ("nested-object", {"detail": {"nested": {"deep": {"level": [3]}}}}, True),
    ("nested-object-miss", {"detail": {"nested": {"deep": {"level": [4]}}}}, False),
    # event arrays
    ("array-any-element", {"resources": ["arn:aws:dms:local:000000000000:task:x"]}, True),
    ("array-mixed-types", {"detail": {"tags": [7]}}, True),
    ("array-no-element", {"detail": {"tags": ["red"]}}, False),
    ("array-of-objects", {"detail": {"items": {"name": ["b"]}}}, True),
    ("array-of-objects-same-element", {"detail": {"items": {"name": ["b"], "qty": [9]}}}, True),
    # prefix / suffix / equals-ignore-case
    ("prefix", {"detail": {"eventId": [{"prefix": "DMS-EVENT-00"}]}}, True),
    ("prefix-miss", {"detail": {"eventId": [{"prefix": "dms-"}]}}, False),
    ("prefix-empty-matches-any-string", {"source": [{"prefix": ""}]}, True),
    ("prefix-not-number", {"detail": {"rows": [{"prefix": "15"}]}}, False),
    ("prefix-ignore-case", {"detail": {"eventId": [{"prefix": {"equals-ignore-case": "dms-event"}}]}}, True),
    ("prefix-array", {"resources": [{"prefix": "arn:aws:dms:"}]}, True),
    ("suffix", {"detail": {"detailMessage": [{"suffix": "_FINISHED"}]}}, True),
    ("suffix-miss", {"detail": {"detailMessage": [{"suffix": "_finished"}]}}, False),
    (
        "suffix-ignore-case",
        {"detail": {"detailMessage": [{"suffix": {"equals-ignore-case": "_finished"}}]}},
        True,
    ),
    ("equals-ignore-case", {"source": [{"equals-ignore-case": "AWS.Dms"}]}, True),
    ("equals-ignore-case-miss", {"source": [{"equals-ignore-case": "aws.dm"}]}, False),
    ("equals-ignore-case-array", {"detail": {"tags": [{"equals-ignore-case": "GREEN"}]}}, True),
    # anything-but
    ("anything-but-string", {"source": [{"anything-but": "aws.s3"}]}, True),
    ("anything-but-string-miss", {"source": [{"anything-but": "aws.dms"}]}, False),
    ("anything-but-list", {"source": [{"anything-but": ["aws.s3", "aws.ec2"]}]}, True),
    ("anything-but-list-miss", {"source": [{"anything-but": ["aws.s3", "aws.dms"]}]}, False),
    ("anything-but-number", {"detail": {"rows": [{"anything-but": 1500.0}]}}, False),
    ("anything-but-numbers", {"detail": {"rows": [{"anything-but": [1, 2]}]}}, True),
    ("anything-but-missing-key", {"detail": {"absent": [{"anything-but": "x"}]}}, False),
    ("anything-but-prefix", {"source": [{"anything-but": {"prefix": "aws.s"}}]}, True),
    ("anything-but-prefix-miss", {"source": [{"anything-but": {"prefix": "aws."}}]}, False),
    ("anything-but-suffix", {"source": [{"anything-but": {"suffix": ".s3"}}]}, True),
    ("anything-but-suffix-miss", {"source": [{"anything-but": {"suffix": ".dms"}}]}, False),
    ("anything-but-ignore-case", {"source": [{"anything-but": {"equals-ignore-case": "AWS.S3"}}]}, True),
    (
        "anything-but-ignore-case-miss",
        {"source": [{"anything-but": {"equals-ignore-case": "AWS.DMS"}}]},
        False,
    ),
    (
        "anything-but-ignore-case-list",
        {"source": [{"anything-but": {"equals-ignore-case": ["AWS.S3", "Aws.Dms"]}}]},
        False,
    ),
    ("anything-but-array-some-element-differs", {"detail": {"tags": [{"anything-but": "blue"}]}}, True),
    ("anything-but-wildcard", {"source": [{"anything-but": {"wildcard": "aws.*3"}}]}, True),
    # numeric
    ("numeric-gt", {"detail": {"rows": [{"numeric": [">", 1000]}]}}, True),
    ("numeric-gt-miss", {"detail": {"rows": [{"numeric": [">", 1500]}]}}, False),
    ("numeric-ge", {"detail": {"rows": [{"numeric": [">=", 1500]}]}}, True),
    ("numeric-lt", {"detail": {"ratio": [{"numeric": ["<", 0.5]}]}}, True),
    ("numeric-le-miss", {"detail": {"ratio": [{"numeric": ["<=", 0.2]}]}}, False),
    ("numeric-eq-float", {"detail": {"exact": [{"numeric": ["=", 5.0]}]}}, True),
    ("numeric-range", {"detail": {"rows": [{"numeric": [">", 0, "<=", 1500]}]}}, True),
    ("numeric-range-miss", {"detail": {"rows": [{"numeric": [">=", 0, "<", 1500]}]}}, False),
    ("numeric-range-upper-first", {"detail": {"ratio": [{"numeric": ["<", 1, ">", 0]}]}}, True),
    ("numeric-not-string", {"detail": {"eventId": [{"numeric": [">", 0]}]}}, False),
    ("numeric-array", {"detail": {"tags": [{"numeric": ["<", 10]}]}}, True),
    ("numeric-or-literal", {"detail": {"rows": [{"numeric": ["<", 10]}, 1500]}}, True),
    # exists
    ("exists-true", {"detail": {"rows": [{"exists": True}]}}, True),
    ("exists-true-missing", {"detail": {"absent": [{"exists": True}]}}, False),
    ("exists-false-missing", {"detail": {"absent": [{"exists": False}]}}, True),
    ("exists-false-present", {"detail": {"rows": [{"exists": False}]}}, False),
    ("exists-false-missing-parent", {"nope": {"absent": [{"exists": False}]}}, True),
    ("exists-true-null", {"detail": {"none": [{"exists": True}]}}, True),
    ("exists-true-on-object-is-not-a-leaf", {"detail": {"nested": [{"exists": True}]}}, False),
    ("exists-true-empty-object", {"detail": {"hollow": [{"exists": True}]}}, False),
    ("exists-true-empty-array", {"detail": {"nothing": [{"exists": True}]}}, False),
    ("exists-false-empty-array", {"detail": {"nothing": [{"exists": False}]}}, True),
    # wildcard
    ("wildcard", {"resources": [{"wildcard": "arn:aws:dms:*:task:orders"}]}, True),
    ("wildcard-two-stars", {"detail": {"eventId": [{"wildcard": "DMS-*-*79"}]}}, True),
    ("wildcard-miss", {"detail": {"eventId": [{"wildcard": "DMS-*-80"}]}}, False),
    ("wildcard-whole-value", {"detail": {"eventId": [{"wildcard": "DMS"}]}}, False),
    ("wildcard-escaped-star", {"detail": {"path": [{"wildcard": "logs/*/star\\*file.txt"}]}}, True),
    ("wildcard-escaped-star-is-literal", {"detail": {"path": [{"wildcard": "logs/*/sta\\*"}]}}, False),
    ("wildcard-not-number", {"detail": {"rows": [{"wildcard": "15*"}]}}, False),
    # cidr
    ("cidr-v4", {"detail": {"ip": [{"cidr": "10.0.0.0/16"}]}}, True),
    ("cidr-v4-miss", {"detail": {"ip": [{"cidr": "10.1.0.0/16"}]}}, False),
    ("cidr-v4-host", {"detail": {"ip": [{"cidr": "10.0.3.17/32"}]}}, True),
    ("cidr-not-an-ip", {"detail": {"eventId": [{"cidr": "10.0.0.0/8"}]}}, False),
    ("cidr-v6", {"detail": {"ip6": [{"cidr": "2001:db8::/32"}]}}, True),
    ("cidr-v6-miss", {"detail": {"ip6": [{"cidr": "2001:db9::/32"}]}}, False),
    ("cidr-v6-does-not-hold-v4", {"detail": {"ip": [{"cidr": "::/0"}]}}, False),
    # $or
    ("or-top", {"$or": [{"source": ["aws.s3"]}, {"detail": {"rows": [1500]}}]}, True),
    ("or-top-miss", {"$or": [{"source": ["aws.s3"]}, {"detail": {"rows": [1]}}]}, False),
    ("or-nested", {"detail": {"$or": [{"rows": [{"numeric": [">", 9000]}]}, {"ratio": [0.25]}]}}, True),
    (
        "or-and-sibling",
        {"source": ["aws.s3"], "$or": [{"detail": {"rows": [1500]}}, {"region": ["x"]}]},
        False,
    ),
    (
        "or-inside-or",
        {"$or": [{"source": ["aws.s3"]}, {"$or": [{"detail": {"ok": [False]}}, {"detail": {"exact": [5]}}]}]},
        True,
    ),
    ("or-with-exists-false", {"$or": [{"detail": {"absent": [{"exists": False}]}}, {"source": ["x"]}]}, True),
]

# Rows where moto 5.2.5's matcher disagrees with the EventBridge documentation: id -> why.
MOTO_DIFFERS = {
    "array-of-objects": "moto does not descend into arrays of objects",
    "array-of-objects-same-element": "moto does not descend into arrays of objects",
    "number-not-bool": "moto compares with Python ==, where True == 1 (JSON true is not the number 1)",
    "exists-true-empty-object": "moto treats {} as an existing value (docs: exists is leaf-only)",
    "exists-true-empty-array": "moto treats [] as an existing value (no leaf value: it does not exist)",
    "exists-false-empty-array": "moto treats [] as an existing value (no leaf value: it does not exist)",
}


def _moto(document: str) -> Any:
    """moto's matcher, the oracle (imported late: it is a test-only dependency)."""
    from moto.events.models import EventPattern as MotoPattern

    return MotoPattern.load(document)


def _ids(rows: list[tuple[str, Pattern, bool]]) -> list[str]:
    return [row[0] for row in rows]


@pytest.mark.parametrize(("case", "pattern", "expected"), CASES, ids=_ids(CASES))
def test_matches(case: str, pattern: Pattern, expected: bool) -> None:
    assert EventPattern.parse(pattern, "test").matches(DMS_EVENT) is expected


def _oracle_params() -> list[Any]:
    params = []
    for case, pattern, expected in CASES:
        reason = MOTO_DIFFERS.get(case)
        marks = [pytest.mark.skip(reason=f"moto differs: {reason}")] if reason else []
        case_id = f"{case} [moto differs: {reason}]" if reason else case
        params.append(pytest.param(pattern, expected, id=case_id, marks=marks))
    return params


@pytest.mark.parametrize(("pattern", "expected"), _oracle_params())
def test_moto_oracle_agrees(pattern: Pattern, expected: bool) -> None:
    assert _moto(json.dumps(pattern)).matches_event(DMS_EVENT) is expected


def test_moto_differences_are_real() -> None:
    """Each skipped oracle row really disagrees, so the skip list cannot go stale."""
    for case, pattern, expected in CASES:
        if case in MOTO_DIFFERS:
            assert _moto(json.dumps(pattern)).matches_event(DMS_EVENT) is not expected, case


def test_boolean_is_not_a_number() -> None:
    # JSON true is not 1; Python's True == 1 must not leak through.
    pattern = EventPattern.parse({"flag": [1]}, "test")
    assert not pattern.matches({"flag": True})
    assert pattern.matches({"flag": 1.0})
    assert not EventPattern.parse({"flag": [True]}, "test").matches({"flag": 1})


def test_array_of_objects_needs_one_element_to_hold_every_field() -> None:
    pattern = EventPattern.parse({"items": {"name": ["a"], "qty": [9]}}, "test")
    assert not pattern.matches({"items": [{"name": "a", "qty": 1}, {"name": "b", "qty": 9}]})
    assert pattern.matches({"items": [{"name": "b", "qty": 1}, {"name": "a", "qty": 9}]})


def test_nested_arrays_are_flattened() -> None:
    assert EventPattern.parse({"v": [3]}, "test").matches({"v": [[1, 2], [3]]})


def test_string_document_is_parsed() -> None:
    pattern = EventPattern.parse('{"source": ["aws.dms"]}', "test")
    assert pattern.matches({"source": "aws.dms"})
    assert pattern.document == {"source": ["aws.dms"]}


SEED_001 = """
{
"source": ["aws.dms"],
"detail": {
"eventId": ["DMS-EVENT-0079"],
"eventType": ["REPLICATION_TASK_STOPPED"],
"detailMessage": ["Stop Reason FULL_LOAD_ONLY_FINISHED"],
"type": ["REPLICATION_TASK"],
"category": ["StateChange"]
}
}
"""


def test_seed_001_matches_conveyor_stop_event() -> None:
    pattern = EventPattern.parse(SEED_001, "rules.on-load-done.event_pattern")
    assert pattern.matches(task_event(STOPPED, "task", "FULL_LOAD_ONLY_FINISHED"))
    assert not pattern.matches(task_event(STOPPED, "task", "STOP_REASON_USER"))
    assert not pattern.matches(task_event(FAILED, "task", "FULL_LOAD_ONLY_FINISHED"))


def test_seed_001_moto_agrees() -> None:
    assert _moto(SEED_001).matches_event(task_event(STOPPED, "task", "FULL_LOAD_ONLY_FINISHED"))


ORIGIN = "rules.on-load-done.event_pattern"
BAD: list[tuple[str, Any, str]] = [
    ("not-json", '{"source": [', f"{ORIGIN}: not valid JSON: "),
    ("not-object", '["aws.dms"]', f"{ORIGIN}: an event pattern must be a JSON object, got a list"),
    ("empty-pattern", {}, f"{ORIGIN}: a pattern object must name at least one field"),
    (
        "bare-string",
        {"detail": {"eventId": "DMS-EVENT-0079"}},
        f"{ORIGIN}.detail.eventId: a pattern value must be a list of alternatives or an object, "
        'got the string "DMS-EVENT-0079" (write ["DMS-EVENT-0079"] to match it exactly)',
    ),
    (
        "bare-number",
        {"n": 5},
        f"{ORIGIN}.n: a pattern value must be a list of alternatives or an object, got",
    ),
    ("empty-list", {"source": []}, f"{ORIGIN}.source: an empty list of alternatives matches nothing"),
    (
        "nested-list",
        {"detail": {"eventId": [["x"]]}},
        f"{ORIGIN}.detail.eventId[0]: an alternative must be a string, number, boolean, null "
        "or an operator object",
    ),
    (
        "unknown-operator",
        {"source": ["a", {"prefx": "aws."}]},
        f"{ORIGIN}.source[1].prefx: unknown operator 'prefx' (did you mean 'prefix'?)",
    ),
    (
        "unknown-operator-no-hint",
        {"source": [{"zzz": 1}]},
        f"{ORIGIN}.source[0].zzz: unknown operator 'zzz'; known operators: prefix, suffix",
    ),
    (
        "two-operators",
        {"source": [{"prefix": "a", "suffix": "b"}]},
        f"{ORIGIN}.source[0]: an operator object must have exactly one operator, got 'prefix', 'suffix'",
    ),
    (
        "prefix-number",
        {"source": [{"prefix": 5}]},
        f"{ORIGIN}.source[0].prefix: prefix takes a string, got the number 5",
    ),
    (
        "prefix-bad-inner",
        {"source": [{"prefix": {"equals-ignore-cas": "a"}}]},
        f"{ORIGIN}.source[0].prefix.equals-ignore-cas: unknown operator 'equals-ignore-cas' "
        "(did you mean 'equals-ignore-case'?)",
    ),
    (
        "exists-string",
        {"a": [{"exists": "yes"}]},
        f'{ORIGIN}.a[0].exists: must be true or false, got the string "yes"',
    ),
    (
        "numeric-odd",
        {"a": [{"numeric": [">", 1, "<"]}]},
        f"{ORIGIN}.a[0].numeric: numeric takes [operator, number]",
    ),
    (
        "numeric-op",
        {"a": [{"numeric": ["=>", 1]}]},
        f'{ORIGIN}.a[0].numeric[0]: unknown numeric operator "=>"',
    ),
    (
        "numeric-bound",
        {"a": [{"numeric": [">", "1"]}]},
        f'{ORIGIN}.a[0].numeric[1]: a numeric bound must be a number, got the string "1"',
    ),
    (
        "numeric-two-lower",
        {"a": [{"numeric": [">", 1, ">=", 2]}]},
        f"{ORIGIN}.a[0].numeric: a numeric range needs one lower bound (> or >=) "
        "and one upper bound (< or <=)",
    ),
    (
        "numeric-empty-range",
        {"a": [{"numeric": [">", 5, "<", 5]}]},
        f"{ORIGIN}.a[0].numeric: the numeric range is empty: lower bound 5 is not below upper bound 5",
    ),
    ("cidr-bad", {"ip": [{"cidr": "10.0.0.0/33"}]}, f"{ORIGIN}.ip[0].cidr: not a CIDR block: "),
    (
        "wildcard-bad-escape",
        {"a": [{"wildcard": "a\\b"}]},
        f"{ORIGIN}.a[0].wildcard: invalid escape at position 1",
    ),
    (
        "wildcard-double-star",
        {"a": [{"wildcard": "a**b"}]},
        f'{ORIGIN}.a[0].wildcard: consecutive wildcards at position 2 in "a**b"',
    ),
    (
        "anything-but-null",
        {"a": [{"anything-but": [None]}]},
        f"{ORIGIN}.a[0].anything-but[0]: anything-but excludes strings or numbers",
    ),
    (
        "anything-but-empty",
        {"a": [{"anything-but": []}]},
        f"{ORIGIN}.a[0].anything-but: anything-but needs at least one",
    ),
    (
        "anything-but-unknown",
        {"a": [{"anything-but": {"sufix": "x"}}]},
        f"{ORIGIN}.a[0].anything-but.sufix: unknown operator 'sufix' (did you mean 'suffix'?)",
    ),
    (
        "anything-but-numeric-not-allowed",
        {"a": [{"anything-but": {"numeric": [">", 1]}}]},
        f"{ORIGIN}.a[0].anything-but.numeric: unknown operator 'numeric'",
    ),
    ("or-not-list", {"$or": {"a": ["x"]}}, f"{ORIGIN}.$or: $or must be a non-empty list of pattern objects"),
    ("or-empty", {"$or": []}, f"{ORIGIN}.$or: $or must be a non-empty list of pattern objects, got a list"),
    (
        "or-element",
        {"detail": {"$or": [{"a": ["x"]}, ["b"]]}},
        f"{ORIGIN}.detail.$or[1]: each $or alternative must be a pattern object, got a list",
    ),
    (
        "error-inside-or",
        {"$or": [{"a": ["x"]}, {"b": [{"sufix": "y"}]}]},
        f"{ORIGIN}.$or[1].b[0].sufix: unknown operator 'sufix' (did you mean 'suffix'?)",
    ),
]


@pytest.mark.parametrize(("document", "message"), [row[1:] for row in BAD], ids=[row[0] for row in BAD])
def test_bad_pattern_says_what_and_where(document: Any, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        EventPattern.parse(document, ORIGIN)
    assert str(caught.value).startswith(message), str(caught.value)


def test_error_without_origin_names_the_path_only() -> None:
    with pytest.raises(ConfigError, match=r"^detail\.x: a pattern value must be"):
        EventPattern.parse({"detail": {"x": 1}}, "")
