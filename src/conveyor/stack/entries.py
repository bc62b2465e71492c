"""Creating, replacing and deleting one entry of the applied stack, as the AWS
APIs' Create/Update/Delete operations do (a task, a state machine, a rule).

The stored stack document is changed as ``conveyor apply`` changes it: the entry's
body is the spec model's JSON (``model_dump(mode="json")``, what a stack file
declaring it would store), the whole stack is validated again before anything is
written, and a new task gets its status row. A later ``conveyor apply`` of a file
declaring the same name replaces the entry; ``conveyor stack export`` writes it out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from conveyor.core.errors import ConfigError, ConveyorError, NotFoundError
from conveyor.core.problems import format_problems, problems_from_validation_error
from conveyor.stack.loader import SECTIONS
from conveyor.stack.model import Stack

if TYPE_CHECKING:
    from conveyor.store.store import Store


class AlreadyExists(ConveyorError):
    """An entry of that name is declared already."""


def applied_document(store: Store) -> dict[str, Any]:
    document = store.stack_document()
    if document is None:
        raise ConveyorError("nothing is applied yet: run `conveyor apply conveyor.yaml` first")
    return document


def entry_body(section: str, name: str, body: Mapping[str, Any], base_dir: str | None) -> dict[str, Any]:
    """``body`` validated as the section's spec, as the store keeps it."""
    model: type[BaseModel] = SECTIONS[section]
    try:
        spec = model.model_validate(dict(body), context={"base_dir": base_dir})
    except ValidationError as exc:
        problems = problems_from_validation_error(exc, model)
        raise ConfigError(format_problems(f"{section}.{name}", problems)) from None
    return spec.model_dump(mode="json")


def put_entry(
    store: Store, section: str, name: str, body: Mapping[str, Any], *, create: bool | None = None
) -> Stack:
    """Store ``body`` as ``section.name``. ``create=True`` refuses a name declared
    already (AlreadyExists), ``create=False`` one not declared (NotFoundError),
    ``None`` takes either. Returns the stack as stored."""
    document = applied_document(store)
    entries = dict(document.get(section) or {})
    if create is True and name in entries:
        raise AlreadyExists(f"{section}.{name} exists already")
    if create is False and name not in entries:
        raise NotFoundError(f"no {section}.{name}: nothing of that name is applied")
    entries[name] = entry_body(section, name, body, document.get("base_dir"))
    updated = Stack.from_store_dict(document | {section: entries}, origin=f"{section}.{name}")
    store.put_stack_document(updated.to_store_dict())
    if section == "tasks":
        store.ensure_task(name)
    return updated


def delete_entry(store: Store, section: str, name: str, *, dry_run: bool = False) -> Stack:
    """Remove ``section.name``; refused (ConfigError) while other entries name it.
    ``dry_run``: only check it could be removed (the stack without it)."""
    document = applied_document(store)
    entries = dict(document.get(section) or {})
    if name not in entries:
        raise NotFoundError(f"no {section}.{name}: nothing of that name is applied")
    del entries[name]
    updated = Stack.from_store_dict(document | {section: entries}, origin=f"deleting {section}.{name}")
    if not dry_run:
        store.put_stack_document(updated.to_store_dict())
    return updated
