"""Choice state rules: parsing (with precise errors) and evaluation."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from conveyor.core.errors import ConfigError
from conveyor.orchestration.asl import errors as E
from conveyor.orchestration.asl.errors import StatesError
from conveyor.orchestration.asl.paths import PathSyntaxError, read_any, validate_path

_MISSING = object()

_TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def parse_timestamp(value: Any) -> datetime | None:
    """An RFC 3339 timestamp as ASL accepts it (uppercase T, and Z or an offset), else None."""
    if not isinstance(value, str) or not _TS.match(value):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def string_matches(value: str, pattern: str) -> bool:
    """``*`` matches any run of characters; ``\\*`` is a literal star and ``\\\\`` a backslash."""
    parts: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\" and i + 1 < len(pattern):
            parts.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        parts.append(".*" if ch == "*" else re.escape(ch))
        i += 1
    return re.fullmatch("".join(parts), value, flags=re.DOTALL) is not None


Compare = Callable[[Any, Any], bool]


def _typed(check: Callable[[Any], bool], op: Callable[[Any, Any], bool]) -> Compare:
    return lambda a, b: check(a) and check(b) and op(a, b)


def _ts_op(op: Callable[[datetime, datetime], bool]) -> Compare:
    def compare(a: Any, b: Any) -> bool:
        ta, tb = parse_timestamp(a), parse_timestamp(b)
        return ta is not None and tb is not None and op(ta, tb)

    return compare


def _is_str(v: Any) -> bool:
    return isinstance(v, str)


def _is_bool(v: Any) -> bool:
    return isinstance(v, bool)


_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "Equals": lambda a, b: bool(a == b),
    "LessThan": lambda a, b: bool(a < b),
    "GreaterThan": lambda a, b: bool(a > b),
    "LessThanEquals": lambda a, b: bool(a <= b),
    "GreaterThanEquals": lambda a, b: bool(a >= b),
}

# operator -> (comparison, type check for the literal operand)
COMPARISONS: dict[str, tuple[Compare, Callable[[Any], bool]]] = {}
for _suffix, _op in _ORDER.items():
    COMPARISONS[f"String{_suffix}"] = (_typed(_is_str, _op), _is_str)
    COMPARISONS[f"Numeric{_suffix}"] = (_typed(_is_number, _op), _is_number)
    COMPARISONS[f"Timestamp{_suffix}"] = (_ts_op(_op), lambda v: parse_timestamp(v) is not None)
COMPARISONS["BooleanEquals"] = (_typed(_is_bool, lambda a, b: a == b), _is_bool)
COMPARISONS["StringMatches"] = (_typed(_is_str, string_matches), _is_str)

TYPE_TESTS: dict[str, Callable[[Any], bool]] = {
    "IsNull": lambda v: v is None,
    "IsPresent": lambda v: v is not _MISSING,
    "IsNumeric": _is_number,
    "IsString": _is_str,
    "IsBoolean": _is_bool,
    "IsTimestamp": lambda v: parse_timestamp(v) is not None,
}

OPERATORS = set(COMPARISONS) | {f"{op}Path" for op in COMPARISONS if op != "StringMatches"} | set(TYPE_TESTS)


@dataclass(frozen=True)
class Rule:
    """One Choice rule; top-level rules carry ``next``."""

    kind: str  # "And", "Or", "Not" or an operator name
    variable: str | None = None
    operand: Any = None
    children: tuple[Rule, ...] = ()
    next: str | None = None

    def evaluate(self, data: Any, context: Any) -> bool:
        if self.kind == "And":
            return all(c.evaluate(data, context) for c in self.children)
        if self.kind == "Or":
            return any(c.evaluate(data, context) for c in self.children)
        if self.kind == "Not":
            return not self.children[0].evaluate(data, context)
        assert self.variable is not None
        if self.kind in TYPE_TESTS:
            value = _read(self.variable, data, context, missing_ok=self.kind == "IsPresent")
            return TYPE_TESTS[self.kind](value) is bool(self.operand)
        value = _read(self.variable, data, context)
        if self.kind.endswith("Path"):
            compare = COMPARISONS[self.kind[:-4]][0]
            return compare(value, _read(str(self.operand), data, context))
        return COMPARISONS[self.kind][0](value, self.operand)


def _read(path: str, data: Any, context: Any, *, missing_ok: bool = False) -> Any:
    try:
        return read_any(path, data, context, what="path")
    except StatesError:
        if missing_ok:
            return _MISSING
        raise StatesError(
            E.RUNTIME,
            f"Invalid path '{path}': The choice state's condition path references an invalid value.",
        ) from None


def parse_rule(obj: Any, where: str, *, top_level: bool) -> Rule:
    """Parse one Choice rule at JSON path ``where``; raises ConfigError."""
    if not isinstance(obj, dict):
        raise ConfigError(f"{where}: a Choice rule must be an object")
    nxt = obj.get("Next")
    if top_level:
        if not isinstance(nxt, str):
            raise ConfigError(f"{where}.Next: a top-level Choice rule needs 'Next' (a state name)")
    elif "Next" in obj:
        raise ConfigError(f"{where}.Next: only top-level Choice rules may have 'Next'")
    keys = set(obj) - {"Next", "Comment"}
    for combinator in ("And", "Or", "Not"):
        if combinator not in obj:
            continue
        if keys != {combinator}:
            raise ConfigError(
                f"{where}: '{combinator}' cannot be combined with {sorted(keys - {combinator})}"
            )
        value = obj[combinator]
        if combinator == "Not":
            children: tuple[Rule, ...] = (parse_rule(value, f"{where}.Not", top_level=False),)
        else:
            if not isinstance(value, list) or not value:
                raise ConfigError(f"{where}.{combinator}: must be a non-empty array of rules")
            children = tuple(
                parse_rule(item, f"{where}.{combinator}[{i}]", top_level=False)
                for i, item in enumerate(value)
            )
        return Rule(kind=combinator, children=children, next=nxt)
    variable = obj.get("Variable")
    if not isinstance(variable, str):
        raise ConfigError(f"{where}.Variable: a comparison needs 'Variable' (a path), or use And/Or/Not")
    _check_path(variable, f"{where}.Variable")
    ops = keys - {"Variable"}
    unknown = ops - OPERATORS
    if unknown:
        name = sorted(unknown)[0]
        hint = _closest(name, OPERATORS)
        raise ConfigError(f"{where}.{name}: unknown comparison operator{hint}")
    if len(ops) != 1:
        found = ", ".join(sorted(ops)) or "none"
        raise ConfigError(f"{where}: a comparison needs exactly one operator, found {found}")
    op = ops.pop()
    operand = obj[op]
    if op in TYPE_TESTS:
        if not isinstance(operand, bool):
            raise ConfigError(f"{where}.{op}: must be true or false")
    elif op.endswith("Path"):
        if not isinstance(operand, str):
            raise ConfigError(f"{where}.{op}: must be a path string")
        _check_path(operand, f"{where}.{op}")
    elif not COMPARISONS[op][1](operand):
        kind = op.removeprefix("String").removeprefix("Numeric").removeprefix("Timestamp")
        expected = (
            "a string"
            if op.startswith("String")
            else "a number"
            if op.startswith("Numeric")
            else "a boolean"
            if op == "BooleanEquals"
            else "an RFC 3339 timestamp like 2024-01-01T00:00:00Z"
        )
        raise ConfigError(f"{where}.{op}: {kind} comparison needs {expected}, got {operand!r}")
    return Rule(kind=op, variable=variable, operand=operand, next=nxt)


def _check_path(path: str, where: str) -> None:
    try:
        validate_path(path)
    except PathSyntaxError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _closest(name: str, options: set[str]) -> str:
    import difflib

    match = difflib.get_close_matches(name, sorted(options), n=1)
    return f"; did you mean '{match[0]}'?" if match else ""
