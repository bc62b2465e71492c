"""ASL input and output processing in JSONPath mode.

The order is the one Step Functions documents: ``InputPath`` → ``Parameters`` (or
``ItemSelector``) → the state's work → ``ResultSelector`` → ``ResultPath`` → ``OutputPath``.

Two kinds of paths:

* a *Path* (``InputPath``, ``OutputPath``, ``ItemsPath``, values of ``.$`` keys) is any
  JSONPath; a definite path (only names and single indexes) gives one value, an
  indefinite one (wildcards, filters, slices, ``..``) gives the list of its matches;
* a *Reference Path* (``ResultPath``, Choice ``Variable``) names exactly one node.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import re
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from typing import Any

from jsonpath_ng import JSONPath
from jsonpath_ng.exceptions import JsonPathLexerError, JsonPathParserError
from jsonpath_ng.ext.parser import parse as _jsonpath_parse
from jsonpath_ng.jsonpath import Child, Fields, Index, Root

from conveyor.orchestration.asl import errors as E
from conveyor.orchestration.asl.errors import StatesError

IntrinsicEvaluator = Callable[[str, Any, Any], Any]
"""``(expression, input, context) -> value`` for ``States.*`` calls in payload templates."""


class PathSyntaxError(ValueError):
    """A path that does not parse; the message says what and where."""


@functools.lru_cache(maxsize=1024)
def compile_path(path: str) -> tuple[JSONPath, bool]:
    """Parse a Path (``$…``); returns the expression and whether it is definite."""
    if not path.startswith("$"):
        raise PathSyntaxError(f"path {path!r} must start with '$'")
    try:
        expr = _jsonpath_parse(path)
    except (JsonPathParserError, JsonPathLexerError, Exception) as exc:
        raise PathSyntaxError(f"invalid JSONPath {path!r}: {exc}") from None
    return expr, _is_definite(expr)


def _is_definite(expr: JSONPath) -> bool:
    if isinstance(expr, Root):
        return True
    if isinstance(expr, Child):
        return _is_definite(expr.left) and _is_definite(expr.right)
    if isinstance(expr, Fields):
        return len(expr.fields) == 1 and expr.fields[0] != "*"
    if isinstance(expr, Index):
        return len(expr.indices) == 1
    return False


_VARIABLE = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)(.*)$", re.DOTALL)
_variables: ContextVar[Mapping[str, Any] | None] = ContextVar("asl_variables", default=None)


@contextlib.contextmanager
def bound_variables(variables: Mapping[str, Any]) -> Iterator[None]:
    """Make ``$name`` paths read ``variables`` in this thread while the block runs."""
    token = _variables.set(variables)
    try:
        yield
    finally:
        _variables.reset(token)


def variable_reference(path: str) -> tuple[str, str] | None:
    """``$name.a[0]`` → ``("name", "$.a[0]")``; None for ``$``, ``$.x`` and ``$$.x``."""
    found = _VARIABLE.match(path)
    if found is None:
        return None
    return found.group(1), "$" + found.group(2)


def validate_path(path: str) -> None:
    """Raise PathSyntaxError when ``path`` is not a valid Path, ``$$.`` context path or
    ``$name...`` variable reference."""
    reference = variable_reference(path)
    if reference is not None:
        path = reference[1]
    compile_path(path[1:] if path.startswith("$$") else path)


def read_path(path: str, data: Any, *, error: str = E.RUNTIME, what: str = "path") -> Any:
    """Value(s) ``path`` selects in ``data``; a definite path that matches nothing raises ``error``."""
    expr, definite = compile_path(path)
    if definite and path == "$":
        return data
    matches = [m.value for m in expr.find(data)]
    if definite:
        if not matches:
            raise StatesError(error, f"Invalid {what} '{path}': no results in {_short(data)}")
        return matches[0]
    return matches


def read_any(path: str, data: Any, context: Any, *, error: str = E.RUNTIME, what: str = "path") -> Any:
    """Like :func:`read_path`; ``$$.…`` reads the context object instead of the input,
    ``$name…`` the workflow variable ``name``."""
    reference = variable_reference(path)
    if reference is not None:
        name, rest = reference
        variables = _variables.get() or {}
        if name not in variables:
            raise StatesError(error, f"Invalid {what} '{path}': no variable named '{name}' is assigned")
        return read_path(rest, variables[name], error=error, what=what)
    if path.startswith("$$"):
        return read_path(path[1:], context, error=error, what=what)
    return read_path(path, data, error=error, what=what)


# --- reference paths ---------------------------------------------------------------

_REF_TOKEN = re.compile(r"\.([^.\[\]'\s]+)|\['((?:[^'\\]|\\.)*)'\]|\[(\d+)\]")


@functools.lru_cache(maxsize=1024)
def parse_reference_path(path: str) -> tuple[str | int, ...]:
    """Steps of a Reference Path: ``$.a['b c'][0]`` → ``('a', 'b c', 0)``."""
    if not path.startswith("$") or path.startswith("$$"):
        raise PathSyntaxError(f"reference path {path!r} must start with '$'")
    steps: list[str | int] = []
    pos = 1
    while pos < len(path):
        m = _REF_TOKEN.match(path, pos)
        if m is None:
            raise PathSyntaxError(
                f"invalid reference path {path!r} at position {pos}: only '.name', \"['name']\" "
                "and '[index]' are allowed (no wildcards, filters or slices)"
            )
        if m.group(1) is not None:
            steps.append(m.group(1))
        elif m.group(2) is not None:
            steps.append(re.sub(r"\\(.)", r"\1", m.group(2)))
        else:
            steps.append(int(m.group(3)))
        pos = m.end()
    return tuple(steps)


def apply_result_path(result_path: str | None, state_input: Any, result: Any) -> Any:
    """Place ``result`` into (a copy of) ``state_input`` as ``ResultPath`` says.

    ``None`` (JSON ``null``) discards the result and passes the input on; ``$`` replaces the
    input; a deeper path creates missing objects on the way and fails with
    States.ResultPathMatchFailure when it runs into something that is not an object.
    """
    if result_path is None:
        return state_input
    steps = parse_reference_path(result_path)
    if not steps:
        return result
    root = copy.deepcopy(state_input)
    if not isinstance(root, dict):
        raise StatesError(
            E.RESULT_PATH_MATCH_FAILURE,
            f"Unable to apply ResultPath '{result_path}' to input {_short(state_input)}: "
            "the input is not a JSON object",
        )
    node: Any = root
    for i, step in enumerate(steps):
        last = i == len(steps) - 1
        if isinstance(step, int):
            if not isinstance(node, list) or step >= len(node):
                raise StatesError(
                    E.RESULT_PATH_MATCH_FAILURE,
                    f"Unable to apply ResultPath '{result_path}': no array element [{step}]",
                )
            if last:
                node[step] = result
            else:
                node = node[step]
            continue
        if not isinstance(node, dict):
            raise StatesError(
                E.RESULT_PATH_MATCH_FAILURE,
                f"Unable to apply ResultPath '{result_path}' to input {_short(state_input)}: "
                f"'{step}' is inside a value that is not an object",
            )
        if last:
            node[step] = result
        else:
            if step not in node:
                node[step] = {}
            node = node[step]
    return root


# --- payload templates ---------------------------------------------------------------


def apply_payload_template(
    template: Any,
    data: Any,
    context: Any,
    intrinsics: IntrinsicEvaluator,
    *,
    field: str = "Parameters",
) -> Any:
    """Evaluate ``Parameters``/``ResultSelector``/``ItemSelector``: keys ending in ``.$``
    take their value from a path, a ``$$.`` context path or an intrinsic function."""
    if isinstance(template, dict):
        out: dict[str, Any] = {}
        for key, value in template.items():
            if key.endswith(".$"):
                out[key[:-2]] = _dynamic_value(value, data, context, intrinsics, field=field, key=key)
            else:
                out[key] = apply_payload_template(value, data, context, intrinsics, field=field)
        return out
    if isinstance(template, list):
        return [apply_payload_template(v, data, context, intrinsics, field=field) for v in template]
    return template


def _dynamic_value(
    value: Any, data: Any, context: Any, intrinsics: IntrinsicEvaluator, *, field: str, key: str
) -> Any:
    expr = str(value)
    if expr.startswith("$"):
        try:
            return read_any(expr, data, context, error=E.PARAMETER_PATH_FAILURE, what=f"{field} path")
        except StatesError as exc:
            raise StatesError(
                exc.error,
                f"The JSONPath '{expr}' specified for the field '{key}' could not be found in the "
                f"input '{_short(context if expr.startswith('$$') else data)}'",
            ) from None
    return intrinsics(expr, data, context)


def _short(value: Any, limit: int = 200) -> str:
    text = json.dumps(value, separators=(",", ":"), default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."
