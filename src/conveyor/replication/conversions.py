"""``change-data-type``: a target column of another type than the source's, its
values converted by Arrow's checked casts (the same in the full load and in
CDC). A value that does not convert (``'abc'`` to an integer, ``2.5`` to an
integer, a text longer than the varchar, an out-of-range number) is refused:
the full load logs it to the apply-exceptions table per DataErrorPolicy,
change capture suspends the table with the reason."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from conveyor.core.arrow_compute import pc
from conveyor.core.errors import DataError
from conveyor.core.schema import TableRef
from conveyor.core.types import ColumnType, Kind

_CAST_ERRORS = (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, OverflowError)


def convertible(source: ColumnType, target: ColumnType) -> bool:
    """Whether Arrow can convert these types at all (some values may still fail)."""
    try:
        pa.array([], type=source.arrow()).cast(target.arrow())
    except _CAST_ERRORS:
        return False
    return True


@dataclass(frozen=True)
class Conversion:
    """One target column's type change; ``rule`` names the rule in messages."""

    table: TableRef
    column: str
    source: ColumnType
    target: ColumnType
    rule: str

    def array(self, values: pa.Array) -> pa.Array:
        """The column converted; DataError names the first row that does not convert."""
        try:
            converted = values.cast(self.target.arrow(), safe=True)
        except _CAST_ERRORS:
            converted = None
        if converted is not None and not self._too_long(converted):
            return converted
        for row in range(len(values)):
            try:
                self._one(values.slice(row, 1))
            except _Refused as exc:
                raise self._error(values[row].as_py(), str(exc), row) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def value(self, value: Any) -> Any:
        """One CDC value converted (DataError when it does not convert)."""
        if value is None:
            return None
        try:
            return self._one(pa.array([value], type=self.source.arrow())).to_pylist()[0]
        except (_Refused, *_CAST_ERRORS) as exc:
            raise self._error(value, str(exc), None) from None

    def _one(self, values: pa.Array) -> pa.Array:
        try:
            converted = values.cast(self.target.arrow(), safe=True)
        except _CAST_ERRORS as exc:
            raise _Refused(" ".join(str(exc).split())) from None
        if self._too_long(converted):
            raise _Refused(f"longer than {self.target.length} characters")
        return converted

    def _too_long(self, values: pa.Array) -> bool:
        if self.target.kind is not Kind.TEXT or self.target.length is None:
            return False
        longest = pc.max(pc.utf8_length(values)).as_py()
        return longest is not None and longest > self.target.length

    def _error(self, value: Any, reason: str, row: int | None) -> DataError:
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
        return DataError(
            f"table {self.table}: {self.rule}: column {self.column!r}: {shown} cannot be converted "
            f"to {self.target.describe()}: {reason}",
            row=row,
            column=self.column,
            load_usable=True,
        )


class _Refused(Exception):
    pass
