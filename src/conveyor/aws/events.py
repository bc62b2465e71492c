"""EventBridge (``AWSEvents``) on Conveyor's event bus and rules.

PutEvents stores each entry and starts the executions of the rules it matches.
Rules are the stack's ``rules:``: PutRule, DeleteRule, Enable/DisableRule and the
target operations write the applied stack as ``conveyor apply`` does
(stack/entries.py). Only the default bus exists, and a target must be a state
machine of the stack (its ARN); other targets are refused with ValidationException.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from conveyor.aws.base import AwsError, AwsService, Paging, json_member, required
from conveyor.core.errors import ConfigError, NotFoundError
from conveyor.orchestration.bus import rule_arn
from conveyor.orchestration.executions import state_machine_arn, state_machine_name
from conveyor.orchestration.service import Service, rules_listing
from conveyor.stack.entries import delete_entry, put_entry

BUS = "default"


def _put_events(service: Service, p: dict[str, Any]) -> dict[str, Any]:
    entries = p.get("Entries")
    if not isinstance(entries, list) or not entries:
        raise ConfigError("Entries: one or more events are required")
    answers: list[dict[str, Any]] = []
    failed = 0
    for entry in entries:
        event = {
            "source": entry.get("Source"),
            "detail-type": entry.get("DetailType"),
            "detail": entry.get("Detail", "{}"),
            "resources": entry.get("Resources") or [],
        }
        if entry.get("Time") is not None:
            event["time"] = _time_text(entry["Time"])
        try:
            answers.append({"EventId": service.bus.put_event(event)["EventId"]})
        except ConfigError as exc:
            failed += 1
            answers.append({"ErrorCode": "MalformedDetail", "ErrorMessage": str(exc)})
    return {"FailedEntryCount": failed, "Entries": answers}


def _time_text(value: Any) -> str:
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value).astimezone().isoformat()
    return str(value)


def _bus(p: dict[str, Any]) -> None:
    name = p.get("EventBusName") or BUS
    if name.rsplit("/", 1)[-1] != BUS:
        raise NotFoundError(f"Event bus {name} does not exist (Conveyor has the default bus only).")


def _rule(row: dict[str, Any]) -> dict[str, Any]:
    rule = {"Name": row["Name"], "Arn": rule_arn(row["Name"]), "State": row["State"], "EventBusName": BUS}
    if "EventPattern" in row:
        rule["EventPattern"] = json.dumps(row["EventPattern"])
    if "ScheduleExpression" in row:
        rule["ScheduleExpression"] = row["ScheduleExpression"]
    if row.get("Description"):
        rule["Description"] = row["Description"]
    return rule


def _rules(service: Service, p: dict[str, Any]) -> dict[str, Any]:
    _bus(p)
    prefix = p.get("NamePrefix") or ""
    return {"Rules": [_rule(r) for r in rules_listing(service) if r["Name"].startswith(prefix)]}


def _stored_rule(service: Service, name: str) -> dict[str, Any]:
    rule = service.stack().rules.get(name)
    if rule is None:
        raise NotFoundError(f"Rule {name} does not exist.")
    return rule.model_dump(mode="json")


def _describe_rule(service: Service, p: dict[str, Any]) -> dict[str, Any]:
    _bus(p)
    name = required(p, "Name")
    for row in rules_listing(service):
        if row["Name"] == name:
            return _rule(row | {"Description": service.stack().rules[name].description})
    raise NotFoundError(f"Rule {name} does not exist.")


def _put_rule(service: Service, p: dict[str, Any]) -> dict[str, Any]:
    """Create or replace a rule; its targets are kept when it is replaced."""
    _bus(p)
    name = required(p, "Name")
    pattern = json_member(p, "EventPattern")
    schedule = p.get("ScheduleExpression")
    if (pattern is None) == (schedule is None):
        raise ConfigError("give exactly one of EventPattern and ScheduleExpression")
    existing = service.stack().rules.get(name)
    body: dict[str, Any] = {
        "event_pattern": pattern,
        "schedule": schedule,
        "enabled": p.get("State", "ENABLED") != "DISABLED",
        "description": p.get("Description"),
        "targets": [] if existing is None else [t.model_dump(mode="json") for t in existing.targets],
    }
    if existing is not None and existing.timezone is not None and schedule is not None:
        body["timezone"] = existing.timezone
    put_entry(service.store, "rules", name, body)
    return {"RuleArn": rule_arn(name)}


def _delete_rule(service: Service, p: dict[str, Any]) -> dict[str, Any]:
    _bus(p)
    name = required(p, "Name")
    rule = _stored_rule(service, name)
    if rule["targets"] and not p.get("Force"):
        raise AwsError("ValidationException", "Rule can't be deleted since it has targets.")
    delete_entry(service.store, "rules", name)
    return {}


def _set_state(enabled: bool) -> Any:
    def operation(service: Service, p: dict[str, Any]) -> dict[str, Any]:
        _bus(p)
        name = required(p, "Name")
        put_entry(
            service.store, "rules", name, _stored_rule(service, name) | {"enabled": enabled}, create=False
        )
        return {}

    return operation


def _target_id(target: dict[str, Any], index: int) -> str:
    return str(target.get("id") or index + 1)


def _aws_target(target: dict[str, Any], index: int) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "Id": _target_id(target, index),
        "Arn": state_machine_arn(target["state_machine"]),
    }
    if target.get("input") is not None:
        answer["Input"] = json.dumps(target["input"])
    if target.get("input_path") is not None:
        answer["InputPath"] = target["input_path"]
    if target.get("input_transformer") is not None:
        answer["InputTransformer"] = target["input_transformer"]
    return answer


def _stack_target(service: Service, target: dict[str, Any]) -> dict[str, Any]:
    arn = target.get("Arn")
    if not isinstance(target.get("Id"), str) or not isinstance(arn, str):
        raise ConfigError("each target needs an Id and an Arn")
    if ":stateMachine:" not in arn:
        raise ConfigError(f"target {target['Id']}: Conveyor's targets are state machines; {arn} is not one")
    machine = state_machine_name(arn)
    if machine not in service.stack().state_machines:
        raise NotFoundError(f"target {target['Id']}: no state machine {machine!r}")
    body: dict[str, Any] = {"state_machine": machine, "id": target["Id"]}
    if "Input" in target:
        body["input"] = json_member(target, "Input")
    if "InputPath" in target:
        body["input_path"] = target["InputPath"]
    if "InputTransformer" in target:
        body["input_transformer"] = target["InputTransformer"]
    return body


def _put_targets(service: Service, p: dict[str, Any]) -> dict[str, Any]:
    _bus(p)
    name = required(p, "Rule")
    rule = _stored_rule(service, name)
    given = p.get("Targets")
    if not isinstance(given, list) or not given:
        raise ConfigError("Targets: one or more targets are required")
    targets = {_target_id(t, i): t for i, t in enumerate(rule["targets"])}
    for target in given:
        body = _stack_target(service, target)
        targets[body["id"]] = body
    put_entry(service.store, "rules", name, rule | {"targets": list(targets.values())}, create=False)
    return {"FailedEntryCount": 0, "FailedEntries": []}


def _list_targets(service: Service, p: dict[str, Any]) -> dict[str, Any]:
    _bus(p)
    rule = _stored_rule(service, required(p, "Rule"))
    return {"Targets": [_aws_target(t, i) for i, t in enumerate(rule["targets"])]}


def _remove_targets(service: Service, p: dict[str, Any]) -> dict[str, Any]:
    _bus(p)
    name = required(p, "Rule")
    rule = _stored_rule(service, name)
    ids = set(p.get("Ids") or [])
    kept = [t for i, t in enumerate(rule["targets"]) if _target_id(t, i) not in ids]
    found = {_target_id(t, i) for i, t in enumerate(rule["targets"])}
    failed = [
        {"TargetId": i, "ErrorCode": "ResourceNotFoundException", "ErrorMessage": f"no target {i}"}
        for i in sorted(ids - found)
    ]
    put_entry(service.store, "rules", name, rule | {"targets": kept}, create=False)
    return {"FailedEntryCount": len(failed), "FailedEntries": failed}


EVENTS = AwsService(
    "AWSEvents",
    "application/x-amz-json-1.1",
    not_found="ResourceNotFoundException",
    invalid="ValidationException",
    wrong_state="ConcurrentModificationException",
    exists="ResourceAlreadyExistsException",
    operations={
        "PutEvents": _put_events,
        "PutRule": _put_rule,
        "DescribeRule": _describe_rule,
        "ListRules": _rules,
        "DeleteRule": _delete_rule,
        "EnableRule": _set_state(True),
        "DisableRule": _set_state(False),
        "PutTargets": _put_targets,
        "ListTargetsByRule": _list_targets,
        "RemoveTargets": _remove_targets,
    },
    paging={
        "ListRules": Paging("Rules", "Limit", "NextToken"),
        "ListTargetsByRule": Paging("Targets", "Limit", "NextToken"),
    },
)
