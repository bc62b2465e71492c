"""The fields of ASL states and how their values are checked: which fields each
state type allows (and which only a JSONPath or a JSONata state has), and
:class:`FieldReader`, the checks of one field's value (state names, paths,
templates, Assign, numbers, Retry, Catch), each problem a ConfigError that
starts with the field's JSON path."""

from __future__ import annotations

import difflib
import json
import re
from typing import Any

from conveyor.core.errors import ConfigError
from conveyor.orchestration.asl.definition_model import Catcher, Retrier
from conveyor.orchestration.asl.intrinsics import IntrinsicSyntaxError, parse_intrinsic
from conveyor.orchestration.asl.jsonata_eval import JsonataSyntaxError, check_template, expression_of
from conveyor.orchestration.asl.paths import PathSyntaxError, parse_reference_path, validate_path

_COMMON = {"Type", "Comment", "QueryLanguage", "Output", "Assign"}
_IO = {"InputPath", "OutputPath"}
_FLOW = {"Next", "End"}
JSONPATH_ONLY = {
    "InputPath",
    "OutputPath",
    "Parameters",
    "ResultSelector",
    "ResultPath",
    "Result",
    "ItemsPath",
    "Iterator",
    "SecondsPath",
    "TimestampPath",
    "TimeoutSecondsPath",
    "HeartbeatSecondsPath",
    "ErrorPath",
    "CausePath",
    "MaxConcurrencyPath",
    "ToleratedFailurePercentagePath",
    "ToleratedFailureCountPath",
}
JSONATA_ONLY = {"Arguments", "Output", "Items"}
DISTRIBUTED_ONLY = (
    "ItemReader",
    "ItemBatcher",
    "ResultWriter",
    "ToleratedFailurePercentage",
    "ToleratedFailurePercentagePath",
    "ToleratedFailureCount",
    "ToleratedFailureCountPath",
)
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_RESULTS = {"Parameters", "ResultSelector", "ResultPath"}
ALLOWED: dict[str, set[str]] = {
    "Pass": _COMMON | _IO | _FLOW | {"Parameters", "ResultPath", "Result"},
    "Task": _COMMON
    | _IO
    | _FLOW
    | _RESULTS
    | {
        "Resource",
        "Retry",
        "Catch",
        "TimeoutSeconds",
        "TimeoutSecondsPath",
        "HeartbeatSeconds",
        "HeartbeatSecondsPath",
        "Credentials",
        "Arguments",
    },
    "Choice": _COMMON | _IO | {"Choices", "Default"},
    "Wait": _COMMON | _IO | _FLOW | {"Seconds", "SecondsPath", "Timestamp", "TimestampPath"},
    "Succeed": _COMMON | _IO,
    "Fail": {"Type", "Comment", "QueryLanguage", "Error", "ErrorPath", "Cause", "CausePath"},
    "Parallel": _COMMON | _IO | _FLOW | _RESULTS | {"Branches", "Retry", "Catch", "Arguments"},
    "Map": _COMMON
    | _IO
    | _FLOW
    | _RESULTS
    | {
        "Retry",
        "Catch",
        "ItemsPath",
        "ItemSelector",
        "MaxConcurrency",
        "MaxConcurrencyPath",
        "ItemProcessor",
        "Iterator",
        "Label",
        "Items",
        *DISTRIBUTED_ONLY,
    },
}
ALLOWED["Succeed"] = ALLOWED["Succeed"] - {"Assign"}
_MAX_INT = 99999999


def where_of(base: str, name: str) -> str:
    """``States.Poll`` for plain names, ``States['Wait on X']`` otherwise."""
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", name):
        return f"{base}.{name}"
    return f"{base}[{json.dumps(name)}]"


def did_you_mean(name: str, options: list[str]) -> str:
    """``; did you mean 'X'?`` for the closest of ``options``, or nothing."""
    match = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
    return f"; did you mean '{match[0]}'?" if match else ""


class FieldReader:
    """Checks of single field values, shared by every state type's reader."""

    def target(self, value: Any, where: str, names: list[str]) -> str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: must be a state name")
        if value not in names:
            raise ConfigError(f"{where}: no state named {value!r}{did_you_mean(value, names)}")
        return value

    def path_or_null(self, value: Any, where: str) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            raise ConfigError(f"{where}: must be a path string or null")
        try:
            validate_path(value)
        except PathSyntaxError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        return value

    def path(self, value: Any, where: str) -> str:
        path = self.path_or_null(value, where)
        if path is None:
            raise ConfigError(f"{where}: must be a path string")
        return path

    def result_path(self, value: Any, where: str) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            raise ConfigError(f"{where}: must be a reference path like '$.result' or null")
        try:
            parse_reference_path(value)
        except PathSyntaxError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        return value

    def template(self, value: Any, where: str) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                here = f"{where}.{key}" if re.fullmatch(r"[\w.$-]+", key) else f"{where}[{json.dumps(key)}]"
                if key.endswith(".$"):
                    self.dynamic(item, here)
                else:
                    self.template(item, here)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                self.template(item, f"{where}[{i}]")

    def dynamic(self, value: Any, where: str) -> None:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: a field ending in '.$' needs a path or intrinsic function string")
        if value.startswith("$"):
            try:
                validate_path(value)
            except PathSyntaxError as exc:
                raise ConfigError(f"{where}: {exc}") from None
        elif value.startswith("States."):
            try:
                parse_intrinsic(value)
            except IntrinsicSyntaxError as exc:
                raise ConfigError(f"{where}: {exc}") from None
        else:
            raise ConfigError(
                f"{where}: {value!r} is neither a path ($...) nor an intrinsic function (States...)"
            )

    def jsonata(self, value: Any, where: str) -> None:
        try:
            check_template(value, where)
        except JsonataSyntaxError as exc:
            raise ConfigError(f"{where}: {exc}") from None

    def assign(self, value: Any, where: str, jsonata: bool) -> dict[str, Any]:
        """An ``Assign`` object: variable names (``name.$`` in JSONPath) to values."""
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: must be an object mapping variable names to values")
        if jsonata:
            self.jsonata(value, where)
        else:
            self.template(value, where)
        for key in value:
            name = key if jsonata else key.removesuffix(".$")
            if not _VARIABLE_NAME.fullmatch(name) or len(name) > 80:
                raise ConfigError(
                    f"{where}.{key}: a variable name is a letter or '_' then letters, digits or '_' "
                    "(at most 80 characters)"
                )
            if name == "states":
                raise ConfigError(f"{where}.{key}: 'states' is reserved ($states)")
            if jsonata and key.endswith(".$"):
                raise ConfigError(f"{where}.{key}: a JSONata state's Assign uses {{% %}}, not '.$' keys")
        return value

    def expression_or_int(
        self,
        body: dict[str, Any],
        key: str,
        where: str,
        fields: dict[str, Any],
        *,
        minimum: int = 1,
        maximum: int = _MAX_INT,
    ) -> int | None:
        """A number field that a JSONata state may give as ``{% %}`` (kept in ``expressions``)."""
        value = body[key]
        expression = expression_of(value)
        if expression is not None and fields["query_language"] == "JSONata":
            self.jsonata(value, f"{where}.{key}")
            fields["expressions"][key] = expression
            return None
        return self.positive_int(value, f"{where}.{key}", minimum=minimum, maximum=maximum)

    def positive_int(self, value: Any, where: str, *, minimum: int = 1, maximum: int = _MAX_INT) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
            raise ConfigError(f"{where}: must be an integer from {minimum} to {maximum}, got {value!r}")
        return value

    def error_names(self, value: Any, where: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: must be a non-empty array of error names")
        if "States.ALL" in value and len(value) > 1:
            raise ConfigError(f"{where}: 'States.ALL' must appear alone in ErrorEquals")
        return tuple(value)

    def retriers(self, value: Any, where: str) -> tuple[Retrier, ...]:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: must be an array of retriers")
        out: list[Retrier] = []
        allowed = {
            "ErrorEquals",
            "IntervalSeconds",
            "MaxAttempts",
            "BackoffRate",
            "MaxDelaySeconds",
            "JitterStrategy",
            "Comment",
        }
        for i, item in enumerate(value):
            here = f"{where}[{i}]"
            if not isinstance(item, dict):
                raise ConfigError(f"{here}: a retrier must be an object")
            for key in item:
                if key not in allowed:
                    raise ConfigError(
                        f"{here}.{key}: unknown retrier field{did_you_mean(key, sorted(allowed))}"
                    )
            errors = self.error_names(item.get("ErrorEquals"), f"{here}.ErrorEquals")
            if "States.ALL" in errors and i != len(value) - 1:
                raise ConfigError(f"{here}.ErrorEquals: a retrier with 'States.ALL' must be the last one")
            backoff = item.get("BackoffRate", 2.0)
            if isinstance(backoff, bool) or not isinstance(backoff, int | float) or backoff < 1.0:
                raise ConfigError(f"{here}.BackoffRate: must be a number >= 1.0, got {backoff!r}")
            jitter = item.get("JitterStrategy", "NONE")
            if jitter not in ("FULL", "NONE"):
                raise ConfigError(f"{here}.JitterStrategy: must be 'FULL' or 'NONE', got {jitter!r}")
            max_delay = None
            if "MaxDelaySeconds" in item:
                max_delay = self.positive_int(
                    item["MaxDelaySeconds"], f"{here}.MaxDelaySeconds", maximum=31622400
                )
            out.append(
                Retrier(
                    error_equals=errors,
                    interval_seconds=self.positive_int(
                        item.get("IntervalSeconds", 1), f"{here}.IntervalSeconds"
                    ),
                    max_attempts=self.positive_int(
                        item.get("MaxAttempts", 3), f"{here}.MaxAttempts", minimum=0
                    ),
                    backoff_rate=float(backoff),
                    max_delay_seconds=max_delay,
                    jitter_strategy=jitter,
                )
            )
        return tuple(out)

    def catchers(
        self, value: Any, where: str, names: list[str], jsonata: bool = False
    ) -> tuple[Catcher, ...]:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: must be an array of catchers")
        out: list[Catcher] = []
        for i, item in enumerate(value):
            here = f"{where}[{i}]"
            if not isinstance(item, dict):
                raise ConfigError(f"{here}: a catcher must be an object")
            allowed = {"ErrorEquals", "Next", "Comment", "Assign"} | (
                {"Output"} if jsonata else {"ResultPath"}
            )
            for key in item:
                if key not in allowed:
                    which = "JSONata" if jsonata else "JSONPath"
                    raise ConfigError(f"{here}.{key}: unknown field for a catcher of a {which} state")
            errors = self.error_names(item.get("ErrorEquals"), f"{here}.ErrorEquals")
            if "States.ALL" in errors and i != len(value) - 1:
                raise ConfigError(f"{here}.ErrorEquals: a catcher with 'States.ALL' must be the last one")
            if "Next" not in item:
                raise ConfigError(f"{here}.Next: missing; a catcher must name the state to go to")
            result_path = self.result_path(item.get("ResultPath", "$"), f"{here}.ResultPath")
            extra: dict[str, Any] = {}
            if "Output" in item:
                self.jsonata(item["Output"], f"{here}.Output")
                extra = {"output": item["Output"], "has_output": True}
            if "Assign" in item:
                extra["assign"] = self.assign(item["Assign"], f"{here}.Assign", jsonata)
            out.append(
                Catcher(errors, self.target(item["Next"], f"{here}.Next", names), result_path, **extra)
            )
        return tuple(out)
