"""Intrinsic functions: each one, nesting, escapes and error cases."""

from __future__ import annotations

import hashlib
import random
from typing import Any

import pytest
from test_asl_harness import Case, MotoOracle, check_engine, check_moto, moto_oracle, pass_state

from conveyor.orchestration.asl.errors import StatesError
from conveyor.orchestration.asl.intrinsics import (
    IntrinsicEnv,
    IntrinsicSyntaxError,
    evaluate_intrinsic,
    parse_intrinsic,
)

oracle = pytest.fixture(scope="module")(moto_oracle)

DATA = {
    "name": "World",
    "n": 3,
    "arr": [1, 2, 2, 3, {"a": 1}, {"a": 1}],
    "obj": {"a": 1, "b": [1, 2]},
    "obj2": {"b": 3, "c": 4},
    "json": '{"k":[1,2],"s":"v"}',
    "text": "Data to encode",
    "csv": "a,b,,c",
    "b64": "RGF0YSB0byBlbmNvZGU=",
    "float": 1.5,
}

# (id, expression, expected value, moto skip reason or None)
ROWS: list[tuple[str, str, Any, str | None]] = [
    ("format", "States.Format('Hello, {}!', $.name)", "Hello, World!", None),
    ("format-several", "States.Format('{} has {} items', $.name, $.n)", "World has 3 items", None),
    (
        "format-literal-args",
        "States.Format('{}-{}-{}', 'x', 1.5, true)",
        "x-1.5-true",
        "moto's parser crashes on a float literal argument",
    ),
    ("format-null", "States.Format('v={}', null)", "v=null", "moto drops null arguments of States.Format"),
    (
        "format-escaped-braces",
        "States.Format('\\{{}\\}', $.n)",
        "{3}",
        "moto does not support the \\{ \\} escapes of States.Format",
    ),
    (
        "format-escaped-quote",
        "States.Format('it\\'s {}', $.name)",
        "it's World",
        "moto mis-reads the \\' escape inside a string literal",
    ),
    ("string-to-json", "States.StringToJson($.json)", {"k": [1, 2], "s": "v"}, None),
    ("json-to-string", "States.JsonToString($.obj)", '{"a":1,"b":[1,2]}', None),
    ("array", "States.Array('a', 1, $.n, $.obj.b)", ["a", 1, 3, [1, 2]], None),
    ("array-empty", "States.Array()", [], None),
    ("array-partition", "States.ArrayPartition(States.Array(1,2,3,4,5), 2)", [[1, 2], [3, 4], [5]], None),
    ("array-contains", "States.ArrayContains($.arr, 3)", True, None),
    ("array-contains-object", "States.ArrayContains($.arr, $.obj)", False, None),
    ("array-contains-no", "States.ArrayContains($.arr, 9)", False, None),
    ("array-range", "States.ArrayRange(1, 9, 2)", [1, 3, 5, 7, 9], None),
    ("array-range-down", "States.ArrayRange(5, 1, -2)", [5, 3, 1], "moto rejects negative steps"),
    ("array-get-item", "States.ArrayGetItem($.arr, 3)", 3, None),
    ("array-length", "States.ArrayLength($.arr)", 6, None),
    (
        "array-unique",
        "States.ArrayUnique($.arr)",
        [1, 2, 3, {"a": 1}],
        "moto crashes on objects in the array (unhashable dict)",
    ),
    ("base64-encode", "States.Base64Encode($.text)", "RGF0YSB0byBlbmNvZGU=", None),
    ("base64-decode", "States.Base64Decode($.b64)", "Data to encode", None),
    ("hash-md5", "States.Hash($.text, 'MD5')", hashlib.md5(b"Data to encode").hexdigest(), None),
    ("hash-sha1", "States.Hash($.text, 'SHA-1')", hashlib.sha1(b"Data to encode").hexdigest(), None),
    ("hash-sha256", "States.Hash($.text, 'SHA-256')", hashlib.sha256(b"Data to encode").hexdigest(), None),
    ("hash-sha384", "States.Hash($.text, 'SHA-384')", hashlib.sha384(b"Data to encode").hexdigest(), None),
    ("hash-sha512", "States.Hash($.text, 'SHA-512')", hashlib.sha512(b"Data to encode").hexdigest(), None),
    ("json-merge", "States.JsonMerge($.obj, $.obj2, false)", {"a": 1, "b": 3, "c": 4}, None),
    ("math-add", "States.MathAdd($.n, -5)", -2, None),
    (
        "math-add-rounds",
        "States.MathAdd($.float, 1)",
        3,
        None,
    ),
    ("string-split", "States.StringSplit($.csv, ',')", ["a", "b", "c"], None),
    (
        "string-split-many",
        "States.StringSplit('This.is+a,test=string', '.+,=')",
        ["This", "is", "a", "test", "string"],
        None,
    ),
    (
        "nested-calls",
        "States.ArrayLength(States.ArrayUnique("
        "States.StringSplit(States.Format('{},{},{}', 'x', 'y', 'x'), ',')))",
        2,
        None,
    ),
    ("nested-format-of-json", "States.Format('v={}', States.JsonToString($.obj.b))", "v=[1,2]", None),
    ("context-path-argument", "States.Format('{}', $$.State.Name)", "P", None),
    ("spaces", "States.MathAdd( 1 ,  2 )", 3, None),
]

CASES = [
    Case(rid, pass_state(Parameters={"r.$": expr}), DATA, {"r": expected}, moto=skip)
    for rid, expr, expected, skip in ROWS
]

ERRORS: list[tuple[str, str]] = [
    ("array-get-item-out-of-range", "States.ArrayGetItem($.arr, 10)"),
    ("string-to-json-invalid", "States.StringToJson($.text)"),
    ("array-length-of-object", "States.ArrayLength($.obj)"),
    ("format-too-few-args", "States.Format('{} {}', 1)"),
    ("hash-unknown-algorithm", "States.Hash($.text, 'SHA-3')"),
    ("json-merge-deep", "States.JsonMerge($.obj, $.obj2, true)"),
    ("array-partition-zero", "States.ArrayPartition($.arr, 0)"),
    ("array-range-zero-step", "States.ArrayRange(1, 5, 0)"),
    ("array-range-too-long", "States.ArrayRange(1, 2000, 1)"),
    ("base64-decode-invalid", "States.Base64Decode('***')"),
    ("math-add-string", "States.MathAdd('1', 2)"),
    ("path-missing", "States.ArrayLength($.missing)"),
]
_MOTO_ERR = "moto fails with States.Runtime (or not at all); AWS documents States.IntrinsicFailure"
CASES += [
    Case(
        f"error-{rid}",
        pass_state(Parameters={"r.$": expr}),
        DATA,
        error="States.IntrinsicFailure",
        moto=_MOTO_ERR,
    )
    for rid, expr in ERRORS
]


@pytest.mark.parametrize("case", [c.param() for c in CASES])
def test_intrinsics_engine(case: Case) -> None:
    check_engine(case)


@pytest.mark.parametrize("case", [c.param() for c in CASES])
def test_intrinsics_moto(oracle: MotoOracle, case: Case) -> None:
    check_moto(oracle, case)


def env(seed: int = 1) -> IntrinsicEnv:
    return IntrinsicEnv(random.Random(seed))


def test_math_random_is_seedable_and_in_range() -> None:
    values = [evaluate_intrinsic("States.MathRandom(1, 5)", {}, {}, env(3)) for _ in range(3)]
    assert values == [evaluate_intrinsic("States.MathRandom(1, 5)", {}, {}, env(3)) for _ in range(3)]
    seeded = {evaluate_intrinsic("States.MathRandom(1, 1000, 42)", {}, {}, env(s)) for s in range(5)}
    assert len(seeded) == 1  # an explicit seed argument wins over the engine's random source
    shared = env(9)
    drawn = {evaluate_intrinsic("States.MathRandom(0, 3)", {}, {}, shared) for _ in range(200)}
    assert drawn == {0, 1, 2}  # start inclusive, end exclusive


def test_uuid_is_v4_and_deterministic_with_a_seed() -> None:
    first = evaluate_intrinsic("States.UUID()", {}, {}, env(5))
    assert first == evaluate_intrinsic("States.UUID()", {}, {}, env(5))
    assert first[14] == "4" and len(first) == 36


def test_uuid_and_random_run_on_moto(oracle: MotoOracle) -> None:
    out = oracle.run(pass_state(Parameters={"u.$": "States.UUID()", "r.$": "States.MathRandom(1, 2)"}), {})
    assert out.status == "SUCCEEDED" and len(out.output["u"]) == 36 and out.output["r"] in (1, 2)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("States.Nope(1)", "unknown intrinsic function 'States.Nope'"),
        ("States.Format('x'", "expected ',' or ')'"),
        ("States.Format('unterminated)", "unterminated string literal"),
        ("States.ArrayLength(1, 2)", "States.ArrayLength takes 1 arguments, got 2"),
        ("States.MathRandom(1)", "States.MathRandom takes 2..3 arguments, got 1"),
        ("States.UUID() extra", "unexpected text after the function call"),
        ("States.Array(@)", "expected a string, number, true/false/null, path or function call"),
        ("States.ArrayLength($.a[)", "invalid JSONPath"),
    ],
)
def test_syntax_errors(text: str, message: str) -> None:
    with pytest.raises(IntrinsicSyntaxError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_intrinsic(text)


def test_paths_with_commas_and_brackets_parse() -> None:
    call = parse_intrinsic("States.Array($.xs[?(@.n == 'a,b')], $['k 1'])")
    data = {"xs": [{"n": "a,b"}, {"n": "c"}], "k 1": 7}
    assert evaluate_intrinsic("States.Array($.xs[?(@.n == 'a,b')], $['k 1'])", data, {}, env()) == [
        [{"n": "a,b"}],
        7,
    ]
    assert len(call.args) == 2


def test_runtime_errors_are_intrinsic_failures() -> None:
    with pytest.raises(StatesError) as info:
        evaluate_intrinsic("States.ArrayGetItem(States.Array(1), 5)", {}, {}, env())
    assert info.value.error == "States.IntrinsicFailure"
    assert "out of bounds" in (info.value.cause or "")
