"""Reading JSON that people pasted: documents copied from web pages often carry
typographic quotes where JSON needs straight ones; those (and only those) are
repaired, with a note saying where."""

from __future__ import annotations

import json
import re
from typing import Any

from conveyor.core.errors import ConfigError

_QUOTE_FIX_AFTER = re.compile(r"[\u201c\u201d](?=\s*[,:}\]\n])")
_QUOTE_FIX_BEFORE = re.compile(r"([:,{\[]\s*)[\u201c\u201d]")


def load_json(text: str, what: str = "definition") -> tuple[Any, list[str]]:
    """Parse JSON; typographic quotes used as JSON quotes (a copy-paste artefact) are
    repaired with a warning, anything else is a ConfigError with line and column."""
    try:
        return json.loads(text), []
    except json.JSONDecodeError as exc:
        first = exc
    repaired = _QUOTE_FIX_BEFORE.sub(r'\1"', _QUOTE_FIX_AFTER.sub('"', text))
    if repaired != text:
        try:
            data = json.loads(repaired)
        except json.JSONDecodeError:
            pass
        else:
            lines = [
                f"line {text.count(chr(10), 0, m.start()) + 1}"
                for m in re.finditer(r"[\u201c\u201d]", text)
                if repaired[m.start()] == '"'
            ]
            return data, [f"{what}: typographic quote read as '\"' at {', '.join(lines)}"]
    raise ConfigError(f"{what}: not valid JSON at line {first.lineno} column {first.colno}: {first.msg}")
