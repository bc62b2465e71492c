"""The CLI imports only the modules of the command a command line names
(``cli/app.py``'s ``COMMAND_MODULES``): the table must name every command, and
each command must work when only its modules are imported."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from conveyor.cli.app import COMMAND_MODULES, app, command_named, register_commands


def test_the_table_names_every_command() -> None:
    register_commands(None)  # every module, as help does
    group = typer.main.get_command(app)
    assert sorted(group.commands) == sorted(COMMAND_MODULES)  # type: ignore[attr-defined]


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
