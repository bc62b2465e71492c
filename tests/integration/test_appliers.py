"""Change batches applied to PostgreSQL and DuckDB targets: rows, checkpoint,
replays, partial updates, truncation and added columns."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pytest

from conveyor.connectors.arrow_rows import change_batch
from conveyor.connectors.base import EndpointConfig, PrepMode
from conveyor.connectors.changes import ChangeApplier
from conveyor.connectors.postgres.apply import PostgresApplier
from conveyor.connectors.registry import open_applier, open_target
from conveyor.core import types as t
from conveyor.core.batch import Checkpoint
from conveyor.core.errors import DataError
from conveyor.core.schema import Column, TableRef, TableSchema
from conveyor.core.types import Kind
from support.servers import PostgresServer

pytestmark = pytest.mark.integration

TABLE = TableSchema(
    TableRef("sales", "orders"),
    (
        Column("id", t.simple(Kind.INT64), False),
        Column("amount", t.decimal(12, 2)),
        Column("note", t.simple(Kind.TEXT)),
        Column("big", t.simple(Kind.TEXT)),
        Column("at", t.simple(Kind.TIMESTAMPTZ)),
    ),
    ("id",),
)
WHEN = datetime(2024, 1, 2, 3, 4, 5, 600000, tzinfo=UTC)


def row(i: int, note: str = "n", big: str | None = "B") -> dict[str, Any]:
    return {"id": i, "amount": Decimal(i) / 4, "note": note, "big": big, "at": WHEN}


@pytest.fixture(params=["postgres", "duckdb"])
def endpoint(request: pytest.FixtureRequest, tmp_path: Path) -> EndpointConfig:
    if request.param == "duckdb":
        return EndpointConfig("dw", "duckdb", path=str(tmp_path / "dw.duckdb"))
    server: PostgresServer = request.getfixturevalue("pg_server")
    return EndpointConfig("dst", "postgres", url=server.url(server.new_database("apply")))


@pytest.fixture
def applier(endpoint: EndpointConfig) -> Iterator[ChangeApplier]:
    target = open_target(endpoint)
    target.begin_load(TABLE, PrepMode.DROP_AND_CREATE).commit()
    target.close()
    opened = open_applier(endpoint)
    yield opened
    opened.close()


def rows(endpoint: EndpointConfig, table: TableSchema = TABLE) -> list[dict[str, Any]]:
    target = open_target(endpoint)
    try:
        batches = list(target.read(table, 1000, order_by_key=True))
    finally:
        target.close()
    return pa.Table.from_batches(batches, schema=table.arrow_schema()).to_pylist()


def position(n: int) -> Checkpoint:
    return Checkpoint("test", {"n": n})


def test_a_batch_lands_with_its_checkpoint_and_a_replay_changes_nothing(
    applier: ChangeApplier, endpoint: EndpointConfig
) -> None:
    assert applier.read_checkpoint("t") is None
    batch = [change_batch(TABLE, upserts=[row(1), row(2), row(3)])]
    applier.apply_changes("t", batch, position(1))
    second = [change_batch(TABLE, deletes=[{"id": 2}], upserts=[row(3, "changed"), row(4)])]
    applier.apply_changes("t", second, position(2))
    applier.apply_changes("t", second, position(2))  # a replay after a crash before the source ack
    assert [(r["id"], r["note"]) for r in rows(endpoint)] == [(1, "n"), (3, "changed"), (4, "n")]
    assert rows(endpoint)[0] == row(1)
    assert applier.read_checkpoint("t") == position(2)
    assert applier.read_checkpoint("other") is None


def test_partial_updates_keep_unsent_values(applier: ChangeApplier, endpoint: EndpointConfig) -> None:
    applier.apply_changes(
        "t", [change_batch(TABLE, upserts=[row(1, big="x" * 100_000), row(2)])], position(1)
    )
    partial = {frozenset({"big"}): [{"id": 1, "amount": Decimal("9.50"), "note": "new", "at": WHEN}]}
    applier.apply_changes("t", [change_batch(TABLE, partial=partial)], position(2))
    first = rows(endpoint)[0]
    assert (first["note"], first["amount"], first["big"]) == ("new", Decimal("9.50"), "x" * 100_000)


def test_truncate_then_new_rows(applier: ChangeApplier, endpoint: EndpointConfig) -> None:
    applier.apply_changes("t", [change_batch(TABLE, upserts=[row(1), row(2)])], position(1))
    applier.apply_changes("t", [change_batch(TABLE, upserts=[row(5)], truncate=True)], position(2))
    assert [r["id"] for r in rows(endpoint)] == [5]


def test_added_columns_take_values(applier: ChangeApplier, endpoint: EndpointConfig) -> None:
    applier.apply_changes("t", [change_batch(TABLE, upserts=[row(1)])], position(1))
    wider = TableSchema(
        TABLE.ref, (*TABLE.columns, Column("flag", t.simple(Kind.BOOLEAN))), TABLE.primary_key
    )
    applier.add_columns(wider, ["flag"])
    applier.add_columns(wider, ["flag"])  # idempotent: a replay after a crash
    applier.apply_changes("t", [change_batch(wider, upserts=[row(2) | {"flag": True}])], position(2))
    assert [(r["id"], r["flag"]) for r in rows(endpoint, wider)] == [(1, None), (2, True)]


def test_a_failed_batch_leaves_rows_and_checkpoint_as_they_were(
    applier: ChangeApplier, endpoint: EndpointConfig
) -> None:
    applier.apply_changes("t", [change_batch(TABLE, upserts=[row(1)])], position(1))
    bad = row(2) | {"id": None}  # NOT NULL key
    with pytest.raises(Exception, match=r"(?i)null"):
        applier.apply_changes("t", [change_batch(TABLE, upserts=[row(3), bad])], position(2))
    assert [r["id"] for r in rows(endpoint)] == [1]
    assert applier.read_checkpoint("t") == position(1)
    applier.apply_changes("t", [change_batch(TABLE, upserts=[row(3)])], position(3))  # still usable
    assert [r["id"] for r in rows(endpoint)] == [1, 3]


def test_a_target_without_a_unique_key_still_gets_one_row_per_key(pg_server: PostgresServer) -> None:
    """ON CONFLICT needs a unique index; a pre-created table without one is
    written by delete and insert instead."""
    endpoint = EndpointConfig("dst", "postgres", url=pg_server.url(pg_server.new_database("nokey")))
    assert endpoint.url is not None
    with psycopg.connect(endpoint.url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA sales")
        conn.execute(
            "CREATE TABLE sales.orders (id bigint NOT NULL, amount numeric(12,2), note text, big text, "
            "at timestamptz)"
        )
    applier = open_applier(endpoint)
    try:
        applier.apply_changes("t", [change_batch(TABLE, upserts=[row(1), row(2)])], position(1))
        applier.apply_changes("t", [change_batch(TABLE, upserts=[row(1, "again")])], position(2))
    finally:
        applier.close()
    assert [(r["id"], r["note"]) for r in rows(endpoint)] == [(1, "again"), (2, "n")]


def test_a_refused_value_is_named_by_column_not_shown(pg_server: PostgresServer) -> None:
    """The reason a table is suspended with is kept and shown: it names the
    column, never the row's values (which may be secret)."""
    endpoint = EndpointConfig("dst", "postgres", url=pg_server.url(pg_server.new_database("refuse")))
    assert endpoint.url is not None
    with psycopg.connect(endpoint.url, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.secrets (id int PRIMARY KEY, pin varchar(4), note text)")
    table = TableSchema(
        TableRef("public", "secrets"),
        (
            Column("id", t.simple(Kind.INT32), False),
            Column("pin", t.simple(Kind.TEXT)),
            Column("note", t.simple(Kind.TEXT)),
        ),
        ("id",),
    )
    applier = PostgresApplier(endpoint)
    try:
        with pytest.raises(DataError) as refused:
            applier.apply_changes(
                "t",
                [change_batch(table, upserts=[{"id": 1, "pin": "123456", "note": "top secret"}])],
                position(1),
            )
    finally:
        applier.close()
    message = str(refused.value)
    assert "too long" in message and "pin" in message
    assert "123456" not in message and "top secret" not in message


def test_a_table_recreated_with_another_type_is_applied_after_forget_shapes(pg_db: str) -> None:
    """A reload recreates a target table (its type changed): the applier's
    staging tables of the old shape must not refuse the new values."""
    small = TableSchema(
        TableRef("public", "n"),
        (Column("id", t.simple(Kind.INT64), False), Column("v", t.simple(Kind.INT32))),
        ("id",),
    )
    big = TableSchema(small.ref, (small.columns[0], Column("v", t.simple(Kind.INT64))), ("id",))
    endpoint = EndpointConfig("dst", "postgres", url=pg_db)
    target = open_target(endpoint)
    target.begin_load(small, PrepMode.DROP_AND_CREATE).commit()
    target.close()
    applier = PostgresApplier(endpoint)
    try:
        position = Checkpoint("postgres", {"lsn": 1})
        applier.apply_changes("t", [change_batch(small, upserts=[{"id": 1, "v": 1}])], position)
        target = open_target(endpoint)
        target.begin_load(big, PrepMode.DROP_AND_CREATE).commit()  # what a reload does
        target.close()
        applier.forget_shapes()
        applier.apply_changes("t", [change_batch(big, upserts=[{"id": 1, "v": 5_000_000_000}])], position)
    finally:
        applier.close()
    with psycopg.connect(pg_db) as conn:
        assert conn.execute("SELECT v FROM n").fetchall() == [(5_000_000_000,)]
