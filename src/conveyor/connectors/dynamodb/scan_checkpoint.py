"""Where a DynamoDB scan stands, per segment, kept on disk so a load resumes
(``resume_scan``), and the file names it is kept under (one per name)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_SAFE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}")


def file_name(name: str) -> str:
    """A file name for ``name``, one per name: the name itself where it is short and
    plain, else a plain prefix and a digest (names differing only in the characters
    replaced, or past the file system's 255 bytes, shared one file before)."""
    if _SAFE_NAME.fullmatch(name):
        return name
    plain = re.sub(r"[^A-Za-z0-9._-]", "_", name)[:64].lstrip(".")
    return f"{plain}-{hashlib.sha256(name.encode()).hexdigest()[:16]}"


@dataclass
class ScanCheckpoint:
    """Per segment: the key to continue after (None: from the start) and
    whether the segment is finished."""

    path: Path
    total_segments: int
    keys: dict[int, dict[str, Any] | None] = field(default_factory=dict)
    done: set[int] = field(default_factory=set)
    durable: bool = False
    """Written to ``path`` as the scan goes (``resume_scan``). Otherwise nothing
    ever reads it back, and tasks reading the same endpoint's table at once
    would race on one file (a task failed with FileNotFoundError)."""

    @classmethod
    def load(cls, path: Path, total_segments: int, resume: bool) -> ScanCheckpoint:
        fresh = cls(path, total_segments, durable=resume)
        if not resume or not path.is_file():
            return fresh
        data = json.loads(path.read_text())
        if data.get("total_segments") != total_segments:
            return fresh
        for name, state in data.get("segments", {}).items():
            fresh.keys[int(name)] = _decode_key(state.get("last_key"))
            if state.get("done"):
                fresh.done.add(int(name))
        return fresh

    def advance(self, segment: int, last_key: dict[str, Any] | None) -> None:
        self.keys[segment] = last_key
        if last_key is None:
            self.done.add(segment)
        self.save()

    def save(self) -> None:
        if not self.durable:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        segments = {
            str(s): {"last_key": _encode_key(self.keys.get(s)), "done": s in self.done}
            for s in range(self.total_segments)
        }
        tmp = self.path.with_name(f".{os.getpid()}-{threading.get_ident()}.tmp")  # one per writer
        tmp.write_text(json.dumps({"total_segments": self.total_segments, "segments": segments}, indent=1))
        os.replace(tmp, self.path)

    def remove(self) -> None:
        if self.durable:
            self.path.unlink(missing_ok=True)


def _encode_key(key: Mapping[str, Any] | None) -> Any:
    if key is None:
        return None
    return {
        name: {tag: base64.b64encode(v).decode() if isinstance(v, bytes) else v for tag, v in value.items()}
        for name, value in key.items()
    }


def _decode_key(key: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if key is None:
        return None
    return {
        name: {tag: base64.b64decode(v) if tag == "B" else v for tag, v in value.items()}
        for name, value in key.items()
    }
