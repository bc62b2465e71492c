"""Reading what a MariaDB/MySQL binlog QUERY event's DDL did to tables: which
columns it renamed (``ALTER TABLE ... RENAME COLUMN a TO b`` and ``CHANGE
[COLUMN] a b type``), which tables it dropped (``DROP TABLE``), emptied
(``TRUNCATE``) and created (``CREATE TABLE``, the new names of ``RENAME TABLE``).

The catalog says a table's shape after the DDL, not which column became which:
a rename and a DROP plus an ADD look alike there, so renames are read from the
statement itself. Only the clauses that matter are recognised; the statement is
split into clauses at top-level commas (outside parentheses, quotes and
backticks), so column definitions with commas inside (DECIMAL(10,2), ENUM
lists, defaults) do not confuse it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from conveyor.core.schema import TableRef

_COMMENT = r"(?:/\*.*?\*/\s*)*"
_VERB = re.compile(rf"^\s*{_COMMENT}(ALTER|CREATE|DROP|RENAME|TRUNCATE)\b", re.IGNORECASE | re.DOTALL)
_NAME = r"(?:`(?:[^`]|``)+`|[\w$]+)"
_TABLE = rf"({_NAME})(?:\s*\.\s*({_NAME}))?"
_ALTER = re.compile(
    rf"^\s*{_COMMENT}ALTER\s+(?:ONLINE\s+)?(?:IGNORE\s+)?TABLE\s+(?:IF\s+EXISTS\s+)?{_TABLE}\s*(.*)$",
    re.IGNORECASE | re.DOTALL,
)
_RENAME_COLUMN = re.compile(
    rf"^RENAME\s+COLUMN\s+(?:IF\s+EXISTS\s+)?({_NAME})\s+TO\s+({_NAME})\s*$", re.IGNORECASE | re.DOTALL
)
_CHANGE_COLUMN = re.compile(
    rf"^CHANGE\s+(?:COLUMN\s+)?(?:IF\s+EXISTS\s+)?({_NAME})\s+({_NAME})\b", re.IGNORECASE | re.DOTALL
)
_NOT_A_COLUMN = (
    r"(?!(?:INDEX|KEY|CONSTRAINT|PRIMARY|UNIQUE|FULLTEXT|SPATIAL|FOREIGN|PARTITION|PERIOD|CHECK|SYSTEM)\b)"
)
_ADD_COLUMN = re.compile(
    rf"^ADD\s+(?:COLUMN\s+)?(?:IF\s+NOT\s+EXISTS\s+)?{_NOT_A_COLUMN}(.*)$", re.IGNORECASE | re.DOTALL
)
_DROP_COLUMN = re.compile(
    rf"^DROP\s+(?:COLUMN\s+)?(?:IF\s+EXISTS\s+)?{_NOT_A_COLUMN}({_NAME})", re.IGNORECASE | re.DOTALL
)
_DROP = re.compile(
    rf"^\s*{_COMMENT}DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?(.*?)\s*(?:RESTRICT|CASCADE)?\s*;?\s*$",
    re.IGNORECASE | re.DOTALL,
)
_DROPPED_NAME = re.compile(rf"^\s*{_TABLE}\s*(?:/\*.*?\*/)?\s*$", re.DOTALL)
_CREATE = re.compile(
    rf"^\s*{_COMMENT}CREATE\s+(?:OR\s+REPLACE\s+)?TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?{_TABLE}",
    re.IGNORECASE | re.DOTALL,
)
_RENAME_TABLE = re.compile(rf"^\s*{_COMMENT}RENAME\s+TABLES?\s+(.*?)\s*;?\s*$", re.IGNORECASE | re.DOTALL)
_RENAMED_PAIR = re.compile(rf"^\s*{_TABLE}\s+TO\s+{_TABLE}\s*$", re.IGNORECASE | re.DOTALL)
_TRUNCATE = re.compile(
    rf"^\s*{_COMMENT}TRUNCATE\s+(?:TABLE\s+)?({_NAME})(?:\s*\.\s*({_NAME}))?\s*;?\s*$",
    re.IGNORECASE | re.DOTALL,
)


def unquote(name: str) -> str:
    return name[1:-1].replace("``", "`") if name.startswith("`") else name


def _ref(first: str, second: str | None, default_schema: str) -> TableRef:
    return TableRef(unquote(first), unquote(second)) if second else TableRef(default_schema, unquote(first))


def split_clauses(text: str) -> list[str]:
    """``text`` split at commas outside parentheses, quotes and backticks."""
    clauses, depth, quote, start = [], 0, "", 0
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\" and quote != "`":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "'\"`":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            clauses.append(text[start:i].strip())
            start = i + 1
        i += 1
    clauses.append(text[start:].strip().rstrip(";").strip())
    return [c for c in clauses if c]


@dataclass(frozen=True)
class AlteredColumns:
    """What one ALTER TABLE does to a table's column names."""

    table: TableRef
    renamed: dict[str, str] = field(default_factory=dict)  # new name -> old name
    added: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)

    def names_after(self, before: Sequence[str]) -> set[str]:
        """The column names a table with ``before`` has after this statement."""
        old_to_new = {old: new for new, old in self.renamed.items()}
        kept = {old_to_new.get(n, n) for n in before if n not in self.dropped}
        return kept | set(self.added)


def altered_columns(query: str, default_schema: str) -> AlteredColumns | None:
    """The table an ALTER TABLE changes and what it does to its column names
    (renames composed when one statement renames twice); None for any other
    statement."""
    m = _ALTER.match(query)
    if m is None:
        return None
    altered = AlteredColumns(_ref(m.group(1), m.group(2), default_schema))
    for clause in split_clauses(m.group(3)):
        found = _RENAME_COLUMN.match(clause) or _CHANGE_COLUMN.match(clause)
        if found is not None:
            old, new = unquote(found.group(1)), unquote(found.group(2))
            if old != new:
                altered.renamed[new] = altered.renamed.pop(old, old)
            continue
        add = _ADD_COLUMN.match(clause)
        if add is not None:
            inner = add.group(1)
            if inner.startswith("("):
                inner = inner[1 : inner.rfind(")")]
                altered.added.extend(_first_name(c) for c in split_clauses(inner))
            else:
                altered.added.append(_first_name(inner))
            continue
        drop = _DROP_COLUMN.match(clause)
        if drop is not None:
            altered.dropped.append(unquote(drop.group(1)))
    return altered


def _first_name(definition: str) -> str:
    m = re.match(_NAME, definition.strip())
    return unquote(m.group(0)) if m else definition


def dropped_tables(query: str, default_schema: str) -> list[TableRef]:
    """The tables a DROP TABLE statement drops ([] for any other statement; a
    DROP TEMPORARY TABLE drops no captured table, only one that shadows it)."""
    m = _DROP.match(query)
    return [] if m is None else _tables_in(m.group(1), _DROPPED_NAME, 1, default_schema)


def renamed_away(query: str, default_schema: str) -> list[TableRef]:
    """The old names of ``RENAME TABLE`` ([] for any other statement): to the
    capture, a table renamed away is gone, as if dropped; its new name, when
    the task's selection takes it, is loaded then captured (``created_tables``)."""
    m = _RENAME_TABLE.match(query)
    return [] if m is None else _tables_in(m.group(1), _RENAMED_PAIR, 1, default_schema)


def created_tables(query: str, default_schema: str) -> list[TableRef]:
    """The tables a statement brings into being under a new name: ``CREATE
    TABLE`` (also ``... LIKE`` and ``... SELECT``; a temporary table is not
    written to a row-based binlog) and the new names of ``RENAME TABLE``;
    [] for any other statement."""
    m = _CREATE.match(query)
    if m is not None:
        return [_ref(m.group(1), m.group(2), default_schema)]
    m = _RENAME_TABLE.match(query)
    return [] if m is None else _tables_in(m.group(1), _RENAMED_PAIR, 3, default_schema)


def _tables_in(listing: str, clause: re.Pattern[str], group: int, default_schema: str) -> list[TableRef]:
    """The table each comma-separated clause of ``listing`` that matches ``clause``
    names in its groups ``group`` (schema or table) and ``group + 1`` (table)."""
    refs = []
    for text in split_clauses(listing):
        found = clause.match(text)
        if found is not None:
            refs.append(_ref(found.group(group), found.group(group + 1), default_schema))
    return refs


def ddl_verb(query: str) -> str | None:
    """``ALTER``, ``CREATE``, ``DROP``, ``RENAME`` or ``TRUNCATE`` (upper case)
    when ``query`` is such a statement (after leading comments); None otherwise."""
    m = _VERB.match(query)
    return None if m is None else m.group(1).upper()


def truncated_table(query: str, default_schema: str) -> TableRef | None:
    """The one table a ``TRUNCATE [TABLE] name`` statement empties; None for
    any other statement."""
    m = _TRUNCATE.match(query)
    return None if m is None else _ref(m.group(1), m.group(2), default_schema)
