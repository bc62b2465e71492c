"""`conveyor validate` flags every value of the edge-value corpus
(support/edge_values.py) changed behind Conveyor's back, and never raises.

The corpus is loaded PG -> PG and PG -> DuckDB. Every value that arrived
exactly (its table Validated) is changed on the target to a different valid
value of its type, one row per table per round (the closest change first:
a digit, a trailing space, -0 for 0), then one validation of the task must
flag exactly the changed row of each changed table and nothing else; the rows
are restored before the next round. One test file per target
(test_validation_mutations_*.py), so the suite's two workers can share them."""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

import duckdb
import psycopg

from conveyor.connectors.duckdb.connection import DEFAULT_MEMORY_LIMIT
from conveyor.replication.task_runner import validate_task
from conveyor.stack.loader import load_stack
from support import edge_values as ev
from support import edge_values_mariadb as maria
from support import edge_values_sqlite as lite
from support import stacks
from support.cli import conveyor
from support.servers import PostgresServer

# More PostgreSQL values whose spelling a load may change (this test's own tables).
EXTRA: dict[str, tuple[str, list[str]]] = {
    "x_char": ("character(5)", ["'ab'", "'abcde'", "' a'"]),
    "x_varchar": ("varchar(10)", ["'a  '", "'x'"]),
    "x_xml": ("xml", ['\'<?xml version="1.0" standalone="yes"?><r/>\'', "'<r a=\"1\">t</r>'"]),
    "x_ts3": ("timestamp(3)", ["'2020-01-01 00:00:00.123'", "'2020-01-01 00:00:00'"]),
    "x_num": ("numeric(6,3)", ["'1.500'", "'-0.000'"]),
    "x_tstz": ("timestamptz", ["'2020-06-01 12:00:00.000001+02'"]),
    "x_varbit": ("bit varying(8)", ["B'101'"]),
    "x_inet": ("inet", ["'10.0.0.1/8'"]),
    "x_ia": ("integer[]", ["'{{1,2},{3,4}}'", "'[0:1]={5,6}'"]),
}


def corpus() -> dict[str, tuple[str, int]]:
    """Table -> (column type, rows): the edge-value corpus and EXTRA."""
    tables = {n: (t, len(edges)) for n, (t, edges) in ev.tables().items()}
    return tables | {n: (t, len(values)) for n, (t, values) in EXTRA.items()}


@dataclass(frozen=True)
class Corpus:
    """What one source's run mutates: table -> (source column type, rows),
    the schema its tables land in, and the tables every value of which must
    arrive exactly (Validated before any change)."""

    tables: dict[str, tuple[str, int]]
    schema: str
    exact: frozenset[str]
    source_types: bool  # the target's column types are the source's (PostgreSQL -> PostgreSQL, DuckDB)


def postgres_corpus() -> Corpus:
    exact = frozenset(n for n in ev.tables() if n.startswith("e_"))
    return Corpus(corpus(), "public", exact, True)


def sqlite_corpus() -> Corpus:
    tables = {n: (t, len(edges)) for n, (t, edges) in lite.CORPUS.tables().items()}
    exact = frozenset(n for n in tables if n.startswith("e_"))
    return Corpus(tables, "main", exact, False)


def mariadb_corpus(url: str) -> Corpus:
    tables = {n: (t, len(edges)) for n, (t, edges) in maria.CORPUS.tables().items()}
    exact = frozenset(n for n in tables if n.startswith("e_"))
    return Corpus(tables, urlparse(url).path.lstrip("/"), exact, False)


def _create(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(ev.create_sql())  # type: ignore[arg-type]
        for statement in ev.insert_sql():
            conn.execute(statement)  # type: ignore[arg-type]
        for name, (native, values) in EXTRA.items():
            rows = ", ".join(f"({i}, {v})" for i, v in enumerate(values, 1))
            conn.execute(f"CREATE TABLE {name} (id integer PRIMARY KEY, v {native})")  # type: ignore[arg-type]
            conn.execute(f"INSERT INTO {name} VALUES {rows}")  # type: ignore[arg-type]


FALLBACKS = ("-infinity", "infinity", "0", "1", "x", "[1]", "{1}", "[]", "{}", '{"x": 1}', "\\x01")


class Target(Protocol):
    def text(self, table: str, row: int) -> str | None: ...
    def native(self, table: str) -> str: ...
    def set(self, table: str, row: int, text: str) -> bool: ...
    def restore(self, table: str, row: int) -> None: ...
    def close(self) -> None: ...


class PostgresTarget:
    def __init__(self, url: str, schema: str, tables: Iterable[str]) -> None:
        self.conn = psycopg.connect(url, autocommit=True)
        self.schema = schema
        self.conn.execute("CREATE SCHEMA bk")
        for name in tables:
            self.conn.execute(f'CREATE TABLE bk.{name} AS SELECT * FROM "{schema}".{name}')  # type: ignore[arg-type]

    def text(self, table: str, row: int) -> str | None:
        found = self.conn.execute(  # type: ignore[call-overload]
            f'SELECT v::text FROM "{self.schema}".{table} WHERE id = %s', [row]
        ).fetchone()
        return found[0] if found else None

    def native(self, table: str) -> str:
        """The target column's type, as the catalog spells it."""
        found = self.conn.execute(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute"
            " WHERE attrelid = format('%%I.%%I', %s::text, %s::text)::regclass AND attname = 'v'",
            [self.schema, table],
        ).fetchone()
        assert found is not None
        return str(found[0])

    def set(self, table: str, row: int, text: str) -> bool:
        native = self.native(table)
        try:
            self.conn.execute(  # type: ignore[call-overload]
                f'UPDATE "{self.schema}".{table} SET v = %s::{native} WHERE id = %s', [text, row]
            )
        except psycopg.Error:
            return False
        return True

    def restore(self, table: str, row: int) -> None:
        self.conn.execute(  # type: ignore[call-overload]
            f'UPDATE "{self.schema}".{table} t SET v = b.v FROM bk.{table} b WHERE b.id = t.id AND t.id = %s',
            [row],
        )

    def close(self) -> None:
        self.conn.close()


class DuckDBTarget:
    def __init__(self, path: Path, schema: str, tables: Iterable[str]) -> None:
        # In this process, with the task's own settings: the instance validation opens too.
        self.conn = duckdb.connect(str(path), config={"memory_limit": DEFAULT_MEMORY_LIMIT})
        self.schema = schema
        self.conn.execute("CREATE SCHEMA bk")
        present = {
            r[0]
            for r in self.conn.execute(
                "SELECT table_name FROM duckdb_tables() WHERE schema_name = ?", [schema]
            ).fetchall()
        }
        for name in tables:
            if name in present:
                self.conn.execute(f"CREATE TABLE bk.{name} AS SELECT * FROM {schema}.{name}")

    def text(self, table: str, row: int) -> str | None:
        found = self.conn.execute(
            f"SELECT CAST(v AS VARCHAR) FROM {self.schema}.{table} WHERE id = ?", [row]
        ).fetchone()
        return found[0] if found else None

    def native(self, table: str) -> str:
        found = self.conn.execute(f"SELECT typeof(v) FROM {self.schema}.{table} LIMIT 1").fetchone()
        assert found is not None
        return str(found[0])

    def set(self, table: str, row: int, text: str) -> bool:
        try:
            self.conn.execute(
                f"UPDATE {self.schema}.{table} SET v = CAST(? AS {self.native(table)}) WHERE id = ?",
                [text, row],
            )
        except duckdb.Error:
            return False
        return True

    def restore(self, table: str, row: int) -> None:
        # A join, not a scalar subquery: the subquery's value loses a -0.0 inside a list.
        self.conn.execute(
            f"UPDATE {self.schema}.{table} SET v = b.v FROM bk.{table} b"
            f" WHERE b.id = {self.schema}.{table}.id AND b.id = ?",
            [row],
        )

    def close(self) -> None:
        self.conn.close()


def candidates(text: str, native: str) -> Iterator[str]:
    """Different values for a value's text, the closest first: the silent
    changes seen on the way (a float's last bit, -0, a trailing space, an
    array's bounds or dimensions, a json duplicate key dropped), then a digit."""
    if native in {"real", "double precision"}:
        yield from _next_float(text, native == "real")
    if native == "text":
        yield text + " "
    if re.match(r"^\[[-0-9:\]\[]*\]=", text):
        yield text.split("=", 1)[1]  # the lower bounds dropped
    if text.startswith("{{"):
        yield "{" + text.replace("{", "").replace("}", "") + "}"  # flattened
    if native == "json" and text.count('"a"') > 1:
        yield text.replace('"a":2,', "")  # a duplicate key dropped
    digits = [i for i, c in enumerate(text) if c.isdigit()]
    for i in reversed(digits):
        for step in (1, 9):
            yield text[:i] + str((int(text[i]) + step) % 10) + text[i + 1 :]
    for i, c in enumerate(text):  # hex digits (pg_lsn, macaddr, uuid ...)
        if c in "abcdefABCDEF":
            yield text[:i] + "0" + text[i + 1 :]
    if text.lower() != text and native != "numeric":
        yield text.lower()
    yield text + "x"
    yield from FALLBACKS


def _next_float(text: str, single: bool) -> Iterator[str]:
    if text in {"-0", "-0.0", "0"}:
        yield "0" if text.startswith("-") else "-0"
    try:
        value = float(text)
    except ValueError:
        return
    if math.isfinite(value) and value != 0:
        if single:
            bits = struct.unpack("<i", struct.pack("<f", value))[0]
            yield repr(struct.unpack("<f", struct.pack("<i", bits - 1))[0])
        else:
            yield repr(math.nextafter(value, 0))


def mutate(target: Target, table: str, row: int, source: Corpus | None = None) -> str | None:
    """Change one value to a different valid value; what it became (None: no candidate took)."""
    source = source or postgres_corpus()
    before = target.text(table, row)
    native, rows = source.tables[table]
    if not source.source_types:
        native = target.native(table)
    # Then another row's value of the same table: a valid value of the type (an enum's label).
    others = (target.text(table, r) for r in range(1, rows + 1) if r != row)
    for candidate in chain(candidates(before if before is not None else "", native), others):
        if candidate is None:
            continue
        if target.set(table, row, candidate):
            after = target.text(table, row)
            if after is not None and after != before:
                return after
            target.restore(table, row)
    return None


def _stack(tmp_path: Path, source: dict[str, Any], target: dict[str, Any], schema: str) -> Path:
    return stacks.one_task(
        tmp_path / "conveyor.yaml", source, target, task="edge", migration_type="full-load", schema=schema
    )


def check_every_changed_value_is_flagged(
    kind: str,
    pg_server: PostgresServer,
    tmp_path: Path,
    mariadb_url: str | None = None,
    sqlite: bool = False,
) -> None:
    """The corpus loaded into a ``kind`` target; every value changed there flagged alone.
    The PostgreSQL corpus by default; with ``mariadb_url``, the MariaDB one; with
    ``sqlite``, the SQLite one."""
    if sqlite:
        db = tmp_path / "src.sqlite"
        lite.create(db)
        lite.insert(db)
        source: Corpus = sqlite_corpus()
        source_endpoint: dict[str, Any] = {"engine": "sqlite", "path": str(db)}
    elif mariadb_url is not None:
        maria.create(mariadb_url)
        maria.insert(mariadb_url)
        source = mariadb_corpus(mariadb_url)
        source_endpoint = {"engine": "mysql", "url": mariadb_url}
    else:
        url = pg_server.url(pg_server.new_database("mut_src"))
        _create(url)
        source = postgres_corpus()
        source_endpoint = {"engine": "postgres", "url": url}
    if kind == "duckdb":
        endpoint: dict[str, Any] = {"engine": "duckdb", "path": str(tmp_path / "dw.duckdb")}
    else:
        endpoint = {"engine": "postgres", "url": pg_server.url(pg_server.new_database("mut_dst"))}
    stack_path = _stack(tmp_path, source_endpoint, endpoint, source.schema)
    home = tmp_path / "home"
    assert conveyor(home, "apply", str(stack_path)).returncode == 0
    conveyor(home, "tasks", "start", "edge", "--wait", timeout=300)  # refused values may fail their tables
    stack = load_stack(stack_path)

    def validate(names: Iterable[str] = ()) -> dict[str, dict[str, Any]]:
        """Every table's state (or the ``names``'); never raises: every table gets a state."""
        report = validate_task(stack, "edge", [f"{source.schema}.{n}" for n in sorted(names)]).as_dict()
        return {t["Table"].split(".")[-1]: t for t in report["Tables"]}

    baseline = validate()
    assert set(baseline) == set(source.tables), "a table without a state"
    exact = {n for n, t in baseline.items() if t["ValidationState"] == "Validated"}
    not_validated = [
        f"{n}: {t['ValidationState']} {t['Reason']} {t['FirstFailures'][:2]}"
        for n, t in baseline.items()
        if n not in exact
    ]
    assert source.exact <= exact, not_validated
    print(f"{kind}: not Validated before any change:", *not_validated, sep="\n  ")
    for name in set(baseline) - exact:  # a refused value: its row is missing, or the table is in error
        state = baseline[name]
        kinds = {f["FailureType"] for f in state["FirstFailures"]}
        assert (state["ValidationState"], kinds) == ("Mismatched records", {"MISSING_TARGET"}) or (
            state["ValidationState"] == "Table error" and state["Reason"]
        ), (name, state)
    target: Target = (
        DuckDBTarget(tmp_path / "dw.duckdb", source.schema, source.tables)
        if kind == "duckdb"
        else PostgresTarget(endpoint["url"], source.schema, source.tables)
    )
    todo = {n: list(range(1, source.tables[n][1] + 1)) for n in sorted(exact)}
    tried = missed_count = 0
    missed: list[str] = []
    unchangeable: list[str] = []
    changes: list[str] = []
    # Each round validates the tables changed in it and those restored after the round
    # before (every table was Validated at the start): a table is compared again only
    # while something of it changed, so the rounds of the longest tables stay cheap.
    restored: set[str] = set()
    try:
        while any(todo.values()):
            changed: dict[str, tuple[int, str, str | None]] = {}
            for name, rows in todo.items():
                if rows and kind == "postgres" and "GENERATED ALWAYS" in source.tables[name][0]:
                    rows.clear()  # the target computes it: it cannot differ behind Conveyor's back
                    continue
                if rows:
                    row = rows.pop(0)
                    before = target.text(name, row)
                    after = mutate(target, name, row, source)
                    if after is None:
                        unchangeable.append(f"{name} row {row} ({before!r})")
                    else:
                        changed[name] = (row, before or "<NULL>", after)
                        changes.append(f"{name} row {row}: {before!r} -> {after!r}")
            tables = validate(set(changed) | restored)
            assert set(tables) == set(changed) | restored, "a table named but not validated"
            for name in sorted(tables):
                state = tables[name]
                if name not in changed:
                    if state["ValidationState"] != "Validated":
                        missed.append(
                            f"{name}: unchanged, yet {state['ValidationState']} {state['FirstFailures']}"
                        )
                    continue
                row, before, after = changed[name]
                tried += 1
                flagged = [(f["Key"], f["FailureType"], f["Columns"]) for f in state["FirstFailures"]]
                if flagged != [({"id": str(row)}, "RECORD_DIFF", ["v"])]:
                    missed_count += 1
                    missed.append(
                        f"{name} row {row}: {before!r} -> {after!r}: {state['ValidationState']} {flagged}"
                    )
                target.restore(name, row)
            restored = set(changed)
        final = validate()
        missed += [
            f"{n}: after its rows were restored: {t['ValidationState']}"
            for n, t in final.items()
            if n in exact and t["ValidationState"] != "Validated"
        ]
    finally:
        target.close()
    print(f"{kind}: {tried} values changed one at a time, {missed_count} missed")
    print("\n".join(f"  {c}" for c in changes))
    assert not missed, f"{missed_count} of {tried} changes missed:\n" + "\n".join(missed)
    assert not unchangeable, unchangeable
    computed = kind == "postgres"  # a PostgreSQL target computes generated columns itself
    assert tried == sum(
        source.tables[n][1] for n in exact if not (computed and "GENERATED ALWAYS" in source.tables[n][0])
    )
