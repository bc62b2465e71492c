"""Running the `conveyor` command as a user would, in a child process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def environment(home: Path, env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a user whose metadata store is under ``home``
    (CONVEYOR_STORE_URL unset unless ``env`` sets it)."""
    full = os.environ | {"CONVEYOR_HOME": str(home), "COLUMNS": "200"}
    full.pop("CONVEYOR_STORE_URL", None)
    return full | (env or {})


def conveyor(
    home: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``conveyor ARGS``, output captured, bounded in time."""
    return subprocess.run(
        [sys.executable, "-m", "conveyor", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environment(home, env),
        check=False,
    )


def worker_log(home: Path, task: str) -> str:
    """Every background run's worker log of ``task`` (``logs/TASK/RUN.log``), oldest run
    first, each run's older part before its current one."""
    folder = home / "logs" / task
    runs = sorted((p for p in folder.glob("*.log") if p.stem.isdigit()), key=lambda p: int(p.stem))
    parts = [q for p in runs for q in (p.with_name(p.name + ".1"), p) if q.exists()]
    return "".join(p.read_text(errors="replace") for p in parts)
