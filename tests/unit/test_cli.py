"""The CLI as a user meets it: exit codes and messages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conveyor", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def write_stack(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "conveyor.yaml"
    path.write_text(text)
    return path


def test_apply_dry_run_lists_what_the_stack_declares(tmp_path: Path) -> None:
    stack = write_stack(
        tmp_path,
        "endpoints:\n"
        "  src: {engine: sqlite, path: ./a.sqlite}\n"
        "  dw: {engine: postgres, url: 'postgresql://etl@127.0.0.1:5/dw', password: '${env:DW_PASSWORD}'}\n"
        "tasks:\n  load: {source: src, target: dw}\n",
    )
    result = run("apply", str(stack), "--dry-run", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    not_acted_on = {"cloud_only": [], "not_acted_on_yet": []}
    assert summary["tasks"] == {
        "load": {
            "source": "src",
            "target": "dw",
            "migration_type": "full-load",
            "settings_not_acted_on": not_acted_on,
        }
    }
    assert summary["endpoints"]["dw"]["password"] == "${env:DW_PASSWORD}"
    assert summary["endpoints"]["src"]["path"] == str(tmp_path / "a.sqlite")


def test_malformed_stack_exits_2_naming_file_and_key(tmp_path: Path) -> None:
    stack = write_stack(tmp_path, "endpoints:\n  src: {engine: oracle, url: 'x://y'}\n")
    result = run("apply", str(stack), "--dry-run")
    assert result.returncode == 2
    assert "conveyor.yaml" in result.stderr
    assert "endpoints.src.engine" in result.stderr
    assert "oracle" in result.stderr


def test_plain_password_in_url_never_printed(tmp_path: Path) -> None:
    stack = write_stack(
        tmp_path,
        "endpoints:\n  dw: {engine: postgres, url: 'postgresql://etl:hunter2-secret@127.0.0.1/dw'}\n",
    )
    result = run("apply", str(stack), "--dry-run", "--json")
    assert result.returncode == 2
    assert "hunter2-secret" not in result.stderr + result.stdout


def test_apply_stores_and_reports_each_change(tmp_path: Path) -> None:
    stack = write_stack(tmp_path, "endpoints:\n  src: {engine: sqlite, path: ./a.sqlite}\n")
    env = os.environ | {"CONVEYOR_HOME": str(tmp_path / "home")}
    first = run("apply", str(stack), env=env)
    assert first.returncode == 0, first.stderr
    assert "created: endpoints.src" in first.stdout
    stack.write_text("endpoints:\n  src: {engine: sqlite, path: ./b.sqlite}\n")
    assert "updated: endpoints.src" in run("apply", str(stack), env=env).stdout
    assert "unchanged: endpoints.src" in run("apply", str(stack), env=env).stdout


def test_unknown_command_is_a_usage_error() -> None:
    result = run("bogus")
    assert result.returncode == 2
    assert "No such command" in result.stderr


def test_unknown_task_resource_in_a_state_machine_is_refused_at_apply(tmp_path: Path) -> None:
    definition = {
        "StartAt": "Call",
        "States": {"Call": {"Type": "Task", "Resource": "arn:aws:states:::nosuch:service", "End": True}},
    }
    stack = tmp_path / "conveyor.yaml"
    stack.write_text(json.dumps({"state_machines": {"flow": {"definition": definition}}}))
    result = run("apply", str(stack), "--dry-run")
    assert result.returncode == 2
    assert (
        "state_machines.flow.definition" in result.stderr
        and "arn:aws:states:::nosuch:service" in result.stderr
    )


def test_settings_conveyor_does_not_act_on_are_shown_and_strict_refuses_them(tmp_path: Path) -> None:
    stack = write_stack(
        tmp_path,
        "endpoints:\n"
        "  src: {engine: sqlite, path: ./a.sqlite}\n"
        "  dw: {engine: duckdb, path: ./dw.duckdb}\n"
        "tasks:\n"
        "  load:\n"
        "    source: src\n"
        "    target: dw\n"
        "    settings:\n"
        "      Logging: {EnableLogging: true, CloudWatchLogGroup: g}\n"
        "      ErrorBehavior: {EventErrorPolicy: IGNORE, TableErrorPolicy: STOP_TASK}\n",
    )
    env = os.environ | {"CONVEYOR_HOME": str(tmp_path / "home")}
    strict = run("apply", str(stack), "--strict", env=env)
    assert strict.returncode == 2
    refused = " ".join(strict.stderr.split())
    assert (
        "tasks.load.settings: cloud-only, no meaning here: Logging.EnableLogging, Logging.CloudWatchLogGroup"
        in refused
    )
    assert "tasks.load.settings: not acted on yet: ErrorBehavior.EventErrorPolicy" in refused
    assert not (tmp_path / "home").exists()  # nothing applied
    applied = run("apply", str(stack), env=env)
    assert applied.returncode == 0, applied.stderr
    notices = [line for line in applied.stderr.splitlines() if line.startswith("notice:")]
    assert len(notices) == 2  # once per kind, for the one task
    described = run("tasks", "describe", "load", "--json", env=env)
    assert described.returncode == 0, described.stderr
    assert json.loads(described.stdout)["settings_not_acted_on"] == {
        "cloud_only": ["Logging.EnableLogging", "Logging.CloudWatchLogGroup"],
        "not_acted_on_yet": ["ErrorBehavior.EventErrorPolicy"],
    }
    shown = run("tasks", "describe", "load", env=env | {"COLUMNS": "300"})
    assert "settings not acted on yet: ErrorBehavior.EventErrorPolicy" in shown.stdout
