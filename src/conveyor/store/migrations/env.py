"""Alembic's environment for the metadata store: it runs on the connection that
conveyor.store.migrate hands it (``config.attributes["connection"]``), inside the
transaction that holds the migration lock; it opens nothing of its own."""

from __future__ import annotations

from alembic import context

from conveyor.store.schema import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("the store's migrations run through conveyor.store.migrate, not the alembic command")
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
