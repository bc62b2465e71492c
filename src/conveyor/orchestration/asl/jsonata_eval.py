"""JSONata in ASL: ``{% expression %}`` strings evaluated with jsonata-python.

A JSONata state's ``Arguments``, ``Output``, ``Assign``, ``Items``, ``ItemSelector``,
``Condition``, Wait ``Seconds``/``Timestamp``, Task ``TimeoutSeconds``/``HeartbeatSeconds``,
Fail ``Error``/``Cause`` and Map ``MaxConcurrency``/``ToleratedFailure*`` are JSON
templates: a string ``{% ... %}`` is an expression, anything else a literal. Expressions
see ``$states`` (``input``, ``context``, and ``result`` / ``errorOutput`` where the state
has them) and the workflow variables as ``$name``. Step Functions' own functions
``$partition``, ``$range``, ``$hash``, ``$random``, ``$uuid`` and ``$parse`` are
provided. Evaluation problems are ``States.QueryEvaluationError``; syntax errors are
found when the definition is validated (:func:`check_template`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import random
import re
import uuid
from collections.abc import Mapping
from typing import Any

from jsonata import Jsonata
from jsonata.jexception import JException

from conveyor.orchestration.asl import errors as E
from conveyor.orchestration.asl.errors import StatesError

_EXPR = re.compile(r"^\{%(.*)%\}$", re.DOTALL)
TIMEOUT_MS = 10_000
"""How long one expression may run before it fails (States.QueryEvaluationError)."""
MAX_DEPTH = 500
"""How deep an expression may recurse."""
_HASHES = {"MD5": "md5", "SHA-1": "sha1", "SHA-256": "sha256", "SHA-384": "sha384", "SHA-512": "sha512"}


class JsonataSyntaxError(ValueError):
    """An expression that does not parse."""


def expression_of(value: Any) -> str | None:
    """The expression inside ``{% ... %}``, or None when ``value`` is not one."""
    if not isinstance(value, str):
        return None
    found = _EXPR.match(value.strip())
    return None if found is None else found.group(1).strip()


@functools.lru_cache(maxsize=1024)
def _check(expression: str) -> None:
    try:
        Jsonata(expression)
    except JException as exc:
        raise JsonataSyntaxError(f"invalid JSONata {expression!r}: {exc}") from None


def check_template(value: Any, where: str) -> list[str]:
    """Parse every ``{% %}`` in ``value``; returns the JSON paths of the expressions."""
    found: list[str] = []
    expression = expression_of(value)
    if expression is not None:
        _check(expression)
        found.append(where)
    elif isinstance(value, str) and ("{%" in value or "%}" in value):
        raise JsonataSyntaxError(f"{value!r}: a JSONata expression must be the whole string, '{{% ... %}}'")
    elif isinstance(value, dict):
        for key, item in value.items():
            found += check_template(item, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += check_template(item, f"{where}[{i}]")
    return found


def _partition(array: Any, size: Any) -> list[Any]:
    if not isinstance(array, list) or not isinstance(size, int) or size < 1:
        raise StatesError(E.QUERY_EVALUATION, "$partition(array, size) needs an array and a size >= 1")
    return [array[i : i + size] for i in range(0, len(array), size)]


def _range(start: Any, end: Any, step: Any) -> list[Any]:
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (start, end, step)) or step == 0:
        raise StatesError(
            E.QUERY_EVALUATION, "$range(start, end, step) needs integers and a step other than 0"
        )
    values = list(range(start, end + (1 if step > 0 else -1), step))
    if len(values) > 1000:
        raise StatesError(E.QUERY_EVALUATION, "$range gives at most 1000 values")
    return values


def _hash(data: Any, algorithm: Any) -> str:
    if not isinstance(data, str) or algorithm not in _HASHES:
        raise StatesError(E.QUERY_EVALUATION, f"$hash(text, algorithm): algorithm one of {sorted(_HASHES)}")
    return hashlib.new(_HASHES[algorithm], data.encode()).hexdigest()


def _parse(text: Any) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError) as exc:
        raise StatesError(E.QUERY_EVALUATION, f"$parse: not JSON text: {exc}") from None


class JsonataEnv:
    """Evaluates expressions; ``rng`` makes ``$random`` reproducible in tests."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self.rng = rng or random.Random()

    def evaluate(self, expression: str, bindings: Mapping[str, Any]) -> Any:
        try:
            compiled = Jsonata(expression)
            compiled.register_lambda("partition", _partition)
            compiled.register_lambda("range", _range)
            compiled.register_lambda("hash", _hash)
            compiled.register_lambda("parse", _parse)
            compiled.register_lambda("uuid", lambda: str(uuid.UUID(int=self.rng.getrandbits(128), version=4)))
            compiled.register_lambda(
                "random", lambda *seed: random.Random(seed[0]).random() if seed else self.rng.random()
            )
            frame = compiled.create_frame()
            frame.set_runtime_bounds(TIMEOUT_MS, MAX_DEPTH)
            for name, bound in bindings.items():
                frame.bind(name, bound)
            value = compiled.evaluate(None, frame)
        except StatesError:
            raise
        except (JException, RecursionError, TypeError, ValueError) as exc:
            raise StatesError(
                E.QUERY_EVALUATION, f"The JSONata expression '{expression}' failed: {exc}"
            ) from None
        return _plain(value)

    def template(self, value: Any, bindings: Mapping[str, Any]) -> Any:
        """``value`` with every ``{% %}`` string replaced by its value."""
        expression = expression_of(value)
        if expression is not None:
            return self.evaluate(expression, bindings)
        if isinstance(value, dict):
            return {key: self.template(item, bindings) for key, item in value.items()}
        if isinstance(value, list):
            return [self.template(item, bindings) for item in value]
        return value


def _plain(value: Any) -> Any:
    """jsonata-python's sequences and numbers as plain JSON values (1.0 stays a float
    unless integral, as JSONata's numbers print)."""
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if callable(value):
        raise StatesError(E.QUERY_EVALUATION, "a JSONata expression gave a function, not a JSON value")
    return value
