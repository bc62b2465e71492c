"""The `conveyor` command line: every command has ``--json`` for machines and
exits non-zero on failure (2 for invalid input)."""

from __future__ import annotations

import json
import logging
import sys
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from conveyor import __version__
from conveyor.core.errors import ConfigError, ConveyorError

if TYPE_CHECKING:
    from rich.console import Console

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Self-hosted database migration and replication."
)


@cache
def console(stderr: bool = False) -> Console:
    """rich's console for stdout (or stderr), made on first use: a command that
    prints only JSON or plain lines does not import rich."""
    from rich.console import Console

    return Console(stderr=stderr)


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
    from conveyor.cli.output import opened_conveyor, print_json
    from conveyor.service.apply import SECTIONS

    with opened_conveyor() as conveyor:
        result = conveyor.apply(file, dry_run=dry_run, strict=strict, force=force)
    if as_json:
        print_json(result.summary)
    else:
        summary = result.summary
        for section in SECTIONS:
            names = getattr(summary, section)
            typer.echo(f"{section}: {', '.join(names) if names else '-'}")
        for warning in [*summary.warnings, *result.definition_warnings]:
            console(stderr=True).print(f"[yellow]warning:[/] {warning}", highlight=False)
        for notice in result.notices:
            console(stderr=True).print(f"notice: {notice}", highlight=False, markup=False)
    for line in result.changes:
        typer.echo(line, err=as_json)


# The modules that register each top-level command (the nouns and a few verbs).
# A command line imports only its command's modules, not every command's
# dependencies (serve's web stack, the lake's, the orchestration's): start-up
# is most of a short command's time. tests/unit/test_cli_registry.py keeps
# this table equal to what the modules register.
COMMAND_MODULES: dict[str, tuple[str, ...]] = {
    "apply": (),
    "tasks": ("tasks", "task_logs"),
    "endpoints": ("tasks",),
    "events": ("tasks", "orchestration"),  # `events put` is the bus's
    "lake": ("lake",),
    "query": ("lake",),
    "executions": ("orchestration",),
    "state-machines": ("orchestration",),
    "rules": ("orchestration",),
    "statements": ("orchestration",),
    "serve": ("orchestration",),
    "stack": ("stack",),
    "validate": ("validate",),
    "worker": ("worker",),
}
_OPTIONS_WITH_VALUES = frozenset({"--log-format"})


def command_named(argv: list[str]) -> str | None:
    """The top-level command a command line names (None: none, e.g. ``--help``)."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in _OPTIONS_WITH_VALUES:
            skip = True
        elif not arg.startswith("-"):
            return arg
    return None


def register_commands(command: str | None) -> None:
    """Import the modules that register ``command`` (every module for a command
    line that names none or an unknown one: help and suggestions list them all)."""
    import importlib

    modules = COMMAND_MODULES.get(command or "")
    if modules is None:
        modules = tuple(dict.fromkeys(m for ms in COMMAND_MODULES.values() for m in ms))
    for module in modules:
        importlib.import_module(f"conveyor.cli.{module}")


def main() -> None:
    try:
        # Inside the try: a module's import can refuse the environment
        # (CONVEYOR_AWS_ACCOUNT_ID ...), and that is an error, not a traceback.
        register_commands(command_named(sys.argv[1:]))
        # Without standalone mode, click returns an Exit's code instead of exiting.
        code = app(standalone_mode=False)
    except ConveyorError as exc:
        if "--json" in sys.argv[1:]:
            # Machines get the REST API's error shape, on stderr as text errors are.
            print(json.dumps({"error": str(exc)}, ensure_ascii=False), file=sys.stderr)
        else:
            console(stderr=True).print(f"error: {exc}", highlight=False, markup=False, soft_wrap=True)
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
