"""What a source table's new shape means for its target table during change
capture: renames, dropped and added columns to apply, or a reason to suspend
the table (ChangeProcessingDdlHandlingPolicy, HandleSourceTableAltered).

Pure logic, so the rules read as a table of cases (tests/unit/test_ddl_plan.py).
Never a silent loss: a type change, a change the stream cannot tell from a
rename, or renames that cannot be applied in any order suspend the table.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from conveyor.replication.mapped_table import MappedTable

RELOAD_HINT = "reload the table (`conveyor tasks reload TASK --table SCHEMA.TABLE`)"


@dataclass(frozen=True)
class ShapeChange:
    """Target DDL in the order to apply it: drops (freeing names), renames
    (``(old, new)`` target names), then adds. ``suspend`` is set instead when
    the change cannot be applied exactly."""

    dropped: list[str] = field(default_factory=list)
    renames: list[tuple[str, str]] = field(default_factory=list)
    added: list[str] = field(default_factory=list)
    suspend: str | None = None

    @property
    def empty(self) -> bool:
        return not (self.dropped or self.renames or self.added or self.suspend)


def _source_to_target(mapped: MappedTable) -> dict[str, str]:
    return {c.source: c.target for c in mapped.columns if c.source is not None}


def plan_shape_change(
    before: MappedTable, after: MappedTable, renamed: Mapping[str, str] | None, altered: bool = True
) -> ShapeChange:
    """The target DDL that takes ``before`` to ``after``. ``renamed`` maps new
    source column names to old ones (None: the stream cannot tell renames);
    ``altered`` is HandleSourceTableAltered."""
    old_targets, new_targets = _source_to_target(before), _source_to_target(after)
    was = {c.name: c for c in before.target.columns}
    now = {c.name: c for c in after.target.columns}
    renames = [
        (old_targets[old], new_targets[new])
        for new, old in (renamed or {}).items()
        if old in old_targets and new in new_targets and old_targets[old] != new_targets[new]
    ]
    sources = {old for old, _ in renames}
    targets = {new for _, new in renames}
    dropped = [n for n in was if n not in sources and (n not in now or n in targets)]
    added = [n for n in now if n not in targets and (n not in was or n in sources)]
    kept = [(n, n) for n in was if n in now and n not in sources and n not in targets]
    changed = [
        f"column {new!r} changed type to {now[new].type.describe()}"
        for old, new in kept + renames
        if now[new].type != was[old].type
    ]
    described = (
        changed
        + [f"column {old!r} renamed to {new!r}" for old, new in renames]
        + [f"column {n!r} added" for n in added]
        + [f"column {n!r} dropped" for n in dropped]
    )
    if changed:
        return ShapeChange(suspend=f"source DDL: {'; '.join(described)}; {RELOAD_HINT}")
    if not (renames or added or dropped):
        return ShapeChange()
    if not altered:
        reason = f"source DDL: {'; '.join(described)}; HandleSourceTableAltered is false: {RELOAD_HINT}"
        return ShapeChange(suspend=reason)
    if renamed is None and added and dropped:
        return ShapeChange(
            suspend=(
                f"source DDL: columns {', '.join(map(repr, dropped))} gone and "
                f"{', '.join(map(repr, added))} new: the source cannot tell a rename from a drop "
                f"and an add here; {RELOAD_HINT}"
            )
        )
    ordered = _rename_order(renames, [n for n in was if n not in dropped])
    if ordered is None:
        reason = f"source DDL: renames {renames} swap column names on the target; {RELOAD_HINT}"
        return ShapeChange(suspend=reason)
    return ShapeChange(dropped, ordered, added)


def _rename_order(renames: list[tuple[str, str]], names: list[str]) -> list[tuple[str, str]] | None:
    """The renames in an order where no new name is taken when it is applied."""
    current, pending, ordered = set(names), list(renames), []
    while pending:
        ready = next(((o, n) for o, n in pending if n not in current), None)
        if ready is None:
            return None
        pending.remove(ready)
        current.discard(ready[0])
        current.add(ready[1])
        ordered.append(ready)
    return ordered
