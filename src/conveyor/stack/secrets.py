"""Secret references: ``${env:NAME}`` and ``${file:PATH}``.

A stack file names where a secret lives, never the secret itself. The
reference is what the models keep, what the metadata store holds and what
output shows; ``resolve`` turns it into the value only when a connector is
about to connect. A value may be a reference or contain several
(``postgresql://app@${env:DB_HOST}/sales``). Messages name the reference,
never a value.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from conveyor.core.errors import ConfigError

REFERENCE = re.compile(r"\$\{(env|file):([^{}]*)\}")
"""One well-formed reference; group 1 is the kind, group 2 the name or path."""

_OPENING = re.compile(r"\$\{")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

REFERENCE_HINT = "${env:NAME} or ${file:PATH}"

SECRET_KEY = re.compile(r"password|secret|token|credential", re.IGNORECASE)
"""Keys (in endpoint ``settings``) whose plain values are redacted and warned about."""


def is_reference(value: object) -> bool:
    """True when the whole value is exactly one reference."""
    return isinstance(value, str) and REFERENCE.fullmatch(value) is not None


def has_reference(value: object) -> bool:
    """True when the value contains at least one reference."""
    return isinstance(value, str) and REFERENCE.search(value) is not None


def reference_problems(value: str) -> list[str]:
    """What is malformed about the references in ``value`` (empty when fine).
    Messages quote well-formed references only; a malformed one may be part of
    a plain secret, so it is described, not shown."""
    problems: list[str] = []
    well_formed = {match.start(): match for match in REFERENCE.finditer(value)}
    for opening in _OPENING.finditer(value):
        match = well_formed.get(opening.start())
        if match is None:
            problems.append(f"'${{' starts a secret reference, but it is not {REFERENCE_HINT}")
            continue
        kind, name = match.group(1), match.group(2)
        if kind == "env" and not _ENV_NAME.fullmatch(name):
            problems.append(f"{match.group(0)}: not an environment variable name")
        elif kind == "file" and not name.strip():
            problems.append(f"{match.group(0)}: the file path is empty")
    return problems


def resolve(ref: str, base_dir: Path) -> str:
    """The value with every reference replaced by its secret. A ``${file:...}``
    path is relative to ``base_dir`` (the stack file's folder); the file's
    trailing newline is dropped. A value without references is returned as is.
    Raises ConfigError naming the reference when it cannot be resolved."""
    problems = reference_problems(ref)
    if problems:
        raise ConfigError(problems[0])
    return REFERENCE.sub(lambda match: _lookup(match.group(1), match.group(2), match.group(0), base_dir), ref)


def resolve_all(value: Any, base_dir: Path) -> Any:
    """``resolve`` applied to every string inside nested mappings and lists."""
    if isinstance(value, str):
        return resolve(value, base_dir) if "${" in value else value
    if isinstance(value, Mapping):
        return {key: resolve_all(item, base_dir) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [resolve_all(item, base_dir) for item in value]
    return value


def secret_file(path: str, base_dir: Path) -> Path:
    """Where a ``${file:PATH}`` reference points."""
    candidate = Path(path).expanduser()
    return candidate if candidate.is_absolute() else base_dir / candidate


def _lookup(kind: str, name: str, reference: str, base_dir: Path) -> str:
    if kind == "env":
        value = os.environ.get(name)
        if value is None:
            raise ConfigError(f"{reference}: environment variable {name} is not set")
        return value
    location = secret_file(name, base_dir)
    try:
        text = location.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{reference}: secret file {location} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"{reference}: {location} is a folder, not a secret file") from None
    except PermissionError:
        raise ConfigError(
            f"{reference}: secret file {location} is not readable (permission denied)"
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(f"{reference}: secret file {location} is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"{reference}: cannot read secret file {location}: {exc.strerror}") from None
    return text.rstrip("\r\n")


def split_password(url: str) -> tuple[str, str | None]:
    """``(url without its password, the password)``; the password is None
    when the URL carries none."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url, None
    userinfo, at, host = parts.netloc.rpartition("@")
    user, colon, password = userinfo.partition(":")
    if not at or not colon:
        return url, None
    return urlunsplit(parts._replace(netloc=f"{user}@{host}")), unquote(password)


def leaves(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """``(dotted key, leaf value)`` for every leaf of nested mappings and lists."""
    if isinstance(value, Mapping):
        return [pair for key, item in value.items() for pair in leaves(item, f"{prefix}{key}.")]
    if isinstance(value, list):
        return [pair for index, item in enumerate(value) for pair in leaves(item, f"{prefix}{index}.")]
    return [(prefix.rstrip("."), value)]


def nested_reference_problems(value: Any) -> list[tuple[str, str]]:
    """``reference_problems`` for every string inside nested mappings and lists."""
    return [
        (key, text)
        for key, leaf in leaves(value)
        if isinstance(leaf, str)
        for text in reference_problems(leaf)
    ]


def redact(value: Any, key: str = "") -> Any:
    """A copy with the plain values of secret-named keys replaced by ``***``."""
    if isinstance(value, Mapping):
        return {k: redact(item, str(k)) for k, item in value.items()}
    if isinstance(value, list):
        return [redact(item, key) for item in value]
    if isinstance(value, str) and SECRET_KEY.search(key) and not is_reference(value):
        return "***"
    return value
