"""The applied stack written back as a stack file (``conveyor stack export``).

What is stored is what ``conveyor apply`` of this file stores again: every
``file://`` document inline, paths absolute, secret references as written (never
their values), entries created through the AWS APIs included. Keys left at their
default (None) are omitted; JSON documents (mappings, settings, definitions) are
written whole.
"""

from __future__ import annotations

from typing import Any

import yaml

from conveyor.stack.loader import SECTIONS
from conveyor.stack.model import Stack

HEADER = "# The applied stack, exported by `conveyor stack export`; `conveyor apply` takes it back.\n"


def _entry(body: dict[str, Any]) -> dict[str, Any]:
    kept = {k: v for k, v in body.items() if v is not None}
    if isinstance(kept.get("targets"), list):
        kept["targets"] = [_entry(t) if isinstance(t, dict) else t for t in kept["targets"]]
    return kept


def export_document(stack: Stack) -> dict[str, Any]:
    document = stack.to_store_dict()
    return {
        section: {name: _entry(body) for name, body in sorted((document.get(section) or {}).items())}
        for section in SECTIONS
        if document.get(section)
    }


def export_yaml(stack: Stack) -> str:
    return HEADER + yaml.safe_dump(export_document(stack), sort_keys=False, allow_unicode=True, width=100)
