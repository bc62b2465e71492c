"""What a stack file declares: endpoints, tasks, state machines, rules and lake tables.

The models hold the stack as written, after ``file://`` documents were read
in, with relative paths made absolute, and with secret references kept as
references. So ``model_dump(mode="json")`` is what the metadata store keeps,
and it never holds a resolved secret; ``EndpointSpec.to_config`` resolves them
when a connector is about to connect. ``stack.loader.load_stack`` reads the
YAML; ``Stack.from_store_dict`` reads back what the store kept.

Validators report problems as ``(key.path, problem)`` pairs (see
``core.problems.located``) so one pass lists every mistake.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import (
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from conveyor.connectors.base import EndpointConfig
from conveyor.core.errors import ConfigError, NotFoundError
from conveyor.core.names import did_you_mean
from conveyor.core.problems import Problem, format_problems, located, problems_from_validation_error
from conveyor.replication.control_tables import target_problems
from conveyor.replication.settings import (
    CONFLICT_ENGINES,
    TaskSettings,
    apply_conflicts_refusal,
    parse_task_settings,
)
from conveyor.replication.settings_support import SettingsReview, review_task_settings, task_settings_problems
from conveyor.stack.endpoints_spec import (
    SOURCE_ENGINES,
    TARGET_ENGINES,
    EndpointSpec,
    Spec,
    absolute_path,
)

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
TABLE_PATTERN = r"^[^.\s]+\.[\s\S]+$"  # the table name is any text (spaces, dots, quotes)
TableName = Annotated[str, StringConstraints(pattern=TABLE_PATTERN)]
_CRON_FIELDS = "minutes hours day-of-month month day-of-week year"
MigrationType = Literal["full-load", "cdc", "full-load-and-cdc"]


def all_tables_mapping() -> dict[str, Any]:
    """The table mapping of a task that names none: every table of the source."""
    return {
        "rules": [
            {
                "rule-type": "selection",
                "rule-id": "1",
                "rule-name": "all-tables",
                "object-locator": {"schema-name": "%", "table-name": "%"},
                "rule-action": "include",
            }
        ]
    }


class TaskSpec(Spec):
    """A replication task; ``table_mappings`` and ``settings`` are the migration
    service's JSON as written (``settings`` validated by ``parse_task_settings``)."""

    source: str
    target: str
    migration_type: MigrationType = "full-load"
    table_mappings: dict[str, Any] = Field(default_factory=all_tables_mapping)
    settings: dict[str, Any] = Field(default_factory=dict)
    description: str | None = None

    @field_validator("table_mappings")
    @classmethod
    def _has_rules(cls, value: dict[str, Any]) -> dict[str, Any]:
        rules = value.get("rules")
        if not isinstance(rules, list) or not rules:
            raise located([("rules", "required: a non-empty list of selection and transformation rules")])
        from conveyor.replication.mappings import check_table_mappings

        problems = check_table_mappings(value)
        if problems:
            raise located(problems)
        return value

    @field_validator("settings")
    @classmethod
    def _valid_settings(cls, value: dict[str, Any]) -> dict[str, Any]:
        problems = task_settings_problems(value)
        if problems:
            raise located(problems)
        return value

    def task_settings(self) -> TaskSettings:
        """The parsed settings (validated when the stack was loaded)."""
        return parse_task_settings(self.settings, "settings")

    def settings_review(self) -> SettingsReview:
        """The keys of ``settings`` Conveyor does not act on (cloud-only, not yet)."""
        return review_task_settings(self.settings, self.task_settings())


class StateMachineSpec(Spec):
    """A state machine; ``definition`` is Amazon States Language as written."""

    definition: dict[str, Any]
    description: str | None = None
    type: Literal["STANDARD", "EXPRESS"] = "STANDARD"
    """As AWS: EXPRESS machines cannot use the ``.sync`` / ``.waitForTaskToken`` patterns."""

    @field_validator("definition")
    @classmethod
    def _looks_like_asl(cls, value: dict[str, Any]) -> dict[str, Any]:
        problems: list[Problem] = []
        if not isinstance(value.get("StartAt"), str):
            problems.append(("StartAt", "required: the name of the first state"))
        if not isinstance(value.get("States"), dict) or not value.get("States"):
            problems.append(("States", "required: an object of named states"))
        if problems:
            raise located(problems)
        return value

    @model_validator(mode="after")
    def _express_patterns(self) -> Self:
        if self.type == "EXPRESS":
            problems = [
                (
                    f"definition.{where}.Resource",
                    f"{resource}: Express state machines do not support the '{pattern}' integration pattern",
                )
                for where, resource, pattern in waiting_resources(self.definition)
            ]
            if problems:
                raise located(problems)
        return self


def waiting_resources(definition: dict[str, Any], prefix: str = "States") -> list[tuple[str, str, str]]:
    """Task resources using the ``.sync`` or ``.waitForTaskToken`` pattern, with where
    they are (inside Parallel branches and Map processors too)."""
    found: list[tuple[str, str, str]] = []
    states = definition.get("States")
    for name, state in (states if isinstance(states, dict) else {}).items():
        if not isinstance(state, dict):
            continue
        where = f"{prefix}.{name}"
        resource = state.get("Resource")
        if isinstance(resource, str):
            for pattern in (".sync", ".waitForTaskToken"):
                if resource.endswith(pattern) or f"{pattern}:" in resource:
                    found.append((where, resource, pattern))
        for key in ("ItemProcessor", "Iterator"):
            if isinstance(state.get(key), dict):
                found += waiting_resources(state[key], f"{where}.{key}.States")
        for i, branch in enumerate(state.get("Branches") or []):
            if isinstance(branch, dict):
                found += waiting_resources(branch, f"{where}.Branches[{i}].States")
    return found


class FunctionSpec(Spec):
    """A Lambda function as written: a Python file and its handler
    (``./lambdas/modify_endpoint.py:lambda_handler``), run in a child process by a
    ``lambda:invoke`` Task that names it, with the AWS SDK pointed at ``conveyor serve``."""

    handler: str
    environment: dict[str, str] = Field(default_factory=dict)
    timeout: int = Field(default=60, ge=1, le=900)
    """Seconds, as Lambda's own limit (at most 900)."""

    @field_validator("handler")
    @classmethod
    def _file_and_function(cls, value: str, info: ValidationInfo) -> str:
        path, _, function = value.rpartition(":")
        if not path.endswith(".py") or not function.isidentifier():
            raise ValueError("give the Python file and its function, as path/to/file.py:lambda_handler")
        base_dir = (info.context or {}).get("base_dir")
        if base_dir is not None:
            path = absolute_path(path, Path(base_dir))
            if not Path(path).is_file():
                raise ValueError(f"no such file: {path}")
        return f"{path}:{function}"

    @property
    def file(self) -> str:
        return self.handler.rpartition(":")[0]

    @property
    def function(self) -> str:
        return self.handler.rpartition(":")[2]


class RuleTarget(Spec):
    state_machine: str
    id: str | None = None
    """The target's Id in EventBridge's PutTargets / ListTargetsByRule (default: its position)."""
    input: Any = None
    """The execution input (any JSON value); None passes the event itself."""
    input_path: str | None = None
    """A JSONPath into the event (EventBridge's InputPath): that part is the input."""
    input_transformer: dict[str, Any] | None = None
    """EventBridge's InputTransformer: ``{InputPathsMap: {name: path}, InputTemplate: text}``."""

    @model_validator(mode="after")
    def _one_input(self) -> Self:
        given = [k for k in ("input", "input_path", "input_transformer") if getattr(self, k) is not None]
        if len(given) > 1:
            raise ValueError(
                f"set at most one of input, input_path and input_transformer (got {', '.join(given)})"
            )
        transformer = self.input_transformer
        if transformer is not None:
            unknown = sorted(set(transformer) - {"InputPathsMap", "InputTemplate"})
            if unknown or not isinstance(transformer.get("InputTemplate"), str):
                raise ValueError(
                    "input_transformer takes InputPathsMap (name: JSONPath) and InputTemplate (text)"
                    + (f"; unknown: {', '.join(unknown)}" if unknown else "")
                )
        return self


class RuleSpec(Spec):
    """An event rule (``event_pattern``) or a schedule (``schedule``), never both."""

    event_pattern: dict[str, Any] | None = None
    schedule: str | None = None
    timezone: str | None = None
    """The IANA time zone a ``cron(...)`` schedule is read in (default UTC)."""
    targets: list[RuleTarget] = Field(default_factory=list)
    """What a match or a fire starts; a rule without targets does nothing (EventBridge
    allows one, so PutRule can come before PutTargets)."""
    enabled: bool = True
    description: str | None = None
    start_date: datetime | None = None
    """A schedule fires at or after this instant only (EventBridge Scheduler's StartDate)."""
    end_date: datetime | None = None
    """A schedule fires at or before this instant only (EndDate)."""
    action_after_completion: Literal["NONE", "DELETE"] = "NONE"
    """DELETE: remove the schedule once it can fire no more (after an ``at(...)`` fire,
    or past its end date), as EventBridge Scheduler's ActionAfterCompletion."""

    @field_validator("start_date", "end_date")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("give the time zone, e.g. 2027-01-31T08:00:00Z")
        return value

    @field_validator("event_pattern")
    @classmethod
    def _non_empty(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and not value:
            raise ValueError("an empty pattern matches nothing; name at least one field")
        return value

    @field_validator("schedule")
    @classmethod
    def _schedule_syntax(cls, value: str | None) -> str | None:
        if value is None:
            return value
        text = value.strip()
        if match := re.fullmatch(r"cron\((.*)\)", text):
            if len(match.group(1).split()) != 6:
                raise ValueError(
                    "cron(...) takes 6 fields: minutes hours day-of-month month day-of-week year"
                )
        elif match := re.fullmatch(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)", text):
            if int(match.group(1)) < 1:
                raise ValueError("rate(...) needs a positive value")
        elif not re.fullmatch(r"at\(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\)", text):
            raise ValueError(
                "expected cron(minutes hours day-of-month month day-of-week year), rate(N units)"
                " or at(yyyy-mm-ddThh:mm:ss)"
            )
        return text

    @model_validator(mode="after")
    def _one_trigger(self) -> Self:
        if (self.event_pattern is None) == (self.schedule is None):
            raise ValueError("set exactly one of event_pattern and schedule")
        if self.schedule is not None:
            from conveyor.events.schedules import Schedule  # the whole language: days, zones

            try:
                Schedule.parse(self.schedule, self.timezone or "UTC")
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        timed = self.start_date, self.end_date, self.action_after_completion != "NONE"
        if self.schedule is None and any(timed):
            raise ValueError("start_date, end_date and action_after_completion are for schedules")
        if self.start_date and self.end_date and self.end_date <= self.start_date:
            raise ValueError("end_date must come after start_date")
        return self


class LakeTableSpec(Spec):
    """A row of the curation job's controller table."""

    active: bool = True
    primary_key: list[str] = Field(default_factory=list)
    partition_key: list[str] = Field(default_factory=list)
    endpoint: str | None = None
    """The lake endpoint holding the table's raw files; needed only when the stack has several."""

    @field_validator("primary_key", "partition_key", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value


class Stack(Spec):
    """Everything one stack file declares, plus where it lives."""

    base_dir: Path
    """The stack file's folder: ``${file:...}`` references resolve against it."""
    file: Path | None = None
    endpoints: dict[Name, EndpointSpec] = Field(default_factory=dict)
    tasks: dict[Name, TaskSpec] = Field(default_factory=dict)
    state_machines: dict[Name, StateMachineSpec] = Field(default_factory=dict)
    rules: dict[Name, RuleSpec] = Field(default_factory=dict)
    lake_tables: dict[TableName, LakeTableSpec] = Field(default_factory=dict)
    functions: dict[Name, FunctionSpec] = Field(default_factory=dict)
    warnings: tuple[str, ...] = Field(default=(), exclude=True)
    """Advice from loading (plain-text secrets); not stored."""

    @model_validator(mode="after")
    def _references_resolve(self) -> Self:
        problems = cross_reference_problems(
            self.endpoints, self.tasks, self.state_machines, self.rules, self.lake_tables
        )
        if problems:
            raise located(problems)
        return self

    def to_store_dict(self) -> dict[str, Any]:
        """JSON for the metadata store: references, never resolved secrets."""
        return self.model_dump(mode="json")

    @classmethod
    def from_store_dict(cls, data: Mapping[str, Any], origin: str = "metadata store") -> Stack:
        try:
            return cls.model_validate(data, context={"base_dir": data.get("base_dir")})
        except ValidationError as exc:
            raise ConfigError(format_problems(origin, problems_from_validation_error(exc, cls))) from None

    def endpoint_config(self, name: str) -> EndpointConfig:
        """The named endpoint with its secrets resolved."""
        spec = self.endpoints.get(name)
        if spec is None:
            raise NotFoundError(f"no endpoint named {name!r}" + did_you_mean(name, self.endpoints))
        return spec.to_config(name, self.base_dir)


def cross_reference_problems(
    endpoints: Mapping[str, EndpointSpec | None],
    tasks: Mapping[str, TaskSpec],
    state_machines: Collection[str],
    rules: Mapping[str, RuleSpec],
    lake_tables: Mapping[str, LakeTableSpec],
) -> list[Problem]:
    """Names that point nowhere or at the wrong kind of endpoint. An endpoint
    mapped to None was declared but is invalid: it counts as existing."""
    problems: list[Problem] = []
    for name, task in tasks.items():
        for role, engines in (("source", SOURCE_ENGINES), ("target", TARGET_ENGINES)):
            ref = task.source if role == "source" else task.target
            if ref not in endpoints:
                problems.append((f"tasks.{name}.{role}", _unknown("endpoint", ref, endpoints)))
            elif (spec := endpoints[ref]) is not None and spec.engine not in engines:
                problems.append(
                    (
                        f"tasks.{name}.{role}",
                        f"endpoint {ref!r} is a {spec.engine} endpoint, which cannot be a {role}"
                        f" ({role} engines: {', '.join(sorted(engines))})",
                    )
                )
        target_spec = endpoints.get(task.target)
        if target_spec is not None:
            settings = task.task_settings().control_tables_settings
            problems += [
                (f"tasks.{name}.settings.{key}", why)
                for key, why in target_problems(settings, target_spec.engine)
            ]
        if target_spec is not None and target_spec.engine in TARGET_ENGINES - CONFLICT_ENGINES:
            errors = task.task_settings().error_behavior
            if errors.judges_apply_conflicts:
                problems.append(
                    (f"tasks.{name}.settings", apply_conflicts_refusal(errors, target_spec.engine))
                )
    for name, rule in rules.items():
        for index, target in enumerate(rule.targets):
            if target.state_machine not in state_machines:
                problems.append(
                    (
                        f"rules.{name}.targets.{index}.state_machine",
                        _unknown("state machine", target.state_machine, state_machines),
                    )
                )
    lakes = [name for name, spec in endpoints.items() if spec is not None and spec.engine == "lake"]
    for table, table_spec in lake_tables.items():
        lake_ref = table_spec.endpoint
        if lake_ref is None:
            continue
        if lake_ref not in endpoints:
            problems.append((f"lake_tables.{table}.endpoint", _unknown("endpoint", lake_ref, endpoints)))
        elif (lake := endpoints[lake_ref]) is not None and lake.engine != "lake":
            listing = ", ".join(sorted(lakes)) or "none"
            problems.append(
                (
                    f"lake_tables.{table}.endpoint",
                    f"endpoint {lake_ref!r} is a {lake.engine} endpoint, not a lake (lakes: {listing})",
                )
            )
    return problems


def _unknown(kind: str, name: str, declared: Collection[str]) -> str:
    if not declared:
        return f"unknown {kind} {name!r} (the stack declares no {kind}s)"
    return f"unknown {kind} {name!r} (declared: {', '.join(sorted(declared))})" + did_you_mean(name, declared)
