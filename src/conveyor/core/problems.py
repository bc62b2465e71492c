"""Configuration problems located by key path: ``(key.path, problem)`` pairs, so one
pass over a stack file, its task settings or an endpoint's settings lists every
mistake, each as ``"<file>: <key.path>: <problem>"``.

Validators raise ``located(problems)`` to report several problems below the value
they check; ``problems_from_validation_error`` turns a pydantic error into pairs,
in words a person can act on (never echoing a long input value).
"""

from __future__ import annotations

import re
import types
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from conveyor.core.names import did_you_mean

Problem = tuple[str, str]
"""A dotted key path (empty for the whole document) and what is wrong there."""

PROBLEMS_ERROR = "conveyor_problems"
"""The pydantic error type a validator raises (through ``located``) to report
problems at paths below the value it checks."""


def located(problems: Sequence[Problem]) -> Exception:
    """An error for a validator to raise that reports each problem at its own
    path below the validated value (pydantic otherwise allows one message)."""
    from pydantic_core import PydanticCustomError

    summary = "; ".join(f"{path}: {text}" if path else text for path, text in problems)
    return PydanticCustomError(PROBLEMS_ERROR, "{summary}", {"summary": summary, "problems": list(problems)})


def join_path(*parts: str | int) -> str:
    return ".".join(str(part) for part in parts if part != "")


def format_problems(origin: str, problems: Iterable[Problem]) -> str:
    """One line per problem: ``"<origin>: <path>: <problem>"``."""
    return "\n".join(f"{origin}: {path}: {text}" if path else f"{origin}: {text}" for path, text in problems)


def problems_from_validation_error(
    exc: ValidationError, model: type[BaseModel], *, prefix: Sequence[str | int] = ()
) -> list[Problem]:
    """Every error of ``exc`` as ``(dotted path, problem)``. Messages never echo
    an input value except short names (enum values, keys, numbers)."""
    problems: list[Problem] = []
    for error in exc.errors():
        loc = [part for part in error["loc"] if part != "[key]"]
        kind = error["type"]
        ctx = error.get("ctx") or {}
        value = error.get("input")
        if kind == PROBLEMS_ERROR:
            problems.extend((join_path(*prefix, *loc, path), text) for path, text in ctx["problems"])
            continue
        path = join_path(*prefix, *loc)
        if "[key]" in error["loc"]:
            text = f"invalid name: {_message(error['msg'])}"
        elif kind == "missing":
            text = "required"
        elif kind == "extra_forbidden":
            fields = _fields_at(model, loc[:-1])
            text = "unknown key" + did_you_mean(str(loc[-1]), fields or [])
            if fields and not text.endswith("?"):
                text += f" (known keys: {', '.join(fields)})"
        elif kind in ("enum", "literal_error"):
            allowed = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
            shown = f" {value!r}" if isinstance(value, str) and len(value) <= 64 else ""
            hint = did_you_mean(value, allowed) if isinstance(value, str) else ""
            text = f"unknown value{shown} (expected one of: {', '.join(allowed)}){hint}"
        elif kind in ("model_type", "dict_type", "model_attributes_type"):
            text = f"expected a mapping of keys (got {_type_name(value)})"
        elif kind == "string_type":
            text = f"must be text (got {_type_name(value)}; quote it)"
        elif kind in ("list_type", "tuple_type"):
            text = f"expected a list (got {_type_name(value)})"
        elif kind == "too_short" and "min_length" in ctx:
            text = f"needs at least {ctx['min_length']} item{'s' if ctx['min_length'] != 1 else ''}"
        elif kind.startswith(("greater_than", "less_than")) and isinstance(value, int | float):
            text = f"{_message(error['msg'])} (got {value})"
        else:
            text = _message(error["msg"])
        problems.append((path, text))
    return problems


def _message(msg: str) -> str:
    msg = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return msg.replace("Input should be", "must be")


def _type_name(value: object) -> str:
    return {type(None): "nothing", str: "text", int: "a number", float: "a number", bool: "true/false"}.get(
        type(value), type(value).__name__
    )


def _fields_at(model: type[BaseModel], loc: Sequence[str | int]) -> list[str] | None:
    """The keys the model accepts at ``loc`` (None when ``loc`` is not a model)."""
    current: Any = model
    skip = 0
    for part in loc:
        if skip:
            skip -= 1
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        fields = {field.alias or name: field for name, field in current.model_fields.items()}
        if part not in fields:
            return None
        current, skip = _descend(fields[str(part)].annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return model_keys(current)
    return None


def _descend(annotation: Any) -> tuple[Any, int]:
    """The type a loc continues into: through Optional, and through one list
    index or dict key per container level."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = [arg for arg in get_args(annotation) if arg is not type(None)]
        return _descend(args[0]) if len(args) == 1 else (annotation, 0)
    if origin in (list, tuple, Sequence):
        inner, skip = _descend(get_args(annotation)[0])
        return inner, skip + 1
    if origin in (dict, Mapping):
        inner, skip = _descend(get_args(annotation)[1])
        return inner, skip + 1
    return annotation, 0


def model_keys(model: type[BaseModel]) -> list[str]:
    """The keys a model takes as written (aliases), without excluded fields."""
    return [field.alias or name for name, field in model.model_fields.items() if not field.exclude]
