"""Runtime errors of a state machine execution, named as Step Functions names them.

A :class:`StatesError` travels through the engine until a ``Retry`` or ``Catch``
handles it or the execution fails with it. Definition problems are
:class:`conveyor.core.errors.ConfigError`, raised before anything runs.
"""

from __future__ import annotations

ALL = "States.ALL"
TASK_FAILED = "States.TaskFailed"
TIMEOUT = "States.Timeout"
HEARTBEAT_TIMEOUT = "States.HeartbeatTimeout"
RUNTIME = "States.Runtime"
NO_CHOICE_MATCHED = "States.NoChoiceMatched"
INTRINSIC_FAILURE = "States.IntrinsicFailure"
RESULT_PATH_MATCH_FAILURE = "States.ResultPathMatchFailure"
PARAMETER_PATH_FAILURE = "States.ParameterPathFailure"
BRANCH_FAILED = "States.BranchFailed"
PERMISSIONS = "States.Permissions"
DATA_LIMIT_EXCEEDED = "States.DataLimitExceeded"
QUERY_EVALUATION = "States.QueryEvaluationError"
EXCEED_TOLERATED_FAILURE = "States.ExceedToleratedFailureThreshold"
ITEM_READER_FAILED = "States.ItemReaderFailed"
RESULT_WRITER_FAILED = "States.ResultWriterFailed"

# Errors that end the execution whatever its Retry/Catch say (AWS: "A retry or catch
# on States.ALL won't catch States.Runtime errors", and DataLimitExceeded is terminal).
UNCATCHABLE = frozenset({RUNTIME, DATA_LIMIT_EXCEEDED})


class StatesError(Exception):
    """An error raised inside a running state: ``error`` is its name, ``cause`` the details."""

    def __init__(self, error: str, cause: str | None = None) -> None:
        super().__init__(f"{error}: {cause}" if cause else error)
        self.error = error
        self.cause = cause


class TaskError(StatesError):
    """What an integration raises for a failed task; ``error`` is matched by Retry/Catch."""

    def __init__(self, error: str = TASK_FAILED, cause: str | None = None) -> None:
        super().__init__(error, cause)


def matches(error_equals: list[str], error: str) -> bool:
    """Whether a Retry/Catch ``ErrorEquals`` list handles ``error``."""
    if error in UNCATCHABLE:
        return False
    if error in error_equals:
        return True
    # "States.TaskFailed acts as a wildcard that matches any known error name except
    # for States.Timeout" (AWS docs).
    if TASK_FAILED in error_equals and error != TIMEOUT:
        return True
    return ALL in error_equals
