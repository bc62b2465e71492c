"""The CLI imports only the modules of the command a command line names
(``cli/app.py``'s ``COMMAND_MODULES``): the table must name every command, and
each command must work when only its modules are imported."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conveyor.cli.app import COMMAND_MODULES, command_named

TREE = """
import json, sys
import typer
from conveyor.cli.app import app, register_commands

register_commands(sys.argv[1] if len(sys.argv) > 1 else None)

def tree(command):
    if hasattr(command, "commands"):  # a group (typer vendors click: no isinstance)
        return {name: tree(sub) for name, sub in command.commands.items()}
    return None

print(json.dumps(tree(typer.main.get_command(app))))
"""


def command_tree(command: str | None) -> dict[str, Any]:
    """The command tree a fresh interpreter registers for ``command`` (None: all)."""
    ran = subprocess.run(
        [sys.executable, "-c", TREE, *([command] if command else [])],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return json.loads(ran.stdout)  # type: ignore[no-any-return]


def test_each_command_gets_its_whole_tree_from_its_modules() -> None:
    whole = command_tree(None)
    assert sorted(whole) == sorted(COMMAND_MODULES)
    for command in COMMAND_MODULES:
        assert command_tree(command)[command] == whole[command], command


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["tasks", "start", "x"], "tasks"),
        (["--log-format", "json", "serve"], "serve"),
        (["--json"], None),
        (["--help"], None),
        (["no-such-noun"], "no-such-noun"),
    ],
)
def test_the_command_a_line_names(argv: list[str], command: str | None) -> None:
    assert command_named(argv) == command


@pytest.mark.parametrize("command", sorted(COMMAND_MODULES))
def test_each_command_stands_on_its_own_modules(command: str) -> None:
    """A fresh interpreter, as the user runs it: the command's help is there."""
    ran = subprocess.run(
        [sys.executable, "-m", "conveyor", command, "--help"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 0, ran.stderr
    assert "Usage:" in ran.stdout


def test_an_unknown_command_is_refused_with_the_known_ones_loaded() -> None:
    ran = subprocess.run(
        [sys.executable, "-m", "conveyor", "taks"], check=False, capture_output=True, text=True, timeout=60
    )
    assert ran.returncode == 2
    assert "No such command 'taks'" in ran.stderr


def test_a_bad_environment_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    env = os.environ | {"CONVEYOR_HOME": str(tmp_path), "CONVEYOR_AWS_ACCOUNT_ID": "abc"}
    ran = subprocess.run(
        [sys.executable, "-m", "conveyor", "tasks", "list"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert ran.returncode == 2
    assert "error: CONVEYOR_AWS_ACCOUNT_ID='abc': an account id is 12 digits" in ran.stderr
    assert "Traceback" not in ran.stderr
