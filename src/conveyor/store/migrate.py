"""The metadata store's schema history: Alembic revisions (store/migrations/versions),
applied when a store is opened.

Every command opens the store, so the check that a store is at the head is one
query and loads no Alembic; only a store that needs a migration imports it. A
migration runs in one transaction under a lock (PostgreSQL: an advisory lock;
SQLite: BEGIN IMMEDIATE), so processes that open a store at once migrate it once.

A store made by Conveyor before Alembic has a ``schema_version`` table (1..7) and no
``alembic_version``: the baseline revision creates the tables its version lacked.
The ``schema_version`` table stays as a guard for those older Conveyors: it says 7
while the store is at the baseline (which is their schema), and 8 once a later
revision changed it, so they refuse the store ("upgrade Conveyor") rather than
write to a schema they do not know.

A new revision: change schema.py, then ``python -m conveyor.store.migrate revision
"what changed"`` writes versions/NNNN_*.py from the difference (review it), and set
HEAD below to its number."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from conveyor.core.errors import ConveyorError
from conveyor.store import schema

if TYPE_CHECKING:
    from alembic.config import Config

HEAD = "0002"
"""The newest revision (tests/unit/test_store_migrations.py checks it is the scripts' head)."""
BASELINE = "0001"
"""The revision equal to the schema of Conveyor's own migrations at their last version."""
LEGACY_LATEST = 7
"""The last ``schema_version`` of Conveyor's own migrations (before Alembic)."""
LEGACY_GUARD = 8
"""``schema_version`` once a revision after the baseline ran: older Conveyors refuse it."""
SCRIPTS = Path(__file__).with_name("migrations")
LOCK_KEY = 0x636F6E76_6D696772 & 0x7FFFFFFFFFFFFFFF
"""PostgreSQL advisory lock of the store's migration (any constant; "convmigr")."""


def revision(engine: Engine) -> str | None:
    """The store's Alembic revision, None when it has none (new, or from before Alembic)."""
    try:
        with engine.connect() as conn:
            value = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except DBAPIError:  # no alembic_version table (a connection error shows again in upgrade)
        return None
    return None if value is None else str(value)


def upgrade(engine: Engine) -> None:
    """Bring the store to HEAD; refuse a store newer than this Conveyor."""
    if engine.dialect.name == "sqlite" and engine.url.database in (None, "", ":memory:"):
        # a scratch store (apply's validation) has no history to keep: the head's
        # tables as schema.py declares them (the tests hold the two equal)
        schema.metadata.create_all(engine)
        return
    if revision(engine) == HEAD:
        return
    _upgrade(engine)


def _newer(found: object, known: object) -> ConveyorError:
    return ConveyorError(
        f"the metadata store has schema version {found}, newer than this Conveyor "
        f"understands ({known}): upgrade Conveyor"
    )


def _config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(SCRIPTS))
    return config


def _lock(conn: Connection) -> None:
    """Begin the migration's transaction, holding the store's migration lock."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
    elif conn.dialect.name == "sqlite":
        # pysqlite leaves DDL outside transactions unless one is begun explicitly
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _upgrade(engine: Engine) -> None:
    from alembic import command
    from alembic.script import ScriptDirectory
    from sqlalchemy import inspect

    config = _config()
    known = {script.revision for script in ScriptDirectory.from_config(config).walk_revisions()}
    with engine.connect() as conn:
        _lock(conn)
        tables = set(inspect(conn).get_table_names())
        if "alembic_version" in tables:
            # read under the lock: another process may have migrated the store meanwhile
            current = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
            if current == HEAD:
                conn.rollback()
                return
            if current is not None and current not in known:
                raise _newer(current, HEAD)
        elif "schema_version" in tables:
            legacy = conn.execute(text("SELECT max(version) FROM schema_version")).scalar()
            if legacy is not None and legacy > LEGACY_LATEST:
                raise _newer(legacy, LEGACY_LATEST)
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
        if HEAD != BASELINE:
            conn.execute(text("UPDATE schema_version SET version = :v"), {"v": LEGACY_GUARD})
        conn.commit()


def new_revision(message: str) -> None:
    """Write the next revision from the difference between schema.py and a store at
    HEAD (a developer's command; review what it wrote)."""
    import tempfile

    from alembic import command
    from sqlalchemy import create_engine

    with tempfile.TemporaryDirectory() as folder:
        engine = create_engine(f"sqlite:///{folder}/store.db")
        try:
            upgrade(engine)
            config = _config()
            with engine.connect() as conn:
                config.attributes["connection"] = conn
                command.revision(config, message, autogenerate=True, rev_id=f"{int(HEAD) + 1:04d}")
        finally:
            engine.dispose()


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "revision":
        sys.exit('usage: python -m conveyor.store.migrate revision "what changed"')
    new_revision(sys.argv[2])
