"""Parse and validate an ASL definition (JSONPath or JSONata) into typed states.

``QueryLanguage`` (top level, or per state under a JSONPath top level) picks how a
state reads and writes data. A JSONata state refuses the JSONPath-only fields
(InputPath, Parameters, ResultSelector, ResultPath, OutputPath, the ``*Path`` fields),
a JSONPath state the JSONata-only ones (Arguments, Output, Items, Condition), as
Step Functions does. ``Assign`` is checked in both (variable names; a Map or Parallel
inner state may not assign a variable an outer state assigns).

Every problem is a :class:`ConfigError` whose message starts with the JSON path of the
offending field (``States.Poll.Next: no state named 'Pol'; did you mean 'Poll'?``).
Problems that do not stop a run (unreachable states, repaired typographic quotes) are
collected in :attr:`StateMachine.warnings`.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from typing import Any, Protocol

from conveyor.core.errors import ConfigError
from conveyor.core.json_text import load_json
from conveyor.orchestration.asl.choice import Rule, parse_rule, parse_timestamp
from conveyor.orchestration.asl.intrinsics import IntrinsicSyntaxError, parse_intrinsic
from conveyor.orchestration.asl.jsonata_eval import JsonataSyntaxError, check_template, expression_of
from conveyor.orchestration.asl.paths import PathSyntaxError, parse_reference_path, validate_path
from conveyor.stack.model import waiting_resources


class ResourceResolver(Protocol):
    """What validation needs from an integration registry."""

    def resolve(self, resource: str) -> Any: ...


@dataclass(frozen=True)
class Retrier:
    error_equals: tuple[str, ...]
    interval_seconds: float = 1.0
    max_attempts: int = 3
    backoff_rate: float = 2.0
    max_delay_seconds: float | None = None
    jitter_strategy: str = "NONE"


@dataclass(frozen=True)
class Catcher:
    error_equals: tuple[str, ...]
    next: str
    result_path: str | None = "$"
    output: Any = None
    has_output: bool = False
    assign: dict[str, Any] | None = None


@dataclass(frozen=True)
class State:
    name: str
    type: str
    query_language: str = "JSONPath"
    next: str | None = None
    end: bool = False
    input_path: str | None = "$"
    output_path: str | None = "$"
    parameters: Any = None
    has_parameters: bool = False
    result_selector: Any = None
    result_path: str | None = "$"
    retry: tuple[Retrier, ...] = ()
    catch: tuple[Catcher, ...] = ()
    assign: dict[str, Any] | None = None
    # JSONata: Arguments, Output, and fields given as {% expressions %} (by field name)
    arguments: Any = None
    has_arguments: bool = False
    output: Any = None
    has_output: bool = False
    expressions: dict[str, str] = field(default_factory=dict)
    # Pass
    result: Any = None
    has_result: bool = False
    # Task
    resource: str = ""
    timeout_seconds: float | None = None
    timeout_seconds_path: str | None = None
    heartbeat_seconds: float | None = None
    heartbeat_seconds_path: str | None = None
    # Wait
    seconds: float | None = None
    seconds_path: str | None = None
    timestamp: str | None = None
    timestamp_path: str | None = None
    # Choice
    choices: tuple[Rule, ...] = ()
    choice_assign: tuple[dict[str, Any] | None, ...] = ()
    choice_output: tuple[tuple[bool, Any], ...] = ()
    default: str | None = None
    # Fail
    error: str | None = None
    error_path: str | None = None
    cause: str | None = None
    cause_path: str | None = None
    # Parallel / Map
    branches: tuple[StateMachine, ...] = ()
    processor: StateMachine | None = None
    items_path: str = "$"
    item_selector: Any = None
    has_item_selector: bool = False
    max_concurrency: int = 0
    max_concurrency_path: str | None = None
    items: Any = None
    has_items: bool = False
    mode: str = "INLINE"
    item_reader: dict[str, Any] | None = None
    item_batcher: dict[str, Any] | None = None
    tolerated_failure_count: int | None = None
    tolerated_failure_percentage: float | None = None


@dataclass
class StateMachine:
    start_at: str
    states: dict[str, State]
    comment: str | None = None
    timeout_seconds: float | None = None
    warnings: list[str] = field(default_factory=list)
    source: dict[str, Any] = field(default_factory=dict)


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
_DISTRIBUTED_ONLY = (
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
        *_DISTRIBUTED_ONLY,
    },
}
ALLOWED["Succeed"] = ALLOWED["Succeed"] - {"Assign"}
_MAX_INT = 99999999


def where_of(base: str, name: str) -> str:
    """``States.Poll`` for plain names, ``States['Wait on X']`` otherwise."""
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]*", name):
        return f"{base}.{name}"
    return f"{base}[{json.dumps(name)}]"


def _did_you_mean(name: str, options: list[str]) -> str:
    match = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
    return f"; did you mean '{match[0]}'?" if match else ""


def parse_definition(
    definition: str | dict[str, Any], *, resources: ResourceResolver | None = None
) -> StateMachine:
    """Parse and validate a definition; ``resources`` (an Integrations registry) checks Task resources."""
    warnings: list[str] = []
    if isinstance(definition, str):
        data, warnings = load_json(definition)
    else:
        data = definition
    if not isinstance(data, dict):
        raise ConfigError("$: a state machine definition must be a JSON object")
    language = data.get("QueryLanguage", "JSONPath")
    if language not in ("JSONPath", "JSONata"):
        raise ConfigError(f"QueryLanguage: must be 'JSONPath' or 'JSONata', got {language!r}")
    parser = _Parser(resources, language)
    machine = parser.machine(data, "", top=True)
    parser.check_names_unique()
    check_variable_scopes(machine, set())
    machine.warnings = warnings + parser.warnings
    machine.source = data
    return machine


class _Parser:
    def __init__(self, resources: ResourceResolver | None, language: str = "JSONPath") -> None:
        self.resources = resources
        self.language = language
        self.warnings: list[str] = []
        self.names: dict[str, list[str]] = {}

    def check_names_unique(self) -> None:
        for name, places in self.names.items():
            if len(places) > 1:
                raise ConfigError(
                    f"{places[1]}: state name {name!r} is also used at {places[0]}; names must be unique"
                )

    def machine(self, data: Any, base: str, *, top: bool = False) -> StateMachine:
        prefix = f"{base}." if base else ""
        if not isinstance(data, dict):
            raise ConfigError(f"{base or '$'}: must be an object with StartAt and States")
        allowed = {"StartAt", "States", "Comment", "Version", "TimeoutSeconds", "QueryLanguage"}
        if not top:
            allowed = {"StartAt", "States", "Comment", "ProcessorConfig"}
        for key in data:
            if key not in allowed:
                raise ConfigError(f"{prefix}{key}: unknown field{_did_you_mean(key, sorted(allowed))}")
        states_data = data.get("States")
        if not isinstance(states_data, dict) or not states_data:
            raise ConfigError(f"{prefix}States: missing or empty; it must map state names to states")
        start = data.get("StartAt")
        if not isinstance(start, str):
            raise ConfigError(f"{prefix}StartAt: missing; it must name the first state")
        names = list(states_data)
        if start not in states_data:
            raise ConfigError(f"{prefix}StartAt: no state named {start!r}{_did_you_mean(start, names)}")
        timeout = None
        if "TimeoutSeconds" in data:
            timeout = self.positive_int(data["TimeoutSeconds"], f"{prefix}TimeoutSeconds")
        states: dict[str, State] = {}
        for name, body in states_data.items():
            where = where_of(f"{prefix}States", name)
            if len(name) > 80:
                raise ConfigError(f"{where}: state names are at most 80 characters")
            self.names.setdefault(name, []).append(where)
            states[name] = self.state(name, body, where, names)
        self.reachability(start, states, prefix)
        return StateMachine(
            start_at=start, states=states, comment=data.get("Comment"), timeout_seconds=timeout
        )

    def reachability(self, start: str, states: dict[str, State], prefix: str) -> None:
        seen: set[str] = set()
        todo = [start]
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            st = states[name]
            targets = [st.next, st.default, *(r.next for r in st.choices), *(c.next for c in st.catch)]
            todo.extend(t for t in targets if t is not None)
        for name in states:
            if name not in seen:
                self.warnings.append(f"{where_of(prefix + 'States', name)}: unreachable from StartAt")

    # --- one state ------------------------------------------------------------------

    def state(self, name: str, body: Any, where: str, names: list[str]) -> State:
        if not isinstance(body, dict):
            raise ConfigError(f"{where}: a state must be an object")
        kind = body.get("Type")
        if not isinstance(kind, str):
            raise ConfigError(f"{where}.Type: missing; one of {', '.join(sorted(ALLOWED))}")
        if kind not in ALLOWED:
            raise ConfigError(
                f"{where}.Type: unknown state type {kind!r}{_did_you_mean(kind, sorted(ALLOWED))}"
            )
        language = body.get("QueryLanguage", self.language)
        if language not in ("JSONPath", "JSONata"):
            raise ConfigError(f"{where}.QueryLanguage: must be 'JSONPath' or 'JSONata', got {language!r}")
        if language == "JSONPath" and self.language == "JSONata":
            raise ConfigError(
                f"{where}.QueryLanguage: a state cannot use JSONPath when the state machine's "
                "QueryLanguage is JSONata"
            )
        for key in body:
            if language == "JSONata" and key in JSONPATH_ONLY:
                raise ConfigError(
                    f"{where}.{key}: not allowed in a JSONata state (QueryLanguage JSONata); "
                    "use Arguments, Output, Assign and {% %} expressions instead"
                )
            if language == "JSONPath" and key in JSONATA_ONLY:
                raise ConfigError(
                    f"{where}.{key}: only a JSONata state has {key} (set QueryLanguage: JSONata)"
                )
            if key not in ALLOWED[kind]:
                if key in {"Result", "ResultPath"}:
                    raise ConfigError(f"{where}.{key}: not allowed in a {kind} state")
                hint = _did_you_mean(key, sorted(ALLOWED[kind]))
                raise ConfigError(f"{where}.{key}: unknown field for a {kind} state{hint}")
        fields: dict[str, Any] = {"name": name, "type": kind, "query_language": language}
        jsonata = language == "JSONata"
        for key, attribute in (("Arguments", "arguments"), ("Output", "output")):
            if key in body:
                self.jsonata(body[key], f"{where}.{key}")
                fields[attribute], fields[f"has_{attribute}"] = body[key], True
        if "Assign" in body:
            fields["assign"] = self.assign(body["Assign"], f"{where}.Assign", jsonata)
        if "Next" in ALLOWED[kind]:
            fields.update(self.flow(body, where, names))
        for key in ("InputPath", "OutputPath"):
            if key in body:
                fields[key.replace("Path", "_path").lower()] = self.path_or_null(body[key], f"{where}.{key}")
        if "ResultPath" in body:
            fields["result_path"] = self.result_path(body["ResultPath"], f"{where}.ResultPath")
        if "Parameters" in body:
            self.template(body["Parameters"], f"{where}.Parameters")
            fields["parameters"] = body["Parameters"]
            fields["has_parameters"] = True
        if "ResultSelector" in body:
            self.template(body["ResultSelector"], f"{where}.ResultSelector")
            fields["result_selector"] = body["ResultSelector"]
        if "Retry" in body:
            fields["retry"] = self.retriers(body["Retry"], f"{where}.Retry")
        if "Catch" in body:
            fields["catch"] = self.catchers(body["Catch"], f"{where}.Catch", names, jsonata)
        fields["expressions"] = {}
        getattr(self, f"state_{kind.lower()}")(body, where, names, fields)
        return State(**fields)

    def flow(self, body: dict[str, Any], where: str, names: list[str]) -> dict[str, Any]:
        has_next, end = "Next" in body, body.get("End")
        if "End" in body and not isinstance(end, bool):
            raise ConfigError(f"{where}.End: must be true or false")
        if has_next and end:
            raise ConfigError(f"{where}: has both 'Next' and 'End': true; keep one")
        if not has_next and not end:
            raise ConfigError(f"{where}: needs 'Next' (a state name) or 'End': true")
        if has_next:
            return {"next": self.target(body["Next"], f"{where}.Next", names)}
        return {"end": True}

    def target(self, value: Any, where: str, names: list[str]) -> str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: must be a state name")
        if value not in names:
            raise ConfigError(f"{where}: no state named {value!r}{_did_you_mean(value, names)}")
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
                        f"{here}.{key}: unknown retrier field{_did_you_mean(key, sorted(allowed))}"
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

    # --- per type -------------------------------------------------------------------

    def state_pass(self, body: dict[str, Any], where: str, names: list[str], fields: dict[str, Any]) -> None:
        if "Result" in body:
            fields["result"] = body["Result"]
            fields["has_result"] = True

    def state_task(self, body: dict[str, Any], where: str, names: list[str], fields: dict[str, Any]) -> None:
        resource = body.get("Resource")
        if not isinstance(resource, str) or not resource:
            raise ConfigError(f"{where}.Resource: missing; a Task needs the ARN of what it runs")
        if self.resources is not None and self.resources.resolve(resource) is None:
            raise ConfigError(f"{where}.Resource: no integration handles {resource!r}")
        fields["resource"] = resource
        for key in ("TimeoutSeconds", "HeartbeatSeconds"):
            if key in body and f"{key}Path" in body:
                raise ConfigError(f"{where}: use either {key} or {key}Path, not both")
        timeout = heartbeat = None
        if "TimeoutSeconds" in body:
            timeout = self.expression_or_int(body, "TimeoutSeconds", where, fields)
        if "HeartbeatSeconds" in body:
            heartbeat = self.expression_or_int(body, "HeartbeatSeconds", where, fields)
        if timeout is not None and heartbeat is not None and heartbeat >= timeout:
            raise ConfigError(f"{where}.HeartbeatSeconds: must be smaller than TimeoutSeconds ({timeout})")
        fields["timeout_seconds"], fields["heartbeat_seconds"] = timeout, heartbeat
        if "TimeoutSecondsPath" in body:
            fields["timeout_seconds_path"] = self.path(
                body["TimeoutSecondsPath"], f"{where}.TimeoutSecondsPath"
            )
        if "HeartbeatSecondsPath" in body:
            fields["heartbeat_seconds_path"] = self.path(
                body["HeartbeatSecondsPath"], f"{where}.HeartbeatSecondsPath"
            )

    def state_choice(
        self, body: dict[str, Any], where: str, names: list[str], fields: dict[str, Any]
    ) -> None:
        choices = body.get("Choices")
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where}.Choices: missing or empty; a Choice state needs at least one rule")
        rules, assigns, outputs = [], [], []
        jsonata = fields["query_language"] == "JSONata"
        for i, given in enumerate(choices):
            here = f"{where}.Choices[{i}]"
            item = dict(given) if isinstance(given, dict) else given
            assign = item.pop("Assign", None) if isinstance(item, dict) else None
            assigns.append(None if assign is None else self.assign(assign, f"{here}.Assign", jsonata))
            output = (False, None)
            if isinstance(item, dict) and "Output" in item:
                if not jsonata:
                    raise ConfigError(
                        f"{here}.Output: only a JSONata state has Output (set QueryLanguage: JSONata)"
                    )
                self.jsonata(item["Output"], f"{here}.Output")
                output = (True, item.pop("Output"))
            outputs.append(output)
            if not jsonata and isinstance(item, dict) and "Condition" in item:
                raise ConfigError(
                    f"{here}.Condition: only a JSONata state has Condition (set QueryLanguage: JSONata)"
                )
            rule = self.condition(item, here) if jsonata else parse_rule(item, here, top_level=True)
            self.target(rule.next, f"{here}.Next", names)
            rules.append(rule)
        fields["choices"] = tuple(rules)
        fields["choice_assign"], fields["choice_output"] = tuple(assigns), tuple(outputs)
        if "Default" in body:
            fields["default"] = self.target(body["Default"], f"{where}.Default", names)

    def condition(self, item: Any, where: str) -> Rule:
        """A JSONata Choice rule: ``Condition`` (``{% %}`` or a boolean) and ``Next``."""
        if not isinstance(item, dict):
            raise ConfigError(f"{where}: a Choice rule must be an object")
        for key in item:
            if key not in {"Condition", "Next", "Comment"}:
                raise ConfigError(f"{where}.{key}: a JSONata Choice rule has Condition, Next, Output, Assign")
        if "Condition" not in item:
            raise ConfigError(f"{where}.Condition: missing; a JSONata Choice rule needs a Condition")
        condition = item["Condition"]
        if expression_of(condition) is None and not isinstance(condition, bool):
            raise ConfigError(f"{where}.Condition: must be a {{% %}} expression or a boolean")
        self.jsonata(condition, f"{where}.Condition")
        if not isinstance(item.get("Next"), str):
            raise ConfigError(f"{where}.Next: a top-level Choice rule needs 'Next' (a state name)")
        return Rule(kind="Condition", operand=condition, next=item["Next"])

    def state_wait(self, body: dict[str, Any], where: str, names: list[str], fields: dict[str, Any]) -> None:
        given = [k for k in ("Seconds", "SecondsPath", "Timestamp", "TimestampPath") if k in body]
        if len(given) != 1:
            found = ", ".join(given) or "none"
            raise ConfigError(
                f"{where}: a Wait needs exactly one of Seconds, SecondsPath, Timestamp, "
                f"TimestampPath (found {found})"
            )
        key = given[0]
        if key == "Seconds":
            fields["seconds"] = self.expression_or_int(body, key, where, fields, minimum=0)
        elif key == "Timestamp" and fields["query_language"] == "JSONata" and expression_of(body[key]):
            self.jsonata(body[key], f"{where}.Timestamp")
            fields["expressions"][key] = expression_of(body[key])
        elif key == "Timestamp":
            if parse_timestamp(body[key]) is None:
                raise ConfigError(f"{where}.Timestamp: not an RFC 3339 timestamp like 2024-01-01T00:00:00Z")
            fields["timestamp"] = body[key]
        else:
            fields["seconds_path" if key == "SecondsPath" else "timestamp_path"] = self.path(
                body[key], f"{where}.{key}"
            )

    def state_succeed(
        self, body: dict[str, Any], where: str, names: list[str], fields: dict[str, Any]
    ) -> None:
        return None

    def state_fail(self, body: dict[str, Any], where: str, names: list[str], fields: dict[str, Any]) -> None:
        for key in ("Error", "Cause"):
            if key in body and f"{key}Path" in body:
                raise ConfigError(f"{where}: use either {key} or {key}Path, not both")
            if key in body:
                if not isinstance(body[key], str):
                    raise ConfigError(f"{where}.{key}: must be a string")
                if fields["query_language"] == "JSONata" and expression_of(body[key]) is not None:
                    self.jsonata(body[key], f"{where}.{key}")
                    fields["expressions"][key] = expression_of(body[key])
                fields[key.lower()] = body[key]
            if f"{key}Path" in body:
                self.dynamic(body[f"{key}Path"], f"{where}.{key}Path")
                fields[f"{key.lower()}_path"] = body[f"{key}Path"]

    def state_parallel(
        self, body: dict[str, Any], where: str, names: list[str], fields: dict[str, Any]
    ) -> None:
        branches = body.get("Branches")
        if not isinstance(branches, list) or not branches:
            raise ConfigError(f"{where}.Branches: missing or empty; a Parallel state needs branches")
        fields["branches"] = tuple(
            self.machine(branch, f"{where}.Branches[{i}]") for i, branch in enumerate(branches)
        )

    def state_map(self, body: dict[str, Any], where: str, names: list[str], fields: dict[str, Any]) -> None:
        if "ItemProcessor" in body and "Iterator" in body:
            raise ConfigError(f"{where}: use either ItemProcessor or Iterator, not both")
        key = "ItemProcessor" if "ItemProcessor" in body else "Iterator"
        if key not in body:
            raise ConfigError(f"{where}.ItemProcessor: missing; a Map state needs the states to run per item")
        processor = body[key]
        config = processor.get("ProcessorConfig", {}) if isinstance(processor, dict) else {}
        mode = config.get("Mode", "INLINE") if isinstance(config, dict) else None
        if mode not in ("INLINE", "DISTRIBUTED"):
            raise ConfigError(
                f"{where}.{key}.ProcessorConfig.Mode: must be INLINE or DISTRIBUTED, got {mode!r}"
            )
        fields["mode"] = mode
        kind = config.get("ExecutionType", "STANDARD") if isinstance(config, dict) else None
        if mode == "DISTRIBUTED" and kind not in ("STANDARD", "EXPRESS"):
            raise ConfigError(
                f"{where}.{key}.ProcessorConfig.ExecutionType: must be STANDARD or EXPRESS, got {kind!r}"
            )
        waiting = waiting_resources(processor) if mode == "DISTRIBUTED" and kind == "EXPRESS" else []
        if waiting:  # as AWS: EXPRESS child workflows cannot wait
            inner, resource, pattern = waiting[0]
            raise ConfigError(
                f"{where}.{key}.{inner}.Resource: {resource}: an EXPRESS child workflow does not "
                f"support the '{pattern}' integration pattern"
            )
        for extra in _DISTRIBUTED_ONLY:
            if extra in body and mode != "DISTRIBUTED":
                raise ConfigError(
                    f"{where}.{extra}: only a Distributed Map has {extra} "
                    f"(set {key}.ProcessorConfig.Mode: DISTRIBUTED)"
                )
        fields["processor"] = self.machine(processor, f"{where}.{key}")
        jsonata = fields["query_language"] == "JSONata"
        if "ItemSelector" in body and "Parameters" in body:
            raise ConfigError(f"{where}: use either ItemSelector or Parameters, not both")
        if "ItemSelector" in body:
            if jsonata:
                self.jsonata(body["ItemSelector"], f"{where}.ItemSelector")
            else:
                self.template(body["ItemSelector"], f"{where}.ItemSelector")
            fields["item_selector"], fields["has_item_selector"] = body["ItemSelector"], True
        elif fields.get("has_parameters"):
            # In a Map state, Parameters is the older name of ItemSelector.
            fields["item_selector"], fields["has_item_selector"] = fields["parameters"], True
            fields["parameters"], fields["has_parameters"] = None, False
        if "ItemsPath" in body:
            fields["items_path"] = self.path(body["ItemsPath"], f"{where}.ItemsPath")
        if "Items" in body:
            if "ItemReader" in body:
                raise ConfigError(f"{where}: use either Items or ItemReader, not both")
            self.jsonata(body["Items"], f"{where}.Items")
            if expression_of(body["Items"]) is None and not isinstance(body["Items"], list):
                raise ConfigError(f"{where}.Items: must be a JSON array or a {{% %}} expression")
            fields["items"], fields["has_items"] = body["Items"], True
        if "MaxConcurrency" in body and "MaxConcurrencyPath" in body:
            raise ConfigError(f"{where}: use either MaxConcurrency or MaxConcurrencyPath, not both")
        if "MaxConcurrency" in body:
            fields["max_concurrency"] = (
                self.expression_or_int(body, "MaxConcurrency", where, fields, minimum=0) or 0
            )
        if "MaxConcurrencyPath" in body:
            fields["max_concurrency_path"] = self.path(
                body["MaxConcurrencyPath"], f"{where}.MaxConcurrencyPath"
            )
        self.distributed(body, where, fields)

    def distributed(self, body: dict[str, Any], where: str, fields: dict[str, Any]) -> None:
        """ItemReader, ItemBatcher, ToleratedFailure* and ResultWriter of a Distributed Map."""
        if "ResultWriter" in body:
            raise ConfigError(
                f"{where}.ResultWriter: not supported by Conveyor (the results are the Map's output; "
                "write them with a Task after the Map)"
            )
        if "ItemReader" in body:
            fields["item_reader"] = self.item_reader(body["ItemReader"], f"{where}.ItemReader")
        if "ItemBatcher" in body:
            batcher = body["ItemBatcher"]
            here = f"{where}.ItemBatcher"
            if not isinstance(batcher, dict):
                raise ConfigError(f"{here}: must be an object")
            known = {
                "MaxItemsPerBatch",
                "MaxInputBytesPerBatch",
                "BatchInput",
                "MaxItemsPerBatchPath",
                "MaxInputBytesPerBatchPath",
            }
            for key in batcher:
                if key not in known:
                    raise ConfigError(f"{here}.{key}: unknown field{_did_you_mean(key, sorted(known))}")
            for key in ("MaxItemsPerBatch", "MaxInputBytesPerBatch"):
                if key in batcher:
                    self.expression_or_int(batcher, key, here, fields, maximum=262144)
            if not {
                "MaxItemsPerBatch",
                "MaxInputBytesPerBatch",
                "MaxItemsPerBatchPath",
                "MaxInputBytesPerBatchPath",
            } & set(batcher):
                raise ConfigError(f"{here}: needs MaxItemsPerBatch or MaxInputBytesPerBatch")
            fields["item_batcher"] = batcher
        for key in ("ToleratedFailureCount", "ToleratedFailurePercentage"):
            if key not in body:
                continue
            value = body[key]
            if expression_of(value) is not None and fields["query_language"] == "JSONata":
                self.jsonata(value, f"{where}.{key}")
                fields["expressions"][key] = expression_of(value)
                continue
            bad = isinstance(value, bool) or not isinstance(value, int | float) or value < 0
            if bad or (key == "ToleratedFailurePercentage" and value > 100):
                upper = "100" if key == "ToleratedFailurePercentage" else "any"
                raise ConfigError(f"{where}.{key}: must be a number from 0 to {upper}, got {value!r}")
            if key == "ToleratedFailureCount":
                fields["tolerated_failure_count"] = int(value)
            else:
                fields["tolerated_failure_percentage"] = float(value)
        for key in ("ToleratedFailureCountPath", "ToleratedFailurePercentagePath"):
            if key in body:
                fields["expressions"][key] = self.path(body[key], f"{where}.{key}")

    def item_reader(self, value: Any, where: str) -> dict[str, Any]:
        from conveyor.orchestration.asl.item_reader import READERS

        if not isinstance(value, dict):
            raise ConfigError(f"{where}: must be an object with Resource")
        for key in value:
            if key not in {"Resource", "Parameters", "Arguments", "ReaderConfig"}:
                raise ConfigError(
                    f"{where}.{key}: unknown field (Resource, Parameters, Arguments, ReaderConfig)"
                )
        resource = value.get("Resource")
        if resource not in READERS:
            raise ConfigError(
                f"{where}.Resource: must be one of {', '.join(sorted(READERS))}, got {resource!r}"
            )
        if "Parameters" in value:
            self.template(value["Parameters"], f"{where}.Parameters")
        if "Arguments" in value:
            self.jsonata(value["Arguments"], f"{where}.Arguments")
        config = value.get("ReaderConfig", {})
        if not isinstance(config, dict):
            raise ConfigError(f"{where}.ReaderConfig: must be an object")
        input_type = config.get("InputType")
        if resource.endswith(":getObject"):
            if input_type not in ("JSON", "JSONL", "CSV"):
                raise ConfigError(
                    f"{where}.ReaderConfig.InputType: must be JSON, JSONL or CSV, got {input_type!r}"
                )
            if input_type == "CSV" and config.get("CSVHeaderLocation", "FIRST_ROW") not in (
                "FIRST_ROW",
                "GIVEN",
            ):
                raise ConfigError(f"{where}.ReaderConfig.CSVHeaderLocation: must be FIRST_ROW or GIVEN")
            if config.get("CSVHeaderLocation") == "GIVEN" and not isinstance(config.get("CSVHeaders"), list):
                raise ConfigError(
                    f"{where}.ReaderConfig.CSVHeaders: needed (a list) with CSVHeaderLocation GIVEN"
                )
        if "MaxItems" in config:
            self.positive_int(config["MaxItems"], f"{where}.ReaderConfig.MaxItems", maximum=100_000_000)
        return value


def _assigned(machine: StateMachine) -> dict[str, str]:
    """Variable names the states of ``machine`` (not its Map/Parallel insides) assign."""
    names: dict[str, str] = {}
    for state in machine.states.values():
        blocks = [state.assign, *state.choice_assign, *(c.assign for c in state.catch)]
        for block in blocks:
            for key in block or {}:
                names.setdefault(key.removesuffix(".$"), state.name)
    return names


def check_variable_scopes(machine: StateMachine, outer: set[str]) -> None:
    """A state inside a Map or Parallel reads the outer variables but may not assign one."""
    mine = _assigned(machine)
    for name, owner in mine.items():
        if name in outer:
            raise ConfigError(
                f"States.{owner}.Assign.{name}: variable '{name}' belongs to an outer scope; "
                "a Map or Parallel inner state cannot assign it (pass values out through the output)"
            )
    visible = outer | set(mine)
    for state in machine.states.values():
        for inner in (*state.branches, *((state.processor,) if state.processor else ())):
            check_variable_scopes(inner, visible)
