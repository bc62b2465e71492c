"""Event patterns in EventBridge's language: which events a rule selects.

A pattern is a JSON object mirroring the event. A key whose value is an object
descends into the event; a key whose value is a list holds alternatives, any of
which may match the event's value there. An alternative is a literal (string,
number, boolean, null: exact match, numbers compared numerically so 5 matches
5.0, never across types) or a one-key operator object: ``prefix``, ``suffix``,
``equals-ignore-case``, ``wildcard``, ``anything-but``, ``numeric``, ``exists``,
``cidr``. ``$or`` at any level holds a list of sub-patterns, one of which must
match there as well as the level's other keys.

Semantics follow the EventBridge user guide (and event-ruler where it is silent):

* An event array matches when any of its elements matches; nested arrays are
  flattened. Under an object pattern, each object in the array is tried on its
  own, so two fields of one sub-pattern must hold in the same element.
* Only leaf values (not objects) count as existing: ``{"exists": true}`` fails on
  an object or an empty array, ``{"exists": false}`` holds on them and on a
  missing key or a missing parent.
* Every other operator, ``anything-but`` included, needs a value to test: a
  missing field never matches it.

Parsing validates the whole pattern and raises :class:`ConfigError` naming the
JSON path of the first problem. Size limits EventBridge enforces are not.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import operator
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from conveyor.core.errors import ConfigError

OPERATORS = (
    "prefix",
    "suffix",
    "equals-ignore-case",
    "wildcard",
    "anything-but",
    "numeric",
    "exists",
    "cidr",
)
ANYTHING_BUT_OPERATORS = ("prefix", "suffix", "equals-ignore-case", "wildcard")
LOWER_BOUNDS = (">", ">=")
UPPER_BOUNDS = ("<", "<=")
NUMERIC_OPERATORS = ("<", "<=", "=", ">", ">=")

Test = Callable[[Any], bool]
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    "=": operator.eq,
    ">": operator.gt,
    ">=": operator.ge,
}


# ---------------------------------------------------------------------------- values


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _same_literal(expected: Any, actual: Any) -> bool:
    """JSON equality: numbers numerically, never a boolean for a number."""
    if _is_number(expected):
        return _is_number(actual) and bool(expected == actual)
    if isinstance(expected, bool) or expected is None:
        return actual is expected
    return isinstance(actual, str) and expected == actual


def _literal(expected: Any) -> Test:
    return lambda actual: _same_literal(expected, actual)


def _leaves(value: Any) -> Iterator[Any]:
    """The leaf values at a position of the event: arrays flattened, objects skipped."""
    if isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    elif not isinstance(value, dict):
        yield value


def _objects(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return [obj for item in value for obj in _objects(item)]
    return []


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if _is_number(value):
        return f"the number {value!r}"
    return f"the string {json.dumps(value)}"


def _did_you_mean(name: str, choices: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown operator {name!r}{hint}; known operators: {', '.join(choices)}"


# ---------------------------------------------------------------------------- compiled form


@dataclass(frozen=True)
class _Field:
    """The alternatives at one leaf position: value tests, and the wanted answers of any ``exists``."""

    tests: tuple[Test, ...]
    exists: tuple[bool, ...]

    def matches(self, value: Any, present: bool) -> bool:
        leaves = list(_leaves(value)) if present else []
        if any(wanted == bool(leaves) for wanted in self.exists):
            return True
        return any(test(leaf) for test in self.tests for leaf in leaves)


@dataclass(frozen=True)
class _Object:
    fields: tuple[tuple[str, _Field | _Object], ...]
    alternatives: tuple[tuple[_Object, ...], ...]

    def matches(self, event: dict[str, Any]) -> bool:
        for key, sub in self.fields:
            present = key in event
            value = event.get(key)
            if isinstance(sub, _Field):
                if not sub.matches(value, present):
                    return False
            else:
                candidates = _objects(value) or [{}]
                if not any(sub.matches(candidate) for candidate in candidates):
                    return False
        return all(any(option.matches(event) for option in group) for group in self.alternatives)


# ---------------------------------------------------------------------------- parsing


class _Parser:
    def __init__(self, origin: str) -> None:
        self.origin = origin

    def fail(self, path: str, message: str) -> ConfigError:
        where = ".".join(part for part in (self.origin, path) if part) or "event pattern"
        return ConfigError(f"{where}: {message}")

    def obj(self, node: dict[str, Any], path: str) -> _Object:
        if not node:
            raise self.fail(path, "a pattern object must name at least one field")
        fields: list[tuple[str, _Field | _Object]] = []
        alternatives: list[tuple[_Object, ...]] = []
        for key, value in node.items():
            sub_path = f"{path}.{key}" if path else key
            if key == "$or":
                alternatives.append(self.or_(value, sub_path))
            elif isinstance(value, dict):
                fields.append((key, self.obj(value, sub_path)))
            elif isinstance(value, list):
                fields.append((key, self.field(value, sub_path)))
            else:
                raise self.fail(
                    sub_path,
                    "a pattern value must be a list of alternatives or an object, got "
                    f"{_describe(value)} (write [{json.dumps(value)}] to match it exactly)",
                )
        return _Object(tuple(fields), tuple(alternatives))

    def or_(self, value: Any, path: str) -> tuple[_Object, ...]:
        if not isinstance(value, list) or not value:
            raise self.fail(path, f"$or must be a non-empty list of pattern objects, got {_describe(value)}")
        options = []
        for index, option in enumerate(value):
            if not isinstance(option, dict):
                raise self.fail(
                    f"{path}[{index}]",
                    f"each $or alternative must be a pattern object, got {_describe(option)}",
                )
            options.append(self.obj(option, f"{path}[{index}]"))
        return tuple(options)

    def field(self, alternatives: list[Any], path: str) -> _Field:
        if not alternatives:
            raise self.fail(path, "an empty list of alternatives matches nothing; list at least one value")
        tests: list[Test] = []
        exists: list[bool] = []
        for index, item in enumerate(alternatives):
            item_path = f"{path}[{index}]"
            if isinstance(item, dict):
                name, argument = self.operator(item, item_path)
                if name == "exists":
                    if not isinstance(argument, bool):
                        raise self.fail(
                            f"{item_path}.exists", f"must be true or false, got {_describe(argument)}"
                        )
                    exists.append(argument)
                else:
                    tests.append(self.test(name, argument, f"{item_path}.{name}"))
            elif isinstance(item, list):
                raise self.fail(
                    item_path,
                    "an alternative must be a string, number, boolean, null or an operator object, "
                    "got a list",
                )
            else:
                tests.append(_literal(item))
        return _Field(tuple(tests), tuple(exists))

    def operator(
        self, item: dict[str, Any], path: str, allowed: tuple[str, ...] = OPERATORS
    ) -> tuple[str, Any]:
        if len(item) != 1:
            names = ", ".join(repr(name) for name in item) or "none"
            raise self.fail(path, f"an operator object must have exactly one operator, got {names}")
        ((name, argument),) = item.items()
        if name not in allowed:
            raise self.fail(f"{path}.{name}", _did_you_mean(name, allowed))
        return name, argument

    def string(self, value: Any, path: str, what: str) -> str:
        if not isinstance(value, str):
            raise self.fail(path, f"{what} takes a string, got {_describe(value)}")
        return value

    def test(self, name: str, argument: Any, path: str) -> Test:
        if name in ("prefix", "suffix"):
            return self.affix(name, argument, path)
        if name == "equals-ignore-case":
            folded = self.string(argument, path, name).casefold()
            return lambda actual: isinstance(actual, str) and actual.casefold() == folded
        if name == "wildcard":
            regex = self.wildcard(argument, path)
            return lambda actual: isinstance(actual, str) and regex.fullmatch(actual) is not None
        if name == "numeric":
            return self.numeric(argument, path)
        if name == "cidr":
            return self.cidr(argument, path)
        return self.anything_but(argument, path)

    def affix(self, name: str, argument: Any, path: str) -> Test:
        if isinstance(argument, dict):
            _, inner = self.operator(argument, path, ("equals-ignore-case",))
            folded = self.string(inner, f"{path}.equals-ignore-case", f"{name} equals-ignore-case").casefold()
            if name == "prefix":
                return lambda actual: isinstance(actual, str) and actual.casefold().startswith(folded)
            return lambda actual: isinstance(actual, str) and actual.casefold().endswith(folded)
        text = self.string(argument, path, name)
        if name == "prefix":
            return lambda actual: isinstance(actual, str) and actual.startswith(text)
        return lambda actual: isinstance(actual, str) and actual.endswith(text)

    def wildcard(self, argument: Any, path: str) -> re.Pattern[str]:
        text = self.string(argument, path, "wildcard")
        parts: list[str] = []
        index = 0
        while index < len(text):
            char = text[index]
            if char == "\\":
                following = text[index + 1 : index + 2]
                if following not in ("*", "\\"):
                    raise self.fail(
                        path,
                        f"invalid escape at position {index} in {json.dumps(text)}: "
                        "only \\* (a literal star) and \\\\ (a literal backslash) may follow a backslash",
                    )
                parts.append(re.escape(following))
                index += 2
                continue
            if char == "*":
                if parts and parts[-1] == ".*":
                    raise self.fail(path, f"consecutive wildcards at position {index} in {json.dumps(text)}")
                parts.append(".*")
            else:
                parts.append(re.escape(char))
            index += 1
        return re.compile("".join(parts), re.DOTALL)

    def numeric(self, argument: Any, path: str) -> Test:
        if not isinstance(argument, list) or len(argument) not in (2, 4):
            raise self.fail(
                path,
                'numeric takes [operator, number] or a range [">", low, "<=", high], '
                f"got {json.dumps(argument)}",
            )
        conditions: list[tuple[str, float]] = []
        for index in range(0, len(argument), 2):
            symbol, bound = argument[index], argument[index + 1]
            if symbol not in NUMERIC_OPERATORS:
                raise self.fail(
                    f"{path}[{index}]",
                    f"unknown numeric operator {json.dumps(symbol)}; "
                    f"use one of {' '.join(NUMERIC_OPERATORS)}",
                )
            if not _is_number(bound):
                raise self.fail(
                    f"{path}[{index + 1}]", f"a numeric bound must be a number, got {_describe(bound)}"
                )
            conditions.append((symbol, bound))
        if len(conditions) == 2:
            (first, low), (second, high) = conditions
            if first in UPPER_BOUNDS and second in LOWER_BOUNDS:
                (first, low), (second, high) = (second, high), (first, low)
            if first not in LOWER_BOUNDS or second not in UPPER_BOUNDS:
                raise self.fail(
                    path, "a numeric range needs one lower bound (> or >=) and one upper bound (< or <=)"
                )
            if low >= high:
                raise self.fail(
                    path, f"the numeric range is empty: lower bound {low} is not below upper bound {high}"
                )
            conditions = [(first, low), (second, high)]
        frozen = tuple((_COMPARE[symbol], bound) for symbol, bound in conditions)
        return lambda actual: _is_number(actual) and all(check(actual, bound) for check, bound in frozen)

    def cidr(self, argument: Any, path: str) -> Test:
        text = self.string(argument, path, "cidr")
        try:
            network = ipaddress.ip_network(text, strict=False)
        except ValueError as exc:
            raise self.fail(path, f"not a CIDR block: {exc}") from None

        def test(actual: Any) -> bool:
            if not isinstance(actual, str):
                return False
            try:
                address = ipaddress.ip_address(actual)
            except ValueError:
                return False
            return address.version == network.version and address in network

        return test

    def anything_but(self, argument: Any, path: str) -> Test:
        if isinstance(argument, dict):
            name, inner = self.operator(argument, path, ANYTHING_BUT_OPERATORS)
            inner_path = f"{path}.{name}"
            if name in ("prefix", "suffix"):
                text = self.string(inner, inner_path, f"anything-but {name}")
                if name == "prefix":
                    return lambda actual: isinstance(actual, str) and not actual.startswith(text)
                return lambda actual: isinstance(actual, str) and not actual.endswith(text)
            values = inner if isinstance(inner, list) else [inner]
            if not values:
                raise self.fail(inner_path, f"anything-but {name} needs at least one string")
            for index, value in enumerate(values):
                self.string(value, f"{inner_path}[{index}]" if isinstance(inner, list) else inner_path, name)
            if name == "equals-ignore-case":
                folded = {value.casefold() for value in values}
                return lambda actual: isinstance(actual, str) and actual.casefold() not in folded
            regexes = [self.wildcard(value, inner_path) for value in values]
            return lambda actual: isinstance(actual, str) and not any(r.fullmatch(actual) for r in regexes)
        values = argument if isinstance(argument, list) else [argument]
        if not values:
            raise self.fail(path, "anything-but needs at least one value to exclude")
        for index, value in enumerate(values):
            if not (isinstance(value, str) or _is_number(value)):
                where = f"{path}[{index}]" if isinstance(argument, list) else path
                raise self.fail(
                    where,
                    "anything-but excludes strings or numbers (or takes an operator object: "
                    f"{', '.join(ANYTHING_BUT_OPERATORS)}), got {_describe(value)}",
                )
        frozen = tuple(values)
        return lambda actual: not any(_same_literal(value, actual) for value in frozen)


# ---------------------------------------------------------------------------- public


@dataclass(frozen=True)
class EventPattern:
    """A validated event pattern; :meth:`matches` says whether an event is selected."""

    document: dict[str, Any]
    _root: _Object

    @classmethod
    def parse(cls, document: str | dict[str, Any], origin: str) -> EventPattern:
        """Validate ``document`` (JSON text or its decoded object); ``origin`` prefixes error paths."""
        parser = _Parser(origin)
        if isinstance(document, str):
            try:
                decoded = json.loads(document)
            except json.JSONDecodeError as exc:
                raise parser.fail(
                    "", f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
                ) from None
        else:
            decoded = document
        if not isinstance(decoded, dict):
            raise parser.fail("", f"an event pattern must be a JSON object, got {_describe(decoded)}")
        return cls(decoded, parser.obj(decoded, ""))

    def matches(self, event: dict[str, Any]) -> bool:
        return self._root.matches(event)
