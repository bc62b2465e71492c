"""The typed result of reading an ASL definition: the state machine, its states,
and each state's retriers and catchers (:mod:`definition` reads them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from conveyor.orchestration.asl.choice import Rule


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
    result_writer: dict[str, Any] | None = None
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
