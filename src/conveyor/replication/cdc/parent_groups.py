"""The rows of a table replaced per parent (``MappedTable.group_key``: a
DynamoDB child table whose mapping removed the element's position from its
key, so the target has no unique key).

Each change is kept by its source key (parent key, then position) within
its parent's group. The source sends every row of a parent it changed (and
deletes for the positions gone), so the group a batch hands over replaces
the parent's rows: a DELETE by the parent's key, then its rows. A parent
whose rows a batch boundary cut continues, in the next batch, with the rows
the last one had (``open``, handed over as ``carry``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from conveyor.connectors.changes import RowChange
from conveyor.core.batch import Op
from conveyor.core.errors import TerminalError
from conveyor.core.schema import TableRef

Key = tuple[Any, ...]
Group = tuple[Key, dict[Key, dict[str, Any] | None]]
"""A parent's key and its rows by source key (None: a position deleted)."""


@dataclass
class ParentGroups:
    """One batch's groups: ``group_key`` names the target columns of the
    parent's key, ``source_key`` the source key identifying a row."""

    table: TableRef
    group_key: tuple[str, ...]
    source_key: tuple[str, ...]
    carry: Group | None = None
    _groups: dict[Key, dict[Key, dict[str, Any] | None]] = field(default_factory=dict)
    _last: Key | None = None

    def note(
        self,
        change: RowChange,
        row: dict[str, Any] | None,
        target: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> None:
        """``change``'s row (None: it leaves its parent's rows) in its parent's
        group; ``target`` maps source values to target columns."""
        source = change.values if change.op is not Op.DELETE else (change.old_key or change.values)
        try:
            key = tuple(source[k] for k in self.source_key)
            old = (
                tuple(change.old_key[k] for k in self.source_key)
                if change.op is Op.UPDATE and change.old_key is not None
                else key
            )
        except KeyError as exc:
            raise TerminalError(f"table {self.table}: a change lacks key column {exc.args[0]!r}") from None
        parent = target(dict(zip(self.source_key, key, strict=True)))
        group_id = tuple(parent[k] for k in self.group_key)
        group = self._groups.get(group_id)
        if group is None:
            carried = self.carry if self.carry is not None and self.carry[0] == group_id else None
            group = self._groups[group_id] = dict(carried[1]) if carried is not None else {}
        self._last = group_id
        if old != key:
            group[old] = None
        group[key] = row

    @property
    def open(self) -> Group | None:
        """The parent whose rows the next batch may continue."""
        if self._last is None:
            return self.carry
        return self._last, self._groups[self._last]

    def clear(self) -> None:
        """A TRUNCATE: no group, nothing carried."""
        self._groups.clear()
        self._last, self.carry = None, None

    def __len__(self) -> int:
        return len(self._groups)

    def replaced(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The parents' keys to delete and their rows to write."""
        deletes = [dict(zip(self.group_key, group_id, strict=True)) for group_id in self._groups]
        rows = [row for group in self._groups.values() for row in group.values() if row is not None]
        return deletes, rows
