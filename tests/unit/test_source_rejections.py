"""Values a change stream left out (a DynamoDB attribute its column cannot
hold) go to the target's apply-exceptions table per DataErrorPolicy and its
escalation, by target table."""

from __future__ import annotations

from conveyor.core.batch import RejectedValue
from conveyor.core.schema import Column, TableRef, TableSchema
from conveyor.core.types import Kind, simple
from conveyor.replication.cdc.refusals import DataErrorCounts, source_rejections
from conveyor.replication.settings import ErrorBehavior

SOURCE, OTHER = TableRef("dynamodb", "Orders"), TableRef("dynamodb", "Gone")
TARGET = TableSchema(TableRef("public", "orders"), (Column("id", simple(Kind.TEXT), False),), ("id",))


def _rejected(table: TableRef, key: str) -> RejectedValue:
    return RejectedValue(table, {"id": key}, "n", '{"S": "x"}', "not a number")


def test_rejections_are_named_by_target_table_and_those_of_tables_not_captured_dropped() -> None:
    suspended: list[tuple[TableRef, str]] = []
    found = source_rejections(
        [_rejected(SOURCE, "a"), _rejected(OTHER, "b"), _rejected(SOURCE, "c")],
        {SOURCE: TARGET},
        DataErrorCounts(ErrorBehavior()),
        lambda ref, reason: suspended.append((ref, reason)),
    )
    assert list(found) == [TARGET.ref] and not suspended
    schema, rows = found[TARGET.ref]
    assert schema == TARGET and [(r.table, r.key) for r in rows] == [
        (TARGET.ref, {"id": "a"}),
        (TARGET.ref, {"id": "c"}),
    ]


def test_the_escalation_suspends_the_table_and_other_policies_log_nothing() -> None:
    suspended: list[tuple[TableRef, str]] = []
    errors = ErrorBehavior.model_validate({"DataErrorEscalationCount": 2})
    found = source_rejections(
        [_rejected(SOURCE, "a"), _rejected(SOURCE, "b")],
        {SOURCE: TARGET},
        DataErrorCounts(errors),
        lambda ref, reason: suspended.append((ref, reason)),
    )
    assert found == {} and [ref for ref, _ in suspended] == [TARGET.ref]
    assert "not a number" in suspended[0][1]
    ignoring = ErrorBehavior.model_validate({"DataErrorPolicy": "IGNORE_RECORD"})
    suspended.clear()
    found = source_rejections(
        [_rejected(SOURCE, "a")],
        {SOURCE: TARGET},
        DataErrorCounts(ignoring),
        lambda ref, reason: suspended.append((ref, reason)),
    )
    assert found == {} and not suspended  # dropped, not logged
