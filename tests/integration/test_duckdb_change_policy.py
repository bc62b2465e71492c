"""DataErrorPolicy and its escalation for changes a DuckDB target would refuse
(replication.cdc.refusals over the DuckDB applier's screen, a real file)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conveyor.connectors.arrow_rows import change_batch
from conveyor.connectors.base import EndpointConfig
from conveyor.connectors.duckdb.apply import DuckDBApplier
from conveyor.core import types as t
from conveyor.core.batch import ChangeBatch
from conveyor.core.errors import TerminalError
from conveyor.core.schema import Column, TableRef, TableSchema
from conveyor.core.types import Kind
from conveyor.replication.cdc.refusals import ChangeRefusals
from conveyor.replication.settings import ErrorBehavior

pytestmark = pytest.mark.integration

TABLE = TableSchema(
    TableRef("main", "docs"),
    (
        Column("id", t.simple(Kind.INT64), nullable=False),
        Column("body", t.simple(Kind.JSON)),
        Column("size", t.enum(("s", "m"))),
    ),
    ("id",),
)
BAD = [{"id": 1, "body": "{", "size": "s"}, {"id": 2, "body": None, "size": "xl"}]
GOOD = [{"id": 3, "body": "[]", "size": "m"}]


@pytest.fixture
def applier(tmp_path: Path) -> Iterator[DuckDBApplier]:
    opened = DuckDBApplier(EndpointConfig("dw", "duckdb", path=str(tmp_path / "dw.duckdb")))
    yield opened
    opened.close()


def _refusals(applier: DuckDBApplier, suspended: dict[TableRef, str], **settings: Any) -> ChangeRefusals:
    errors = ErrorBehavior.model_validate(settings)
    return ChangeRefusals(applier, errors, suspended.__setitem__)


def _batch() -> list[ChangeBatch]:
    return [change_batch(TABLE, upserts=[*BAD, *GOOD])]


@pytest.mark.parametrize(("policy", "logged"), [("LOG_ERROR", 2), ("IGNORE_RECORD", 0)])
def test_log_error_and_ignore_record_apply_the_rest(applier: DuckDBApplier, policy: str, logged: int) -> None:
    suspended: dict[TableRef, str] = {}
    [screened] = _refusals(applier, suspended, DataErrorPolicy=policy).screen(_batch(), thorough=False)
    assert screened.upserts.column("id").to_pylist() == [3]
    assert len(screened.rejected) == logged
    assert suspended == {}
    if logged:
        by_key = {r.key["id"]: r for r in screened.rejected}
        assert (by_key["1"].column, by_key["1"].value) == ("body", "{")
        assert (by_key["2"].column, by_key["2"].value) == ("size", "xl")
        assert "not a label of the target's ENUM('s', 'm')" in by_key["2"].reason


def test_suspend_table_leaves_the_tables_changes_out(applier: DuckDBApplier) -> None:
    suspended: dict[TableRef, str] = {}
    screened = _refusals(applier, suspended, DataErrorPolicy="SUSPEND_TABLE").screen(_batch(), False)
    assert screened == []
    assert "DataErrorPolicy SUSPEND_TABLE" in suspended[TABLE.ref]


def test_stop_task_raises(applier: DuckDBApplier) -> None:
    with pytest.raises(TerminalError, match="DataErrorPolicy STOP_TASK"):
        _refusals(applier, {}, DataErrorPolicy="STOP_TASK").screen(_batch(), False)


def test_escalation_counts_committed_batches_per_table(applier: DuckDBApplier) -> None:
    suspended: dict[TableRef, str] = {}
    refusals = _refusals(
        applier, suspended, DataErrorEscalationCount=3, DataErrorEscalationPolicy="SUSPEND_TABLE"
    )
    assert len(refusals.screen(_batch(), False)) == 1  # 2 errors
    assert len(refusals.screen(_batch(), False)) == 1  # not committed: still 2, not 4
    refusals.committed()
    assert refusals.screen(_batch(), False) == []  # 2 + 2 >= 3
    assert "data error escalation: 4 errors" in suspended[TABLE.ref]
    stopping = _refusals(applier, {}, DataErrorEscalationCount=2, DataErrorEscalationPolicy="STOP_TASK")
    with pytest.raises(TerminalError, match="STOP_TASK"):
        stopping.screen(_batch(), False)
