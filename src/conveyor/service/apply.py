"""``Conveyor.apply``: merge what a stack file declares into the applied stack.

Moved here from the CLI so every adapter applies the same way: the file's entries
are added to what is applied (each reported created, updated or unchanged), the
merged whole must still be consistent, and a running task's source, target,
migration type or mappings are not changed under it unless forced."""

from __future__ import annotations

from collections.abc import Callable

from conveyor.core.errors import ConfigError, ConveyorError
from conveyor.events.lifecycle import CREATED, MODIFIED, task_event
from conveyor.orchestration.bus import event_sink
from conveyor.replication.task_states import ACTIVE_STATUSES
from conveyor.replication.worker import reap_stale
from conveyor.service.models import ApplyResult, StackSummary
from conveyor.stack.loader import SECTIONS as STACK_SECTIONS
from conveyor.stack.model import Stack
from conveyor.store.store import Store

SECTIONS = tuple(STACK_SECTIONS)
GUARDED_TASK_KEYS = ("source", "target", "migration_type", "table_mappings")


def summarize(stack: Stack) -> StackSummary:
    """What a stack file declares, secrets shown only as their references."""
    return StackSummary(
        file=str(stack.file) if stack.file else None,
        endpoints={name: spec.redacted() for name, spec in stack.endpoints.items()},
        tasks={
            name: {
                "source": t.source,
                "target": t.target,
                "migration_type": t.migration_type,
                "settings_not_acted_on": t.settings_review().as_dict(),
            }
            for name, t in stack.tasks.items()
        },
        state_machines=sorted(stack.state_machines),
        rules=sorted(stack.rules),
        functions={name: f.handler for name, f in sorted(stack.functions.items())},
        lake_tables=sorted(stack.lake_tables),
        warnings=list(stack.warnings),
    )


def settings_notices(stack: Stack) -> list[str]:
    """One line per task and kind naming the task-settings keys written that
    Conveyor does not act on: cloud-only ones, and those not acted on yet."""
    shown = str(stack.file) if stack.file else "stack"
    return [
        f"{shown}: tasks.{name}.settings: {line}"
        for name, task in stack.tasks.items()
        for line in task.settings_review().notices()
    ]


def applied_stack(store: Store) -> Stack:
    document = store.stack_document()
    if document is None:
        raise ConveyorError("nothing is applied yet: run `conveyor apply conveyor.yaml` first")
    return Stack.from_store_dict(document)


def merge_into_store(store: Store, stack: Stack) -> list[str]:
    """Add the file's entries to what is applied; report each as created, updated or unchanged."""
    new = stack.to_store_dict()
    merged = store.stack_document() or {}
    lines = []
    for section in SECTIONS:
        have = dict(merged.get(section) or {})
        for name, body in (new.get(section) or {}).items():
            change = "unchanged" if have.get(name) == body else ("updated" if name in have else "created")
            lines.append(f"{change}: {section}.{name}")
            have[name] = body
        merged[section] = have
    merged["base_dir"], merged["file"] = new["base_dir"], new["file"]
    Stack.from_store_dict(merged)  # the merged whole must still be consistent
    store.put_stack_document(merged)
    for name in new.get("tasks") or {}:
        store.ensure_task(name)
    return lines


def announce_task_changes(store: Store, changes: list[str]) -> None:
    """The service's events for the tasks ``merge_into_store`` created or updated."""
    events = event_sink(store)
    for line in changes:
        change, _, entry = line.partition(": ")
        section, _, name = entry.partition(".")
        if section == "tasks" and change in {"created", "updated"}:
            events(task_event(CREATED if change == "created" else MODIFIED, name))


def running_task_changes(store: Store, stack: Stack) -> list[str]:
    """One line per task that runs now and whose source, target, migration type
    or table mappings the file would change under it: a worker keeps running
    the old ones, so the store would say one thing while the task does another."""
    applied = (store.stack_document() or {}).get("tasks") or {}
    lines = []
    for name, body in (stack.to_store_dict().get("tasks") or {}).items():
        before = applied.get(name)
        changed = [
            key for key in GUARDED_TASK_KEYS if before is not None and before.get(key) != body.get(key)
        ]
        if not changed:
            continue
        status = reap_stale(store, name, event_sink(store))["status"]
        if status in ACTIVE_STATUSES:
            lines.append(
                f"tasks.{name}: the task is {status} and the file changes its {', '.join(changed)}: "
                f"stop it first (`conveyor tasks stop {name}`), or apply with --force"
            )
    return lines


def apply_stack(
    opened: Callable[[], Store], stack: Stack, *, dry_run: bool, strict: bool, force: bool
) -> ApplyResult:
    """Check ``stack`` and, unless ``dry_run``, merge it into the store."""
    notices = settings_notices(stack)
    if strict and notices:
        raise ConfigError("\n".join(f"{line} (--strict: remove the keys)" for line in notices))
    from conveyor.orchestration.executions import validate_definitions  # ASL: only to apply

    definition_warnings = validate_definitions(stack)
    changes: list[str] = []
    if not dry_run:
        store = opened()  # only now: a refused file leaves no store behind
        refused = [] if force else running_task_changes(store, stack)
        if refused:
            raise ConfigError("\n".join(refused))
        changes = merge_into_store(store, stack)
        announce_task_changes(store, changes)
    return ApplyResult(
        summary=summarize(stack),
        changes=changes,
        definition_warnings=definition_warnings,
        notices=notices,
        dry_run=dry_run,
    )
