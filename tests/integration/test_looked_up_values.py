"""Values pgoutput does not carry exactly, looked up from the source by key:
generated columns (not sent at all) and xml (sent without its declaration).
Through a stack file and the CLI, into DuckDB, the lake (curated by `conveyor
lake process`) and PostgreSQL (a plain column of an existing table, and a
table Conveyor creates, which computes them itself); against real servers."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest

from conveyor.connectors.base import EndpointConfig
from conveyor.connectors.postgres.lookups import SourceLookups, lookup_columns
from conveyor.connectors.postgres.source import PostgresSource
from conveyor.core.batch import Checkpoint, LoggedChange
from conveyor.core.schema import TableSchema
from conveyor.replication.cdc.lookups import value_lookup
from conveyor.replication.mappings import TableMappings
from support.cli import conveyor, worker_log
from support.servers import PostgresServer
from support.stacks import one_task
from support.tasks import described, kill_worker, wait_for, wait_until

pytestmark = pytest.mark.integration

DECLARED = '<?xml version="1.0" encoding="UTF-8"?><doc a="1">é<b/></doc>'
DDL = (
    "CREATE TABLE docs (id integer PRIMARY KEY, x integer,"
    " g integer GENERATED ALWAYS AS (x * 2) STORED,"
    " label text GENERATED ALWAYS AS ('#' || id::text || '/' || coalesce(x::text, '-')) STORED,"
    " doc xml, big text)",
    # Out of line and uncompressed: an UPDATE of another column leaves it unsent (a partial update).
    "ALTER TABLE docs ALTER COLUMN big SET STORAGE EXTERNAL",
)
LOADED = (
    f"INSERT INTO docs (id, x, doc, big) SELECT g, g, '{DECLARED}', repeat('b', 5000)"
    " FROM generate_series(1, 7) g"
)
CHANGES = (
    f"INSERT INTO docs (id, x, doc, big) VALUES (20, 7, '{DECLARED}', 'small')",
    "UPDATE docs SET x = -x WHERE id <= 2",  # big unchanged: partial updates
    "UPDATE docs SET doc = '<?xml version=\"1.0\"?><new/>' WHERE id = 3",
    "DELETE FROM docs WHERE id = 4",
    "BEGIN; INSERT INTO docs (id, x, doc) VALUES (21, 1, '<?xml version=\"1.0\"?><t/>');"
    " UPDATE docs SET x = 2 WHERE id = 21; COMMIT",
    "UPDATE docs SET id = 10, big = 'moved' WHERE id = 5",  # a key change sends the whole row
    "UPDATE docs SET x = 70 WHERE id = 7",  # then gone before the task reads it:
    "DELETE FROM docs WHERE id = 7",  # its lookup finds nothing
)
CHANGE_COUNT = 10
SOURCE_ROWS = "SELECT id, x, g, label, doc::text, md5(big) FROM docs ORDER BY id"


def _execute(url: str, *statements: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def _rows(url: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(query).fetchall()


@contextlib.contextmanager
def _worker(home: Path, *command: str) -> Iterator[None]:
    """A task started (or resumed) in the background, stopped on exit."""
    started = conveyor(home, "tasks", *command, "load")
    assert started.returncode == 0, started.stderr
    try:
        yield
    finally:
        conveyor(home, "tasks", "stop", "load")
        try:
            wait_for(home, "load", lambda d: d["status"] in {"stopped", "failed"}, 30)
        finally:
            kill_worker(home, "load")


def _applied(home: Path) -> int:
    tables = described(home, "load").get("tables") or [{}]
    return int(tables[0].get("AppliedChanges") or 0)


def _target(kind: str, tmp_path: Path, pg: PostgresServer) -> dict[str, Any]:
    if kind == "duckdb":
        return {"engine": "duckdb", "path": str(tmp_path / "dw.duckdb")}
    if kind == "lake":
        lake = str(tmp_path / "lake")
        return {"engine": "lake", "path": lake, "format": "csv", "settings": {"CdcMaxBatchInterval": 1}}
    return {"engine": "postgres", "url": pg.url(pg.new_database("dst"))}


def _target_rows(kind: str, home: Path, endpoint: dict[str, Any]) -> list[tuple[Any, ...]]:
    if kind == "duckdb":
        with duckdb.connect(endpoint["path"], read_only=True) as con:
            return con.execute(
                "SELECT id, x, g, label, doc, md5(big) FROM public.docs ORDER BY id"
            ).fetchall()
    if kind == "lake":
        processed = conveyor(home, "lake", "process", "--json", timeout=300)
        assert processed.returncode == 0, processed.stdout + processed.stderr
        assert all(not t["skipped"] and t["status"] != "failed" for t in json.loads(processed.stdout))
        queried = conveyor(
            home,
            "query",
            "SELECT id, x, g, label, doc, md5(big) AS big FROM public.docs ORDER BY id",
            "--json",
        )
        assert queried.returncode == 0, queried.stderr
        return [tuple(r.values()) for r in json.loads(queried.stdout)]
    return _rows(endpoint["url"], SOURCE_ROWS)


def _into_duckdb(tmp_path: Path, pg: PostgresServer) -> tuple[str, dict[str, Any], Path]:
    """The docs table loaded and captured into DuckDB by the applied stack
    file's task ``load``: the source's URL, the target endpoint, the home."""
    source = pg.url(pg.new_database("src"))
    _execute(source, *DDL, LOADED)
    endpoint = {"engine": "duckdb", "path": str(tmp_path / "dw.duckdb")}
    stack = one_task(
        tmp_path / "conveyor.yaml",
        {"engine": "postgres", "url": source},
        endpoint,
        task="load",
        schema="public",
    )
    home = tmp_path / "home"
    assert conveyor(home, "apply", str(stack)).returncode == 0
    return source, endpoint, home


def _loaded_then_capturing(home: Path) -> None:
    wait_for(home, "load", lambda d: bool(d.get("tables")) and d["tables"][0].get("FullLoadRows") == 7)
    wait_until(lambda: described(home, "load").get("status") == "running", "capture")


@pytest.mark.parametrize("kind", ["duckdb", "lake", "postgres-existing-table", "postgres-created-table"])
def test_generated_and_xml_values_equal_the_source_after_cdc(
    kind: str, tmp_path: Path, pg_server: PostgresServer
) -> None:
    source = pg_server.url(pg_server.new_database("src"))
    _execute(source, *DDL, LOADED)
    endpoint = _target(kind, tmp_path, pg_server)
    settings: dict[str, Any] = {"ChangeProcessingTuning": {"BatchSplitSize": 1}}  # a batch per change
    if kind == "postgres-existing-table":
        # Plain columns where the source computes them: the target cannot compute them.
        _execute(
            endpoint["url"],
            "CREATE TABLE docs (id integer PRIMARY KEY, x integer, g integer, label text, doc xml, big text)",
        )
        settings["FullLoadSettings"] = {"TargetTablePrepMode": "DO_NOTHING"}
    stack = one_task(
        tmp_path / "conveyor.yaml",
        {"engine": "postgres", "url": source},
        endpoint,
        task="load",
        schema="public",
        settings=settings,
    )
    if kind == "lake":
        document = json.loads(stack.read_text())
        document["lake_tables"] = {"public.docs": {"primary_key": ["id"]}}
        stack.write_text(json.dumps(document))
    home = tmp_path / "home"
    applied = conveyor(home, "apply", str(stack))
    assert applied.returncode == 0, applied.stderr
    with _worker(home, "start"):
        wait_for(home, "load", lambda d: bool(d.get("tables")) and d["tables"][0].get("FullLoadRows") == 7)
        wait_until(lambda: described(home, "load").get("status") == "running", "capture")
    _execute(source, *CHANGES)  # while stopped: row 7 is gone before its UPDATE is read
    with _worker(home, "resume"):
        wait_until(lambda: _applied(home) >= CHANGE_COUNT, "the captured changes", 60)
    want = _rows(source, SOURCE_ROWS)
    assert [r[0] for r in want] == [1, 2, 3, 6, 10, 20, 21]
    assert want[0][1:4] == (-1, -2, "#1/-1") and want[2][4] == '<?xml version="1.0"?><new/>'
    assert _target_rows(kind, home, endpoint) == want
    log = worker_log(home, "load")
    assert "generated column" not in log and "XML declaration" not in log, "nothing to warn about"
    assert "public.docs: 1 changed rows are gone from the source since" in log


class _Lookups:
    """``LooksUpValues`` over a real PostgreSQL source (the stream's own parts)."""

    def __init__(self, url: str) -> None:
        self.parts = SourceLookups(EndpointConfig("src", "postgres", url=url))

    def lookup_columns(self, table: TableSchema) -> tuple[str, ...]:
        return lookup_columns(table)

    def look_up(self, table: TableSchema, columns: Any, keys: Any) -> dict[tuple[Any, ...], dict[str, Any]]:
        return self.parts.look_up(table, columns, keys)


def test_a_row_gone_from_the_source_is_not_written(pg_server: PostgresServer) -> None:
    """A batch's rows get the source's current values, renamed as the mapping
    says; a key the source no longer has leaves its upsert, partial update and
    logged change out (its DELETE follows in the stream)."""
    source = pg_server.url(pg_server.new_database("src"))
    _execute(source, *DDL, f"INSERT INTO docs (id, x, doc) VALUES (1, 5, '{DECLARED}')")
    [table] = PostgresSource(EndpointConfig("src", "postgres", url=source)).tables()
    rename = {
        "rule-type": "transformation",
        "rule-id": "2",
        "rule-name": "r",
        "rule-target": "column",
        "object-locator": {"schema-name": "public", "table-name": "docs", "column-name": "g"},
        "rule-action": "rename",
        "value": "twice",
    }
    select = {
        "rule-type": "selection",
        "rule-id": "1",
        "rule-name": "s",
        "object-locator": {"schema-name": "public", "table-name": "%"},
        "rule-action": "include",
    }
    [mapped] = TableMappings.parse({"rules": [select, rename]}, "t").select([table])
    lookups = _Lookups(source)
    lookup = value_lookup(lookups, mapped)
    assert lookup is not None and lookup.columns == ("g", "label", "doc")
    upserts = [{"id": 1, "x": 5}, {"id": 2, "x": 9}]
    partial = {frozenset({"big"}): [{"id": 1, "x": 5}, {"id": 2, "x": 9}]}
    at = Checkpoint("postgres", {})
    logged = (LoggedChange("c", None, {"id": 2, "x": 9}, at, 0), LoggedChange("d", {"id": 2}, None, at, 1))
    try:
        kept, parts, log = lookup.complete(
            upserts, partial, logged, {(1,): (1,), (2,): (2,)}, lambda row: (row["id"],)
        )
    finally:
        lookups.parts.close()
    whole = {"id": 1, "x": 5, "twice": 10, "label": "#1/5", "doc": DECLARED}
    assert kept == [whole]
    assert parts == {frozenset({"big"}): [whole]}
    assert [c.op for c in log] == ["d"], "the INSERT of the row gone is left out of the log"


def test_source_ddl_keeps_the_looked_up_columns(tmp_path: Path, pg_server: PostgresServer) -> None:
    """The stream's relation never has generated columns: an added column is
    DDL, the generated ones the target holds stay (and stay looked up); a
    looked-up column dropped on the source before its changes were applied
    suspends the table with the reason (its values cannot be looked up)."""
    source, endpoint, home = _into_duckdb(tmp_path, pg_server)
    with _worker(home, "start"):
        _loaded_then_capturing(home)
        _execute(
            source,
            "ALTER TABLE docs ADD COLUMN n integer",
            "UPDATE docs SET x = 100, n = 1 WHERE id = 1",
        )
        wait_until(lambda: _applied(home) >= 1, "the change after the DDL")
        # One transaction: the DDL reaches the runner with the UPDATE not yet applied,
        # whose lookup then fails (the column is gone): the target keeps its shape.
        _execute(
            source,
            "BEGIN; UPDATE docs SET doc = '<a/>' WHERE id = 2; ALTER TABLE docs DROP COLUMN doc; COMMIT",
        )
        wait_until(
            lambda: bool(described(home, "load")["tables"][0].get("SuspendedReason")), "the table suspended"
        )
        reason = described(home, "load")["tables"][0]["SuspendedReason"]
    assert "looked up from the source by key, which failed" in reason and "reload the table" in reason, reason
    with duckdb.connect(endpoint["path"], read_only=True) as con:
        row = con.execute("SELECT id, x, g, label, doc, n FROM public.docs WHERE id = 1").fetchone()
    assert row == (1, 100, 200, "#1/100", DECLARED, 1)


def test_a_generated_column_added_during_capture_suspends_until_a_reload(
    tmp_path: Path, pg_server: PostgresServer
) -> None:
    """pgoutput never sends a generated column, so one added by DDL during
    capture used to be missed (the target without it, no word). The source
    computed it for every row: the table is suspended with the reason, and
    its reload (the task runs on) brings the column and its values."""
    source, endpoint, home = _into_duckdb(tmp_path, pg_server)
    with _worker(home, "start"):
        _loaded_then_capturing(home)
        _execute(source, "ALTER TABLE docs ADD COLUMN triple integer GENERATED ALWAYS AS (x * 3) STORED")
        wait_until(
            lambda: bool(described(home, "load")["tables"][0].get("SuspendedReason")), "the table suspended"
        )
        reason = described(home, "load")["tables"][0]["SuspendedReason"]
        assert "generated column(s) triple added" in reason and "reload" in reason, reason
        reload = conveyor(home, "tasks", "reload", "load", "--table", "public.docs")
        assert reload.returncode == 0, reload.stderr
        wait_until(lambda: not described(home, "load")["tables"][0].get("SuspendedReason"), "the reload", 60)
        _execute(source, "UPDATE docs SET x = 11 WHERE id = 1")
        wait_until(lambda: _applied(home) >= 1, "a change after the reload")
    with duckdb.connect(endpoint["path"], read_only=True) as con:
        rows = con.execute("SELECT id, x, g, triple FROM public.docs ORDER BY id").fetchall()
    assert rows == _rows(source, "SELECT id, x, g, triple FROM docs ORDER BY id")
    assert rows[0] == (1, 11, 22, 33)
