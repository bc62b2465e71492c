"""What each key's changes in a batch were, noted change by change, to judge
the reduced batch against the target (``KeyHistory``: apply conflicts,
ErrorBehavior.ApplyError*). Captured batches reduced in Arrow get theirs
from their sort by key instead (``reduce_captured._key_checks``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from conveyor.core.batch import KeyHistory, Op

Key = tuple[Any, ...]


@dataclass
class KeyHistories:
    """Per key: its first change, whether it was alone, whether an INSERT
    came after it (None: a key whose first change is not judged), and, for a
    key whose first change is an INSERT followed only by partial UPDATEs, the
    columns that INSERT still decides."""

    _noted: dict[Key, list[Any] | None] = field(default_factory=dict)
    _inherited: dict[Key, frozenset[str]] = field(default_factory=dict)

    def note(self, key: Key, op: Op | None) -> None:
        """A change of ``key`` (``op`` None: one not judged against the target,
        which leaves the key unjudged when it is its first)."""
        if key not in self._noted:
            self._noted[key] = None if op is None else [op, True, False]
            return
        noted = self._noted[key]
        if noted is not None:
            noted[1] = False
            if op is Op.INSERT:
                noted[2] = True

    def note_row(self, key: Key, row: dict[str, Any], unchanged: frozenset[str], op: Op | None) -> None:
        """Note a change of ``key`` and follow the columns its first INSERT
        still decides: all of them at the INSERT, those a partial UPDATE left
        unsent after it; any other change ends the following."""
        first = key not in self._noted
        self.note(key, op)
        if first and op is Op.INSERT:
            self._inherited[key] = frozenset(row)
        elif unchanged and key in self._inherited:
            self._inherited[key] &= unchanged
        else:
            self._inherited.pop(key, None)

    def note_gone(self, key: Key, op: Op | None) -> None:
        """A change that leaves no row for ``key`` (a DELETE, a row moved
        away): its first INSERT decides nothing any more."""
        self.note(key, op)
        self._inherited.pop(key, None)

    def clear(self) -> None:
        self._noted.clear()
        self._inherited.clear()

    def checks(self, partial: Callable[[Key], bool]) -> tuple[list[Key], list[KeyHistory]]:
        """The judged keys and their histories; ``partial`` tells whether a
        key's final change is a partial UPDATE."""
        keys: list[Key] = []
        histories: list[KeyHistory] = []
        shared: dict[tuple[Op, bool, bool, bool, frozenset[str]], KeyHistory] = {}  # few distinct ones
        for key, noted in self._noted.items():
            if noted is None:
                continue
            first, alone, reinserted = noted
            final_partial = partial(key)
            inherited = self._inherited.get(key, frozenset()) if not alone else frozenset()
            history = shared.get((first, alone, reinserted, final_partial, inherited))
            if history is None:
                history = shared[first, alone, reinserted, final_partial, inherited] = KeyHistory(
                    first, alone, reinserted, final_partial, inherited
                )
            keys.append(key)
            histories.append(history)
        return keys, histories
