"""docs/types.md read as data: per target section, per PostgreSQL type, what
it becomes and which corpus rows (support/edge_values.py) the target refuses."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "types.md"
SECTIONS = {
    "PostgreSQL -> DuckDB": "duckdb",
    "PostgreSQL -> lake": "lake",
    "PostgreSQL -> PostgreSQL": "postgres",
}
_CODE = re.compile(r"`([^`]+)`")


@dataclass(frozen=True)
class DocRow:
    becomes: str
    refused: frozenset[str]


def read(path: Path = DOC) -> dict[str, dict[str, DocRow]]:
    """Target -> PostgreSQL type -> its row."""
    found: dict[str, dict[str, DocRow]] = {}
    target: str | None = None
    for line in path.read_text().splitlines():
        if line.startswith("## "):
            target = SECTIONS.get(line[3:].strip())
            if target is not None:
                found[target] = {}
            continue
        if target is None or not line.startswith("| `"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        pg_type, becomes = _CODE.fullmatch(cells[0]), _CODE.fullmatch(cells[1])
        assert pg_type and becomes, f"docs/types.md: a row needs `type` cells: {line}"
        if pg_type.group(1) in found[target]:
            raise AssertionError(f"docs/types.md: {pg_type.group(1)} twice under {target}")
        found[target][pg_type.group(1)] = DocRow(becomes.group(1), frozenset(_CODE.findall(cells[-1])))
    return found
