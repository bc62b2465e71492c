"""The event bus: every event is stored, and every enabled rule whose EventBridge
pattern matches it starts an execution of each of its targets.

A target's input is, as in EventBridge: its constant ``input`` when set, else the part
of the event its ``input_path`` selects, else what its ``input_transformer`` renders
(``InputPathsMap`` + ``InputTemplate``), else the whole event.

Who runs the executions depends on the process: ``conveyor serve`` installs its bus
(:func:`install`), whose executions start at once in its threads; anywhere else (a task
worker, ``conveyor events put``) they are recorded and ``conveyor serve`` picks them up.
Task lifecycle events reach the bus through :func:`publish`: replication never imports
the bus; whoever runs or controls a task hands it :func:`event_sink`.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import uuid
from datetime import UTC, datetime
from typing import Any

from conveyor.core.arns import ACCOUNT, REGION
from conveyor.core.errors import ConfigError
from conveyor.events.lifecycle import EventSink
from conveyor.events.patterns import EventPattern
from conveyor.stack.model import RuleTarget, Stack
from conveyor.store.store import Store

log = logging.getLogger(__name__)

_active: dict[str, Bus] = {}  # "bus": this process's bus, when one is installed
_active_lock = threading.Lock()


def rule_arn(name: str) -> str:
    return f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{name}"


def normalize_event(event: dict[str, Any]) -> dict[str, Any]:
    """An event as EventBridge delivers it: ``source`` and ``detail-type`` required,
    ``detail`` an object, the envelope fields filled in."""
    if not isinstance(event, dict):
        raise ConfigError("an event must be a JSON object")
    for key in ("source", "detail-type"):
        if not isinstance(event.get(key), str) or not event[key]:
            raise ConfigError(f"an event needs {key!r} (a non-empty string)")
    detail = event.get("detail", {})
    if isinstance(detail, str):
        try:
            detail = json.loads(detail)
        except json.JSONDecodeError:
            raise ConfigError("the event's detail must be a JSON object") from None
    if not isinstance(detail, dict):
        raise ConfigError("the event's detail must be a JSON object")
    return {
        "version": "0",
        "id": str(event.get("id") or uuid.uuid4()),
        "detail-type": event["detail-type"],
        "source": event["source"],
        "account": event.get("account", ACCOUNT),
        "time": event.get("time") or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": event.get("region", REGION),
        "resources": list(event.get("resources") or []),
        "detail": detail,
    }


def _inside_string(text: str, position: int) -> bool:
    quotes = 0
    escaped = False
    for char in text[:position]:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            quotes += 1
    return quotes % 2 == 1


def render_template(template: str, values: dict[str, Any]) -> Any:
    """EventBridge's InputTemplate: ``<name>`` replaced by its value (in a JSON template,
    as JSON outside quotes and as text inside them; in a text template, as text); the
    result is JSON when it parses, else a string."""

    as_json = template.lstrip().startswith(("{", "[", '"'))

    def value_text(name: str, inside: bool) -> str:
        value = values.get(name)
        if not as_json:  # a text template takes the values as text
            return value if isinstance(value, str) else json.dumps(value)
        if inside:
            return (
                json.dumps(value)[1:-1] if isinstance(value, str) else json.dumps(value).replace('"', '\\"')
            )
        return json.dumps(value)

    out: list[str] = []
    last = 0
    for match in re.finditer(r"<([A-Za-z0-9_.\-]+)>", template):
        name = match.group(1)
        if name not in values:
            continue
        out.append(template[last : match.start()])
        out.append(value_text(name, _inside_string(template, match.start())))
        last = match.end()
    out.append(template[last:])
    rendered = "".join(out)
    try:
        return json.loads(rendered)
    except json.JSONDecodeError:
        return rendered


def target_input(target: RuleTarget, event: dict[str, Any], rule: str) -> Any:
    """What a rule's target receives as its execution input."""
    from conveyor.orchestration.asl.paths import read_path  # JSONPath: only for a matched rule

    if target.input is not None:
        return target.input
    if target.input_path is not None:
        return read_path(target.input_path, event, what=f"rules.{rule}.input_path")
    transformer = target.input_transformer
    if transformer is not None:
        values: dict[str, Any] = {}
        for name, path in (transformer.get("InputPathsMap") or {}).items():
            try:
                values[name] = read_path(path, event, what=f"rules.{rule}.input_transformer.InputPathsMap")
            except Exception:
                values[name] = None  # EventBridge: a path that matches nothing gives null
        values |= {
            "aws.events.rule-name": rule,
            "aws.events.rule-arn": rule_arn(rule),
            "aws.events.event": event,
            "aws.events.event.json": event,
            "aws.events.event.ingestion-time": event.get("time"),
        }
        return render_template(str(transformer["InputTemplate"]), values)
    return event


def load_stack(store: Store) -> Stack | None:
    document = store.stack_document()
    return None if document is None else Stack.from_store_dict(document)


class Bus:
    """Put events; start the executions their rules name. ``run`` says where they run:
    ``"thread"`` (this process, e.g. ``conveyor serve``) or ``"none"`` (recorded for
    ``conveyor serve``)."""

    def __init__(self, store: Store, executions: Any = None, run: str = "none") -> None:
        self.store = store
        self._executions = executions
        self.run = run

    @property
    def executions(self) -> Any:
        if self._executions is None:
            from conveyor.orchestration.executions import Executions

            store = self.store

            def stack() -> Stack:
                found = load_stack(store)
                if found is None:
                    raise ConfigError("nothing is applied yet")
                return found

            self._executions = Executions(store, stack, events=event_sink(store))
        return self._executions

    def matching_rules(self, event: dict[str, Any], stack: Stack) -> list[str]:
        matched = []
        for name, rule in sorted(stack.rules.items()):
            if not rule.enabled or rule.event_pattern is None:
                continue
            try:
                pattern = EventPattern.parse(rule.event_pattern, f"rules.{name}.event_pattern")
            except ConfigError as exc:
                log.error("rule %s is skipped: %s", name, exc)
                continue
            if pattern.matches(event):
                matched.append(name)
        return matched

    def put_event(self, event: dict[str, Any]) -> dict[str, Any]:
        """Store the event, then start its rules' targets. Returns ``{"EventId",
        "MatchedRules", "Executions", "Failures"}``: a target that cannot start is
        logged and reported, never lost silently."""
        event = normalize_event(event)
        self.store.put_event(event)
        return self.dispatch(event)

    def dispatch(self, event: dict[str, Any]) -> dict[str, Any]:
        """Start the targets of every rule matching a stored event."""
        answer: dict[str, Any] = {
            "EventId": event["id"],
            "MatchedRules": [],
            "Executions": [],
            "Failures": [],
        }
        stack = load_stack(self.store)
        if stack is None:
            return answer
        for name in self.matching_rules(event, stack):
            answer["MatchedRules"].append(name)
            answer["Executions"] += self.start_targets(stack, name, event, answer["Failures"])
        return answer

    def start_targets(
        self, stack: Stack, rule: str, event: dict[str, Any], failures: list[dict[str, Any]]
    ) -> list[str]:
        started = []
        for index, target in enumerate(stack.rules[rule].targets):
            try:
                execution_input = target_input(target, event, rule)
                described = self.executions.start(target.state_machine, execution_input, run=self.run)
            except Exception as exc:
                log.error("rule %s target %d (%s): %s", rule, index, target.state_machine, exc)
                failures.append({"Rule": rule, "Target": index, "ErrorMessage": str(exc)})
                continue
            started.append(described["executionArn"])
        return started


def install(bus: Bus | None) -> None:
    """Make ``bus`` this process's bus (None: none)."""
    with _active_lock:
        if bus is None:
            _active.pop("bus", None)
        else:
            _active["bus"] = bus


def active() -> Bus | None:
    return _active.get("bus")


def publish(store: Store, event: dict[str, Any]) -> str:
    """Store a task lifecycle event, then start what its rules name.
    Storing fails the caller as before; rules never do (their problems are logged)."""
    event_id = store.put_event(event)
    bus = active()
    if bus is None or bus.store.engine.url != store.engine.url:
        bus = Bus(store)
    try:
        bus.dispatch(event)
    except Exception as exc:
        log.error("event %s: rules not evaluated: %s", event_id, exc)
    return event_id


def event_sink(store: Store) -> EventSink:
    """The sink replication is handed for its lifecycle events: :func:`publish` to ``store``."""

    def sink(event: dict[str, Any]) -> None:
        publish(store, event)

    return sink
