"""The `conveyor` command line: every command has ``--json`` for machines and
exits non-zero on failure (2 for invalid input)."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from conveyor import __version__
from conveyor.core.errors import ConfigError, ConveyorError
from conveyor.stack.loader import SECTIONS as STACK_SECTIONS
from conveyor.stack.loader import load_stack
from conveyor.stack.model import Stack
from conveyor.store.store import Store

SECTIONS = tuple(STACK_SECTIONS)

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Self-hosted database migration and replication."
)
_err = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"conveyor {__version__}")
        raise typer.Exit


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True)] = False,
    log_format: Annotated[
        str | None,
        typer.Option(
            "--log-format",
            help="text | json (one object per line); also CONVEYOR_LOG_FORMAT. Workers inherit it.",
        ),
    ] = None,
) -> None:
    """Conveyor: full load and change data capture into a warehouse and a lake."""
    from conveyor.core.log_format import choose_log_format, configure_logging

    try:
        if choose_log_format(log_format) == "json":
            configure_logging("json", logging.WARNING)  # serve and workers log from INFO
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def summarize(stack: Stack) -> dict[str, object]:
    """What a stack file declares, secrets shown only as their references."""
    return {
        "file": str(stack.file) if stack.file else None,
        "endpoints": {name: spec.redacted() for name, spec in stack.endpoints.items()},
        "tasks": {
            name: {
                "source": t.source,
                "target": t.target,
                "migration_type": t.migration_type,
                "settings_not_acted_on": t.settings_review().as_dict(),
            }
            for name, t in stack.tasks.items()
        },
        "state_machines": sorted(stack.state_machines),
        "rules": sorted(stack.rules),
        "functions": {name: f.handler for name, f in sorted(stack.functions.items())},
        "lake_tables": sorted(stack.lake_tables),
        "warnings": list(stack.warnings),
    }


def settings_notices(stack: Stack) -> list[str]:
    """One line per task and kind naming the task-settings keys written that
    Conveyor does not act on: cloud-only ones, and those not acted on yet."""
    shown = str(stack.file) if stack.file else "stack"
    return [
        f"{shown}: tasks.{name}.settings: {line}"
        for name, task in stack.tasks.items()
        for line in task.settings_review().notices()
    ]


@contextmanager
def opened_store() -> Iterator[Store]:
    store = Store.open()
    try:
        yield store
    finally:
        store.close()


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


GUARDED_TASK_KEYS = ("source", "target", "migration_type", "table_mappings")


def running_task_changes(store: Store, stack: Stack) -> list[str]:
    """One line per task that runs now and whose source, target, migration type
    or table mappings the file would change under it: a worker keeps running
    the old ones, so the store would say one thing while the task does another."""
    from conveyor.orchestration.bus import event_sink
    from conveyor.replication.task_run import ACTIVE_STATUSES
    from conveyor.replication.worker import reap_stale

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


@app.command()
def apply(
    file: Annotated[Path, typer.Argument(help="The stack file (conveyor.yaml).")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate and show; change nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="Refuse task-settings keys Conveyor does not act on.")
    ] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Change a running task's source, target, type or mappings all the same."
        ),
    ] = False,
) -> None:
    """Create or update what the stack file declares."""
    from conveyor.orchestration.executions import validate_definitions

    stack = load_stack(file)
    notices = settings_notices(stack)
    if strict and notices:
        raise ConfigError("\n".join(f"{line} (--strict: remove the keys)" for line in notices))
    definition_warnings = validate_definitions(stack)
    summary = summarize(stack)
    if as_json:
        typer.echo(json.dumps(summary, indent=2, sort_keys=True))
    else:
        for section in SECTIONS:
            names = summary[section]
            typer.echo(f"{section}: {', '.join(names) if names else '-'}")  # type: ignore[arg-type]
        for warning in [*stack.warnings, *definition_warnings]:
            _err.print(f"[yellow]warning:[/] {warning}", highlight=False)
        for notice in notices:
            _err.print(f"notice: {notice}", highlight=False, markup=False)
    if not dry_run:
        with opened_store() as store:
            refused = [] if force else running_task_changes(store, stack)
            if refused:
                raise ConfigError("\n".join(refused))
            changes = merge_into_store(store, stack)
        for line in changes:
            typer.echo(line, err=as_json)


def main() -> None:
    import conveyor.cli.lake
    import conveyor.cli.orchestration
    import conveyor.cli.stack
    import conveyor.cli.task_logs
    import conveyor.cli.tasks
    import conveyor.cli.validate
    import conveyor.cli.worker  # noqa: F401  (registers the nouns' commands)

    try:
        # Without standalone mode, click returns an Exit's code instead of exiting.
        code = app(standalone_mode=False)
    except ConveyorError as exc:
        _err.print(f"error: {exc}", highlight=False, markup=False)
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:
        # Usage errors (unknown command, bad option) carry their own message and
        # exit code; typer vendors click, so they are recognised by behaviour.
        show = getattr(exc, "show", None)
        if show is None:
            raise
        show()
        sys.exit(getattr(exc, "exit_code", 2))
    sys.exit(code if isinstance(code, int) else 0)
