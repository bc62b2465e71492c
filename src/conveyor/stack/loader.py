"""Read a stack file: YAML in, a validated ``Stack`` out, or one ConfigError
listing every problem as ``"<file>: <key.path>: <problem>"``.

Order of work: parse the YAML (duplicate keys are errors, with their line),
check the top-level keys, read ``file://`` documents, validate each entry on
its own so one bad endpoint does not hide the next, then check that names
point at declared objects of the right kind.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from conveyor.core.errors import ConfigError
from conveyor.core.json_text import load_json
from conveyor.core.names import did_you_mean
from conveyor.core.problems import format_problems, problems_from_validation_error
from conveyor.stack.endpoints_spec import EndpointSpec
from conveyor.stack.model import (
    NAME_PATTERN,
    TABLE_PATTERN,
    FunctionSpec,
    LakeTableSpec,
    RuleSpec,
    RuleTarget,
    Stack,
    StateMachineSpec,
    TaskSpec,
    cross_reference_problems,
)

SECTIONS: dict[str, type[BaseModel]] = {
    "endpoints": EndpointSpec,
    "tasks": TaskSpec,
    "state_machines": StateMachineSpec,
    "rules": RuleSpec,
    "lake_tables": LakeTableSpec,
    "functions": FunctionSpec,
}
"""The top-level keys of a stack file, in the order they are checked."""

DOCUMENT_KEYS: dict[str, tuple[str, ...]] = {
    "endpoints": ("settings",),
    "tasks": ("table_mappings", "settings"),
    "state_machines": ("definition",),
    "rules": ("event_pattern",),
}
"""Keys whose value is a JSON document: inline, a JSON string, or ``file://path.json``."""

FILE_PREFIX = "file://"


def load_stack(path: Path) -> Stack:
    """Load and validate the stack file at ``path``. Relative paths in it (and
    ``file://`` documents and ``${file:...}`` secrets) are relative to its folder.
    The returned stack's ``warnings`` hold advice such as plain-text passwords."""
    path = Path(path)
    shown = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{shown}: no such stack file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{shown}: not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"{shown}: cannot read the stack file: {exc.strerror}") from None
    from conveyor.stack.yaml_text import parse_yaml  # PyYAML: only a command that reads a file

    doc = parse_yaml(text, shown)
    return _Reader(path, shown).read(doc)


def _sketch(section: str, body: Any) -> BaseModel | None:
    """The names an invalid entry refers to, so its references are still checked."""
    if not isinstance(body, dict):
        return None
    if section == "tasks" and isinstance(body.get("source"), str) and isinstance(body.get("target"), str):
        return TaskSpec.model_construct(source=body["source"], target=body["target"])
    if section == "rules" and isinstance(body.get("targets"), list):
        targets = [
            RuleTarget.model_construct(state_machine=target["state_machine"])
            for target in body["targets"]
            if isinstance(target, dict) and isinstance(target.get("state_machine"), str)
        ]
        return RuleSpec.model_construct(targets=targets)
    if section == "lake_tables" and isinstance(body.get("endpoint"), str):
        return LakeTableSpec.model_construct(endpoint=body["endpoint"])
    return None


class _Reader:
    """Collects every problem of one stack file before raising."""

    def __init__(self, path: Path, shown: str) -> None:
        self.shown = shown
        self.base_dir = Path(os.path.normpath(path.absolute().parent))
        self.shown_dir = path.parent
        self.file = Path(os.path.normpath(path.absolute()))
        self.lines: list[str] = []
        self.notes: list[str] = []

    def problem(self, key_path: str, text: str) -> None:
        self.lines.append(f"{self.shown}: {key_path}: {text}" if key_path else f"{self.shown}: {text}")

    def read(self, doc: Any) -> Stack:
        if doc is None:
            doc = {}
        if not isinstance(doc, dict):
            expected = ", ".join(SECTIONS)
            raise ConfigError(f"{self.shown}: the top level must be a mapping with the keys {expected}")
        for key in doc:
            if key not in SECTIONS:
                self.problem(
                    str(key),
                    f"unknown top-level key (expected: {', '.join(SECTIONS)})"
                    + did_you_mean(str(key), SECTIONS),
                )
        valid: dict[str, dict[str, Any]] = {section: {} for section in SECTIONS}
        declared: dict[str, set[str]] = {section: set() for section in SECTIONS}
        checked: dict[str, dict[str, Any]] = {section: {} for section in SECTIONS}
        for section, model in SECTIONS.items():
            entries = doc.get(section)
            if entries is None:
                continue
            if not isinstance(entries, dict):
                self.problem(section, "expected a mapping of names to definitions")
                continue
            for name, body in entries.items():
                if self._valid_name(section, name):
                    declared[section].add(name)
                    spec = self._entry(section, name, model, {} if body is None else body)
                    if spec is not None:
                        valid[section][name] = spec
                    elif (sketch := _sketch(section, body)) is not None:
                        checked[section][name] = sketch
        endpoints: dict[str, EndpointSpec | None] = dict.fromkeys(declared["endpoints"])
        endpoints.update(valid["endpoints"])
        for section, specs in valid.items():
            checked[section].update(specs)
        for key_path, text in cross_reference_problems(
            endpoints, checked["tasks"], declared["state_machines"], checked["rules"], checked["lake_tables"]
        ):
            self.problem(key_path, text)
        if self.lines:
            raise ConfigError("\n".join(self.lines))
        warnings = [
            f"{self.shown}: endpoints.{name}.{key_path}: {text}"
            for name, spec in valid["endpoints"].items()
            for key_path, text in spec.warnings()
        ] + self.notes
        data = {"base_dir": self.base_dir, "file": self.file, **valid, "warnings": tuple(warnings)}
        try:
            return Stack.model_validate(data)
        except ValidationError as exc:  # checked above; kept so nothing escapes unformatted
            problems = problems_from_validation_error(exc, Stack)
            raise ConfigError(format_problems(self.shown, problems)) from None

    def _valid_name(self, section: str, name: object) -> bool:
        where = f"{section}.{name}"
        if not isinstance(name, str):
            self.problem(where, "a name must be text (quote it)")
            return False
        if section == "lake_tables":
            if not re.fullmatch(TABLE_PATTERN, name):
                self.problem(where, "a lake table is named schema.table")
                return False
        elif not re.fullmatch(NAME_PATTERN, name):
            self.problem(
                where, "a name has only letters, digits, '.', '_' and '-', and starts with a letter or digit"
            )
            return False
        return True

    def _entry(self, section: str, name: str, model: type[BaseModel], body: Any) -> BaseModel | None:
        """The validated entry, or None after reporting its problems. A document
        that could not be read is reported once; the rest of the entry is still
        checked, and it stays in the cross-reference checks."""
        origins: dict[str, str] = {}
        unread: set[str] = set()
        if isinstance(body, dict):
            body = dict(body)
            for key in DOCUMENT_KEYS.get(section, ()):
                if key not in body:
                    continue
                document = self._document(body.pop(key), f"{section}.{name}.{key}")
                if document is None:
                    unread.add(key)
                    continue
                body[key], origin = document
                if origin is not None:
                    origins[key] = origin
        try:
            spec = model.model_validate(body, context={"base_dir": self.base_dir})
        except ValidationError as exc:
            for key_path, text in problems_from_validation_error(exc, model):
                key, _, inner = key_path.partition(".")
                if unread and (key in unread or not key_path):
                    continue  # a consequence of the unread document
                if key in origins:
                    where = f"{origins[key]}: {inner}" if inner else origins[key]
                    self.lines.append(f"{where}: {text} (referenced by {self.shown}: {section}.{name}.{key})")
                else:
                    self.problem(f"{section}.{name}.{key_path}" if key_path else f"{section}.{name}", text)
            return None
        return spec

    def _document(self, value: Any, where: str) -> tuple[Any, str | None] | None:
        """``(document, the file it came from or None)``, or None after reporting a problem."""
        if not isinstance(value, str):
            return value, None
        if value.startswith(FILE_PREFIX):
            return self._read_json_file(value, where)
        if value.lstrip().startswith(("{", "[")):
            try:
                return json.loads(value), None
            except json.JSONDecodeError as exc:
                self.problem(where, f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}")
                return None
        self.problem(where, "expected a JSON object, written inline or as file://path.json")
        return None

    def _read_json_file(self, value: str, where: str) -> tuple[Any, str] | None:
        relative = value.removeprefix(FILE_PREFIX)
        if not relative:
            self.problem(where, "file:// needs a path, such as file://mappings.json")
            return None
        written = Path(relative).expanduser()
        location = written if written.is_absolute() else self.base_dir / written
        shown = str(written if written.is_absolute() else self.shown_dir / written)
        try:
            text = location.read_text(encoding="utf-8")
        except FileNotFoundError:
            self.problem(where, f"{value}: file {shown} does not exist")
            return None
        except UnicodeDecodeError:
            self.problem(where, f"{value}: file {shown} is not UTF-8 text")
            return None
        except OSError as exc:
            self.problem(where, f"{value}: cannot read {shown}: {exc.strerror}")
            return None
        if where.startswith("state_machines.") and where.endswith(".definition"):
            # ASL definitions copied from documentation often carry typographic
            # quotes; load_json repairs exactly those, with a warning.
            try:
                document, notes = load_json(text, f"{where} ({shown})")
            except ConfigError as exc:
                self.problem(where, str(exc))
                return None
            self.notes.extend(f"{self.shown}: {note}" for note in notes)
            return document, shown
        try:
            return json.loads(text), shown
        except json.JSONDecodeError as exc:
            self.problem(
                where, f"{value}: invalid JSON in {shown} at line {exc.lineno}, column {exc.colno}: {exc.msg}"
            )
            return None
