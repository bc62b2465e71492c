"""What DataErrorPolicy makes of values a source leaves out while capturing
(DynamoDB's load errors): logged or dropped and the capture goes on, the
table suspended, or the task stopped, each with the value's reason."""

from __future__ import annotations

import pytest

from conveyor.core.errors import TerminalError
from conveyor.replication.cdc.refusals import source_rejection_stops
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
