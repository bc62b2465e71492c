"""Tables and columns as every stage sees them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import pyarrow as pa

from conveyor.core.types import ColumnType


@dataclass(frozen=True, order=True)
class TableRef:
    """A table's name. ``schema`` is the engine's namespace (PostgreSQL schema,
    MySQL database, ``main`` for SQLite and DuckDB)."""

    schema: str
    name: str

    def __str__(self) -> str:
        return f"{self.schema}.{self.name}"


@dataclass(frozen=True)
class Column:
    """``generated`` is the expression (in the source engine's SQL) a generated
    column is computed by on the source; None for a stored column."""

    name: str
    type: ColumnType
    nullable: bool = True
    generated: str | None = None


@dataclass(frozen=True)
class NativeType:
    """A user-defined type a table's columns use (a PostgreSQL composite, domain
    or enum), as its engine declares it, so a target of that engine can create
    it before the table. ``definition`` names every type it refers to in full."""

    schema: str
    name: str
    definition: str
    base: str | None = None  # a domain's underlying type, spelled in full


@dataclass(frozen=True)
class TableSchema:
    """A table: its name, its columns in order and its primary key (column names,
    empty when the table has none). ``native_engine`` names the engine whose
    spellings the columns' ``native`` types are, so a target of the same engine
    can create the table with exactly the source's types (and the user-defined
    types of ``native_types`` first)."""

    ref: TableRef
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()
    estimated_rows: int | None = field(default=None, compare=False)
    native_engine: str | None = field(default=None, compare=False)
    # User-defined types the columns need, dependencies first (native_engine's).
    native_types: tuple[NativeType, ...] = field(default=(), compare=False)
    # The table this one is cut out of (a DynamoDB child table: the rows of one
    # list attribute, keyed by the parent's key and the element's position).
    parent: TableRef | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            dupes = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"table {self.ref} has duplicate columns: {', '.join(dupes)}")
        missing = [k for k in self.primary_key if k not in names]
        if missing:
            raise ValueError(f"table {self.ref} primary key names unknown columns: {', '.join(missing)}")

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"table {self.ref} has no column {name!r}")

    def arrow_schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, c.type.arrow(), nullable=c.nullable) for c in self.columns])

    def with_columns(self, columns: Sequence[Column]) -> TableSchema:
        names = {c.name for c in columns}
        key = tuple(k for k in self.primary_key if k in names)
        return replace(self, columns=tuple(columns), primary_key=key)

    def without_generated(self) -> TableSchema:
        """The table without its generated columns (what change capture carries)."""
        return self.with_columns([c for c in self.columns if c.generated is None])

    def renamed(self, ref: TableRef) -> TableSchema:
        return replace(self, ref=ref)
