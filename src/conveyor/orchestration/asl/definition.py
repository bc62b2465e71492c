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

from typing import Any

from conveyor.core.errors import ConfigError
from conveyor.core.json_text import load_json
from conveyor.orchestration.asl.definition_fields import (
    ALLOWED,
    JSONATA_ONLY,
    JSONPATH_ONLY,
    did_you_mean,
    where_of,
)
from conveyor.orchestration.asl.definition_model import (
    Catcher,
    ResourceResolver,
    Retrier,
    State,
    StateMachine,
)
from conveyor.orchestration.asl.definition_types import StateTypeReader


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


class _Parser(StateTypeReader):
    """Reads a definition: the state machines (nested ones too), each state's
    common fields, its flow (Next/End), and which states StartAt reaches."""

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
                raise ConfigError(f"{prefix}{key}: unknown field{did_you_mean(key, sorted(allowed))}")
        states_data = data.get("States")
        if not isinstance(states_data, dict) or not states_data:
            raise ConfigError(f"{prefix}States: missing or empty; it must map state names to states")
        start = data.get("StartAt")
        if not isinstance(start, str):
            raise ConfigError(f"{prefix}StartAt: missing; it must name the first state")
        names = list(states_data)
        if start not in states_data:
            raise ConfigError(f"{prefix}StartAt: no state named {start!r}{did_you_mean(start, names)}")
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
                f"{where}.Type: unknown state type {kind!r}{did_you_mean(kind, sorted(ALLOWED))}"
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
                hint = did_you_mean(key, sorted(ALLOWED[kind]))
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


__all__ = [
    "ALLOWED",
    "JSONATA_ONLY",
    "JSONPATH_ONLY",
    "Catcher",
    "ResourceResolver",
    "Retrier",
    "State",
    "StateMachine",
    "check_variable_scopes",
    "parse_definition",
    "where_of",
]
