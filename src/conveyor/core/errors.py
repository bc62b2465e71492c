"""Errors every layer raises. Each message says what was wrong and where, in words
a person can act on, and never contains a secret."""

from __future__ import annotations


class ConveyorError(Exception):
    """Base of every error Conveyor reports to a user."""

    exit_code = 1


class ConfigError(ConveyorError):
    """The user's input (stack file, mappings, settings, CLI argument) is invalid."""

    exit_code = 2


class NotFoundError(ConveyorError):
    """A named endpoint, task or other object does not exist."""

    exit_code = 2


class ConnectionFailed(ConveyorError):
    """An endpoint could not be reached or refused the credentials."""


class TransientError(ConveyorError):
    """Worth retrying with backoff: the same call may succeed later."""


class TerminalError(ConveyorError):
    """Retrying will not help: the table or task stops with this reason."""


class SchemaMismatch(TerminalError):
    """A target table exists with a shape the load cannot write into."""


class DataError(ConveyorError):
    """A value cannot be written to the target (out of range, not representable).

    A target that knows which row of a write was refused says so in ``row``
    (its index in the batch) and ``column``; when ``load_usable`` is true the
    rows of that write were not applied and the load can go on without them.
    """

    def __init__(
        self, message: str, *, row: int | None = None, column: str | None = None, load_usable: bool = False
    ) -> None:
        super().__init__(message)
        self.row = row
        self.column = column
        self.load_usable = load_usable
