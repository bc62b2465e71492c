"""ASL intrinsic functions (``States.Format(...)`` and friends), parsed once and evaluated.

Grammar (JSONPath mode)::

    call     := NAME '(' [ argument (',' argument)* ] ')'
    argument := call | 'string' | number | true | false | null | $path | $$.context-path

Inside a string literal a backslash escapes the next character (``\\'``, ``\\\\``, and
``\\{`` ``\\}`` which States.Format reads as literal braces). Syntax and arity problems are
:class:`IntrinsicSyntaxError` (reported by the validator with the JSON path of the field);
problems with the values at run time are ``States.IntrinsicFailure``.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import random
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from conveyor.orchestration.asl import errors as E
from conveyor.orchestration.asl.errors import StatesError
from conveyor.orchestration.asl.paths import PathSyntaxError, read_any, validate_path


class IntrinsicSyntaxError(ValueError):
    """An intrinsic function call that does not parse or has the wrong number of arguments."""


@dataclass(frozen=True)
class Literal:
    value: Any
    raw: str | None = None  # string literals keep their escapes for States.Format


@dataclass(frozen=True)
class PathArg:
    path: str


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Literal | PathArg | Call, ...]


Arg = Literal | PathArg | Call

# --- tokenizer and parser -------------------------------------------------------------

_NAME = re.compile(r"States\.[A-Za-z0-9]+")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
_WORD = re.compile(r"(true|false|null)\b")


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, message: str) -> IntrinsicSyntaxError:
        return IntrinsicSyntaxError(f"{message} at position {self.pos} of {self.text!r}")

    def skip_ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def parse(self) -> Call:
        self.skip_ws()
        call = self.call()
        self.skip_ws()
        if self.pos != len(self.text):
            raise self.fail("unexpected text after the function call")
        return call

    def call(self) -> Call:
        m = _NAME.match(self.text, self.pos)
        if m is None:
            raise self.fail("expected an intrinsic function name like States.Format")
        name = m.group(0)
        if name not in FUNCTIONS:
            raise self.fail(f"unknown intrinsic function {name!r}")
        self.pos = m.end()
        self.skip_ws()
        if not self.text.startswith("(", self.pos):
            raise self.fail(f"expected '(' after {name}")
        self.pos += 1
        args: list[Arg] = []
        self.skip_ws()
        if self.text.startswith(")", self.pos):
            self.pos += 1
        else:
            while True:
                self.skip_ws()
                args.append(self.argument())
                self.skip_ws()
                if self.text.startswith(",", self.pos):
                    self.pos += 1
                    continue
                if self.text.startswith(")", self.pos):
                    self.pos += 1
                    break
                raise self.fail("expected ',' or ')'")
        lo, hi, _ = FUNCTIONS[name]
        if not lo <= len(args) <= (hi if hi >= 0 else len(args)):
            expected = f"{lo}" if lo == hi else f"{lo}..{hi}" if hi >= 0 else f"at least {lo}"
            raise IntrinsicSyntaxError(f"{name} takes {expected} arguments, got {len(args)} in {self.text!r}")
        return Call(name, tuple(args))

    def argument(self) -> Arg:
        text, pos = self.text, self.pos
        if pos >= len(text):
            raise self.fail("expected an argument")
        ch = text[pos]
        if ch == "'":
            return self.string()
        if ch == "$":
            return self.path()
        if text.startswith("States.", pos):
            return self.call()
        m = _NUMBER.match(text, pos) or _WORD.match(text, pos)
        if m is None:
            raise self.fail("expected a string, number, true/false/null, path or function call")
        self.pos = m.end()
        return Literal(json.loads(m.group(0)))

    def string(self) -> Literal:
        start = self.pos
        self.pos += 1
        value: list[str] = []
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if ch == "\\":
                if self.pos + 1 >= len(self.text):
                    break
                value.append(self.text[self.pos + 1])
                self.pos += 2
                continue
            if ch == "'":
                self.pos += 1
                return Literal("".join(value), raw=self.text[start + 1 : self.pos - 1])
            value.append(ch)
            self.pos += 1
        self.pos = start
        raise self.fail("unterminated string literal")

    def path(self) -> PathArg:
        start, depth, quote = self.pos, 0, ""
        while self.pos < len(self.text):
            ch = self.text[self.pos]
            if quote:
                if ch == "\\":
                    self.pos += 1
                elif ch == quote:
                    quote = ""
            elif ch in "'\"":
                quote = ch
            elif ch in "[(":
                depth += 1
            elif ch in "])":
                if depth == 0:
                    break
                depth -= 1
            elif ch == "," and depth == 0:
                break
            self.pos += 1
        path = self.text[start : self.pos].rstrip()
        try:
            validate_path(path)
        except PathSyntaxError as exc:
            raise IntrinsicSyntaxError(f"{exc} in {self.text!r}") from None
        return PathArg(path)


@functools.lru_cache(maxsize=1024)
def parse_intrinsic(text: str) -> Call:
    """Parse one call; raises IntrinsicSyntaxError."""
    return _Parser(text).parse()


# --- evaluation ----------------------------------------------------------------------


@dataclass
class IntrinsicEnv:
    """What intrinsics need from outside: the random source (seed it for repeatable runs)."""

    rng: random.Random


def evaluate_intrinsic(text: str, data: Any, context: Any, env: IntrinsicEnv) -> Any:
    return _eval(parse_intrinsic(text), data, context, env)


def _eval(node: Arg, data: Any, context: Any, env: IntrinsicEnv) -> Any:
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, PathArg):
        try:
            return read_any(node.path, data, context, error=E.INTRINSIC_FAILURE, what="intrinsic argument")
        except StatesError as exc:
            raise StatesError(E.INTRINSIC_FAILURE, exc.cause) from None
    _, _, impl = FUNCTIONS[node.name]
    if node.name == "States.Format":
        template = node.args[0]
        raw = template.raw if isinstance(template, Literal) and template.raw is not None else None
        if raw is None:
            value = _eval(template, data, context, env)
            if not isinstance(value, str):
                raise StatesError(E.INTRINSIC_FAILURE, "States.Format: the template must be a string")
            raw = value
        args = [_eval(a, data, context, env) for a in node.args[1:]]
        return _format(raw, args)
    values = [_eval(a, data, context, env) for a in node.args]
    try:
        return impl(env, *values)
    except StatesError:
        raise
    except (TypeError, ValueError, OverflowError, IndexError, binascii.Error) as exc:
        raise StatesError(E.INTRINSIC_FAILURE, f"{node.name}: {exc}") from None


def _fail(name: str, message: str) -> StatesError:
    return StatesError(E.INTRINSIC_FAILURE, f"{name}: {message}")


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _format(raw: str, args: list[Any]) -> str:
    out: list[str] = []
    used = 0
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch == "\\" and i + 1 < len(raw):
            out.append(raw[i + 1])
            i += 2
            continue
        if raw.startswith("{}", i):
            if used >= len(args):
                raise _fail("States.Format", f"more placeholders than the {len(args)} arguments given")
            arg = args[used]
            if isinstance(arg, dict | list):
                raise _fail("States.Format", "arguments must be strings, numbers, booleans or null")
            out.append(arg if isinstance(arg, str) else _json(arg))
            used += 1
            i += 2
            continue
        out.append(ch)
        i += 1
    if used != len(args):
        raise _fail("States.Format", f"{len(args)} arguments given for {used} placeholders")
    return "".join(out)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _want(name: str, value: Any, kind: type | tuple[type, ...], what: str) -> Any:
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise _fail(name, f"{what} must be {_kind_name(kind)}, got {_json(value)}")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", list: "an array", dict: "an object", bool: "a boolean", int: "an integer"}
    if isinstance(kind, tuple):
        return "a number"
    return names.get(kind, kind.__name__)


def _integer(name: str, value: Any, what: str) -> int:
    """AWS rounds non-integer numbers to the nearest integer for Math functions."""
    if not _is_number(value):
        raise _fail(name, f"{what} must be a number, got {_json(value)}")
    number: float = value
    return round(number)


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality: booleans are not numbers, 1 equals 1.0."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _is_number(a) and _is_number(b):
        return bool(a == b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and bool(a == b)


def _string_to_json(env: IntrinsicEnv, text: Any) -> Any:
    _want("States.StringToJson", text, str, "the argument")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail("States.StringToJson", f"not valid JSON: {exc}") from None


def _array_partition(env: IntrinsicEnv, array: Any, size: Any) -> list[Any]:
    _want("States.ArrayPartition", array, list, "the array")
    if not _is_int(size) or size <= 0:
        raise _fail("States.ArrayPartition", f"the chunk size must be a positive integer, got {_json(size)}")
    return [array[i : i + size] for i in range(0, len(array), size)]


def _array_range(env: IntrinsicEnv, first: Any, last: Any, step: Any) -> list[int]:
    name = "States.ArrayRange"
    a, b, s = (_integer(name, v, w) for v, w in ((first, "first"), (last, "last"), (step, "step")))
    if s == 0:
        raise _fail(name, "the step must not be 0")
    result = list(range(a, b + (1 if s > 0 else -1), s))
    if len(result) > 1000:
        raise _fail(name, f"the range has {len(result)} items; at most 1000 are allowed")
    return result


def _array_get_item(env: IntrinsicEnv, array: Any, index: Any) -> Any:
    _want("States.ArrayGetItem", array, list, "the array")
    if not _is_int(index) or not 0 <= index < len(array):
        raise _fail("States.ArrayGetItem", f"index {_json(index)} is out of bounds for {len(array)} items")
    return array[index]


def _array_unique(env: IntrinsicEnv, array: Any) -> list[Any]:
    _want("States.ArrayUnique", array, list, "the array")
    out: list[Any] = []
    for item in array:
        if not any(json_equal(item, seen) for seen in out):
            out.append(item)
    return out


def _base64_encode(env: IntrinsicEnv, text: Any) -> str:
    _want("States.Base64Encode", text, str, "the argument")
    if len(text) > 10000:
        raise _fail("States.Base64Encode", "the input is longer than 10000 characters")
    return base64.b64encode(text.encode()).decode("ascii")


def _base64_decode(env: IntrinsicEnv, text: Any) -> str:
    _want("States.Base64Decode", text, str, "the argument")
    if len(text) > 10000:
        raise _fail("States.Base64Decode", "the input is longer than 10000 characters")
    try:
        return base64.b64decode(text, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise _fail("States.Base64Decode", f"not valid base64 of UTF-8 text: {exc}") from None


_HASHES = {"MD5": "md5", "SHA-1": "sha1", "SHA-256": "sha256", "SHA-384": "sha384", "SHA-512": "sha512"}


def _hash(env: IntrinsicEnv, data: Any, algorithm: Any) -> str:
    if algorithm not in _HASHES:
        raise _fail("States.Hash", f"algorithm must be one of {', '.join(_HASHES)}, got {_json(algorithm)}")
    text = data if isinstance(data, str) else _json(data)
    if len(text) > 10000:
        raise _fail("States.Hash", "the input is longer than 10000 characters")
    return hashlib.new(_HASHES[algorithm], text.encode()).hexdigest()


def _json_merge(env: IntrinsicEnv, left: Any, right: Any, deep: Any) -> dict[str, Any]:
    _want("States.JsonMerge", left, dict, "the first argument")
    _want("States.JsonMerge", right, dict, "the second argument")
    if deep is not False:
        raise _fail("States.JsonMerge", "only shallow merging is supported: the third argument must be false")
    return {**left, **right}


def _math_random(env: IntrinsicEnv, start: Any, end: Any, seed: Any = None) -> int:
    name = "States.MathRandom"
    lo, hi = _integer(name, start, "start"), _integer(name, end, "end")
    if hi <= lo:
        raise _fail(name, f"end ({hi}) must be greater than start ({lo})")
    rng = env.rng if seed is None else random.Random(_integer(name, seed, "seed"))
    return rng.randrange(lo, hi)  # start inclusive, end exclusive


def _math_add(env: IntrinsicEnv, a: Any, b: Any) -> int:
    return _integer("States.MathAdd", a, "the first value") + _integer(
        "States.MathAdd", b, "the second value"
    )


def _string_split(env: IntrinsicEnv, text: Any, delimiters: Any) -> list[str]:
    _want("States.StringSplit", text, str, "the string")
    _want("States.StringSplit", delimiters, str, "the delimiters")
    if not delimiters:
        return [text] if text else []
    pattern = "|".join(re.escape(c) for c in delimiters)
    return [part for part in re.split(pattern, text) if part]


def _uuid(env: IntrinsicEnv) -> str:
    return str(uuid.UUID(int=env.rng.getrandbits(128), version=4))


def _array_contains(env: IntrinsicEnv, array: Any, value: Any) -> bool:
    _want("States.ArrayContains", array, list, "the array")
    return any(json_equal(item, value) for item in array)


def _array_length(env: IntrinsicEnv, array: Any) -> int:
    return len(_want("States.ArrayLength", array, list, "the argument"))


def _json_to_string(env: IntrinsicEnv, value: Any) -> str:
    return _json(value)


def _array(env: IntrinsicEnv, *values: Any) -> list[Any]:
    return list(values)


def _not_called(env: IntrinsicEnv, *values: Any) -> Any:  # States.Format is evaluated from raw text
    raise AssertionError("unreachable")


Impl = Callable[..., Any]
# name -> (min args, max args or -1 for any, implementation)
FUNCTIONS: dict[str, tuple[int, int, Impl]] = {
    "States.Format": (1, -1, _not_called),
    "States.StringToJson": (1, 1, _string_to_json),
    "States.JsonToString": (1, 1, _json_to_string),
    "States.Array": (0, -1, _array),
    "States.ArrayPartition": (2, 2, _array_partition),
    "States.ArrayContains": (2, 2, _array_contains),
    "States.ArrayRange": (3, 3, _array_range),
    "States.ArrayGetItem": (2, 2, _array_get_item),
    "States.ArrayLength": (1, 1, _array_length),
    "States.ArrayUnique": (1, 1, _array_unique),
    "States.Base64Encode": (1, 1, _base64_encode),
    "States.Base64Decode": (1, 1, _base64_decode),
    "States.Hash": (2, 2, _hash),
    "States.JsonMerge": (3, 3, _json_merge),
    "States.MathRandom": (2, 3, _math_random),
    "States.MathAdd": (2, 2, _math_add),
    "States.StringSplit": (2, 2, _string_split),
    "States.UUID": (0, 0, _uuid),
}
