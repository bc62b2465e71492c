"""The change-by-change reducer's rows: the last change of each primary key
(a whole row, an encoded row, a partial UPDATE or a DELETE), the rows of a
table without one (INSERTs alone), and, when apply conflicts are judged,
what each key's changes were (``KeyHistories``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from conveyor.core.batch import KeyHistory, Op
from conveyor.core.errors import TerminalError
from conveyor.core.schema import TableSchema
from conveyor.replication.cdc.key_histories import KeyHistories

Key = tuple[Any, ...]
Row = dict[str, Any]


@dataclass
class _Partial:
    """An UPDATE whose ``unchanged`` columns must keep the target's values."""

    row: Row
    unchanged: frozenset[str]


@dataclass
class Reduced:
    """The rows a batch writes: whole ``upserts``, ``deletes`` (key columns),
    ``encoded`` rows, and ``partial`` updates by the columns they leave."""

    upserts: list[Row]
    deletes: list[Row]
    encoded: list[bytes]
    partial: dict[frozenset[str], list[Row]]


@dataclass
class KeyedRows:
    """``decode`` makes an encoded row values again (a partial UPDATE on top
    of one); ``check_keys``: note each key's history."""

    table: TableSchema
    decode: Callable[[bytes], Row] | None = None
    check_keys: bool = False
    _final: dict[Key, Row | bytes | _Partial | None] = field(default_factory=dict)
    _appended: list[Row | bytes] = field(default_factory=list)
    _histories: KeyHistories = field(default_factory=KeyHistories)

    def __len__(self) -> int:
        return len(self._final) + len(self._appended)

    def key(self, values: Row) -> Key:
        try:
            return tuple(values[k] for k in self.table.primary_key)
        except KeyError as exc:
            raise TerminalError(
                f"table {self.table.ref}: a change lacks key column {exc.args[0]!r}"
            ) from None

    def put(self, row: Row, unchanged: frozenset[str], old: Row | None, op: Op) -> None:
        """An INSERT's or UPDATE's new row (``unchanged``: the columns it left
        unsent); ``old``: its old key (or whole old row), when the source sent one."""
        if not self.table.primary_key:
            if unchanged:
                raise TerminalError(
                    f"table {self.table.ref}: an update without a primary key cannot be applied"
                )
            self._appended.append(row)
            return
        key = self.key(row)
        op_of_key: Op | None = op
        if old is not None and all(k in old for k in self.table.primary_key):
            old_key = self.key(old)
            if old_key != key:
                if unchanged:
                    previous = self._decoded(self._final.get(old_key))
                    # The old image may carry the unchanged values (REPLICA IDENTITY FULL).
                    source = previous if isinstance(previous, dict) else old
                    missing = [c for c in unchanged if c not in source]
                    if missing:
                        raise TerminalError(
                            f"table {self.table.ref}: a primary key change left columns "
                            f"{', '.join(sorted(missing))} unsent; reload the table"
                        )
                    row = {**row, **{c: source[c] for c in unchanged}}
                    unchanged = frozenset()
                self._final[old_key] = None
                # The update of the old key; the new key is not judged (a row
                # moving onto an existing key is not an apply conflict here).
                if self.check_keys:
                    self._histories.note_gone(old_key, Op.UPDATE)
                op_of_key = None
        if self.check_keys:
            self._histories.note_row(key, row, unchanged, op_of_key)
        if not unchanged:
            self._final[key] = row
            return
        previous = self._decoded(self._final.get(key))
        if isinstance(previous, dict):
            self._final[key] = {**previous, **row}
        elif isinstance(previous, _Partial):
            merged = {**previous.row, **row}
            still = previous.unchanged & unchanged  # none: every column was sent by one of them
            self._final[key] = _Partial(merged, still) if still else merged
        else:
            self._final[key] = _Partial(row, unchanged)

    def delete(self, values: Row, op: Op | None) -> None:
        """``op`` DELETE: the source's delete; None: the row leaves the target
        for another reason (out of the filter), not judged against it."""
        if not self.table.primary_key:
            raise TerminalError(f"table {self.table.ref}: a delete without a primary key cannot be applied")
        key = self.key(values)
        if self.check_keys:
            self._histories.note_gone(key, op)
        self._final[key] = None

    def put_encoded(self, keys: Sequence[Key], lines: Sequence[bytes | None]) -> None:
        """Encoded rows by key (None: a DELETE), not judged; a table without
        a key takes them as INSERTs."""
        if not self.table.primary_key:
            self._appended.extend(line for line in lines if line is not None)
            return
        for key, line in zip(keys, lines, strict=True):
            if self.check_keys:
                self._histories.note_gone(key, None)
            self._final[key] = line

    def clear(self) -> None:
        self._final.clear()
        self._appended.clear()
        self._histories.clear()

    def touched(self) -> list[Key] | None:
        """The keys changed; None when rows without a key were."""
        return None if self._appended else list(self._final)

    def reduced(self) -> Reduced:
        out = Reduced([], [], [], {})
        for row in self._appended:
            (out.encoded if isinstance(row, bytes) else out.upserts).append(row)  # type: ignore[arg-type]
        for key, final in self._final.items():
            if final is None:
                out.deletes.append(dict(zip(self.table.primary_key, key, strict=True)))
            elif type(final) is bytes:
                out.encoded.append(final)
            elif isinstance(final, _Partial):
                out.partial.setdefault(final.unchanged, []).append(final.row)
            else:
                out.upserts.append(final)  # type: ignore[arg-type]
        return out

    def checks(self) -> tuple[list[Key], list[KeyHistory]] | None:
        """The keys to judge against the target and their histories."""
        return self._histories.checks(lambda key: type(self._final.get(key)) is _Partial)

    def _decoded(self, row: Row | bytes | _Partial | None) -> Row | _Partial | None:
        if not isinstance(row, bytes):
            return row
        if self.decode is None:
            raise TerminalError(f"table {self.table.ref}: an encoded row cannot be decoded")
        return self.decode(row)
