"""The metadata store's schema under Alembic, on SQLite and on PostgreSQL: a new store
is at the head and equals schema.py; a store made by Conveyor before Alembic (schema
versions 1..7, from a snapshot that Conveyor of that time wrote) is upgraded with
every row kept; a later revision runs on an existing store; a store newer than this
Conveyor is refused; processes opening a new store at once migrate it once; a store
already at the head is opened without importing Alembic."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Engine, Integer, String, Table, create_engine, inspect, text

from conveyor.core.errors import ConveyorError
from conveyor.store import migrate, schema
from conveyor.store.store import Store

HEAD_LEGACY = migrate.LEGACY_GUARD if migrate.HEAD != migrate.BASELINE else migrate.LEGACY_LATEST
"""What ``schema_version`` says at the head: the guard once a revision followed the baseline."""

SNAPSHOTS = Path(__file__).resolve().parents[1] / "data" / "store"
LEGACY_TABLES = {
    1: ["schema_version", "stacks", "tasks", "runs", "table_stats", "events"],
    2: ["task_progress"],
    3: ["statements", "executions", "execution_events", "endpoint_connections", "schedule_state"],
    4: ["table_suspensions"],
    5: ["task_tokens", "job_runs"],
    6: ["load_segments"],
    7: ["task_samples"],
}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """Where a store lives: a CONVEYOR_HOME directory, or a private PostgreSQL database."""
    if request.param == "sqlite":
        return {"home": tmp_path / "home"}
    server = request.getfixturevalue("pg_server")
    return {"url": server.url(server.new_database("store"))}


@pytest.fixture
def raw(location: dict[str, Any]) -> Iterator[Engine]:
    """An engine on the store's database that runs no migration."""
    if "home" in location:
        location["home"].mkdir(parents=True, exist_ok=True)
        engine = create_engine(f"sqlite:///{location['home'] / 'conveyor.db'}")
    else:
        engine = create_engine(location["url"].replace("postgresql://", "postgresql+psycopg://"))
    yield engine
    engine.dispose()


def load_v7_snapshot(location: dict[str, Any], version: int) -> None:
    """The store as Conveyor of schema version ``version`` left it (each version
    only added tables, so version N is version 7 without the later ones)."""
    later = [t for v, names in LEGACY_TABLES.items() if v > version for t in names]
    if "home" in location:
        conn = sqlite3.connect(location["home"] / "conveyor.db")
        conn.executescript((SNAPSHOTS / "v7-sqlite.sql").read_text())
        conn.executescript("".join(f"DROP TABLE {t};" for t in later))
        conn.execute("UPDATE schema_version SET version = ?", (version,))
        conn.commit()
        conn.close()
    else:
        with psycopg.connect(location["url"], autocommit=True) as conn:
            conn.execute((SNAPSHOTS / "v7-postgres.sql").read_text().encode())
        with psycopg.connect(location["url"], autocommit=True) as conn:
            for table in later:
                conn.execute(f"DROP TABLE {table} CASCADE".encode())
            conn.execute("UPDATE schema_version SET version = %s", (version,))


def rows(engine: Engine, tables: list[str]) -> dict[str, list[tuple[Any, ...]]]:
    with engine.connect() as conn:
        return {t: sorted(map(tuple, conn.execute(text(f"SELECT * FROM {t}"))), key=repr) for t in tables}


def differences(engine: Engine) -> list[Any]:
    """What differs between the store's tables and schema.py (Alembic's autogenerate)."""
    with engine.connect() as conn:
        return list(compare_metadata(MigrationContext.configure(conn), schema.metadata))


def versions(engine: Engine) -> tuple[list[str], list[int]]:
    with engine.connect() as conn:
        alembic = [r[0] for r in conn.execute(text("SELECT version_num FROM alembic_version"))]
        legacy = [r[0] for r in conn.execute(text("SELECT version FROM schema_version"))]
    return alembic, legacy


def test_head_is_the_one_head_of_the_scripts() -> None:
    scripts = ScriptDirectory(str(migrate.SCRIPTS))
    assert scripts.get_heads() == [migrate.HEAD]
    assert scripts.get_revision(migrate.BASELINE).down_revision is None


def test_a_new_store_is_at_the_head_and_equals_the_schema(location: dict[str, Any], raw: Engine) -> None:
    Store.open(**location).close()
    assert differences(raw) == []
    assert versions(raw) == ([migrate.HEAD], [HEAD_LEGACY])


@pytest.mark.parametrize("version", list(LEGACY_TABLES))
def test_a_store_from_before_alembic_is_upgraded_with_nothing_lost(
    location: dict[str, Any], raw: Engine, version: int
) -> None:
    load_v7_snapshot(location, version)
    kept = [t for v, names in LEGACY_TABLES.items() if v <= version for t in names if t != "schema_version"]
    before = rows(raw, kept)
    assert before["runs"] and before["events"]

    store = Store.open(**location)
    try:
        assert rows(raw, kept) == before
        assert differences(raw) == []
        assert versions(raw) == ([migrate.HEAD], [HEAD_LEGACY])
        assert store.stack_document() == {"endpoints": {"src": {"engine": "sqlite", "path": "src.db"}}}
        assert store.task_status("orders")["stop_reason"] == "STOP_REASON_NORMAL"
        assert [e["id"] for e in store.list_events()] == ["ev-1"]
        assert store.table_stats("orders") == [{"FullLoadRows": 3}]
        assert store.start_run("orders", None) == 2  # the old ids go on (PostgreSQL: its sequence)
        if version >= 4:
            assert store.suspensions("orders")[0]["position"] == {"lsn": 42}
        store.put_task_progress("orders", 2, {"CDCLatencySource": 1.5})  # tables the upgrade added work
        store.put_suspension("orders", ("main", "x"), ("dw", "x"), "refused", None)
        assert store.task_progress("orders") == {"CDCLatencySource": 1.5}
    finally:
        store.close()
    Store.open(**location).close()  # at the head: opened again as it is
    assert versions(raw) == ([migrate.HEAD], [HEAD_LEGACY])


def test_a_store_newer_than_this_conveyor_is_refused(location: dict[str, Any], raw: Engine) -> None:
    Store.open(**location).close()
    with raw.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(ConveyorError, match=r"schema version 9999, newer than this Conveyor understands"):
        Store.open(**location)
    with raw.begin() as conn:  # a legacy version past the last one, and no Alembic revision
        conn.execute(text("DROP TABLE alembic_version"))
        conn.execute(text("UPDATE schema_version SET version = 8"))
    with pytest.raises(ConveyorError, match=r"schema version 8, newer than this Conveyor understands \(7\)"):
        Store.open(**location)


LATER_REVISION = '''
"""A later change: a column on runs.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("host", sa.String(length=300), nullable=True))


def downgrade() -> None:
    raise NotImplementedError
'''


@pytest.fixture
def scripts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the store's scripts, the ones the store runs during the test."""
    copy = tmp_path / "migrations"
    shutil.copytree(migrate.SCRIPTS, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(migrate, "SCRIPTS", copy)
    return copy


@pytest.fixture
def later_scripts(scripts: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The store's scripts with one more revision (a column on runs) as the head."""
    (scripts / "versions" / "0003_runs_host.py").write_text(LATER_REVISION)
    monkeypatch.setattr(migrate, "HEAD", "0003")
    return scripts


def test_a_later_revision_upgrades_a_store_and_older_conveyors_refuse_it(
    location: dict[str, Any], raw: Engine, later_scripts: Path
) -> None:
    load_v7_snapshot(location, 3)
    Store.open(**location).close()
    assert versions(raw) == (["0003"], [migrate.LEGACY_GUARD])  # > 7: Conveyor before Alembic refuses
    assert "host" in {c["name"] for c in inspect(raw).get_columns("runs")}
    with raw.connect() as conn:
        assert conn.execute(text("SELECT pid FROM runs WHERE id = 1")).scalar() == 4242


def test_a_new_revision_is_written_from_the_schema(scripts: Path) -> None:
    extra = Table(
        "extra_things", schema.metadata, Column("id", Integer, primary_key=True), Column("name", String(50))
    )
    try:
        migrate.new_revision("extra things")
    finally:
        schema.metadata.remove(extra)
    written = list((scripts / "versions").glob("0003_*.py"))
    assert len(written) == 1
    body = written[0].read_text()
    assert (
        'revision = "0003"' in body.replace("'", '"')
        and "op.create_table(" in body
        and "extra_things" in body
    )
    assert "'runs'" not in body  # only the difference is written


def opener(location: dict[str, Any]) -> list[str]:
    where = f"home=Path({str(location['home'])!r})" if "home" in location else f"url={location['url']!r}"
    code = f"""
        import sys
        from pathlib import Path
        from conveyor.store.store import Store
        Store.open({where}).close()
        print("alembic" in sys.modules)
    """
    return [sys.executable, "-c", textwrap.dedent(code)]


def test_processes_opening_a_new_store_at_once_migrate_it_once(location: dict[str, Any], raw: Engine) -> None:
    procs = [
        subprocess.Popen(opener(location), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err[-2000:] for _, err in results]
    assert versions(raw) == ([migrate.HEAD], [HEAD_LEGACY])
    assert differences(raw) == []


def test_a_store_at_the_head_is_opened_without_alembic(location: dict[str, Any]) -> None:
    first = subprocess.run(opener(location), capture_output=True, text=True, timeout=120, check=True)
    assert first.stdout.strip() == "True"  # a new store: Alembic made it
    again = subprocess.run(opener(location), capture_output=True, text=True, timeout=120, check=True)
    assert again.stdout.strip() == "False"


def test_a_scratch_store_in_memory_has_the_head_tables_without_alembic() -> None:
    code = """
        import sys
        from sqlalchemy import create_engine
        from conveyor.store.store import Store
        store = Store(create_engine("sqlite://"))
        store.put_task_progress("t", 1, {"AppliedChanges": 1})
        assert store.task_progress("t") == {"AppliedChanges": 1}
        print("alembic" in sys.modules)
    """
    ran = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert (ran.returncode, ran.stdout.strip()) == (0, "False"), ran.stderr[-2000:]
