"""Target names that collide once the target resolves them (replication.identifiers)."""

from __future__ import annotations

import pytest

from conveyor.connectors.base import EndpointConfig
from conveyor.connectors.duckdb.names import fold_identifier
from conveyor.connectors.duckdb.target import DuckDBTarget
from conveyor.connectors.lake.target import LakeTarget
from conveyor.connectors.postgres.target import PostgresTarget
from conveyor.core.schema import TableRef
from conveyor.replication.identifiers import EXACT, TargetNames, collisions, folding_of


def _table(name: str, columns: tuple[str, ...] = ("id",), schema: str = "public") -> TargetNames:
    return TargetNames(
        TableRef(f"src_{schema}", name), TableRef(schema, name), tuple((c, c) for c in columns)
    )


DUCKDB = folding_of(DuckDBTarget(EndpointConfig("dw", "duckdb", path=":memory:")))


@pytest.mark.parametrize(
    ("name", "folded"),
    [("Mixed", "mixed"), ("MIXED", "mixed"), ("mixed", "mixed"), ("Ärger", "Ärger"), ("a_B-1", "a_b-1")],
)
def test_duckdb_folds_ascii_letters_only(name: str, folded: str) -> None:
    assert fold_identifier(name) == folded


@pytest.mark.parametrize(
    ("tables", "refused"),
    [
        ([_table("Mixed"), _table("MIXED"), _table("other")], {"Mixed", "MIXED"}),
        ([_table("Mixed"), _table("MIXED"), _table("mixed")], {"Mixed", "MIXED", "mixed"}),
        ([_table("Mixed", schema="a"), _table("MIXED", schema="b")], set()),  # other schemas
        ([_table("One"), _table("Two")], set()),
        ([_table("t", ("Id", "ID", "name"))], {"t"}),
        ([_table("t", ("id", "name")), _table("u", ("id", "name"))], set()),
    ],
)
def test_collisions_under_duckdb(tables: list[TargetNames], refused: set[str]) -> None:
    assert {ref.name for ref in collisions(tables, DUCKDB)} == refused


def test_schemas_fold_too() -> None:
    tables = [_table("t", schema="Sales"), _table("t", schema="SALES")]
    assert len(collisions(tables, DUCKDB)) == 2


def test_exact_folding_lets_case_differ() -> None:
    assert collisions([_table("Mixed"), _table("MIXED")], EXACT) == {}
    assert folding_of(object()) is EXACT


def test_reasons_name_both_source_tables_and_columns() -> None:
    reasons = collisions([_table("Mixed"), _table("MIXED")], DUCKDB)
    mixed = reasons[TableRef("src_public", "Mixed")]
    assert "target table public.Mixed (source table src_public.Mixed) collides with public.MIXED" in mixed
    assert "(source table src_public.MIXED)" in mixed and "without regard to case" in mixed
    renamed = TargetNames(
        TableRef("src", "t"), TableRef("public", "t"), (("a", "Key"), ("b", "KEY"), (None, "key"))
    )
    [reason] = collisions([renamed], DUCKDB).values()
    assert "column 'Key' (source column 'a') and column 'KEY' (source column 'b')" in reason
    assert "added column 'key'" in reason


def test_names_a_target_cannot_hold_refuse_their_table() -> None:
    """PostgreSQL cuts names past 63 bytes; a lake's schema and table names are folders."""
    postgres = folding_of(PostgresTarget(EndpointConfig("pg", "postgres", url="postgresql://x/y")))
    lake = folding_of(LakeTarget(EndpointConfig("lake", "lake", path="/tmp/lake")))
    tables = [
        _table("p" * 63 + "_one"),
        _table("t", ("id", "é" * 32)),
        _table("ok", ("id", "a/b")),
        _table(".."),
    ]
    refused = collisions(tables, postgres)
    assert sorted(ref.name for ref in refused) == ["p" * 63 + "_one", "t"]
    assert (
        "column name 'éééééééééééééééééééééééééééééééé': PostgreSQL names are at most 63 bytes"
        in (refused[TableRef("src_public", "t")])
    )
    assert "(this column name has 64;" in refused[TableRef("src_public", "t")]
    refused = collisions(tables, lake)
    assert list(refused) == [TableRef("src_public", "..")]  # columns are no folders
    assert (
        "table name '..': a lake's schema and table names are folder names"
        in refused[TableRef("src_public", "..")]
    )
