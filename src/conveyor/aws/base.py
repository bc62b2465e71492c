"""What every AWS service module shares: the service's description (its target
prefix, content type and error names) and the errors an operation raises."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from conveyor.core.errors import ConfigError
from conveyor.orchestration.service import Service

Operation = Callable[[Service, dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Paging:
    """How one list operation pages (aws/paging.py)."""

    items: str
    """The answer's list member."""
    limit: str
    """The request member with the page size."""
    token: str
    """The request and answer member with the next page's token."""
    maximum: int = 100
    minimum: int = 1
    default: int = 100
    zero_is_default: bool = False
    """Step Functions: ``maxResults`` 0 means the default."""
    passes_limit: bool = False
    """The operation reads ``limit`` itself (a store query): it is asked for
    enough items to fill the page and know whether another follows."""
    invalid_token: str | None = None
    """The service's error for a bad token (default: its validation error)."""


@dataclass(frozen=True)
class AwsService:
    """One service: its target prefix, the content type it answers with, and how
    Conveyor's errors are named in it."""

    name: str
    content_type: str
    not_found: str
    invalid: str
    wrong_state: str
    operations: dict[str, Operation]
    exists: str = "ResourceAlreadyExistsFault"
    refused: dict[str, str] = field(default_factory=dict)
    """Operations of the service Conveyor refuses, with why (answered as ``invalid``)."""
    paging: dict[str, Paging] = field(default_factory=dict)
    """The list operations Conveyor pages, by operation."""


class AwsError(Exception):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def required(p: dict[str, Any], key: str) -> str:
    value = p.get(key)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{key} is required")
    return value


def json_member(p: dict[str, Any], key: str) -> Any:
    """A member that carries a JSON document as a string (TableMappings, definition ...)."""
    import json

    value = p.get(key)
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{key} is not JSON: {exc}") from None
