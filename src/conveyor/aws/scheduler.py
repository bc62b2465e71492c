"""EventBridge Scheduler (``scheduler``, a REST-JSON protocol) on Conveyor's schedules.

A schedule is a rule of the stack with ``schedule:`` (stack/entries.py writes it as
``conveyor apply`` would): ``ScheduleExpression`` ``cron(...)``, ``rate(...)`` or
one-time ``at(...)``, ``ScheduleExpressionTimezone``, ``StartDate`` / ``EndDate``,
``ActionAfterCompletion``, ``State``, ``Description``, and a ``Target`` that is a
state machine of the stack (its ARN), started with ``Target.Input`` (``{}`` when
none). Only the ``default`` group exists. Targets other than state machines are
refused with ValidationException; a ``FLEXIBLE`` time window is accepted and fires
on time.

Routes, as botocore's service model has them: ``POST|GET|PUT|DELETE
/schedules/{Name}`` and ``GET /schedules``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, unquote

from conveyor.aws.base import AwsError, Paging
from conveyor.aws.paging import page
from conveyor.core.arns import ACCOUNT, arn
from conveyor.core.errors import ConfigError, ConveyorError, NotFoundError
from conveyor.orchestration.executions import state_machine_arn, state_machine_name
from conveyor.orchestration.service import Service
from conveyor.stack.entries import AlreadyExists, delete_entry, put_entry
from conveyor.stack.model import RuleSpec

GROUP = "default"
OPERATIONS = ("CreateSchedule", "GetSchedule", "ListSchedules", "UpdateSchedule", "DeleteSchedule")
STATUS = {"ValidationException": 400, "ResourceNotFoundException": 404, "ConflictException": 409}


def schedule_arn(name: str) -> str:
    return arn("scheduler", f"schedule/{GROUP}/{name}")


def _group(value: Any) -> None:
    if value not in (None, "", GROUP):
        raise NotFoundError(f"Schedule group {value} does not exist (Conveyor has the default group only).")


def _schedule(service: Service, name: str) -> RuleSpec:
    rule = service.stack().rules.get(name)
    if rule is None or rule.schedule is None:
        raise NotFoundError(f"Schedule {name} does not exist.")
    return rule


def _applied(service: Service) -> float:
    applied = service.store.stack_applied_at()
    return applied.timestamp() if applied is not None else 0.0


def _target(service: Service, rule: RuleSpec) -> dict[str, Any]:
    if not rule.targets:
        return {"Arn": "", "RoleArn": ""}
    target = rule.targets[0]
    answer: dict[str, Any] = {
        "Arn": state_machine_arn(target.state_machine),
        "RoleArn": f"arn:aws:iam::{ACCOUNT}:role/conveyor",
    }
    if target.input is not None:
        answer["Input"] = json.dumps(target.input)
    return answer


def _described(service: Service, name: str, rule: RuleSpec) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "Arn": schedule_arn(name),
        "Name": name,
        "GroupName": GROUP,
        "ScheduleExpression": rule.schedule,
        "ScheduleExpressionTimezone": rule.timezone or "UTC",
        "State": "ENABLED" if rule.enabled else "DISABLED",
        "CreationDate": _applied(service),
        "LastModificationDate": _applied(service),
        "Target": _target(service, rule),
        "FlexibleTimeWindow": {"Mode": "OFF"},
        "ActionAfterCompletion": rule.action_after_completion,
    }
    for member, value in (("StartDate", rule.start_date), ("EndDate", rule.end_date)):
        if value is not None:
            answer[member] = value.timestamp()
    if rule.description:
        answer["Description"] = rule.description
    return answer


def _body(service: Service, p: dict[str, Any]) -> dict[str, Any]:
    """The stack's rule body from CreateSchedule's / UpdateSchedule's members."""
    _group(p.get("GroupName"))
    expression = p.get("ScheduleExpression")
    if not isinstance(expression, str) or not expression:
        raise ConfigError("ScheduleExpression is required")
    action = p.get("ActionAfterCompletion") or "NONE"
    if action not in ("NONE", "DELETE"):
        raise ConfigError(f"ActionAfterCompletion must be NONE or DELETE (it is {action!r})")
    window = p.get("FlexibleTimeWindow")
    if not isinstance(window, dict) or window.get("Mode") not in ("OFF", "FLEXIBLE"):
        raise ConfigError("FlexibleTimeWindow.Mode must be OFF or FLEXIBLE")
    target = p.get("Target")
    if not isinstance(target, dict) or not isinstance(target.get("Arn"), str):
        raise ConfigError("Target with an Arn is required")
    if ":stateMachine:" not in target["Arn"]:
        raise ConfigError(f"Target.Arn: Conveyor's targets are state machines; {target['Arn']} is not one")
    machine = state_machine_name(target["Arn"])
    if machine not in service.stack().state_machines:
        raise NotFoundError(f"Target.Arn: no state machine {machine!r}")
    raw = target.get("Input")
    try:
        given = json.loads(raw) if isinstance(raw, str) else {}
    except json.JSONDecodeError as exc:
        raise ConfigError(f"Target.Input is not JSON: {exc}") from None
    timed = {
        "start_date": _instant(p.get("StartDate"), "StartDate"),
        "end_date": _instant(p.get("EndDate"), "EndDate"),
        "action_after_completion": None if action == "NONE" else action,
    }
    return {k: v for k, v in timed.items() if v is not None} | {
        "schedule": expression,
        "timezone": p.get("ScheduleExpressionTimezone"),
        "enabled": p.get("State", "ENABLED") != "DISABLED",
        "description": p.get("Description"),
        "targets": [{"state_machine": machine, "input": given}],
    }


def _instant(value: Any, member: str) -> str | None:
    """A timestamp member (epoch seconds on the wire) as the stack's ISO text."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{member} must be a timestamp (epoch seconds), not {value!r}")
    return datetime.fromtimestamp(value, UTC).isoformat()


def _put(service: Service, name: str, p: dict[str, Any], create: bool) -> dict[str, Any]:
    if not create:
        _schedule(service, name)
    put_entry(service.store, "rules", name, _body(service, p), create=create)
    return {"ScheduleArn": schedule_arn(name)}


_LIST_PAGING = Paging("Schedules", "MaxResults", "NextToken")


def _list(service: Service, query: dict[str, str]) -> dict[str, Any]:
    """ListSchedules, a page of it (``MaxResults`` 1-100, ``NextToken``)."""
    limit = query.get("MaxResults")
    if limit is not None and not limit.isdigit():
        raise AwsError("ValidationException", f"MaxResults must be a number (it is {limit!r})")
    paged: dict[str, Any] = {k: v for k, v in query.items() if k != "MaxResults"}
    if limit is not None:
        paged["MaxResults"] = int(limit)
    return page("ListSchedules", _LIST_PAGING, "ValidationException", paged, lambda q: _schedules(service, q))


def _schedules(service: Service, query: dict[str, str]) -> dict[str, Any]:
    _group(query.get("ScheduleGroup"))
    prefix, state = query.get("NamePrefix") or "", query.get("State")
    found = []
    for name, rule in sorted(service.stack().rules.items()):
        if rule.schedule is None or not name.startswith(prefix):
            continue
        described = _described(service, name, rule)
        if state and described["State"] != state:
            continue
        found.append(
            {
                k: described[k]
                for k in ("Arn", "Name", "GroupName", "State", "CreationDate", "LastModificationDate")
            }
            | {"Target": {"Arn": described["Target"]["Arn"]}}
        )
    return {"Schedules": found}


def _route(
    service: Service, method: str, path: str, query: dict[str, str], p: dict[str, Any]
) -> dict[str, Any]:
    parts = [unquote(part) for part in path.strip("/").split("/")]
    if parts == ["schedules"] and method == "GET":
        return _list(service, query)
    if len(parts) == 2 and parts[0] == "schedules":
        name = parts[1]
        if method == "POST":
            return _put(service, name, p, create=True)
        if method == "PUT":
            return _put(service, name, p, create=False)
        if method == "GET":
            _group(query.get("groupName"))
            return _described(service, name, _schedule(service, name))
        if method == "DELETE":
            _group(query.get("groupName"))
            _schedule(service, name)
            delete_entry(service.store, "rules", name)
            return {}
    raise AwsError(
        "ValidationException", f"{method} {path} is not an operation of the scheduler Conveyor answers"
    )


def answer(
    service: Service, method: str, path: str, query_string: str, body: bytes
) -> tuple[int, dict[str, Any]]:
    """The status and JSON of a Scheduler request (its signature already checked)."""
    query = {k: v[-1] for k, v in parse_qs(query_string).items()}
    try:
        p = json.loads(body) if body else {}
        if not isinstance(p, dict):
            raise ConfigError("the body must be a JSON object")
        return 200, _route(service, method, path, query, p)
    except json.JSONDecodeError as exc:
        return _error("ValidationException", f"the body is not JSON: {exc}")
    except AwsError as exc:
        return _error(exc.code, exc.message)
    except NotFoundError as exc:
        return _error("ResourceNotFoundException", str(exc))
    except AlreadyExists as exc:
        return _error("ConflictException", str(exc))
    except ConfigError as exc:
        return _error("ValidationException", str(exc))
    except ConveyorError as exc:
        return _error("ConflictException", str(exc))


def _error(code: str, message: str) -> tuple[int, dict[str, Any]]:
    return STATUS.get(code, 400), {"__type": code, "Message": message}
