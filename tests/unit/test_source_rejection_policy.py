"""What DataErrorPolicy makes of values a source leaves out while capturing
(DynamoDB's load errors): logged or dropped and the capture goes on, the
table suspended, or the task stopped, each with the value's reason."""

from __future__ import annotations

import pytest

from conveyor.core.errors import TerminalError
from conveyor.core.schema import TableRef
from conveyor.replication.cdc.refusals import DataErrorCounts, source_rejection_stops
from conveyor.replication.settings import ErrorBehavior, RecordPolicy


def _errors(policy: RecordPolicy) -> ErrorBehavior:
    return ErrorBehavior.model_validate({"DataErrorPolicy": policy.value})


REASON = "dynamodb.t: value of type S where column 'n' (int64) holds N values"


@pytest.mark.parametrize("policy", [RecordPolicy.LOG_ERROR, RecordPolicy.IGNORE_RECORD])
def test_logged_or_dropped_values_let_the_capture_go_on(policy: RecordPolicy) -> None:
    assert source_rejection_stops(_errors(policy), REASON) is None


def test_suspend_table_names_the_value_and_the_policy() -> None:
    reason = source_rejection_stops(_errors(RecordPolicy.SUSPEND_TABLE), REASON)
    assert reason == f"{REASON} (DataErrorPolicy SUSPEND_TABLE)"


def test_stop_task_raises_with_the_reason() -> None:
    with pytest.raises(TerminalError, match=r"column 'n' .* STOP_TASK"):
        source_rejection_stops(_errors(RecordPolicy.STOP_TASK), REASON)


def _escalating(count: int, escalation: str, policy: str = "LOG_ERROR") -> ErrorBehavior:
    return ErrorBehavior.model_validate(
        {
            "DataErrorPolicy": policy,
            "DataErrorEscalationCount": count,
            "DataErrorEscalationPolicy": escalation,
        }
    )


def test_escalation_counts_each_tables_rows_whoever_refused_them() -> None:
    """As the full load counts a table's refused rows: per table, every row."""
    counts = DataErrorCounts(_escalating(3, "SUSPEND_TABLE"))
    a, b = TableRef("s", "a"), TableRef("s", "b")
    assert counts.stops(a, REASON, 2) is None
    assert counts.stops(b, REASON, 2) is None  # another table: its own count
    assert counts.stops(a, REASON, 1) == f"{REASON} (data error escalation: 3 errors)"
    assert (counts.count(a), counts.count(b)) == (3, 2)


def test_escalation_stops_the_task_at_the_count() -> None:
    counts = DataErrorCounts(_escalating(2, "STOP_TASK"))
    assert counts.stops(TableRef("s", "a"), REASON, 1) is None
    with pytest.raises(TerminalError, match="data error escalation: 2 errors, STOP_TASK"):
        counts.stops(TableRef("s", "a"), REASON, 1)


def test_no_count_no_escalation() -> None:
    counts = DataErrorCounts(_escalating(0, "STOP_TASK"))
    assert counts.stops(TableRef("s", "a"), REASON, 1000) is None


def test_a_reloaded_table_counts_afresh() -> None:
    """A table's reload starts its count over (the runner's forget_errors); the others keep theirs."""
    counts = DataErrorCounts(_escalating(3, "SUSPEND_TABLE"))
    a, b = TableRef("s", "a"), TableRef("s", "b")
    assert counts.stops(a, REASON, 2) is None
    assert counts.stops(b, REASON, 2) is None
    counts.forget(a)
    assert (counts.count(a), counts.count(b)) == (0, 2)
    assert counts.stops(a, REASON, 2) is None  # 2, not 4
    assert counts.stops(b, REASON, 1) == f"{REASON} (data error escalation: 3 errors)"
